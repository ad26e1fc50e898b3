"""Regression tests, each named after the bug it pins."""
import json

import numpy as np
import pytest

import lola

from solvers.baselines import min_cost_matching


def test_min_cost_matching_with_fewer_devices_than_blocks_is_infeasible():
    # scipy's linear_sum_assignment on an N x K matrix with K < N assigns only K blocks; the
    # unassigned ones were read from uninitialised memory.
    assert min_cost_matching(np.ones((1, 3))) is None


def test_unknown_key_with_a_newline_gives_a_one_line_error():
    # Found by fuzzing: the key was echoed raw, so the "one line on stderr" broke.
    import copy

    import pytest

    import lola

    from .conftest import GOOD
    document = copy.deepcopy(GOOD)
    document["\n"] = None
    with pytest.raises(lola.ScenarioError) as info:
        lola.load_scenario(document)
    assert "\n" not in str(info.value) and "'\\n'" in str(info.value)


def test_bandwidth_need_that_underflows_is_not_reported_as_an_optimal_infinite_latency():
    # Found by fuzzing: with B = 4e-102 Hz and rho = 9e222, the least bandwidth of a pair
    # underflowed to 0, the device got no bandwidth and "optimal" came with latency inf.
    from solvers import Instance, Status, run_method
    instance = Instance(block_flops=np.array([1.0, 2.3e11]), block_bits=np.array([786432.0] * 2),
                        block_memory=np.array([1e9, 1.0]),
                        device_flops_per_s=np.array([1.0, 2e12, 5e11]),
                        device_memory=np.array([4e9, 1.0, 8e9]),
                        total_bandwidth_hz=4.4278530241336194e-102,
                        device_spectral_efficiency=np.array([5.0, 2.0, 8.962074293978172e+222]))
    for method in ("exact", "dual-ascent"):
        result = run_method(method, "jbba", instance)
        assert result.status is Status.INFEASIBLE or np.isfinite(result.round_latency_s)
        if result.status is not Status.INFEASIBLE:
            assert np.all(result.bandwidth_hz[result.assignment] > 0)


def test_shannon_bandwidth_near_the_rate_ceiling_is_not_underestimated():
    # Caught by exact vs brute: three Newton steps from a poor Lambert-W start left the least
    # bandwidth far too small near the ceiling, so "exact" reported a worse optimum.
    from solvers.bandwidth import shannon_bandwidth_for_rate
    from solvers.model import rate_bps
    snr = 2.17017051e5
    for fraction in (0.99, 0.9999, 1 - 1e-9):
        rate = fraction * snr / np.log(2)
        b = shannon_bandwidth_for_rate(rate, snr)
        assert rate_bps(b, rate_model="shannon", snr_hz=snr) >= rate


# A several-blocks P1 instance (shannon, energy budgets) on which HiGHS, run with feasibility
# tolerances of 1e-9, reported "optimal" for an allocation of 3.78 s while 1.93 s exists.
_HIGHS_TOLERANCE_DOC = json.loads(r'''{"name": "ref-tiny", "model": {"blocks": [{"name": "layer.4", "flops": 206411322290.80164, "memory_bytes": 507640003.5054869, "params": 96517, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.3", "flops": 206411322290.80164, "memory_bytes": 1049886476.985482, "params": 37828, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.2", "flops": 206411322290.80164, "memory_bytes": 2293446456.9916596, "params": 89051, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.1", "flops": 206411322290.80164, "memory_bytes": 2331670074.552536, "params": 66893, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.0", "flops": 206411322290.80164, "memory_bytes": 2512015846.882842, "params": 52853, "extra_flops": 0.0, "extra_memory_bytes": 0.0}], "bits_per_param": 16}, "devices": [{"name": "dev-0", "flops_per_s": 2072422552244.3503, "memory_bytes": 8950882764.776768, "tx_power_w": 0.7566383216789607, "channel_gain": 3.919079638654313e-15, "compute_power_w": 56.25113905441917, "energy_budget_j": 10.880731210600748}, {"name": "dev-1", "flops_per_s": 618493103759.6501, "memory_bytes": 6594657272.366169, "tx_power_w": 0.10250249958358401, "channel_gain": 2.4545328059546846e-14, "compute_power_w": 7.32540332743045, "energy_budget_j": 8.159988588281449}, {"name": "dev-2", "flops_per_s": 2071335457143.8757, "memory_bytes": 7405169975.8377075, "tx_power_w": 0.31185792204346663, "channel_gain": 6.463164957063167e-15, "compute_power_w": 24.25769668447842, "energy_budget_j": 7.401429357217932}, {"name": "dev-3", "flops_per_s": 1645444846910.7659, "memory_bytes": 5618106112.158617, "tx_power_w": 0.768769969080776, "channel_gain": 2.5724323833005663e-13, "compute_power_w": 9.549520204367163, "energy_budget_j": 3.900508016455277}], "channel": {"total_bandwidth_hz": 1163586.3001429175, "rate_model": "shannon", "noise_psd_w_per_hz": 3.380182619687051e-21}}''')


