"""P2 (JBBA): exact, milp and brute agree; dual ascent is feasible and its bound is valid."""
import numpy as np
import pytest

from solvers import Status, run_method
from solvers.bandwidth import min_bandwidth, optimal_split, shannon_bandwidth_for_rate
from solvers.jbba import bandwidth_subproblem, project_simplex
from solvers.model import rate_bps

from .instances import random_instance


def check_allocation(instance, result):
    """Feasible, within budget, and the reported latency is the recomputed one."""
    assert len(set(result.assignment.tolist())) == instance.n_blocks
    assert instance.memory_feasible()[result.assignment, np.arange(instance.n_blocks)].all()
    assert result.bandwidth_hz.sum() <= instance.total_bandwidth_hz * (1 + 1e-12)
    idle = np.setdiff1d(np.arange(instance.n_devices), result.assignment)
    assert np.all(result.bandwidth_hz[idle] == 0)
    recomputed = instance.assignment_latency(result.assignment, result.bandwidth_hz).max()
    assert result.round_latency_s == recomputed


@pytest.mark.parametrize("rate_model", ["fixed", "shannon"])
@pytest.mark.parametrize("variant", [dict(), dict(ties=True), dict(memory_tight=True)])
@pytest.mark.parametrize("methods, count", [(("exact", "brute"), 300),
                                            (("exact", "milp", "brute"), 25)])
def test_exact_milp_brute_agree(rate_model, variant, methods, count):
    rng = np.random.default_rng(len(variant) * 10 + (rate_model == "shannon") + len(methods))
    infeasible = 0
    for _ in range(count):
        instance = random_instance(rng, rate_model=rate_model, max_blocks=4, **variant)
        results = {m: run_method(m, "jbba", instance) for m in methods}
        statuses = {r.status for r in results.values()}
        assert len(statuses) == 1, results
        if statuses == {Status.INFEASIBLE}:
            infeasible += 1
            continue
        optimum = results["brute"].round_latency_s
        for name, result in results.items():
            check_allocation(instance, result)
            assert result.round_latency_s == pytest.approx(optimum, rel=1e-6), name
            assert result.lower_bound_s <= optimum * (1 + 1e-9)
    assert infeasible < count


@pytest.mark.parametrize("rate_model", ["fixed", "shannon"])
@pytest.mark.parametrize("repair", [True, False])
def test_dual_ascent_is_feasible_and_its_bound_is_valid(rate_model, repair):
    rng = np.random.default_rng(42 + repair)
    for _ in range(100):
        instance = random_instance(rng, rate_model=rate_model, max_blocks=5, extra_devices=5)
        exact = run_method("exact", "jbba", instance)
        result = run_method("dual-ascent", "jbba", instance, repair=repair)
        assert result.status is Status.INFEASIBLE or exact.status is not Status.INFEASIBLE
        if exact.status is Status.INFEASIBLE:
            assert result.status is Status.INFEASIBLE
            continue
        check_allocation(instance, result)
        optimum = exact.round_latency_s
        assert result.round_latency_s >= optimum * (1 - 1e-6)
        assert result.lower_bound_s <= optimum * (1 + 1e-6)
        history = result.extras["history"]
        assert all(h["best_dual_s"] <= h["primal_s"] for h in history)
        primal = [h["primal_s"] for h in history]
        assert primal == sorted(primal, reverse=True)  # the incumbent never gets worse


def test_dual_ascent_with_repair_reaches_the_exact_optimum_on_larger_instances():
    rng = np.random.default_rng(8)
    for _ in range(10):
        instance = random_instance(rng, n_blocks=15, n_devices=30)
        exact = run_method("exact", "jbba", instance)
        result = run_method("dual-ascent", "jbba", instance)
        assert result.round_latency_s == pytest.approx(exact.round_latency_s, rel=1e-6)


def test_exact_beats_equal_share_and_the_optimal_split_equalises_finishing_times():
    rng = np.random.default_rng(9)
    instance = random_instance(rng, n_blocks=6, n_devices=10)
    exact = run_method("exact", "jbba", instance)
    equal = run_method("min-sum", "jbba", instance)
    assert exact.round_latency_s <= equal.round_latency_s
    latency = instance.assignment_latency(exact.assignment, exact.bandwidth_hz)
    assert latency.max() - latency.min() <= 1e-6 * latency.max()
    assert exact.bandwidth_hz.sum() == pytest.approx(instance.total_bandwidth_hz, rel=1e-6)


