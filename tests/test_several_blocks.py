"""Several blocks per device (SPEC 8), through the public API only, against the independent
reference of :mod:`tests.reference_model` (which reads the scenario dicts itself and enumerates).

* every exact method that accepts an instance equals the reference optimum (P1 to 1e-9, P2 to
  1e-6 relative); a method that refuses it raises ``solvers.SolverInputError`` naming a method
  that handles it;
* every allocation returned (exact or not) is recomputed from ``result.to_dict()["devices"]``:
  per-device latency, memory, cap, energy, P1 bandwidth / P2 bandwidth sum, partition of the
  blocks, the round latency; a baseline never beats the optimum; lower bounds stay below it;
* with every cap 1 the answers are those of the one-block toolkit;
* the command line: ``lola solve SCENARIO --max-blocks 2 --json`` and the refusal (exit 2).
"""
from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest

import lola

from .reference_model import (check_cli_refusals, check_refusals, check_result, random_doc,
                              reference_p1, reference_p1_naive, reference_p2, reference_p2_naive,
                              run_lola, solve_every_method)

# milp on P2 bisects over MILP feasibility problems: about 0.2 s a call with one block per
# device, up to seconds with several; it runs on every SLOW_EVERY[problem]-th seed only.
SLOW = ("milp", "scip")
SLOW_EVERY = {"matching": 2, "jbba": 25}
# LOLA_REFERENCE_SEEDS=N multiplies the seeds below by N/200 for a deeper run.
_SCALE = int(os.environ.get("LOLA_REFERENCE_SEEDS", 200)) / 200
N_SEEDS = int(150 * _SCALE)          # x 2 problems
N_CAP_ONE_SEEDS = int(24 * _SCALE)
N_SELF_SEEDS = int(60 * _SCALE)
# Seeds beyond the default range that once caught a wrong exact answer (every method runs on
# them, milp included): 372 (P1, shannon, energy budgets, caps 3), 450 (P2, energy, caps 2).
REGRESSION_SEEDS = [372, 450]



def reference(problem, doc, max_blocks=1, modes=("local",)):
    return (reference_p1 if problem == "matching" else reference_p2)(doc, max_blocks, modes)