def test_milp_with_several_blocks_is_not_misled_by_tight_highs_tolerances():
    pytest.importorskip("cvxpy")
    milp = lola.solve(_HIGHS_TOLERANCE_DOC, problem="matching", method="milp", max_blocks=3)
    brute = lola.solve(_HIGHS_TOLERANCE_DOC, problem="matching", method="brute", max_blocks=3)
    assert brute.round_latency_s == pytest.approx(1.9340394184868426, rel=1e-12)
    assert milp.round_latency_s == pytest.approx(brute.round_latency_s, rel=1e-9)


def test_bracketed_extras_take_their_least_value_not_zero():
    # The lo side of the bracket of unequal extras used np.min(..., initial=0.0), which is 0:
    # the bounds then never met on measured profiles and every solve fell back to the MILP.
    from lola import costs
    from solvers import sets

    scenario = lola.load_scenario({
        "model": {"profile": "roberta-base"},
        "devices": [{"name": f"phone-{k}", "flops_per_s": 1.0e12 + 1e11 * k,
                     "memory_bytes": 6.0e9, "spectral_efficiency": 3.0 + k}
                    for k in range(5)],
        "channel": {"total_bandwidth_hz": 2.0e7, "rate_model": "fixed"}})
    instance = costs.to_instance(scenario, max_blocks=4)
    extras = instance.extra_flops()[:-1]
    low, high = sets._bracket(instance)
    assert low.extra_flops()[0] == extras.min() > 0
    assert high.extra_memory()[0] == instance.extra_memory()[:-1].max()
    result = lola.solve(scenario, max_blocks=4)
    assert result.status == "optimal" and "fallback" not in result.extras
    assert result.lower_bound_s == pytest.approx(result.round_latency_s, rel=1e-8)


# A feasible several-blocks instance on which packing finds nothing: it reported "infeasible"
# (exit 1), which says the instance is; a heuristic's miss is a SolverFailure instead.
_PACKING_MISS_DOC = json.loads(r'''{"name": "ref-tiny", "model": {"blocks": [{"name": "layer.2", "flops": 337178725174.80786, "memory_bytes": 1567232835.7735775, "params": 16424, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.1", "flops": 337178725174.80786, "memory_bytes": 2243148738.575227, "params": 16424, "extra_flops": 0.0, "extra_memory_bytes": 0.0}, {"name": "layer.0", "flops": 337178725174.80786, "memory_bytes": 2676318503.9017706, "params": 16424, "extra_flops": 0.0, "extra_memory_bytes": 0.0}], "bits_per_param": 32}, "devices": [{"name": "dev-0", "flops_per_s": 2923945662248.592, "memory_bytes": 2847981982.764557, "spectral_efficiency": 1.4444721622705634, "compute_power_w": 54.93266957361374, "tx_power_w": 0.8104288294641651, "energy_budget_j": 5.594270611475714}, {"name": "dev-1", "flops_per_s": 3795931070815.422, "memory_bytes": 3786743326.4821925, "spectral_efficiency": 4.180100381136787, "compute_power_w": 9.256528598305552, "tx_power_w": 0.6146588331309478, "energy_budget_j": 1.4310711213339773}], "channel": {"total_bandwidth_hz": 548502.2914121934, "rate_model": "fixed"}, "server": {"flops_per_s": 100000000000000.0}}''')


def test_a_heuristic_that_finds_nothing_does_not_call_the_instance_infeasible():
    import solvers

    exact = lola.solve(_PACKING_MISS_DOC, problem="jbba", method="exact", max_blocks=3)
    assert exact.status == "optimal" and exact.round_latency_s == pytest.approx(0.7765, rel=1e-3)
    for method in ("packing", "greedy"):
        try:
            result = lola.solve(_PACKING_MISS_DOC, problem="jbba", method=method, max_blocks=3)
        except solvers.SolverFailure as error:
            assert "does not prove" in str(error)
        else:
            assert result.status != "infeasible"
            assert result.round_latency_s >= exact.round_latency_s * (1 - 1e-9)
