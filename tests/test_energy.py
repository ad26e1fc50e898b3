"""Energy budgets (specification, section 10): every method keeps E_k <= energy_budget_j, the
exact ones stay exact, and nothing changes without budgets.

The references here are independent of the solvers: P1 by enumerating assignments over the
pairs whose energy E_kn = P^c C_n / f_k + P^tx S_n / r_k(b_k) fits the budget, P2 by
enumerating assignments, each with its own bisection on T over sum_n max(w_n(T), e_n) <= B,
where w and the energy floor e come from this file's own bisections on the bandwidth (not from
:func:`solvers.bandwidth.optimal_split` or :meth:`solvers.Instance.energy_bandwidth_floor`), so
that a bug shared by the solvers cannot hide.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

import lola
import solvers
from lola import generate, plots
from lola.api import energy_budget_sweep, with_energy_budget
from lola.cli import main
from lola.report import format_comparison, format_result
from solvers import SolverFailure, SolverInputError
from solvers.registry import METHODS, Method

from .instances import random_instance, random_scenario, with_random_budgets

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# Independent references


def _rate(instance, bandwidth):
    """r_k(b) written out here: b rho_k, or b log2(1 + a_k / b)."""
    bandwidth = np.asarray(bandwidth, dtype=float)
    if instance.rate_model == "fixed":
        return bandwidth * instance.device_spectral_efficiency[:, None]
    snr = instance.device_snr_hz[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bandwidth > 0, bandwidth * np.log1p(snr / bandwidth) / LN2, 0.0)


def _least_bandwidth(instance, rate):
    """(K, N): the least b with r_k(b) >= rate, by bisection on log b (inf if out of reach)."""
    rate = np.asarray(rate, dtype=float)
    if instance.rate_model == "fixed":
        return rate / instance.device_spectral_efficiency[:, None]
    snr = np.broadcast_to(instance.device_snr_hz[:, None], rate.shape)
    reachable = np.isfinite(rate) & (rate < snr / LN2)
    lo = np.full(rate.shape, -200.0)
    hi = np.full(rate.shape, 200.0)
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        b = np.exp(mid)
        enough = b * np.log1p(snr / b) / LN2 >= rate
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid)
    result = np.where(reachable, np.exp(hi), np.inf)
    return np.where(rate <= 0, 0.0, result)


def _energy(instance, bandwidth_per_device):
    """(K, N) E_kn at each device's bandwidth."""
    rate = _rate(instance, np.asarray(bandwidth_per_device, float)[:, None])
    with np.errstate(divide="ignore"):
        return (instance.device_compute_power_w[:, None] * instance.compute_time_matrix()
                + instance.device_tx_power_w[:, None] * instance.block_bits[None, :] / rate)


def _budget(instance):
    budget = instance.device_energy_budget_j
    return np.full(instance.n_devices, np.inf) if budget is None else budget


def reference_matching(instance):
    """P1 optimum by enumeration over memory- and energy-feasible pairs (None if infeasible)."""
    bandwidth = instance.matching_bandwidth()
    rate = _rate(instance, bandwidth[:, None])
    with np.errstate(divide="ignore"):
        latency = instance.compute_time_matrix() + instance.block_bits[None, :] / rate
    allowed = instance.block_memory[None, :] <= instance.device_memory[:, None]
    budget = _budget(instance)
    if instance.device_energy_budget_j is not None:
        allowed &= (_energy(instance, bandwidth) <= budget[:, None]) | ~np.isfinite(budget)[:, None]
    latency = np.where(allowed, latency, np.inf)
    best = np.inf
    for rows in itertools.permutations(range(instance.n_devices), instance.n_blocks):
        best = min(best, latency[list(rows), range(instance.n_blocks)].max())
    return None if not np.isfinite(best) else float(best)


def _energy_floor(instance):
    """(K, N) e_kn = least b with E_kn(b) <= budget (0 without a budget, inf if impossible)."""
    budget = _budget(instance)
    left = budget[:, None] - (instance.device_compute_power_w[:, None]
                              * instance.compute_time_matrix())
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(left > 0, instance.device_tx_power_w[:, None]
                        * instance.block_bits[None, :] / left, np.inf)
    floor = _least_bandwidth(instance, rate)
    return np.where(np.isfinite(budget)[:, None], floor, 0.0)