def draw(seed, **overrides):
    """(doc, max_blocks) for one seed: N 1..5 blocks, K 1..4 devices (5 when M = 1 and N = 5),
    M in {1, 2, 3}, K mostly large enough for the caps (sometimes not: infeasible instances are
    checked too)."""
    rng = np.random.default_rng([8, seed])
    max_blocks = int(rng.choice([1, 2, 2, 3]))
    n_blocks = int(rng.integers(1, 6))
    least = -(-n_blocks // max_blocks)  # K <= 4, or 5 where one block each needs it
    if rng.random() < 0.85:
        n_devices = int(rng.integers(least, max(4, least) + 1))
    else:
        n_devices = int(rng.integers(1, least + 1))
    options = dict(n_blocks=n_blocks, n_devices=n_devices, split=False)
    options.update(overrides)
    return random_doc(rng, **options), max_blocks


# ---------------------------------------------------------------------------------------------
# The reference checks itself: subset DP against plain enumeration of every assignment


@pytest.mark.parametrize("seed", range(N_SELF_SEEDS))
def test_reference_dp_equals_enumeration(seed):
    rng = np.random.default_rng([80, seed])
    doc = random_doc(rng, n_blocks=int(rng.integers(1, 5)), n_devices=int(rng.integers(1, 4)),
                     split=bool(seed % 2))
    max_blocks = int(rng.integers(1, 4))
    modes = [("local",), ("local", "split"), ("split",)][seed % 3] if seed % 2 else ("local",)
    assert reference_p1(doc, max_blocks, modes) == reference_p1_naive(doc, max_blocks, modes)
    fast, slow = reference_p2(doc, max_blocks, modes), reference_p2_naive(doc, max_blocks, modes)
    assert fast == slow or math.isclose(fast, slow, rel_tol=1e-9)
    # more freedom never hurts: a larger cap, or P2's free bandwidth (when P1 shares B)
    assert reference_p1(doc, max_blocks + 1, modes) <= reference_p1(doc, max_blocks, modes)
    if not all("bandwidth_hz" in d for d in doc["devices"]):
        assert fast <= reference_p1(doc, max_blocks, modes) * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------
# Hand-worked instance


def _one_device_doc(memory=1e10):
    return {
        "name": "hand",
        "model": {"blocks": [
            {"name": "top", "flops": 1e11, "memory_bytes": 1.0e9, "params": 1000,
             "extra_flops": 1e10, "extra_memory_bytes": 1e8},
            {"name": "mid", "flops": 2e11, "memory_bytes": 1.5e9, "params": 1000,
             "extra_flops": 2e10, "extra_memory_bytes": 1e8},
            {"name": "low", "flops": 3e11, "memory_bytes": 2.0e9, "params": 1000,
             "extra_flops": 3e10, "extra_memory_bytes": 1e8}],
            "bits_per_param": 32},
        "devices": [{"name": "solo", "flops_per_s": 1e11, "memory_bytes": memory,
                     "spectral_efficiency": 2.0, "max_blocks": 3}],
        "channel": {"total_bandwidth_hz": 1e6, "rate_model": "fixed"},
    }


def test_hand_worked_one_device_takes_all():
    # C(A) = C_low + delta_top + delta_mid = 3.3e11 FLOP -> 3.3 s; S(A) = 3 * 32000 bits over
    # B * rho = 2e6 bit/s -> 0.048 s; m(A) = 2e9 + 1e8 + 1e8 = 2.2e9.
    expected = 3.3 + 0.048
    doc = _one_device_doc()
    assert math.isclose(reference_p1(doc), expected, rel_tol=1e-12)
    assert math.isclose(reference_p2(doc), expected, rel_tol=1e-9)
    for problem in ("matching", "jbba"):
        solved, refused = solve_every_method(doc, problem)
        check_refusals(refused, [m for m, (r, ex) in solved.items() if ex])
        assert any(ex for _, ex in solved.values()), f"no exact method handles {problem}"
        for method, (result, exact) in solved.items():
            check_result(doc, result, problem=problem, optimum=expected, exact=exact)
            if result["round_latency_s"] is not None:
                (solo,) = [d for d in result["devices"] if d["name"] == "solo"]
                assert solo["blocks"] == ["top", "mid", "low"]
                assert math.isclose(solo["memory_bytes"], 2.2e9, rel_tol=1e-12)
    # the memory rule m(A) <= M_k: exactly enough is enough, a little less is not
    assert math.isclose(reference_p1(_one_device_doc(2.2e9)), expected, rel_tol=1e-12)
    tight = _one_device_doc(2.19e9)
    # a cap of 2 on the only device leaves one block out
    capped = _one_device_doc()
    capped["devices"][0]["max_blocks"] = 2
    for doc in (tight, capped):
        for problem in ("matching", "jbba"):
            assert reference(problem, doc) == math.inf
            solved, refused = solve_every_method(doc, problem)
            check_refusals(refused, list(solved))
            assert any(ex for _, ex in solved.values()), f"no exact method handles {problem}"
            for method, (result, exact) in solved.items():
                check_result(doc, result, problem=problem, optimum=math.inf, exact=exact)


# ---------------------------------------------------------------------------------------------
# Every method against the reference


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("seed", sorted(set(range(N_SEEDS)) | set(REGRESSION_SEEDS)))
def test_methods_against_reference(seed, problem):
    doc, max_blocks = draw(seed)
    optimum = reference(problem, doc, max_blocks)
    slow = seed % SLOW_EVERY[problem] == 0 or seed in REGRESSION_SEEDS
    solved, refused = solve_every_method(doc, problem, slow=SLOW, include_slow=slow,
                                         max_blocks=max_blocks)
    handlers = [name for name in solved]
    check_refusals(refused, handlers)
    assert any(exact for _, exact in solved.values()), \
        f"no exact method accepts this instance (refusals: {refused})"
    for method, (result, exact) in solved.items():
        check_result(doc, result, problem=problem, max_blocks=max_blocks, optimum=optimum,
                     exact=exact)


# ---------------------------------------------------------------------------------------------
# Caps of 1 are the one-block toolkit


def _latency_key(result):
    return result["status"], result["round_latency_s"]


@pytest.mark.parametrize("seed", range(N_CAP_ONE_SEEDS))
def test_every_cap_one_equals_no_max_blocks(seed):
    rng = np.random.default_rng([81, seed])
    n_blocks = int(rng.integers(1, 5))
    doc = random_doc(rng, n_blocks=n_blocks, n_devices=int(rng.integers(n_blocks, 5)),
                     caps=False, extras="absent", split=False)
    with_extras = copy.deepcopy(doc)
    capped = copy.deepcopy(doc)
    for block in with_extras["model"]["blocks"]:
        block["extra_flops"] = 0.25 * block["flops"]
        block["extra_memory_bytes"] = 0.25 * block["memory_bytes"]
    for device in capped["devices"]:
        device["max_blocks"] = 1
    for problem in ("matching", "jbba"):
        optimum = reference(problem, doc)
        assert reference(problem, with_extras) == optimum  # extras only matter for |A| > 1
        base, _ = solve_every_method(doc, problem, slow=SLOW, include_slow=(seed % 10 == 0))
        for variant, options in ((doc, {"max_blocks": 1}), (with_extras, {}),
                                 (capped, {"max_blocks": 3})):  # a device's own cap wins
            other, _ = solve_every_method(variant, problem, slow=SLOW,
                                          include_slow=(seed % 10 == 0), **options)
            assert sorted(other) == sorted(base), (problem, options)
            for method, (result, exact) in other.items():
                want = base[method][0]
                assert result["status"] == want["status"], (method, problem, options)
                if want["round_latency_s"] is None:
                    assert result["round_latency_s"] is None
                else:
                    assert math.isclose(result["round_latency_s"], want["round_latency_s"],
                                        rel_tol=1e-9), (method, problem, options)
                check_result(variant, result, problem=problem,
                             max_blocks=options.get("max_blocks", 1), optimum=optimum,
                             exact=exact)


# ---------------------------------------------------------------------------------------------
# Scenario keys of SPEC 8


@pytest.mark.parametrize("where, key, value", [
    ("device", "max_blocks", 0), ("device", "max_blocks", -1), ("device", "max_blocks", 1.5),
    ("device", "max_blocks", "two"),
    ("block", "extra_flops", -1.0), ("block", "extra_memory_bytes", -5.0),
    ("block", "extra_flops", float("nan")), ("block", "extra_memory_bytes", float("inf")),
])
def test_bad_several_block_keys_are_scenario_errors(where, key, value):
    doc, _ = draw(0)
    target = doc["devices"][0] if where == "device" else doc["model"]["blocks"][0]
    target[key] = value
    with pytest.raises(lola.ScenarioError, match=key):
        lola.load_scenario(doc)


def test_max_blocks_keyword_must_be_a_positive_integer():
    doc, _ = draw(1)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="max_blocks|max-blocks"):
            lola.solve(doc, problem="jbba", method="exact", max_blocks=bad)