def test_shannon_inverse_is_the_least_bandwidth_reaching_the_rate():
    rng = np.random.default_rng(1)
    snr = 10 ** rng.uniform(3, 9, 2000)
    fraction = np.concatenate([rng.uniform(0, 1, 1000), 1 - 10 ** rng.uniform(-12, -1, 1000)])
    rate = fraction * snr / np.log(2)
    b = shannon_bandwidth_for_rate(rate, snr)
    achieved = rate_bps(b, rate_model="shannon", snr_hz=snr)
    assert np.all(achieved >= rate)
    # ... and the least one, to 1e-6, wherever the rate is not flat to machine precision
    conditioned = 1 - fraction > 1e-7
    smaller = rate_bps(b * (1 - 1e-6), rate_model="shannon", snr_hz=snr)
    assert np.all((smaller < rate)[conditioned])
    assert np.all(np.isinf(shannon_bandwidth_for_rate(snr / np.log(2) * 1.0001, snr)))


def test_min_bandwidth_is_infinite_without_time_to_upload():
    assert np.isinf(min_bandwidth(1.0, flops=2.0, flops_per_s=1.0, bits=1.0, rate_model="fixed",
                                  spectral_efficiency=1.0))


def test_bandwidth_subproblem_matches_a_grid_search():
    rng = np.random.default_rng(2)
    for rate_model in ("fixed", "shannon"):
        for _ in range(20):
            weight, lam = rng.uniform(0.1, 10), 10 ** rng.uniform(-8, -5)
            extra = ({"spectral_efficiency": rng.uniform(1, 8)} if rate_model == "fixed"
                     else {"snr_hz": 10 ** rng.uniform(5, 8)})
            b, value = bandwidth_subproblem(np.array([weight]), lam, rate_model=rate_model,
                                            **extra)
            grid = np.geomspace(b[0] / 3, b[0] * 3, 20001)
            rate = rate_bps(grid, rate_model=rate_model,
                            spectral_efficiency=extra.get("spectral_efficiency"),
                            snr_hz=extra.get("snr_hz"))
            assert value[0] <= (weight / rate + lam * grid).min() * (1 + 1e-9)


def test_project_simplex():
    rng = np.random.default_rng(3)
    for _ in range(100):
        point = rng.normal(size=7)
        mu = project_simplex(point)
        assert mu.min() >= 0 and mu.sum() == pytest.approx(1)
        other = rng.dirichlet(np.ones(7))
        assert np.sum((point - mu) ** 2) <= np.sum((point - other) ** 2) + 1e-12


def test_optimal_split_of_a_single_block_uses_the_whole_band():
    instance = random_instance(np.random.default_rng(4), n_blocks=1, n_devices=2)
    latency, bandwidth = optimal_split(instance, np.array([[0]]))
    assert bandwidth[0, 0] == pytest.approx(instance.total_bandwidth_hz, rel=1e-9)


def test_scip_misocp_agrees_with_exact_on_fixed_rate_instances():
    pytest.importorskip("pyscipopt", reason="the scip extra is not installed")
    rng = np.random.default_rng(6)
    feasible = 0
    for _ in range(40):
        instance = random_instance(rng, max_blocks=4)
        exact = run_method("exact", "jbba", instance)
        scip = run_method("scip", "jbba", instance)
        assert (scip.status is Status.INFEASIBLE) == (exact.status is Status.INFEASIBLE)
        if exact.status is Status.INFEASIBLE:
            continue
        feasible += 1
        check_allocation(instance, scip)
        assert scip.round_latency_s == pytest.approx(exact.round_latency_s, rel=1e-6)
        assert scip.lower_bound_s <= exact.round_latency_s * (1 + 1e-6)
    assert feasible >= 20


def test_scip_refuses_the_shannon_model():
    pytest.importorskip("pyscipopt")
    from solvers import SolverInputError
    instance = random_instance(np.random.default_rng(7), rate_model="shannon")
    with pytest.raises(SolverInputError, match="fixed rate"):
        run_method("scip", "jbba", instance)