def reference_jbba(instance, rtol=1e-11):
    """P2 optimum: every assignment, each with its own bisection on T (None if infeasible)."""
    n_blocks = instance.n_blocks
    compute = instance.compute_time_matrix()
    allowed = instance.block_memory[None, :] <= instance.device_memory[:, None]
    floor = (_energy_floor(instance) if instance.device_energy_budget_j is not None
             else np.zeros(compute.shape))
    floor = np.where(allowed, floor, np.inf)
    budget_hz = instance.total_bandwidth_hz
    best = np.inf
    columns = np.arange(n_blocks)
    for rows in itertools.permutations(range(instance.n_devices), n_blocks):
        rows = list(rows)
        pair_floor = floor[rows, columns]
        if not pair_floor.sum() < budget_hz:
            continue
        pair_compute = compute[rows, columns]

        def need(target):
            slack = target - pair_compute
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(slack > 0, instance.block_bits / slack, np.inf)
            full = np.full(compute.shape, np.inf)
            full[rows, columns] = rate
            least = _least_bandwidth(instance, full)[rows, columns]
            return np.maximum(least, pair_floor).sum()

        lo = pair_compute.max()
        hi = 2 * lo + 1.0
        while not need(hi) <= budget_hz:
            hi = lo + 2 * (hi - lo)
            if hi > 1e9:
                break
        if not need(hi) <= budget_hz or (np.isfinite(best) and not need(best) <= budget_hz):
            continue  # never feasible, or cannot beat the best so far
        hi = min(hi, best)
        while hi - lo > rtol * hi:
            mid = 0.5 * (lo + hi)
            if need(mid) <= budget_hz:
                hi = mid
            else:
                lo = mid
        best = min(best, hi)
    return None if not np.isfinite(best) else float(best)


