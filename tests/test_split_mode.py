"""Execution modes local and split (SPEC 9, with 8 and 10), through the public API only, against
the independent reference of :mod:`tests.reference_model`.

* with ``modes=("local", "split")`` or ``("split",)`` (and several blocks per device at times),
  every exact method that accepts an instance equals the reference optimum (P1 1e-9, P2 1e-6
  relative); refusals (``solvers.SolverInputError``) name a method that handles the instance;
* every allocation returned is recomputed from ``result.to_dict()["devices"]``: each device with
  blocks has ``mode``; a split device trains exactly one block and reports ``server_s`` and
  ``downlink_s``; latency F^dev/f + F^srv/f_srv + 8A/R^down + (8A + S)/r(b); memory m^split;
  energy from its own compute only; split only where block, device and server allow it;
* the default (local) is unchanged by split keys in the scenario;
* the command line: ``--modes local,split`` and a refusal with exit 2.
"""
from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest

import lola

from .reference_model import (SPLIT_KEYS, check_cli_refusals, check_refusals, check_result,
                              device_costs, random_doc, reference_p1, reference_p1_naive,
                              reference_p2, reference_p2_naive, run_lola, solve_every_method)

SLOW = ("milp", "scip")
SLOW_EVERY = {"matching": 2, "jbba": 25}
_SCALE = int(os.environ.get("LOLA_REFERENCE_SEEDS", 200)) / 200
N_SEEDS = int(150 * _SCALE)          # x 2 problems, one block per device
N_SEVERAL_SEEDS = int(60 * _SCALE)   # x 2 problems, split mode with max_blocks 2 or 3
N_LOCAL_SEEDS = int(30 * _SCALE)
N_SELF_SEEDS = int(60 * _SCALE)
# Seeds that once caught exact methods calling a feasible split instance with energy budgets
# infeasible (104 is in the default range too); every method runs on them, milp included.
REGRESSION_SEEDS = [104, 157]


BOTH = ("local", "split")
MODES = [BOTH, BOTH, BOTH, ("split",), ("split", "local")]


def reference(problem, doc, max_blocks=1, modes=("local",)):
    return (reference_p1 if problem == "matching" else reference_p2)(doc, max_blocks, modes)


def draw(seed, several=False, **overrides):
    """(doc, max_blocks, modes) for one seed: N 1..5, K 1..4 (5 when each block needs its own
    device), split keys on some or all blocks, ``downlink_bps`` on some devices (at least one),
    a server; max_blocks 1, or 2..3 when ``several`` (then devices may also set their own)."""
    rng = np.random.default_rng([9 if not several else 10, seed])
    modes = MODES[int(rng.integers(len(MODES)))]
    max_blocks = int(rng.integers(2, 4)) if several else 1
    n_blocks = int(rng.integers(1, 6))
    need = n_blocks if modes == ("split",) else -(-n_blocks // max_blocks)
    least = min(5, need)  # K <= 4, or 5 where one block each needs it
    n_devices = (int(rng.integers(least, max(4, least) + 1)) if rng.random() < 0.85
                 else int(rng.integers(1, least + 1)))
    options = dict(n_blocks=n_blocks, n_devices=n_devices, split=True)
    if not several:
        options["caps"] = False  # no device sets a cap of its own either
    options.update(overrides)
    return random_doc(rng, **options), max_blocks, modes


# ---------------------------------------------------------------------------------------------
# The reference checks itself


@pytest.mark.parametrize("seed", range(N_SELF_SEEDS))
def test_reference_split_dp_equals_enumeration(seed):
    rng = np.random.default_rng([90, seed])
    doc = random_doc(rng, n_blocks=int(rng.integers(1, 5)), n_devices=int(rng.integers(1, 4)),
                     split=True)
    max_blocks = int(rng.integers(1, 3))
    values = {}
    for modes in (("local",), ("split",), BOTH):
        p1, p2 = reference_p1(doc, max_blocks, modes), reference_p2(doc, max_blocks, modes)
        assert p1 == reference_p1_naive(doc, max_blocks, modes)
        slow = reference_p2_naive(doc, max_blocks, modes)
        assert p2 == slow or math.isclose(p2, slow, rel_tol=1e-9)
        values[modes] = (p1, p2)
    for i in range(2):  # allowing both modes never hurts, and can beat each alone
        assert values[BOTH][i] <= min(values[("local",)][i], values[("split",)][i]) * (1 + 1e-9)


def test_reference_split_costs_by_hand():
    doc = _hand_doc()
    costs = device_costs(doc, "solo", ["only"], "split", 1e6)
    assert math.isclose(costs["compute_s"], 0.2)
    assert math.isclose(costs["server_s"], 0.05)
    assert math.isclose(costs["downlink_s"], 0.1)
    assert math.isclose(costs["upload_s"], 0.516)
    assert math.isclose(costs["latency_s"], 0.866)
    assert math.isclose(costs["energy_j"], 10 * 0.2 + 0.5 * 0.516)
    assert costs["memory_bytes"] == 1e9


# ---------------------------------------------------------------------------------------------
# Hand-worked instance


def _hand_doc(budget=None, downlink=1e7, memory=4e9):
    device = {"name": "solo", "flops_per_s": 1e11, "memory_bytes": memory,
              "spectral_efficiency": 2.0, "compute_power_w": 10.0, "tx_power_w": 0.5}
    if downlink is not None:
        device["downlink_bps"] = downlink
    if budget is not None:
        device["energy_budget_j"] = budget
    return {
        "name": "hand-split",
        "model": {"blocks": [{"name": "only", "flops": 1e12, "memory_bytes": 8e9,
                              "params": 1000, "split_device_flops": 2e10,
                              "split_server_flops": 5e11, "split_memory_bytes": 1e9,
                              "cut_bytes": 125000}],
                  "bits_per_param": 32},
        "devices": [device],
        "channel": {"total_bandwidth_hz": 1e6, "rate_model": "fixed"},
        "server": {"flops_per_s": 1e13},
    }


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_hand_worked_split(problem):
    # split: 2e10/1e11 + 5e11/1e13 + 8*125000/1e7 + (1e6 + 32000)/(1e6 * 2)
    #      = 0.2 + 0.05 + 0.1 + 0.516 = 0.866 s; local needs 8e9 bytes > 4e9 (and 10.016 s)
    expected = 0.866
    cases = [(_hand_doc(), BOTH, expected), (_hand_doc(), ("split",), expected),
             (_hand_doc(), ("local",), math.inf),
             (_hand_doc(memory=1e10), BOTH, expected),              # local fits but is slower
             (_hand_doc(memory=1e10), ("local",), 10.016),
             (_hand_doc(budget=2.3), BOTH, expected),             # E = 2 + 0.258 = 2.258 J
             (_hand_doc(budget=2.2), BOTH, math.inf),
             (_hand_doc(memory=9e8), BOTH, math.inf)]             # m^split = 1e9 > 9e8
    for doc, modes, want in cases:
        optimum = reference(problem, doc, 1, modes)
        assert optimum == want or math.isclose(optimum, want, rel_tol=1e-9), (modes, want)
        solved, refused = solve_every_method(doc, problem, modes=modes)
        check_refusals(refused, list(solved))
        assert any(exact for _, exact in solved.values()), refused
        for method, (result, exact) in solved.items():
            check_result(doc, result, problem=problem, modes=modes, optimum=optimum,
                         exact=exact, require_mode=True)
            if result["round_latency_s"] is not None and "split" in modes and want < 1:
                (solo,) = result["devices"]
                assert solo["mode"] == "split"
                assert math.isclose(solo["energy_j"], 2.258, rel_tol=1e-9)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_split_needs_a_downlink_and_a_server(problem):
    """Without the device's downlink_bps, or without server.flops_per_s, split mode is not
    available: the instance (split only) is infeasible, or refused by name of the missing key."""
    no_downlink = _hand_doc(downlink=None)
    no_server = _hand_doc()
    del no_server["server"]
    for doc, key in ((no_downlink, "downlink_bps"), (no_server, "flops_per_s")):
        assert reference(problem, doc, 1, ("split",)) == math.inf
        for method in ("brute", "milp"):
            try:
                result = lola.solve(doc, problem=problem, method=method, modes=("split",))
            except ValueError as error:
                assert key in str(error), str(error)
                continue
            check_result(doc, result.to_dict(), problem=problem, modes=("split",),
                         optimum=math.inf, exact=True, require_mode=True)


# ---------------------------------------------------------------------------------------------
# Every method against the reference


def _against_reference(seed, problem, several):
    doc, max_blocks, modes = draw(seed, several)
    optimum = reference(problem, doc, max_blocks, modes)
    slow = seed % SLOW_EVERY[problem] == 0 or (seed in REGRESSION_SEEDS and not several)
    solved, refused = solve_every_method(doc, problem, slow=SLOW, include_slow=slow,
                                         max_blocks=max_blocks, modes=modes)
    check_refusals(refused, list(solved))
    assert any(exact for _, exact in solved.values()), \
        f"no exact method accepts this instance (refusals: {refused})"
    for method, (result, exact) in solved.items():
        check_result(doc, result, problem=problem, max_blocks=max_blocks, modes=modes,
                     optimum=optimum, exact=exact, require_mode=True)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("seed", sorted(set(range(N_SEEDS)) | set(REGRESSION_SEEDS)))
def test_methods_against_reference_with_modes(seed, problem):
    _against_reference(seed, problem, several=False)


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("seed", range(N_SEVERAL_SEEDS))
def test_split_with_several_blocks_per_device(seed, problem):
    """SPEC 8 and 9 together: local devices may train several blocks, split ones one."""
    _against_reference(seed, problem, several=True)


# ---------------------------------------------------------------------------------------------
# The default stays local, and split keys alone change nothing


def _strip_split(doc):
    doc = copy.deepcopy(doc)
    for block in doc["model"]["blocks"]:
        for key in SPLIT_KEYS:
            block.pop(key, None)
    for device in doc["devices"]:
        device.pop("downlink_bps", None)
    return doc


@pytest.mark.parametrize("seed", range(N_LOCAL_SEEDS))
def test_local_default_ignores_split_keys(seed):
    doc, max_blocks, _ = draw(seed, several=bool(seed % 2), caps=False)
    plain = _strip_split(doc)
    for problem in ("matching", "jbba"):
        optimum = reference(problem, plain, max_blocks)
        assert reference(problem, doc, max_blocks) == optimum
        base, _ = solve_every_method(plain, problem, slow=SLOW, include_slow=False,
                                     max_blocks=max_blocks)
        for variant, options in ((doc, {}), (doc, {"modes": ("local",)})):
            other, _ = solve_every_method(variant, problem, slow=SLOW, include_slow=False,
                                          max_blocks=max_blocks, **options)
            assert sorted(other) == sorted(base), (problem, options)
            for method, (result, exact) in other.items():
                want = base[method][0]
                assert result["status"] == want["status"], (method, problem, options)
                if want["round_latency_s"] is None:
                    assert result["round_latency_s"] is None
                else:
                    assert math.isclose(result["round_latency_s"], want["round_latency_s"],
                                        rel_tol=1e-9), (method, problem, options)
                    assert all(d.get("mode", "local") == "local"
                               for d in result["devices"] if d["blocks"])
                check_result(variant, result, problem=problem, max_blocks=max_blocks,
                             optimum=optimum, exact=exact)


# ---------------------------------------------------------------------------------------------
# Scenario keys and options of SPEC 9


@pytest.mark.parametrize("key", SPLIT_KEYS)
def test_split_keys_come_together(key):
    doc = _hand_doc()
    del doc["model"]["blocks"][0][key]
    with pytest.raises(lola.ScenarioError):
        lola.load_scenario(doc)


@pytest.mark.parametrize("where, key, value", [
    ("block", "split_device_flops", -1.0), ("block", "split_server_flops", 0.0),
    ("block", "split_memory_bytes", float("nan")), ("block", "cut_bytes", -8),
    ("device", "downlink_bps", 0.0), ("device", "downlink_bps", float("inf")),
])
def test_bad_split_values_are_scenario_errors(where, key, value):
    doc = _hand_doc()
    target = doc["devices"][0] if where == "device" else doc["model"]["blocks"][0]
    target[key] = value
    with pytest.raises(lola.ScenarioError, match=key):
        lola.load_scenario(doc)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        lola.solve(_hand_doc(), problem="jbba", method="brute", modes=("local", "remote"))


# ---------------------------------------------------------------------------------------------
# Command line



def _cli_doc():
    """4 blocks with split keys (per-layer payloads and extras), 4 devices with downlinks."""
    rng = np.random.default_rng(77)
    doc = random_doc(rng, n_blocks=4, n_devices=4, rate_model="fixed", caps=False,
                     extras="equal", split=True, energy="none", ties=False, tight_memory=False,
                     bandwidths=False)
    for n, block in enumerate(doc["model"]["blocks"]):
        block["params"] = 24576
        for key in SPLIT_KEYS:
            block.setdefault(key, (1e10 + 1e9 * n) if key != "cut_bytes" else 50000)
    for device in doc["devices"]:
        device.setdefault("downlink_bps", 5e7)
    return doc


@pytest.mark.parametrize("problem", ["matching", "jbba"])
@pytest.mark.parametrize("max_blocks", [1, 2])
def test_cli_solve_modes_json(tmp_path, problem, max_blocks):
    doc = _cli_doc()
    path = tmp_path / "split.json"
    path.write_text(json.dumps(doc))
    optimum = reference(problem, doc, max_blocks, BOTH)
    assert math.isfinite(optimum)
    done = run_lola(["solve", str(path), "--problem", problem, "--modes", "local,split",
                 "--max-blocks", str(max_blocks), "--json"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    check_result(doc, result, problem=problem, max_blocks=max_blocks, modes=BOTH,
                 optimum=optimum, exact=True, require_mode=True)

    done = run_lola(["solve", str(path), "--problem", problem, "--modes", "split", "--json"])
    assert done.returncode in (0, 1), done.stderr
    check_result(doc, json.loads(done.stdout), problem=problem, modes=("split",),
                 optimum=reference(problem, doc, 1, ("split",)), exact=True,
                 require_mode=True)

    done = run_lola(["solve", str(path), "--problem", problem, "--modes", "local,remote", "--json"])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("problem", ["matching", "jbba"])
def test_cli_method_without_split_refuses(tmp_path, problem):
    doc = _cli_doc()
    path = tmp_path / "split.json"
    path.write_text(json.dumps(doc))
    solved, refused = solve_every_method(doc, problem, modes=BOTH)
    check_refusals(refused, list(solved))
    if not refused:
        pytest.skip(f"every {problem} method handles split mode")
    check_cli_refusals(path, problem, refused, solved, ["--modes", "local,split"])
