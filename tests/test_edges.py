"""Numerical edges, solver failures and scale: exact methods still agree, failures are plain."""
import numpy as np
import pytest

import lola
import solvers
from lola import cli
from lola._io import atomic_write_text
from solvers import Instance, SolverInputError, Status, run_method
from solvers.registry import METHODS, Method, register

from .instances import random_instance


def instance(flops, bits, memory, speed, device_memory, efficiency, bandwidth, **extra):
    return Instance(block_flops=np.array(flops, float), block_bits=np.array(bits, float),
                    block_memory=np.array(memory, float),
                    device_flops_per_s=np.array(speed, float),
                    device_memory=np.array(device_memory, float), total_bandwidth_hz=bandwidth,
                    device_spectral_efficiency=np.array(efficiency, float), **extra)


def agree(inst, methods_by_problem=None):
    methods_by_problem = methods_by_problem or {
        "matching": ["crunch", "bottleneck", "brute", "milp"],
        "jbba": ["exact", "brute", "milp"]}
    for problem, methods in methods_by_problem.items():
        results = [run_method(m, problem, inst) for m in methods]
        assert len({r.status for r in results}) == 1, (problem, results)
        if results[0].status is not Status.INFEASIBLE:
            values = [r.round_latency_s for r in results]
            rtol = 1e-9 if problem == "matching" else 1e-6
            assert np.allclose(values, values[0], rtol=rtol, atol=0), (problem, values)


def test_ties_everywhere_identical_devices_and_blocks():
    agree(instance([1e11] * 4, [1e6] * 4, [1e9] * 4, [1e12] * 6, [2e9] * 6, [3.0] * 6, 1e7))


def test_latencies_spanning_twelve_orders_of_magnitude():
    rng = np.random.default_rng(0)
    for _ in range(30):
        flops = np.sort(10 ** rng.uniform(3, 15, 3))
        inst = instance(flops, np.sort(10 ** rng.uniform(2, 8, 3)), [1, 1, 1],
                        10 ** rng.uniform(6, 12, 5), [1] * 5, 10 ** rng.uniform(-2, 1, 5),
                        float(10 ** rng.uniform(4, 8)))
        agree(inst)


def test_device_memory_exactly_equal_to_a_blocks_need_is_feasible():
    inst = instance([1, 2], [1, 1], [1.5e9, 2.25e9], [1, 1], [2.25e9, 1.5e9], [1, 1], 2.0)
    for problem in ("matching", "jbba"):
        result = run_method("crunch" if problem == "matching" else "exact", problem, inst)
        assert result.status is Status.OPTIMAL and result.assignment.tolist() == [1, 0]
    agree(inst)


def test_bandwidth_so_small_that_uploads_dominate():
    rng = np.random.default_rng(1)
    for _ in range(20):
        inst = random_instance(rng, n_blocks=3, n_devices=5)
        tiny = Instance(**{**inst.__dict__, "total_bandwidth_hz": 1e-3})
        agree(tiny)
        exact = run_method("exact", "jbba", tiny)
        upload = exact.round_latency_s - (tiny.block_flops / tiny.device_flops_per_s[
            exact.assignment]).max()
        assert upload > 0.99 * exact.round_latency_s


def test_shannon_rates_near_their_ceiling():
    # a_k / ln 2 = 1.4427e6 bit/s ceilings; payloads need rates close to them at the optimum
    snr = np.array([1e6, 1e6, 1.01e6])
    inst = Instance(block_flops=np.array([1e9, 1e9]), block_bits=np.array([1.4e6, 1.4e6]),
                    block_memory=np.ones(2), device_flops_per_s=np.full(3, 1e12),
                    device_memory=np.ones(3), total_bandwidth_hz=1e9, rate_model="shannon",
                    device_snr_hz=snr)
    agree(inst)
    exact = run_method("exact", "jbba", inst)
    rate = inst.rate(exact.bandwidth_hz)[exact.assignment]
    assert np.all(rate / (snr[exact.assignment] / np.log(2)) > 0.9)


def test_optional_solver_missing_names_what_to_install():
    register(Method("needs-scip", {"jbba": lambda instance, **_: None}, "exact", True,
                    "test double", requires=("pyscipopt_not_installed_here",)))
    try:
        with pytest.raises(SolverInputError, match="pyscipopt_not_installed_here"):
            solvers.get_method("needs-scip", "jbba")
        assert "needs-scip" not in [m.name for m in solvers.methods_for("jbba")]
    finally:
        del METHODS["needs-scip"]


def test_milp_refuses_sizes_it_cannot_handle_without_a_time_limit():
    inst = random_instance(np.random.default_rng(2), n_blocks=600, n_devices=600)
    with pytest.raises(SolverInputError, match="time limit"):
        run_method("milp", "matching", inst)


def test_exact_jbba_at_k_n_500_completes():
    from lola.generate import scaled_instance
    result = run_method("exact", "jbba", scaled_instance(500, 500, seed=1))
    assert result.status is Status.OPTIMAL
    assert result.bandwidth_hz.sum() <= 2e7 * (1 + 1e-12)


@pytest.mark.parametrize("n_devices", [
    10**5, pytest.param(10**6, marks=pytest.mark.slow)])  # 10**6 also in benchmarks.crunch_scaling
def test_crunch_handles_a_million_devices(n_devices):
    from lola.generate import scaled_instance
    inst = scaled_instance(n_devices, 1000, seed=2)
    result = run_method("crunch", "matching", inst)
    assert result.status is Status.OPTIMAL and len(set(result.assignment.tolist())) == 1000


def test_interrupted_writer_leaves_old_file_intact_and_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("old")

    class Boom(Exception):
        pass

    def failing_fsync(_):
        raise Boom

    monkeypatch.setattr("os.fsync", failing_fsync)
    with pytest.raises(Boom):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_interrupted_figure_and_scenario_writers_leave_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", interrupted)
    assert cli.main(["scenario", "generate", "--devices", "3", "-o",
                     str(tmp_path / "s.yaml")]) == 130
    from lola import plots
    result = lola.solve(lola.default_scenario(), problem="matching", method="crunch")
    with pytest.raises(KeyboardInterrupt):
        plots.save(plots.plot_allocation(result), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []
