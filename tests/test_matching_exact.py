"""P1: every exact method agrees with the others on thousands of random instances."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from solvers import Status, run_method
from solvers.bottleneck import bottleneck_assignment
from solvers.crunch import crunch_matching

from .instances import MATCHING_CATALOGUE, random_instance

EXACT = ["crunch", "bottleneck", "brute", "milp"]


def outcome(name, instance, **options):
    result = run_method(name, "matching", instance, **options)
    return result.status, result.round_latency_s


def assert_same_optimum(results):
    statuses = {status for status, _ in results.values()}
    assert len(statuses) == 1, results
    values = [value for _, value in results.values()]
    if statuses == {Status.INFEASIBLE}:
        assert all(v is None for v in values)
    else:
        assert np.allclose(values, values[0], rtol=1e-9, atol=0), results


@pytest.mark.parametrize("name", sorted(MATCHING_CATALOGUE))
@pytest.mark.parametrize("method", EXACT)
def test_catalogue_known_optimum(name, method):
    instance, optimum = MATCHING_CATALOGUE[name]
    status, value = outcome(method, instance)
    if optimum is None:
        assert status is Status.INFEASIBLE and value is None
    else:
        assert status is Status.OPTIMAL
        assert value == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("variant", [
    dict(), dict(ties=True), dict(memory_tight=True), dict(rate_model="shannon"),
    dict(fixed_bandwidth=True), dict(monotone=False), dict(ties=True, monotone=False)])
def test_crunch_bottleneck_brute_agree_on_random_instances(variant):
    rng = np.random.default_rng(zlib.crc32(repr(sorted(variant.items())).encode()))
    infeasible = 0
    for _ in range(400):
        instance = random_instance(rng, **variant)
        results = {m: outcome(m, instance) for m in ("crunch", "bottleneck", "brute")}
        assert_same_optimum(results)
        infeasible += results["crunch"][0] is Status.INFEASIBLE
    assert 0 < infeasible < 400  # the family covers both answers


@pytest.mark.parametrize("variant", [dict(), dict(ties=True), dict(rate_model="shannon"),
                                     dict(monotone=False)])
def test_milp_agrees_on_random_instances(variant):
    rng = np.random.default_rng(7 + len(variant))
    for _ in range(150):
        instance = random_instance(rng, **variant)
        assert_same_optimum({m: outcome(m, instance) for m in ("crunch", "bottleneck", "milp")})


@pytest.mark.parametrize("seed", range(5))
def test_crunch_matches_bottleneck_on_larger_instances(seed):
    rng = np.random.default_rng(100 + seed)
    for ties in (False, True):
        instance = random_instance(rng, n_blocks=int(rng.integers(20, 60)),
                                   n_devices=int(rng.integers(60, 200)), ties=ties)
        assert_same_optimum({m: outcome(m, instance) for m in ("crunch", "bottleneck")})


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_crunch_equals_bottleneck_on_hypothesis_instances(data):
    n_blocks = data.draw(st.integers(1, 6))
    n_devices = data.draw(st.integers(1, 9))
    positive = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)
    draw = lambda n: np.array(data.draw(st.lists(positive, min_size=n, max_size=n)))
    blocks = [np.sort(draw(n_blocks)) for _ in range(3)]
    flops, bits, memory = blocks
    speed, rate, device_memory = draw(n_devices), draw(n_devices), draw(n_devices) * 2
    outcome_ = crunch_matching(block_flops=flops, block_bits=bits, block_memory=memory,
                               device_flops_per_s=speed, device_rate_bps=rate,
                               device_memory=device_memory)
    latency = flops[None, :] / speed[:, None] + bits[None, :] / rate[:, None]
    latency = np.where(memory[None, :] <= device_memory[:, None], latency, np.inf)
    value, reference = bottleneck_assignment(latency)
    assert outcome_.threshold == value  # bit-identical: both draw from the same computed values
    if reference is not None:
        chosen = latency[outcome_.assignment, np.arange(n_blocks)]
        assert chosen.max() == value and len(set(outcome_.assignment)) == n_blocks


def test_crunch_threshold_is_an_attained_latency_not_a_float_between():
    rng = np.random.default_rng(3)
    for _ in range(200):
        instance = random_instance(rng, n_blocks=8, n_devices=30)
        result = run_method("crunch", "matching", instance)
        latency = instance.latency_matrix(instance.matching_bandwidth())
        assert result.round_latency_s in set(latency[np.isfinite(latency)].tolist())


def test_crunch_listing_and_sampling_paths_agree():
    # enumerate_below=1 forces the sampled-pivot search all the way down.
    rng = np.random.default_rng(11)
    for _ in range(50):
        instance = random_instance(rng, n_blocks=int(rng.integers(5, 40)), n_devices=150,
                                   ties=bool(rng.random() < 0.3))
        arrays = dict(block_flops=instance.block_flops, block_bits=instance.block_bits,
                      block_memory=instance.block_memory,
                      device_flops_per_s=instance.device_flops_per_s,
                      device_rate_bps=instance.rate(instance.matching_bandwidth()),
                      device_memory=instance.device_memory)
        listed = crunch_matching(**arrays)
        sampled = crunch_matching(**arrays, enumerate_below=1)
        assert listed.threshold == sampled.threshold


def test_crunch_falls_back_on_non_monotone_costs_and_says_so():
    rng = np.random.default_rng(5)
    for _ in range(100):
        instance = random_instance(rng, n_blocks=4, n_devices=6, monotone=False)
        result = run_method("crunch", "matching", instance)
        if result.extras.get("fallback"):
            assert "not monotone" in result.message
            break
    else:
        pytest.fail("no non-monotone instance drawn")


def test_brute_refuses_large_instances():
    from solvers import SolverInputError
    instance = random_instance(np.random.default_rng(0), n_blocks=8, n_devices=30)
    with pytest.raises(SolverInputError, match="more than its limit"):
        run_method("brute", "matching", instance)


def test_milp_time_limit_reports_feasible_with_a_bound_or_fails_clearly():
    from solvers import SolverFailure
    instance = random_instance(np.random.default_rng(12), n_blocks=60, n_devices=120)
    optimum = run_method("crunch", "matching", instance).round_latency_s
    for limit in (0.05, 1.0):  # which outcome a limit gives depends on the machine's speed
        try:
            result = run_method("milp", "matching", instance, time_limit_s=limit)
        except SolverFailure as err:
            assert "time limit" in str(err)
            continue
        assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
        assert result.round_latency_s >= optimum * (1 - 1e-9)
        if result.status is Status.FEASIBLE:
            assert "time limit" in result.message
            assert result.lower_bound_s is None or result.lower_bound_s <= optimum * (1 + 1e-6)