# ---------------------------------------------------------------------------------------------
# Command line


def _needs_two_blocks(per_layer=True):
    """A fixed-rate scenario with 2 devices and 4 blocks: feasible only with caps >= 2.
    ``per_layer``: every block has the same params and the same extras (the LoRA-per-layer
    case, which the default methods are expected to handle); else they all differ."""
    rng = np.random.default_rng(2024)
    doc = random_doc(rng, n_blocks=4, n_devices=2, rate_model="fixed", caps=False,
                     extras="random", split=False, energy="none", ties=False,
                     tight_memory=False, bandwidths=False)
    for device in doc["devices"]:
        device["memory_bytes"] = 2e10
    for n, block in enumerate(doc["model"]["blocks"]):
        if per_layer:
            block["params"] = 24576
            block["extra_flops"] = 4e10
            block["extra_memory_bytes"] = 1e8
        else:
            block["params"] = 10000 + 7000 * n
    return doc



@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_cli_solve_max_blocks_json(tmp_path, problem):
    doc = _needs_two_blocks()
    path = tmp_path / "two.json"
    path.write_text(json.dumps(doc))
    optimum = reference(problem, doc, 2)
    assert math.isfinite(optimum) and reference(problem, doc, 1) == math.inf

    done = run_lola(["solve", str(path), "--problem", problem, "--max-blocks", "2", "--json"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    check_result(doc, result, problem=problem, max_blocks=2, optimum=optimum, exact=True)
    assert any(len(d["blocks"]) == 2 for d in result["devices"])

    done = run_lola(["solve", str(path), "--problem", problem, "--json"])  # cap 1: infeasible
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["status"] == "infeasible"

    done = run_lola(["solve", str(path), "--problem", problem, "--max-blocks", "0", "--json"])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_cli_method_without_several_blocks_refuses(tmp_path, problem):
    doc = _needs_two_blocks(per_layer=False)
    path = tmp_path / "two.json"
    path.write_text(json.dumps(doc))
    solved, refused = solve_every_method(doc, problem, max_blocks=2)
    check_refusals(refused, list(solved))
    if not refused:
        pytest.skip(f"every {problem} method handles several blocks per device")
    check_cli_refusals(path, problem, refused, solved, ["--max-blocks", "2"])
