"""Regression tests, each named after the bug it pins."""
import numpy as np

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
