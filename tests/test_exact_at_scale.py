"""`exact` at scale: the pruned Dinkelbach-Newton search equals the dense bisection reference.

The default path of :func:`solvers.exact.solve_exact` looks only at each block's N cheapest
devices and searches T by Newton steps; ``prune=False`` is the dense K x N bisection it replaced.
Both are exact to rtol = 1e-9, so they must agree to that on every instance, whatever the
family: both rate models, ties, memory-infeasible pairs, many more devices than blocks (where
the pruning acts) and about as many (where only the Newton search does).
"""
import numpy as np
import pytest

from solvers import Status, run_method
from solvers.baselines import min_cost_matching
from solvers.exact import bandwidth_matrix, cheapest_devices, solve_exact

from .instances import random_instance
from .test_jbba import check_allocation


def _agree(instance):
    fast = solve_exact(instance)
    dense = solve_exact(instance, prune=False)
    assert fast.status is dense.status
    if dense.status is Status.INFEASIBLE:
        return False
    check_allocation(instance, fast)
    assert fast.status is Status.OPTIMAL
    assert fast.round_latency_s == pytest.approx(dense.round_latency_s, rel=2e-9)
    # Each proven lower bound is below the other method's allocation.
    assert fast.lower_bound_s <= dense.round_latency_s * (1 + 1e-12)
    assert dense.lower_bound_s <= fast.round_latency_s * (1 + 1e-12)
    assert fast.round_latency_s - fast.lower_bound_s <= 1.01e-9 * fast.round_latency_s
    return True


@pytest.mark.parametrize("rate_model", ["fixed", "shannon"])
@pytest.mark.parametrize("variant", [dict(), dict(ties=True), dict(memory_tight=True),
                                     dict(monotone=False)])
@pytest.mark.parametrize("devices_per_block", ["many", "few"])
def test_pruned_newton_equals_the_dense_bisection(rate_model, variant, devices_per_block):
    rng = np.random.default_rng([len(variant), rate_model == "shannon",
                                 devices_per_block == "many"])
    solved = 0
    for _ in range(120):
        n_blocks = int(rng.integers(1, 6))
        n_devices = (int(rng.integers(2 * n_blocks + 1, 8 * n_blocks + 8))
                     if devices_per_block == "many" else
                     int(rng.integers(max(1, n_blocks - 1), 2 * n_blocks + 1)))
        instance = random_instance(rng, n_blocks=n_blocks, n_devices=n_devices,
                                   rate_model=rate_model, **variant)
        solved += _agree(instance)
    assert solved >= 60


@pytest.mark.parametrize("seed", range(40))
def test_the_cheapest_devices_hold_a_min_cost_assignment(seed):
    """Argument (i) of solve_exact: W(T) over U(T) equals W(T) over every device."""
    rng = np.random.default_rng(seed)
    instance = random_instance(rng, n_blocks=int(rng.integers(1, 7)),
                               n_devices=int(rng.integers(8, 60)), ties=bool(seed % 2),
                               rate_model="shannon" if seed % 3 == 0 else "fixed")
    for target in np.geomspace(0.2, 20.0, 7):
        need = bandwidth_matrix(instance, target)
        full = min_cost_matching(need)
        union = cheapest_devices(instance, target)
        part = min_cost_matching(need[union])
        assert (full is None) == (part is None)
        if full is None:
            continue
        columns = np.arange(instance.n_blocks)
        assert need[union][part, columns].sum() == pytest.approx(need[full, columns].sum(),
                                                                 rel=1e-12)
        assert union.size <= instance.n_blocks ** 2


def test_the_scan_keeps_its_memory_bounded(monkeypatch):
    """A narrow scan window (a block at a time) changes nothing but the memory."""
    import solvers.exact as exact
    rng = np.random.default_rng(3)
    instance = random_instance(rng, n_blocks=5, n_devices=60)
    expected = cheapest_devices(instance, 3.0)
    monkeypatch.setattr(exact, "SCAN_ENTRIES", 1)
    assert np.array_equal(cheapest_devices(instance, 3.0), expected)


def test_a_certification_that_finds_more_devices_resumes_the_search(monkeypatch):
    """When the start's cheapest devices miss the optimum's, the certification at lo must find
    that lo is feasible after all and resume; the answer is still the dense one."""
    import solvers.exact as exact
    real = exact.cheapest_devices
    calls = []

    def start_with_too_few(instance, target):
        calls.append(target)
        union = real(instance, target)
        return union[:1] if len(calls) == 1 else union  # a deliberately poor first set

    monkeypatch.setattr(exact, "cheapest_devices", start_with_too_few)
    resumed = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        instance = random_instance(rng, n_blocks=int(rng.integers(2, 5)), n_devices=30)
        calls.clear()
        result = exact.solve_exact(instance)
        dense = exact.solve_exact(instance, prune=False)
        assert result.status is dense.status
        if dense.status is Status.INFEASIBLE:
            continue
        assert result.round_latency_s == pytest.approx(dense.round_latency_s, rel=2e-9)
        resumed += result.extras["candidate_devices"] > 1 and len(calls) > 2
    assert resumed >= 5


def test_scaled_instance_with_many_devices_matches_the_reference():
    from lola.generate import scaled_instance
    instance = scaled_instance(3000, 24, seed=5)
    fast = run_method("exact", "jbba", instance)
    dense = run_method("exact", "jbba", instance, prune=False)
    assert fast.round_latency_s == pytest.approx(dense.round_latency_s, rel=2e-9)
    assert fast.extras["candidate_devices"] < 3000 / 4


@pytest.mark.parametrize("rtol", [0, 1e-17, 2.0, float("nan"), True])
def test_a_tolerance_that_cannot_close_or_is_not_exact_is_refused(rtol):
    """rtol = 0 never closed the bracket (a hang); rtol = 2 reported 'optimal' 1 % too high."""
    from solvers import SolverInputError
    rng = np.random.default_rng(1)
    instance = random_instance(rng, n_blocks=3, n_devices=12)
    for method in ("exact", "milp"):
        with pytest.raises(SolverInputError, match="rtol must be a number between"):
            run_method(method, "jbba", instance, rtol=rtol)


@pytest.mark.parametrize("seed", range(60))
def test_a_time_limited_pruned_search_reports_only_a_certified_bound(seed):
    """Stopped mid-search, the infeasible end was probed on the candidates only; the bound
    reported must hold over every device (it is certified, or 0)."""
    rng = np.random.default_rng(500 + seed)
    instance = random_instance(rng, n_blocks=int(rng.integers(2, 5)),
                               n_devices=int(rng.integers(12, 40)), ties=bool(seed % 2))
    optimum = solve_exact(instance, prune=False)
    if optimum.status is Status.INFEASIBLE:
        return
    for limit in (1e-5, 1e-4, 1e-3):
        result = solve_exact(instance, time_limit_s=limit)
        check_allocation(instance, result)
        assert result.lower_bound_s <= optimum.round_latency_s * (1 + 1e-9)
        assert result.round_latency_s >= optimum.round_latency_s * (1 - 1e-9)
