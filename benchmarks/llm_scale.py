"""Several blocks per device at LLM scale: the exact methods on a Llama-3-8B-shaped instance.

The instance has the shape of Llama-3-8B with one LoRA block per adapted matrix: 32 decoder
layers of 7 matrices (query, key, value, output, gate, up, down), 224 blocks, the 7 blocks of a
layer with the layer's step cost (reaching any of them means back-propagating to that layer).
The costs are those of the several-blocks benchmark (:mod:`benchmarks.several_blocks`): FLOPs
and memory linear in depth between the first and last layer of the measured ``roberta-large``
table, 16384 parameters per block (LoRA rank 8 on a 1024-wide matrix), and the per-layer extras
(1 % of the per-layer FLOPs increment, 6 % of the memory increment) shared evenly by the layer's
7 blocks. Devices and channel come from :func:`lola.generate.generate_scenario` (``fixed`` rate
model) with three times their drawn memory (memory does not bind) and ``max_blocks`` =
ceil(N / K) + 1: 5 for K = 64, 2 for K = 256 (and, as a further row, 5 for K = 256).

For each instance and problem (P1 ``crunch``, P2 ``exact``), one run:

* the exact method through :func:`lola.solve` (its ``solve_time_s``, median of 3), which above
  the subset programme's device limit runs :mod:`solvers.layers` (P1 the release programme,
  P2 the tiling LP); targets: < 1 s at K = 64, < 5 s at K = 256, status optimal;
* the path MILP of :mod:`solvers.runs` (the exact path these instances took before), on the
  same instance, under a time cap of ``PATH_CAP_S`` seconds (``--quick``: ``QUICK_PATH_CAP_S``):
  its time, and the optimum it proves, or the bracket [lower bound, latency] it has when the
  cap stops it; the two must agree (P1 to 1e-9, P2 to 1e-6) or the optimum lie in the bracket;
* ``packing`` (the fast heuristic), median of 3: its time and its gap to the optimum.

Writes ``results/llm_scale.csv`` (one row per solve) and ``results/llm_scale.json``.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

import lola
import solvers
from lola import costs
from lola._io import atomic_write_text
from lola.generate import generate_scenario
from lola.profiles import load_profile

from .common import RESULTS, print_table, standalone, write_csv

LAYERS = 32
MATRICES = ("query", "key", "value", "output", "gate", "up", "down")
MATRIX_PARAMS = 16384.0  # LoRA rank 8 on a 1024-wide matrix: 8 (1024 + 1024)
MEMORY_SCALE = 3.0
#: The path MILP's time cap per solve, in seconds.
PATH_CAP_S = 120.0
QUICK_PATH_CAP_S = 30.0
#: (K, max_blocks, seeds, path MILP too): the instances; the quick run keeps the first seed.
INSTANCES = ((64, 5, (1, 0, 2), True), (256, 2, (1, 0, 2), True), (256, 5, (1,), False))
TARGET_S = {64: 1.0, 256: 5.0}


def llama_blocks() -> list:
    """The 224 blocks of the Llama-3-8B-shaped model (module docstring), depth 1 first."""
    table = load_profile("roberta-large").blocks
    flops = np.linspace(table[0].flops, table[-1].flops, LAYERS)
    memory = np.linspace(table[0].memory_bytes, table[-1].memory_bytes, LAYERS)
    extra_flops = 0.01 * (flops[-1] - flops[0]) / (LAYERS - 1) / len(MATRICES)
    extra_memory = 0.06 * (memory[-1] - memory[0]) / (LAYERS - 1) / len(MATRICES)
    return [{"name": f"layer.{LAYERS - 1 - depth}.{matrix}", "flops": float(flops[depth]),
             "memory_bytes": float(memory[depth]), "params": MATRIX_PARAMS,
             "extra_flops": float(extra_flops), "extra_memory_bytes": float(extra_memory)}
            for depth in range(LAYERS) for matrix in MATRICES]


def scenario(n_devices: int, seed: int, max_blocks: int | None = None):
    """The scenario of K devices (module docstring), loaded."""
    n_blocks = LAYERS * len(MATRICES)
    cap = max_blocks or math.ceil(n_blocks / n_devices) + 1
    drawn = generate_scenario(n_devices, profile="roberta-large", seed=seed)
    devices = [dict(d, memory_bytes=float(d["memory_bytes"] * MEMORY_SCALE), max_blocks=cap)
               for d in drawn["devices"]]
    return lola.load_scenario({"name": f"llama-shape-{n_devices}x{n_blocks}-seed{seed}",
                               "model": {"blocks": llama_blocks()}, "devices": devices,
                               "channel": drawn["channel"]})


def _median_solve(loaded, problem, method, repeats):
    times, result = [], None
    for _ in range(repeats):
        try:
            result = lola.solve(loaded, problem=problem, method=method)
        except solvers.SolverFailure as error:  # a heuristic that found nothing
            return None, str(error), None
        times.append(result.solve_time_s)
    return result, result.message, statistics.median(times)


def _path_milp(loaded, problem, cap_s):
    """The path MILP on the scenario's instance under a time cap: (status, latency, lower
    bound, seconds)."""
    from solvers.runs import paths_p1, paths_p2

    instance = costs.to_instance(loaded)
    started = time.perf_counter()
    deadline = started + cap_s
    try:
        if problem == "matching":
            result = paths_p1(instance, instance.matching_bandwidth(), deadline)
        else:
            result = paths_p2(instance, 1e-9, deadline)
    except solvers.SolverFailure:  # stopped before its first allocation
        return "stopped", None, None, time.perf_counter() - started
    seconds = time.perf_counter() - started
    status = str(result.status) if str(result.status) != "feasible" else "stopped"
    return status, result.round_latency_s, result.lower_bound_s, seconds


def _row(loaded, seed, problem, method, status, latency, bound, seconds):
    return {"K": len(loaded.devices), "N": len(loaded.blocks),
            "max_blocks": loaded.devices[0].max_blocks, "seed": seed, "problem": problem,
            "method": method, "status": status, "round_latency_s": latency,
            "lower_bound_s": bound, "solve_s": seconds}


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``llm_scale.csv`` and ``.json`` into ``out_dir``, return the summary."""
    cap_s = QUICK_PATH_CAP_S if quick else PATH_CAP_S
    for method in ("crunch", "exact", "packing"):  # imports and caches outside the timings
        solvers.METHODS[method].load()
    lola.solve(scenario(64, 0), problem="jbba", method="exact")
    rows, cases = [], []
    for n_devices, max_blocks, seeds, with_path in INSTANCES:
        for seed in seeds[:1] if quick else seeds:
            loaded = scenario(n_devices, seed, max_blocks)
            for problem, method in (("matching", "crunch"), ("jbba", "exact")):
                exact, message, exact_s = _median_solve(loaded, problem, method, 3)
                assert exact is not None and str(exact.status) == "optimal", message
                assert "fallback" not in exact.extras, message
                rows.append(_row(loaded, seed, problem, method, str(exact.status),
                                 exact.round_latency_s, exact.lower_bound_s, exact_s))
                packing, _, packing_s = _median_solve(loaded, problem, "packing", 3)
                rows.append(_row(loaded, seed, problem, "packing",
                                 "failed" if packing is None else str(packing.status),
                                 None if packing is None else packing.round_latency_s,
                                 None if packing is None else packing.lower_bound_s,
                                 packing_s))
                case = {"K": n_devices, "max_blocks": max_blocks, "seed": seed,
                        "problem": problem, "exact_s": exact_s,
                        "target_s": TARGET_S[n_devices],
                        "optimum_s": exact.round_latency_s,
                        "packing_s": packing_s,
                        "packing_gap": (None if packing is None or packing.round_latency_s is None
                                        else packing.round_latency_s / exact.round_latency_s - 1)}
                if with_path and seed == seeds[0]:
                    status, latency, bound, path_s = _path_milp(loaded, problem, cap_s)
                    rows.append(_row(loaded, seed, problem, "path MILP", status, latency,
                                     bound, path_s))
                    tolerance = 1e-9 if problem == "matching" else 1e-6
                    optimum = exact.round_latency_s
                    if status == "optimal":
                        agree = abs(latency / optimum - 1) <= tolerance
                    else:  # stopped by the cap: the optimum lies in its bracket
                        agree = ((bound is None or bound <= optimum * (1 + tolerance))
                                 and (latency is None or optimum <= latency * (1 + tolerance)))
                    case.update(path_status=status, path_s=path_s, path_cap_s=cap_s,
                                path_latency_s=latency, path_lower_bound_s=bound,
                                path_over_exact=path_s / exact_s, agree=bool(agree))
                cases.append(case)
    print_table(rows)
    write_csv("llm_scale.csv", rows, out_dir)
    summary = {"rows": rows, "cases": cases, "path_cap_s": cap_s}
    atomic_write_text(Path(out_dir or RESULTS) / "llm_scale.json",
                      json.dumps({"cases": cases, "path_cap_s": cap_s}, indent=1))
    return summary


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f} %"


def headline(summary) -> list:
    lines = []
    for case in summary["cases"]:
        name = "crunch (P1)" if case["problem"] == "matching" else "exact (P2)"
        line = (f"K = {case['K']}, max_blocks {case['max_blocks']}, seed {case['seed']}: "
                f"{name} {case['exact_s']:.3f} s (target < {case['target_s']:g} s)")
        if "path_status" in case:
            if case["path_status"] == "optimal":
                line += (f"; path MILP {case['path_s']:.1f} s "
                         f"({case['path_over_exact']:.0f}x slower)")
            else:
                line += (f"; path MILP stopped at its {case['path_cap_s']:.0f} s cap "
                         f"(>= {case['path_over_exact']:.0f}x slower)")
            line += f", agrees: {'yes' if case['agree'] else 'NO'}"
        if case["packing_s"] is not None:
            line += (f"; packing {1e3 * case['packing_s']:.0f} ms, "
                     f"{_percent(case['packing_gap'])} above the optimum")
        lines.append(line)
    return lines


def main(argv=None):
    return standalone(__doc__, run, headline, argv,
                      quick_help=f"the first seed only, path MILP capped at "
                                 f"{QUICK_PATH_CAP_S:g} s")


if __name__ == "__main__":
    main()