def _cases(count, seed, **fixed):
    """Random instances over both rate models, ties, tight memory, tight and loose budgets."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        options = dict(rate_model=("fixed", "shannon")[i % 2], ties=(i % 5 == 0),
                       memory_tight=(i % 3 == 0), energy=("tight", "loose")[(i // 2) % 2],
                       max_blocks=4, extra_devices=2)
        options.update(fixed)
        cases.append(random_instance(rng, **options))
    return cases


def _assert_within_budget(instance, result):
    if result.assignment is None or result.extras.get("uploaders") is not None:
        return
    energy = _energy(instance, result.bandwidth_hz)[result.assignment,
                                                    np.arange(instance.n_blocks)]
    budget = _budget(instance)[result.assignment]
    assert np.all(energy <= budget * (1 + 1e-9)), (energy, budget)


# ---------------------------------------------------------------------------------------------
# Exactness under budgets


MATCHING_CASES = (_cases(70, 11) + _cases(30, 12, fixed_bandwidth=True)
                  + _cases(20, 13, monotone=False))


@pytest.mark.parametrize("index", range(len(MATCHING_CASES)))
def test_p1_exact_methods_agree_with_enumeration_under_budgets(index):
    instance = MATCHING_CASES[index]
    expected = reference_matching(instance)
    methods = ["crunch", "bottleneck", "brute"] + (["milp"] if index % 4 == 0 else [])
    for name in methods:
        result = solvers.run_method(name, "matching", instance)
        if expected is None:
            assert result.round_latency_s is None, name
            continue
        assert result.status == "optimal", name
        assert result.round_latency_s == pytest.approx(expected, rel=1e-9), name
        _assert_within_budget(instance, result)


def test_budgets_bind_in_the_p1_cases():
    """The budgets are not decorative: they change the optimum or the feasibility often."""
    changed = 0
    for instance in MATCHING_CASES:
        free = dataclasses.replace(instance, device_energy_budget_j=None)
        changed += reference_matching(instance) != reference_matching(free)
    assert changed >= 20


JBBA_CASES = _cases(50, 21)


@pytest.mark.parametrize("index", range(len(JBBA_CASES)))
def test_p2_exact_methods_agree_with_enumeration_under_budgets(index):
    instance = JBBA_CASES[index]
    expected = reference_jbba(instance)
    methods = ["exact", "brute"] + (["milp"] if index % 5 == 0 else [])
    if index % 5 == 1 and instance.rate_model == "fixed" and METHODS["scip"].available:
        methods.append("scip")
    for name in methods:
        result = solvers.run_method(name, "jbba", instance)
        if expected is None:
            assert result.round_latency_s is None, name
            continue
        assert result.status == "optimal", name
        assert result.round_latency_s == pytest.approx(expected, rel=1e-6), name
        assert result.bandwidth_hz.sum() <= instance.total_bandwidth_hz * (1 + 1e-12)
        _assert_within_budget(instance, result)
    unpruned = solvers.get_method("exact", "jbba").solvers["jbba"](instance, prune=False)
    assert (unpruned.round_latency_s is None) == (expected is None)
    if expected is not None:
        assert unpruned.round_latency_s == pytest.approx(expected, rel=1e-6)


def test_dual_ascent_bound_stays_valid_under_budgets():
    """The dual bound of the clipped bandwidth sub-problem never exceeds the true optimum, and
    the allocation is never better than it."""
    for instance in JBBA_CASES[:30]:
        expected = reference_jbba(instance)
        result = solvers.run_method("dual-ascent", "jbba", instance)
        if expected is None:
            assert result.round_latency_s is None
            continue
        assert result.round_latency_s >= expected * (1 - 1e-6)
        assert result.lower_bound_s <= expected * (1 + 1e-6)
        _assert_within_budget(instance, result)


def test_energy_floor_is_the_least_bandwidth_within_budget():
    """At e_kn the computed energy is within the budget, exactly; just below it, it is not."""
    checked = 0
    for instance in JBBA_CASES:
        floor = instance.energy_bandwidth_floor()
        if floor is None:  # every device drew no budget
            assert not np.isfinite(_budget(instance)).any()
            continue
        budget = _budget(instance)
        assert floor.shape == (instance.n_devices, instance.n_blocks)
        independent = _energy_floor(instance)
        np.testing.assert_array_equal(np.isinf(floor), np.isinf(independent))
        np.testing.assert_allclose(floor[np.isfinite(floor)], independent[np.isfinite(floor)],
                                   rtol=1e-9)
        assert np.all(floor[~np.isfinite(budget)] == 0)
        for k, n in zip(*np.nonzero(np.isfinite(floor) & (floor > 0))):
            at = np.zeros(instance.n_devices)
            at[k] = floor[k, n]
            assert instance.energy_matrix(at)[k, n] <= budget[k]
            at[k] = floor[k, n] * (1 - 1e-9)
            assert instance.energy_matrix(at)[k, n] > budget[k]
            checked += 1
        # An infinite floor: even all of the bandwidth would not do, or compute alone overflows.
        for k, n in zip(*np.nonzero(np.isinf(floor))):
            at = np.zeros(instance.n_devices)
            at[k] = 1e30
            assert not instance.energy_matrix(at)[k, n] <= budget[k]
    assert checked > 50


def test_budgets_bind_in_the_p2_cases():
    changed = 0
    for instance in JBBA_CASES[:20]:
        free = dataclasses.replace(instance, device_energy_budget_j=None)
        with_budget, without = reference_jbba(instance), reference_jbba(free)
        changed += with_budget is None or with_budget > without * (1 + 1e-6)
    assert changed >= 5


def test_p2_feasible_only_with_more_than_the_equal_share():
    """A device whose budget needs more than B / N: the equal-share start is infeasible, the
    optimum is not (it gives that device more bandwidth)."""
    instance = solvers.Instance(
        block_flops=np.array([1e9, 1e9]), block_bits=np.array([1e6, 1e6]),
        block_memory=np.ones(2), device_flops_per_s=np.array([1e9, 1e9]),
        device_memory=np.ones(2), total_bandwidth_hz=2e6,
        device_spectral_efficiency=np.array([1.0, 1.0]),
        device_compute_power_w=np.array([1.0, 1.0]), device_tx_power_w=np.array([1.0, 1.0]),
        device_energy_budget_j=np.array([1.0 + 1e6 / 1.5e6, np.inf]))
    # Device 0 needs b >= 1.5 MHz (E = 1 + 1e6 / b), more than B / N = 1 MHz.
    assert solvers.run_method("crunch", "matching", instance).round_latency_s is None
    expected = reference_jbba(instance)
    assert expected == pytest.approx(1 + 1e6 / 0.5e6, rel=1e-9)  # device 1 gets 0.5 MHz
    for name in ("exact", "brute", "milp", "dual-ascent"):
        result = solvers.run_method(name, "jbba", instance)
        assert result.round_latency_s == pytest.approx(expected, rel=1e-6), name
        _assert_within_budget(instance, result)


def test_crunch_stays_exact_with_budgets_at_scale():
    """Hundreds of devices: CRUNCH's energy prefix against the general bottleneck assignment."""
    rng = np.random.default_rng(5)
    for rate_model in ("fixed", "shannon"):
        base = generate.scaled_instance(300, 24, seed=3, rate_model=rate_model)
        instance = with_random_budgets(rng, base, tight=True, unbudgeted_share=0.2)
        crunch = solvers.run_method("crunch", "matching", instance)
        bottleneck = solvers.run_method("bottleneck", "matching", instance)
        assert crunch.round_latency_s is not None
        assert crunch.round_latency_s == bottleneck.round_latency_s
        assert "fallback" not in crunch.extras
        _assert_within_budget(instance, crunch)
        free = dataclasses.replace(instance, device_energy_budget_j=None)
        assert crunch.round_latency_s > solvers.run_method(
            "crunch", "matching", free).round_latency_s


