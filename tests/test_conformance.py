"""One conformance check that every registered method passes, on both problems and rate models.

A method added to the registry is covered automatically: the parametrisation is derived from it.
"""
import numpy as np
import pytest

import lola
import solvers
from lola import costs

from .instances import random_scenario

REFERENCE = {"matching": "bottleneck", "jbba": "exact"}
TOLERANCE = {"matching": 1e-9, "jbba": 1e-6}


def cases():
    for problem in solvers.PROBLEMS:
        for method in solvers.methods_for(problem):
            yield pytest.param(problem, method.name, id=f"{problem}-{method.name}")


def scenarios(count=25):
    rng = np.random.default_rng(2024)
    for i in range(count):
        yield lola.load_scenario(random_scenario(
            rng, rate_model="shannon" if i % 2 else "fixed", fixed_bandwidth=(i % 5 == 0),
            name=f"conformance-{i}"))


def recomputed_latency(scenario, result):
    by_name = {d.name: d for d in scenario.devices}
    reports = {d.name: d for d in result.devices}
    latency = []
    for block, pair in zip(scenario.blocks, result.assignment):
        assert pair["block"] == block.name
        device = by_name[pair["device"]]
        latency.append(costs.latency_s(block, device, scenario.channel,
                                       reports[device.name].bandwidth_hz))
    return max(latency)


@pytest.mark.parametrize("problem, method", list(cases()))
def test_method_conforms(problem, method):
    spec = solvers.METHODS[method]
    reference_method = REFERENCE[problem]
    if reference_method not in solvers.METHODS or problem not in solvers.METHODS[
            reference_method].solvers:
        reference_method = "bottleneck" if problem == "matching" else None
    checked = 0
    for scenario in scenarios():
        if method == "brute" and len(scenario.devices) > 6:
            continue
        try:
            result = lola.solve(scenario, problem=problem, method=method, seed=3)
        except solvers.SolverInputError as err:  # a method may refuse an instance, saying why
            assert method == "scip" and "fixed rate" in str(err)
            continue
        again = lola.solve(scenario, problem=problem, method=method, seed=3)
        first, second = result.to_dict(), again.to_dict()
        first.pop("solve_time_s"), second.pop("solve_time_s")
        assert first == second, "same seed, different answer"
        assert set(first) == {"scenario", "problem", "method", "status", "round_latency_s",
                              "assignment", "devices", "lower_bound_s", "message"}
        assert [d.name for d in result.devices] == [d.name for d in scenario.devices]
        reference = (lola.solve(scenario, problem=problem, method=reference_method)
                     if reference_method else None)
        if result.status == "infeasible":
            assert result.round_latency_s is None and result.assignment == []
            assert result.message
            if method != "centralized" and reference is not None:
                assert reference.status == "infeasible"
            continue
        checked += 1
        assert [p["block"] for p in result.assignment] == [b.name for b in scenario.blocks]
        if method == "centralized":
            uploaders = [d for d in result.devices if d.bandwidth_hz > 0]
            assert len(uploaders) == len(scenario.blocks)
            assert {p["device"] for p in result.assignment} == {"server"}
            continue
        devices = [p["device"] for p in result.assignment]
        assert len(set(devices)) == len(devices), "a device trains two blocks"
        memory = {d.name: d.memory_bytes for d in scenario.devices}
        for block, device in zip(scenario.blocks, devices):
            assert block.memory_bytes <= memory[device]
        total = sum(d.bandwidth_hz for d in result.devices)
        assert total <= scenario.channel.total_bandwidth_hz * (1 + 1e-9)
        assert all(d.bandwidth_hz == 0 for d in result.devices if not d.blocks)
        assert result.round_latency_s == pytest.approx(recomputed_latency(scenario, result),
                                                       rel=1e-12)
        assert result.round_latency_s == max(d.latency_s for d in result.devices)
        if result.status == "optimal":  # proven: an exact method, or a bound that closes the gap
            assert spec.exact or result.lower_bound_s >= result.round_latency_s * (
                1 - TOLERANCE[problem])
        if reference is not None:
            assert reference.status != "infeasible"
            optimum = reference.round_latency_s
            tol = TOLERANCE[problem]
            if problem == "matching" or spec.role != "baseline":
                assert result.round_latency_s >= optimum * (1 - tol)
            if result.lower_bound_s is not None:
                assert result.lower_bound_s <= optimum * (1 + tol)
            if result.status == "optimal":
                assert result.round_latency_s == pytest.approx(optimum, rel=tol)
    assert checked > 5


def solver_cases():
    from .instances import JBBA_CATALOGUE, MATCHING_CATALOGUE
    catalogue = {"matching": MATCHING_CATALOGUE, "jbba": JBBA_CATALOGUE}
    for problem in solvers.PROBLEMS:
        for method in solvers.methods_for(problem):
            for name, (instance, optimum) in catalogue[problem].items():
                yield pytest.param(problem, method.name, instance, optimum,
                                   id=f"{problem}-{method.name}-{name}")


@pytest.mark.parametrize("problem, method, instance, optimum", list(solver_cases()))
def test_every_method_on_the_catalogue(problem, method, instance, optimum):
    spec = solvers.METHODS[method]
    seeded = {"seed": 1} if spec.takes_seed else {}
    result = solvers.run_method(method, problem, instance, **seeded)
    again = solvers.run_method(method, problem, instance, **seeded)
    assert result.round_latency_s == again.round_latency_s  # same seed, same answer
    if method == "centralized":  # the server trains: only the number of uploaders matters
        feasible = instance.n_devices >= instance.n_blocks
        assert (result.status is not solvers.Status.INFEASIBLE) == feasible
        return
    if optimum is None:
        assert result.status is solvers.Status.INFEASIBLE and result.round_latency_s is None
        return
    assert result.status is not solvers.Status.INFEASIBLE
    assert result.bandwidth_hz.sum() <= instance.total_bandwidth_hz * (1 + 1e-12)
    recomputed = instance.assignment_latency(result.assignment, result.bandwidth_hz).max()
    assert result.round_latency_s == recomputed
    tol = TOLERANCE[problem]
    assert result.round_latency_s >= optimum * (1 - tol)
    if result.lower_bound_s is not None:
        assert result.lower_bound_s <= optimum * (1 + tol)
    if spec.exact or result.status is solvers.Status.OPTIMAL:
        assert result.round_latency_s == pytest.approx(optimum, rel=tol)


@pytest.mark.parametrize("problem", solvers.PROBLEMS)
def test_every_method_refuses_an_option_it_does_not_take(problem):
    """run_method checks options for every caller: a misspelt one is not silently ignored."""
    from lola.generate import scaled_instance

    instance = scaled_instance(4, 3, seed=0)
    for method in solvers.methods_for(problem):
        accepted = method.options
        with pytest.raises(solvers.SolverInputError) as refused:
            solvers.run_method(method.name, problem, instance, unknown_option=1)
        message = str(refused.value)
        assert f"method {method.name!r} has no option 'unknown_option'" in message
        assert (f"its options are {', '.join(accepted)}" in message if accepted
                else "it takes no options" in message)
        if "rtol" in accepted:  # the hint names the option meant
            with pytest.raises(solvers.SolverInputError, match="did you mean 'rtol'"):
                solvers.run_method(method.name, problem, instance, rtoll=1e-3)
