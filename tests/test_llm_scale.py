"""Several blocks per device at LLM scale (:mod:`solvers.layers`): the release programme (P1) and
the tiling LP (P2) against independent exact methods on thousands of small random instances, and
the structure checks that decide when they apply.

* the release programme against enumeration of every choice of release layers (condition (H)
  of :mod:`solvers.layers`), and each answer it gives checked against (H); its LP relaxation
  never refuses a table that has a solution;
* ``solve_layers_p1`` and ``solve_layers_p2`` against the enumerating reference of
  :mod:`tests.reference_model` (written from the SPEC alone) on random uniform instances whose
  blocks come in layers of equal cost: both rate models, ties, tight memory, caps 1-4, energy
  budgets, identical devices, K below and above N; against the subset programme of
  :mod:`solvers.sets` on larger instances (N up to 24); against the path MILP of
  :mod:`solvers.runs` on a sample;
* every allocation is recomputed from the scenario with :mod:`lola.costs` (each device's set:
  cap, memory, energy, compute and upload time), never from the solver's own numbers;
* through ``lola.solve``: above the subset programme's device limit the exact methods take
  these paths on uniform instances, and on other instances (unequal payloads, split mode) they
  keep to the earlier paths and say so.

Seeded numpy loops (a failure names its seed); about a minute on one core.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import lola
from lola import costs
from solvers import layers as layered
from solvers.layers import (TilingLP, layer_tables, release_programme, release_relaxation,
                            solve_layers_p1, solve_layers_p2)
from solvers.runs import paths_p1, paths_p2
from solvers.sets import _uniform_p1, _uniform_p2, uniform_costs

from .reference_model import check_result, random_doc, reference_p1, reference_p2


# ---------------------------------------------------------------------------------------------
# Instances


def layered_doc(rng, *, n_blocks=None, n_devices=None, caps=None, energy=None):
    """(doc, max_blocks): a random uniform scenario (equal payloads, equal extras) whose blocks
    come in layers of equal (flops, memory): N 1..7, K mostly enough for the caps (sometimes
    not), now and then two identical devices."""
    n_blocks = int(rng.integers(1, 8)) if n_blocks is None else n_blocks
    max_blocks = int(rng.integers(1, 5)) if caps is None else caps
    least = -(-n_blocks // max_blocks)
    if n_devices is None:
        n_devices = int(rng.integers(max(1, least - (rng.random() < 0.15)),
                                     max(6, least + 1)))
    options = {} if energy is None else {"energy": energy}
    doc = random_doc(rng, n_blocks=n_blocks, n_devices=n_devices, split=False,
                     extras=str(rng.choice(["absent", "zero", "equal"])), **options)
    blocks = doc["model"]["blocks"]
    for block in blocks:
        block["params"] = blocks[0]["params"]
    # layers: each group of consecutive blocks takes the costs of its deepest block
    edges = [0] + sorted(set(rng.integers(1, max(n_blocks, 2), size=int(
        rng.integers(0, n_blocks))).tolist()) - {n_blocks}) + [n_blocks]
    for first, end in zip(edges[:-1], edges[1:]):
        for block in blocks[first:end]:
            block["flops"] = blocks[end - 1]["flops"]
            block["memory_bytes"] = blocks[end - 1]["memory_bytes"]
    if n_devices > 1 and rng.random() < 0.2:  # an identical twin (another name)
        twin = dict(doc["devices"][0], name="twin")
        doc["devices"][1] = twin
    return doc, max_blocks


def llm_doc(rng, *, layers, per_layer, n_devices, caps):
    """A Llama-shaped scenario in miniature: ``layers`` layers of ``per_layer`` equal blocks,
    costs growing with depth (the benchmark's construction, :mod:`benchmarks.llm_scale`)."""
    doc, _ = layered_doc(rng, n_blocks=1, n_devices=n_devices, caps=caps, energy="none")
    flops = np.sort(rng.uniform(1e11, 1e12, layers))
    memory = np.sort(rng.uniform(0.5e9, 3e9, layers))
    extra_flops, extra_memory = 0.01 * flops[0], 0.05 * memory[0]
    doc["model"]["blocks"] = [
        {"name": f"layer.{layers - 1 - depth}.{matrix}", "flops": float(flops[depth]),
         "memory_bytes": float(memory[depth]), "params": 16384,
         "extra_flops": float(extra_flops), "extra_memory_bytes": float(extra_memory)}
        for depth in range(layers) for matrix in range(per_layer)]
    return doc, caps


def instance_of(doc, max_blocks):
    instance = costs.to_instance(lola.load_scenario(doc), max_blocks=max_blocks)
    assert uniform_costs(instance)
    return instance


# ---------------------------------------------------------------------------------------------
# Checking an allocation from the scenario alone


def recompute(doc, max_blocks, result, problem):
    """The round latency of ``result``'s allocation recomputed from the scenario with
    :mod:`lola.costs`, after checking partition, caps, memory, energy and bandwidths."""
    scenario = lola.load_scenario(doc)
    assignment = np.asarray(result.assignment)
    bandwidth = np.asarray(result.bandwidth_hz, dtype=float)
    assert assignment.shape == (len(scenario.blocks),)
    worst = 0.0
    for k, device in enumerate(scenario.devices):
        mine = np.flatnonzero(assignment == k)
        if mine.size == 0:
            assert bandwidth[k] == 0.0
            continue
        cap = device.max_blocks if device.max_blocks is not None else max_blocks
        assert mine.size <= cap
        deepest = scenario.blocks[mine[-1]]
        flops, memory, bits = 0.0, 0.0, 0.0
        for n in mine[:-1]:
            flops += scenario.blocks[n].extra_flops
            memory += scenario.blocks[n].extra_memory_bytes
        for n in mine:
            bits += scenario.blocks[n].payload_bits
        flops, memory = deepest.flops + flops, deepest.memory_bytes + memory
        assert memory <= device.memory_bytes
        compute = costs.compute_time_of(flops, device)
        upload = costs.upload_time_of(bits, device, scenario.channel, bandwidth[k])
        if device.energy_budget_j is not None:
            assert costs.energy_j(device, compute, upload) <= device.energy_budget_j
        worst = max(worst, compute + upload)
    if problem == "matching":
        fixed = costs.to_instance(scenario, max_blocks=max_blocks).matching_bandwidth()
        used = np.bincount(assignment, minlength=len(scenario.devices)) > 0
        assert np.array_equal(bandwidth[used], fixed[used])
    else:
        assert bandwidth.sum() <= scenario.channel.total_bandwidth_hz * (1 + 1e-9)
    assert math.isclose(result.round_latency_s, worst, rel_tol=1e-12), \
        (result.round_latency_s, worst)
    return worst


def same(latency, optimum, rel):
    """Equal latencies to ``rel``; None (infeasible) matches an infinite or None optimum."""
    optimum = math.inf if optimum is None else optimum
    if latency is None or not math.isfinite(optimum):
        return latency is None and not math.isfinite(optimum)
    return latency == optimum or math.isclose(latency, optimum, rel_tol=rel)


# ---------------------------------------------------------------------------------------------
# The release programme against enumeration


def _enumerate_h(capacity, sizes):
    """Whether some release layers (or none) satisfy (H), by trying them all."""
    n_devices, n_layers = capacity.shape
    starts = np.concatenate([[0], np.cumsum(sizes)])
    choices = np.array(list(itertools.product(range(-1, n_layers), repeat=n_devices)))
    held = np.where(choices >= 0, capacity[np.arange(n_devices), np.maximum(choices, 0)], 0)
    for prefix in range(1, n_layers + 1):
        covered = np.where((choices >= 0) & (choices < prefix), held, 0).sum(axis=1)
        choices, held = choices[covered >= starts[prefix]], held[covered >= starts[prefix]]
    return choices.shape[0] > 0


def _holds_h(release, capacity, sizes):
    starts = np.concatenate([[0], np.cumsum(sizes)])
    used = release >= 0
    held = np.where(used, capacity[np.arange(release.size), np.maximum(release, 0)], 0)
    return all(held[used & (release < prefix)].sum() >= starts[prefix]
               for prefix in range(1, sizes.size + 1))


def _random_capacity(rng, n_devices, n_layers, most):
    """Staircases J_k(l), non-decreasing in l, values 0..most; some rows repeated."""
    steps = rng.integers(0, 2, (n_devices, n_layers)) * rng.integers(0, most + 1,
                                                                    (n_devices, n_layers))
    capacity = np.minimum(np.maximum.accumulate(steps, axis=1), most)
    if n_devices > 2 and rng.random() < 0.3:
        capacity[1] = capacity[0]
    return capacity


def test_release_programme_against_enumeration():
    checked = feasible = refused = 0
    for seed in range(2500):
        rng = np.random.default_rng([41, seed])
        n_devices, n_layers = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        capacity = _random_capacity(rng, n_devices, n_layers, int(rng.integers(1, 5)))
        sizes = rng.integers(1, 4, n_layers)
        expected = _enumerate_h(capacity, sizes)
        relaxed = release_relaxation(capacity, sizes)
        assert relaxed or not expected, seed  # the LP relaxation never refuses a solution
        refused += not relaxed
        found = release_programme(capacity, sizes)
        assert (found is not None) == expected, seed
        if found is not None:
            assert _holds_h(found, capacity, sizes), seed
            feasible += 1
        fast = release_programme(capacity, sizes, beam=1)
        assert fast is None or _holds_h(fast, capacity, sizes), seed
        assert fast is None or expected, seed
        checked += 1
    assert checked == 2500 and 500 < feasible < 2000  # both answers well represented
    assert refused > 200


def test_release_programme_with_many_devices_against_enumeration():
    for seed in range(150):
        rng = np.random.default_rng([43, seed])
        n_devices, n_layers = 7, int(rng.integers(1, 4))
        capacity = _random_capacity(rng, n_devices, n_layers, int(rng.integers(1, 4)))
        sizes = rng.integers(2, 6, n_layers)
        found = release_programme(capacity, sizes)
        assert (found is not None) == _enumerate_h(capacity, sizes), seed
        assert found is None or _holds_h(found, capacity, sizes), seed


def test_release_programme_state_limit():
    capacity = np.array([[1, 2, 3], [2, 2, 3], [1, 1, 3], [1, 3, 3]])
    assert release_programme(capacity, np.array([3, 3, 3])) is not None
    with pytest.raises(layered.TooManyStates):
        release_programme(capacity, np.array([3, 3, 3]), max_states=0)


# ---------------------------------------------------------------------------------------------
# P1 and P2 against the reference, the subset programme and the path MILP


def test_p1_against_reference_and_subset_programme():
    solved = 0
    for seed in range(1200):
        rng = np.random.default_rng([47, seed])
        doc, max_blocks = layered_doc(rng)
        instance = instance_of(doc, max_blocks)
        bandwidth = instance.matching_bandwidth()
        optimum = reference_p1(doc, max_blocks)
        result = solve_layers_p1(instance, bandwidth)
        assert same(result.round_latency_s, optimum, 1e-9), (seed, result.round_latency_s,
                                                              optimum)
        if result.round_latency_s is None:
            assert str(result.status) == "infeasible" and result.message, seed
            continue
        assert str(result.status) == "optimal" and "fallback" not in result.extras, seed
        recompute(doc, max_blocks, result, "matching")
        other = _uniform_p1(instance, bandwidth)
        assert same(other.round_latency_s, result.round_latency_s, 1e-12), seed
        solved += 1
    assert solved > 700


def test_p2_against_reference_and_subset_programme(monkeypatch):
    integral_calls = []
    original = TilingLP.solve_integral

    def counted(self, *args, **kwargs):
        integral_calls.append(1)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(TilingLP, "solve_integral", counted)
    solved = 0
    for seed in range(500):
        rng = np.random.default_rng([53, seed])
        doc, max_blocks = layered_doc(rng)
        instance = instance_of(doc, max_blocks)
        optimum = reference_p2(doc, max_blocks)
        result = solve_layers_p2(instance)
        assert same(result.round_latency_s, optimum, 1e-6), (seed, result.round_latency_s,
                                                              optimum)
        if result.round_latency_s is None:
            assert str(result.status) == "infeasible" and result.message, seed
            continue
        assert str(result.status) == "optimal", seed
        assert result.lower_bound_s <= optimum * (1 + 1e-9), seed
        assert result.round_latency_s <= result.lower_bound_s * (1 + 1e-6), seed
        recompute(doc, max_blocks, result, "jbba")
        if seed % 5 == 0:
            other = _uniform_p2(instance, 1e-9, None)
            assert same(other.round_latency_s, result.round_latency_s, 1e-6), seed
        solved += 1
    assert solved > 350
    assert integral_calls  # some LP tilings were fractional: the MILP decided them


def test_against_path_milp_sample():
    for seed in range(40):
        rng = np.random.default_rng([59, seed])
        doc, max_blocks = layered_doc(rng)
        instance = instance_of(doc, max_blocks)
        bandwidth = instance.matching_bandwidth()
        mine, theirs = solve_layers_p1(instance, bandwidth), paths_p1(instance, bandwidth)
        assert same(mine.round_latency_s, reference_p1(doc, max_blocks), 1e-9), seed
        assert same(mine.round_latency_s, theirs.round_latency_s, 1e-12), seed
        mine, theirs = solve_layers_p2(instance), paths_p2(instance, 1e-9, None)
        assert same(mine.round_latency_s, theirs.round_latency_s, 1e-6), seed


def test_larger_layered_instances_against_subset_programme():
    """N up to 24 in layers of equal blocks, caps 2-5: beyond the reference's reach, against
    the subset programme (exact, exponential in K only)."""
    for seed in range(60):
        rng = np.random.default_rng([61, seed])
        n_layers, per_layer = int(rng.integers(2, 7)), int(rng.integers(1, 5))
        caps = int(rng.integers(2, 6))
        n_devices = int(rng.integers(max(2, -(-n_layers * per_layer // caps)), 11))
        doc, max_blocks = llm_doc(rng, layers=n_layers, per_layer=per_layer,
                                  n_devices=n_devices, caps=caps)
        instance = instance_of(doc, max_blocks)
        assert layer_tables(instance).n_layers == n_layers
        bandwidth = instance.matching_bandwidth()
        result = solve_layers_p1(instance, bandwidth)
        other = _uniform_p1(instance, bandwidth)
        assert same(result.round_latency_s, other.round_latency_s, 1e-12), seed
        if result.round_latency_s is not None:
            recompute(doc, max_blocks, result, "matching")
        if n_devices <= 8:
            result, other = solve_layers_p2(instance), _uniform_p2(instance, 1e-9, None)
            assert same(result.round_latency_s, other.round_latency_s, 1e-6), seed
            if result.round_latency_s is not None:
                recompute(doc, max_blocks, result, "jbba")


def test_p1_hands_over_to_the_path_milp_past_the_state_limit():
    rng = np.random.default_rng([67, 0])
    doc, max_blocks = llm_doc(rng, layers=4, per_layer=3, n_devices=6, caps=3)
    instance = instance_of(doc, max_blocks)
    bandwidth = instance.matching_bandwidth()
    result = solve_layers_p1(instance, bandwidth, max_states=0)
    assert result.extras["fallback"] == "path MILP" and "path MILP" in result.message
    assert str(result.status) == "optimal"
    assert same(result.round_latency_s, solve_layers_p1(instance, bandwidth).round_latency_s,
                1e-12)


def test_layers_of_the_llm_shape():
    """32 layers of 7 equal matrices: 32 layers, run costs growing with the layer's depth."""
    rng = np.random.default_rng([71, 0])
    doc, max_blocks = llm_doc(rng, layers=32, per_layer=7, n_devices=3, caps=5)
    tables = layer_tables(instance_of(doc, max_blocks))
    assert tables.n_layers == 32 and (tables.sizes == 7).all()
    assert (np.diff(tables.flops[:, 0]) <= 0).all()  # from the deep end: cheaper upwards
    assert (np.diff(tables.flops, axis=1) > 0).all() and (np.diff(tables.bits) > 0).all()
    assert tables.layer_of[0] == 0 and tables.layer_of[-1] == 31


# ---------------------------------------------------------------------------------------------
# Through the public API: which path solves what


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_api_uses_the_layered_paths_above_the_device_limit(problem):
    method = "crunch" if problem == "matching" else "exact"
    expect = "release programme" if problem == "matching" else "tiling LP"
    reference = reference_p1 if problem == "matching" else reference_p2
    for seed in range(40):
        rng = np.random.default_rng([73, seed])
        doc, max_blocks = layered_doc(rng, energy=str(rng.choice(["none", "tight", "loose"])))
        max_blocks = max(max_blocks, 2)
        optimum = reference(doc, max_blocks)
        result = lola.solve(doc, problem=problem, method=method, max_blocks=max_blocks,
                            max_subset_devices=0)
        check_result(doc, result.to_dict(), problem=problem, max_blocks=max_blocks,
                     optimum=optimum, exact=True)
        several = costs.to_instance(lola.load_scenario(doc), max_blocks=max_blocks).several_blocks
        if result.round_latency_s is not None and several:
            assert expect in result.message, (seed, result.message)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_api_keeps_other_instances_on_their_paths(problem):
    """Unequal payloads are not the uniform case: the layered paths only bracket them (or the
    instance is handed over), and the answer stays exact; split mode goes to enumeration."""
    method = "crunch" if problem == "matching" else "exact"
    reference = reference_p1 if problem == "matching" else reference_p2
    for seed in range(12):
        rng = np.random.default_rng([79, seed])
        doc, max_blocks = layered_doc(rng, n_blocks=int(rng.integers(2, 6)), energy="none")
        doc["model"]["blocks"][0]["params"] *= 2
        instance = costs.to_instance(lola.load_scenario(doc), max_blocks=max(max_blocks, 2))
        assert not uniform_costs(instance)
        optimum = reference(doc, max(max_blocks, 2))
        result = lola.solve(doc, problem=problem, method=method,
                            max_blocks=max(max_blocks, 2), max_subset_devices=0)
        check_result(doc, result.to_dict(), problem=problem, max_blocks=max(max_blocks, 2),
                     optimum=optimum, exact=True)
        if result.round_latency_s is not None and instance.several_blocks:
            assert ("bracketed" in result.message or "instead" in result.message), \
                (seed, result.message)
    rng = np.random.default_rng([83, 0])
    doc = random_doc(rng, n_blocks=3, n_devices=3, split=True, energy="none")
    result = lola.solve(doc, problem=problem, method=method, max_blocks=2,
                        modes=("local", "split"), max_subset_devices=0)
    assert result.extras.get("fallback") == "enumeration"