# ---------------------------------------------------------------------------------------------
# Every method within the budgets; reported energy equals the recomputed one


ALL_CASES = _cases(24, 31)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_every_method_keeps_every_budget(problem):
    for instance in ALL_CASES:
        for method in solvers.methods_for(problem):
            if method.name in ("milp", "scip"):
                continue  # covered above on a subset: their compile time is not small
            try:
                result = method.solvers[problem](instance)
            except SolverInputError:
                continue
            except SolverFailure:  # a heuristic that finds nothing breaks no budget
                assert not method.exact, method.name
                continue
            _assert_within_budget(instance, result)


def _budget_scenario(seed, rate_model, tight=True):
    rng = np.random.default_rng(seed)
    document = random_scenario(rng, rate_model=rate_model, n_blocks=3, n_devices=5)
    scenario = lola.load_scenario(document)
    instance = lola.costs.to_instance(scenario)
    for k, device in enumerate(document["devices"]):
        device["compute_power_w"] = float(rng.uniform(1, 40))
        device["tx_power_w"] = float(rng.uniform(0.1, 1.0))
        if k % 4 != 3:
            compute = instance.compute_time_matrix()[k]
            device["energy_budget_j"] = float(device["compute_power_w"] * compute.max()
                                              * (rng.uniform(0.9, 1.5) if tight else 3.0))
    return document


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("rate_model", ["fixed", "shannon"])
def test_reported_energy_is_recomputed_from_the_allocation(problem, rate_model):
    for seed in range(6):
        document = _budget_scenario(seed, rate_model)
        scenario = lola.load_scenario(document)
        for method in solvers.methods_for(problem):
            if method.name == "scip" and rate_model == "shannon":
                continue
            result = lola.solve(scenario, problem, method.name)
            payload = result.to_dict()
            for device, raw in zip(payload["devices"], document["devices"]):
                assert "energy_j" in device
                if not device["blocks"] and device["bandwidth_hz"] == 0:
                    assert device["energy_j"] is None
                    continue
                expected = (raw["compute_power_w"] * device["compute_s"]
                            + raw["tx_power_w"] * device["upload_s"])
                assert device["energy_j"] == pytest.approx(expected, rel=1e-12)
                if "energy_budget_j" in raw:
                    assert device["energy_j"] <= raw["energy_budget_j"] * (1 + 1e-9), (
                        method.name, device)


