"""The path MILP over contiguous runs (:mod:`solvers.runs`), the exact several-blocks method of the
uniform case above the subset programme's device limit, against two independent exact methods on
random uniform instances: the enumerating reference of :mod:`tests.reference_model` (written from
the SPEC alone) and the subset programme of :mod:`solvers.sets`. Both rate models, energy budgets,
tight memory, ties, caps 1-4, K below and above N. Every allocation is recomputed: caps, memory,
energy, the bandwidth sum, the round latency.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import lola
from lola import costs
from solvers.runs import paths_p1, paths_p2
from solvers.sets import _uniform_p1, _uniform_p2, uniform_costs

from .reference_model import random_doc, reference_p1, reference_p2

N_SEEDS = int(int(os.environ.get("LOLA_REFERENCE_SEEDS", 200)) * 0.6)  # x 2 problems


def uniform_doc(seed):
    """(doc, max_blocks): a random scenario whose blocks are uniform (equal payloads, equal
    extras), N 1..7 blocks, K 1..7 devices (mostly enough for the caps)."""
    rng = np.random.default_rng([83, seed])
    n_blocks = int(rng.integers(1, 8))
    max_blocks = int(rng.integers(1, 5))
    least = -(-n_blocks // max_blocks)
    n_devices = int(rng.integers(max(1, least - (rng.random() < 0.15)), max(6, least + 1)))
    doc = random_doc(rng, n_blocks=n_blocks, n_devices=n_devices, split=False,
                     extras=str(rng.choice(["absent", "zero", "equal"])))
    for block in doc["model"]["blocks"]:
        block["params"] = doc["model"]["blocks"][0]["params"]
    return doc, max_blocks


def _instance(doc, max_blocks):
    instance = costs.to_instance(lola.load_scenario(doc), max_blocks=max_blocks)
    assert uniform_costs(instance)
    return instance


def _check(instance, result, optimum, rel, bandwidth_hz=None):
    if not math.isfinite(optimum):
        assert result.assignment is None and str(result.status) == "infeasible"
        return
    assert str(result.status) == "optimal", result.message
    assignment, bandwidth = result.assignment, result.bandwidth_hz
    flops, memory, bits, count = instance.group_costs(assignment)
    assert (count <= instance.max_blocks()).all()
    assert (memory[count > 0] <= instance.device_memory[count > 0]).all()
    assert instance.allocation_fits(assignment, bandwidth)
    if bandwidth_hz is None:
        assert bandwidth.sum() <= instance.total_bandwidth_hz * (1 + 1e-9)
        assert (bandwidth[count == 0] == 0).all()
    else:
        assert np.array_equal(bandwidth[count > 0], np.asarray(bandwidth_hz)[count > 0])
    used = count > 0
    rate = instance.rate(bandwidth)
    latency = flops[used] / instance.device_flops_per_s[used] + bits[used] / rate[used]
    assert math.isclose(result.round_latency_s, latency.max(), rel_tol=1e-12)
    assert math.isclose(result.round_latency_s, optimum, rel_tol=rel), \
        (result.round_latency_s, optimum)
    if result.lower_bound_s is not None:
        assert result.lower_bound_s <= optimum * (1 + rel)


@pytest.mark.parametrize("seed", range(N_SEEDS))
def test_p1_paths_equal_reference_and_subset_programme(seed):
    doc, max_blocks = uniform_doc(seed)
    instance = _instance(doc, max_blocks)
    bandwidth = instance.matching_bandwidth()
    optimum = reference_p1(doc, max_blocks)
    result = paths_p1(instance, bandwidth)
    _check(instance, result, optimum, 1e-9, bandwidth)
    other = _uniform_p1(instance, bandwidth)
    assert other.round_latency_s == result.round_latency_s or math.isclose(
        other.round_latency_s, result.round_latency_s, rel_tol=1e-9)


@pytest.mark.parametrize("seed", range(N_SEEDS))
def test_p2_paths_equal_reference_and_subset_programme(seed):
    doc, max_blocks = uniform_doc(seed)
    instance = _instance(doc, max_blocks)
    optimum = reference_p2(doc, max_blocks)
    result = paths_p2(instance, 1e-9, None)
    _check(instance, result, optimum, 1e-6)
    other = _uniform_p2(instance, 1e-9, None)
    if other.round_latency_s is None:
        assert result.round_latency_s is None
    else:
        assert math.isclose(other.round_latency_s, result.round_latency_s, rel_tol=1e-6)


def test_path_arcs_leave_out_runs_past_the_shallowest_block():
    from solvers.runs import path_arcs

    table = np.zeros((2, 3, 2))
    table[1, 0, 1] = np.inf
    k, r, j, _ = path_arcs(table)
    assert set(zip(k.tolist(), r.tolist(), j.tolist())) == {
        (0, 0, 1), (0, 0, 2), (0, 1, 1), (0, 1, 2), (0, 2, 1),
        (1, 0, 1), (1, 1, 1), (1, 1, 2), (1, 2, 1)}


# ---------------------------------------------------------------------------------------------
# Through the public API: the exact methods with the path MILP at every K (max_subset_devices=0)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("seed", range(N_SEEDS // 2))
def test_exact_methods_on_the_path_milp_through_the_api(seed, problem):
    """Uniform, near-uniform (bracketed) and general instances: the exact several-blocks method
    forced onto the path MILP equals the reference, and every figure of its result checks."""
    from .reference_model import check_result
    from .test_several_blocks import draw

    if seed % 2:
        doc, max_blocks = uniform_doc(1000 + seed)
    else:
        doc, max_blocks = draw(2000 + seed)
    max_blocks = max(max_blocks, 2)
    method = "crunch" if problem == "matching" else "exact"
    optimum = (reference_p1 if problem == "matching" else reference_p2)(doc, max_blocks)
    try:
        result = lola.solve(doc, problem=problem, method=method, max_blocks=max_blocks,
                            max_subset_devices=0)
    except Exception as error:  # a refusal must name the methods that handle the instance
        import solvers

        assert isinstance(error, solvers.SolverInputError), error
        assert "packing" in str(error) or "milp" in str(error), error
        return
    check_result(doc, result.to_dict(), problem=problem, max_blocks=max_blocks,
                 optimum=optimum, exact=True)


@pytest.mark.parametrize("value", [-1, 1.5, True, "8"])
def test_max_subset_devices_must_be_a_non_negative_integer(value):
    import solvers

    doc, _ = uniform_doc(3)
    with pytest.raises(solvers.SolverInputError, match="max_subset_devices"):
        lola.solve(doc, problem="jbba", method="exact", max_blocks=2, max_subset_devices=value)