def test_energy_is_null_without_powers_and_present_with_them():
    document = random_scenario(np.random.default_rng(0), n_blocks=2, n_devices=3)
    result = lola.solve(document, "jbba", "exact")
    assert all(d["energy_j"] is None for d in result.to_dict()["devices"])
    assert result.total_energy_j is None
    assert "energy J" not in format_result(result)
    document["devices"][0]["compute_power_w"] = 5.0
    document["devices"][0]["tx_power_w"] = 0.2
    result = lola.solve(document, "jbba", "exact")
    first = result.devices[0]
    assert (first.energy_j is None) == (not first.blocks)
    assert "energy J" in format_result(result)


def test_centralized_uploaders_afford_their_upload():
    document = _budget_scenario(3, "fixed", tight=False)
    scenario = lola.load_scenario(document)
    free = lola.solve(scenario, "jbba", "centralized")
    uploaders = [d.name for d in free.devices if d.bandwidth_hz > 0]
    # Forbid the first uploader: its budget below its upload energy.
    index = next(i for i, d in enumerate(document["devices"]) if d["name"] == uploaders[0])
    upload_j = free.devices[index].energy_j
    document["devices"][index]["energy_budget_j"] = upload_j * 0.5
    result = lola.solve(document, "jbba", "centralized")
    assert result.devices[index].bandwidth_hz == 0
    for device, raw in zip(result.devices, document["devices"]):
        if device.bandwidth_hz > 0:
            assert device.energy_j == pytest.approx(raw["tx_power_w"] * device.upload_s)
            assert device.energy_j <= raw.get("energy_budget_j", np.inf)
    for raw in document["devices"]:
        raw["energy_budget_j"], raw["compute_power_w"], raw["tx_power_w"] = 1e-12, 1.0, 1.0
    refused = lola.solve(document, "jbba", "centralized")
    assert refused.status == "infeasible" and "afford" in refused.message


# ---------------------------------------------------------------------------------------------
# Without budgets nothing changes


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_no_budgets_give_todays_answers(problem):
    rng = np.random.default_rng(41)
    for i in range(12):
        base = random_instance(rng, rate_model=("fixed", "shannon")[i % 2])
        powered = dataclasses.replace(
            base, device_compute_power_w=rng.uniform(1, 9, base.n_devices),
            device_tx_power_w=rng.uniform(0.1, 1, base.n_devices),
            device_energy_budget_j=np.full(base.n_devices, np.inf))
        for method in solvers.methods_for(problem):
            if method.name in ("milp", "scip"):
                continue
            try:
                before = method.solvers[problem](base)
            except SolverInputError:
                continue
            after = method.solvers[problem](powered)
            assert after.status == before.status
            assert after.round_latency_s == before.round_latency_s, method.name
            if before.assignment is not None:
                np.testing.assert_array_equal(after.assignment, before.assignment)
                np.testing.assert_array_equal(after.bandwidth_hz, before.bandwidth_hz)


def test_no_budget_arrays_mean_no_energy_work():
    instance = random_instance(np.random.default_rng(0))
    assert instance.device_energy_budget_j is None
    assert not instance.has_energy_budgets
    assert instance.energy_bandwidth_floor() is None
    assert instance.energy_feasible(instance.equal_bandwidth()).all()


# ---------------------------------------------------------------------------------------------
# Capabilities, validation, generator, report, figure


def test_registry_refuses_budgets_for_a_method_without_the_flag():
    plain = Method("plain-test", {"jbba": solvers.exact.solve_exact}, "baseline", False,
                   "a method registered without the energy flag")
    METHODS[plain.name] = plain
    try:
        instance = JBBA_CASES[0]
        with pytest.raises(SolverInputError) as refused:
            solvers.run_method("plain-test", "jbba", instance)
        message = str(refused.value)
        assert "energy" in message
        for method in solvers.methods_for("jbba", available_only=False):
            assert (method.name in message.split("do:")[1]) == method.energy
        assert "plain-test" not in message.split("do:")[1]
        # Without budgets the same method runs.
        free = dataclasses.replace(instance, device_energy_budget_j=None)
        solvers.run_method("plain-test", "jbba", free)
        with pytest.raises(SolverInputError, match="energy_budget_j"):
            lola.solve(_budget_scenario(0, "fixed"), "jbba", "plain-test")
    finally:
        del METHODS[plain.name]


def test_the_methods_that_keep_budgets_declare_it():
    for name in ("crunch", "bottleneck", "exact", "dual-ascent", "milp", "scip", "brute",
                 "random", "greedy", "min-sum", "centralized"):
        assert METHODS[name].energy, name


def _device_document(**keys):
    device = {"name": "d0", "flops_per_s": 1e12, "memory_bytes": 4e9, "spectral_efficiency": 4.0}
    device.update(keys)
    return {"model": {"blocks": [{"name": "b", "flops": 1e11, "memory_bytes": 1e9,
                                  "params": 100}]},
            "devices": [{"name": "other", "flops_per_s": 1e12, "memory_bytes": 4e9,
                         "spectral_efficiency": 4.0}, device],
            "channel": {"total_bandwidth_hz": 1e6}}


@pytest.mark.parametrize("keys, path, words", [
    ({"energy_budget_j": 5.0, "tx_power_w": 0.2}, "devices[1].compute_power_w",
     "required when energy_budget_j is given"),
    ({"energy_budget_j": 5.0, "compute_power_w": 3.0}, "devices[1].tx_power_w",
     "required when energy_budget_j is given"),
    ({"energy_budget_j": -1.0, "compute_power_w": 3.0, "tx_power_w": 0.2},
     "devices[1].energy_budget_j", "positive"),
    ({"compute_power_w": float("nan")}, "devices[1].compute_power_w", "positive"),
    ({"energy_budget_j": "lots", "compute_power_w": 3.0, "tx_power_w": 0.2},
     "devices[1].energy_budget_j", "positive"),
])
def test_scenario_errors_name_the_key_path(keys, path, words):
    with pytest.raises(lola.ScenarioError) as error:
        lola.load_scenario(_device_document(**keys))
    assert error.value.key == path
    assert words in str(error.value)


def test_tx_power_is_accepted_with_the_fixed_rate_model():
    scenario = lola.load_scenario(_device_document(tx_power_w=0.2, compute_power_w=3.0,
                                                   energy_budget_j=50.0))
    device = scenario.devices[1]
    assert (device.tx_power_w, device.compute_power_w, device.energy_budget_j) == (0.2, 3.0, 50.0)
    instance = lola.costs.to_instance(scenario)
    assert instance.device_energy_budget_j.tolist() == [np.inf, 50.0]
    assert np.isnan(instance.device_compute_power_w[0])


def test_generator_energy_is_opt_in_and_draws_nothing():
    plain = generate.generate_scenario(20, seed=0)
    assert not any("compute_power_w" in d or "energy_budget_j" in d for d in plain["devices"])
    assert generate.generate_scenario(20, seed=0, energy=False) == plain
    powered = generate.generate_scenario(20, seed=0, energy=True)
    budgeted = generate.generate_scenario(20, seed=0, energy_budget_j=30.0)
    for before, with_power, with_budget in zip(plain["devices"], powered["devices"],
                                               budgeted["devices"]):
        cls = before["name"].rsplit("-", 1)[0]
        low, high = generate.DEVICE_POWER_W[cls]
        assert low <= with_power["compute_power_w"] <= high
        assert with_power["tx_power_w"] == generate.TX_POWER_W
        assert {k: v for k, v in with_power.items()
                if k not in ("compute_power_w", "tx_power_w")} == before
        assert with_budget["energy_budget_j"] == 30.0
    result = lola.solve(budgeted, "jbba", "exact")
    assert result.status == "optimal"
    assert all(d.energy_j <= 30.0 * (1 + 1e-9) for d in result.devices if d.blocks)
    with pytest.raises(ValueError, match="energy_budget_j"):
        generate.generate_scenario(5, energy_budget_j=0.0)


def test_default_scenario_has_no_energy_keys():
    assert all(d.compute_power_w is None and d.energy_budget_j is None
               for d in lola.default_scenario().devices)


def test_human_table_and_comparison_show_energy_and_budget():
    document = generate.generate_scenario(16, seed=2, energy_budget_j=40.0)
    result = lola.solve(document, "jbba", "exact")
    text = format_result(result)
    assert "energy J" in text and " / 40" in text
    comparison = lola.compare(document, "jbba", ["exact", "greedy"])
    table = format_comparison(comparison)
    assert "energy J" in table and "total_energy_j" in table
    rows = comparison.to_dict()["results"]
    for row, res in zip(rows, comparison.results):
        assert row["total_energy_j"] == pytest.approx(
            sum(d["energy_j"] for d in row["devices"] if d["blocks"]))
        assert res.total_energy_j == row["total_energy_j"]


def test_energy_budget_sweep_and_figure():
    document = generate.generate_scenario(16, seed=0, energy=True)
    budgets = [5.0, 20.0, 40.0, 200.0]
    rows = energy_budget_sweep(document, budgets, methods=("exact", "greedy"))
    assert [(r["budget_j"], r["method"]) for r in rows] == [
        (b, m) for b in budgets for m in ("exact", "greedy")]
    exact = [r["round_latency_s"] for r in rows if r["method"] == "exact"]
    assert exact[0] is None and rows[0]["status"] == "infeasible"
    finite = [value for value in exact if value is not None]
    assert finite == sorted(finite, reverse=True)  # a looser budget never slows the round
    figure = plots.plot_energy_budget(rows)
    ax = figure.axes[0]
    assert ax.get_xlabel() == "energy budget per device and round (J)"
    assert ax.get_ylabel() == "round latency (s)"
    assert any("infeasible" in text.get_text() for text in ax.get_legend().get_texts())
    plt.close(figure)
    with pytest.raises(lola.ScenarioError, match=r"devices\[0\].compute_power_w"):
        with_energy_budget(generate.generate_scenario(16, seed=0), 10.0)


def test_command_line_reports_energy_and_exits_as_the_contract_says(tmp_path, capsys):
    document = generate.generate_scenario(16, seed=0, energy_budget_j=40.0)
    path = tmp_path / "budgeted.json"
    path.write_text(json.dumps(document))
    assert main(["solve", str(path), "--problem", "jbba", "--method", "exact", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    busy = [d for d in payload["devices"] if d["blocks"]]
    assert busy and all(0 < d["energy_j"] <= 40.0 * (1 + 1e-9) for d in busy)
    assert all(d["energy_j"] is None for d in payload["devices"] if not d["blocks"])

    document["devices"][0]["energy_budget_j"] = 1e-6  # cannot even compute
    for device in document["devices"]:
        device["energy_budget_j"] = 1e-6
    path.write_text(json.dumps(document))
    assert main(["solve", str(path), "--problem", "matching", "--json"]) == 1
    assert "energy budget" in json.loads(capsys.readouterr().out)["message"]

    del document["devices"][3]["compute_power_w"]
    path.write_text(json.dumps(document))
    assert main(["solve", str(path), "--problem", "jbba"]) == 2
    err = capsys.readouterr().err
    assert "devices[3].compute_power_w" in err and "required when energy_budget_j" in err
    assert err.count("\n") == 1


def test_command_line_generates_powers_and_draws_the_energy_figure(tmp_path, capsys):
    from lola.cli import main

    path = tmp_path / "powered.yaml"
    assert main(["scenario", "generate", "--devices", "14", "--energy-budget", "40",
                 "-o", str(path)]) == 0
    scenario = lola.load_scenario(path)
    assert all(d.energy_budget_j == 40 and d.compute_power_w > 0 and d.tx_power_w == 0.2
               for d in scenario.devices)
    assert "--energy-budget 40" in path.read_text().splitlines()[3]
    figure = tmp_path / "energy.png"
    assert main(["plot", "energy", str(path), "--values", "5,20,80", "--methods", "exact",
                 "-o", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    capsys.readouterr()
    plain = tmp_path / "plain.yaml"
    assert main(["scenario", "generate", "--devices", "14", "-o", str(plain)]) == 0
    assert main(["plot", "energy", str(plain), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no compute_power_w" in err and "--energy" in err
    assert not (tmp_path / "x.png").exists()
