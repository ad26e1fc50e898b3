"""Several blocks per device (specification, section 8): the exact methods against the MILP, and
the fast method at scale.

Instances: uniform blocks of a 24-layer model (the case ``crunch`` and ``exact`` solve
combinatorially), costs linear in depth between the first and last layer of the measured
``roberta-large`` table; the extras of a block are about the ratios measured on ``roberta-base``
(delta ~ 1 % of the per-layer FLOPs increment, mu ~ 6 % of the per-layer memory increment).
N = 24 is one block per layer (LoRA on query and value, 32768 parameters); N = 48 and 96 are one
block per adapted matrix, two or four per layer (query, value; or query, key, value, output;
16384 parameters each), the blocks of a layer with the layer's step cost (reaching any of them
means back-propagating to that layer) and half the per-layer extras. Devices and channel come from
:func:`lola.generate.generate_scenario` (``fixed`` rate model), each with ``max_blocks`` =
ceil(N / K) + 1. ``memory x3`` rows give every device three times its drawn memory, so that
memory never binds; ``drawn`` rows keep the generator's memory (phones of 1.5-4 GB against a
deepest block of 4.9 GB).

Questions and targets:

1. ``crunch`` (P1, the subset programme) against ``milp`` at N = 24, K = 8: at least 1000x
   faster (``crunch`` the median of 5 runs, ``milp`` one run), the same latency to 1e-9; both
   memory families (with the drawn memory most device-block pairs are excluded, which makes
   the MILP small and fast).
2. ``exact`` P2 at N = 24, K = 8 under 1 s, checked against ``milp`` (a bisection over MILPs,
   under a time limit): equal to 1e-6 where the MILP finishes, else inside the MILP's proven
   bracket [lower bound, latency].
3. ``packing`` P2 at N = 96, K = 32 under 50 ms, within 1 % of ``exact`` at the median (above
   16 devices ``exact`` runs the path MILP over contiguous runs, :mod:`solvers.runs`), with its
   gap to its own proven lower bound and the time ``exact`` takes there; and its gap to
   ``exact``'s subset programme at K = 12 and 16, N = 48 and 96.

Times are each method's ``solve_time_s`` through :func:`lola.solve` (the method alone). Writes
``results/several_blocks.csv`` (one row per solve) and ``results/several_blocks.json`` (the
summary).
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np

import lola
from lola._io import atomic_write_text
from lola.generate import generate_scenario
from lola.profiles import load_profile

from .common import RESULTS, print_table, standalone, write_csv

LAYERS = 24
LAYER_PARAMS = 32768.0  # LoRA rank 8 on query and value of a 1024-wide layer


def uniform_blocks(per_layer: int = 1) -> list:
    """The blocks of the 24-layer model (module docstring), depth 1 first."""
    table = load_profile("roberta-large").blocks
    flops = np.linspace(table[0].flops, table[-1].flops, LAYERS)
    memory = np.linspace(table[0].memory_bytes, table[-1].memory_bytes, LAYERS)
    extra_flops = 0.01 * (flops[-1] - flops[0]) / (LAYERS - 1)
    extra_memory = 0.06 * (memory[-1] - memory[0]) / (LAYERS - 1)
    if per_layer > 1:  # one block per matrix: the per-layer figures are for two matrices
        matrices = {2: ("query", "value"), 4: ("query", "key", "value", "output")}[per_layer]
        params, extra_flops, extra_memory = LAYER_PARAMS / 2, extra_flops / 2, extra_memory / 2
    else:
        matrices, params = ("",), LAYER_PARAMS
    blocks = []
    for depth in range(LAYERS):
        layer = LAYERS - 1 - depth
        for matrix in matrices:
            blocks.append({"name": f"layer.{layer}" + (f".{matrix}" if matrix else ""),
                           "flops": float(flops[depth]), "memory_bytes": float(memory[depth]),
                           "params": params, "extra_flops": float(extra_flops),
                           "extra_memory_bytes": float(extra_memory)})
    return blocks


def scenario(n_devices: int, n_blocks: int, seed: int, memory_scale: float = 1.0):
    """The scenario of K devices and N blocks (24 or 96), loaded."""
    per_layer = {LAYERS: 1, 2 * LAYERS: 2, 4 * LAYERS: 4}[n_blocks]
    drawn = generate_scenario(n_devices, profile="roberta-large", seed=seed)
    cap = math.ceil(n_blocks / n_devices) + 1
    devices = [dict(d, memory_bytes=float(d["memory_bytes"] * memory_scale), max_blocks=cap)
               for d in drawn["devices"]]
    name = f"uniform-{n_devices}x{n_blocks}-seed{seed}" + (
        f"-memory-x{memory_scale:g}" if memory_scale != 1 else "")
    return lola.load_scenario({"name": name, "model": {"blocks": uniform_blocks(per_layer)},
                               "devices": devices, "channel": drawn["channel"]})


class _Missed:
    """A heuristic that found no allocation (:class:`solvers.SolverFailure`): a row saying so."""

    def __init__(self, message, seconds):
        self.status, self.message, self.solve_time_s = "failed", message, seconds
        self.round_latency_s = self.lower_bound_s = None
        self.extras = {}


def _solve(loaded, problem, method, repeats=1, **options):
    """The result of the last of ``repeats`` solves, with the median solve time."""
    import time

    import solvers

    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            result = lola.solve(loaded, problem=problem, method=method, **options)
        except solvers.SolverFailure as error:
            if solvers.METHODS[method].exact:
                raise
            result = _Missed(str(error), time.perf_counter() - started)
        times.append(result.solve_time_s)
    return result, statistics.median(times)


def _row(part, loaded, memory, problem, method, result, seconds, seed):
    return {"part": part, "K": len(loaded.devices), "N": len(loaded.blocks),
            "max_blocks": loaded.devices[0].max_blocks, "memory": memory, "seed": seed,
            "problem": problem, "method": method, "status": result.status,
            "round_latency_s": result.round_latency_s, "lower_bound_s": result.lower_bound_s,
            "solve_s": seconds}


def _stats(values) -> dict:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return {"count": 0, "median": None, "max": None}
    return {"count": len(values), "median": float(np.median(values)),
            "max": float(np.max(values))}


def _gap(latency, reference):
    if latency is None or reference is None:
        return None
    return latency / reference - 1


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``several_blocks.csv`` and ``.json`` into ``out_dir``, return the
    headline numbers."""
    lola.solve(scenario(4, LAYERS, 0), problem="matching", method="milp")  # imports, caches
    rows = []

    # 1. crunch against the MILP, P1
    p1_ratio, p1_agree = {}, []
    for memory, scale in (("drawn", 1.0), ("x3", 3.0)):
        ratios, crunch_times, milp_times = [], [], []
        for seed in range(2 if quick else 5):
            loaded = scenario(8, LAYERS, seed, scale)
            crunch, crunch_s = _solve(loaded, "matching", "crunch", repeats=5)
            milp, milp_s = _solve(loaded, "matching", "milp")
            rows += [_row("p1", loaded, memory, "matching", "crunch", crunch, crunch_s, seed),
                     _row("p1", loaded, memory, "matching", "milp", milp, milp_s, seed)]
            if crunch.round_latency_s is None or milp.round_latency_s is None:
                p1_agree.append(crunch.round_latency_s == milp.round_latency_s)
                continue
            assert crunch.status == "optimal" and "fallback" not in crunch.extras, \
                crunch.message
            ratios.append(milp_s / crunch_s)
            crunch_times.append(crunch_s)
            milp_times.append(milp_s)
            p1_agree.append(abs(crunch.round_latency_s / milp.round_latency_s - 1) <= 1e-9)
        p1_ratio[memory] = {
            "median": float(np.median(ratios)) if ratios else None,
            "min": float(np.min(ratios)) if ratios else None, "instances": len(ratios),
            "crunch_median_s": statistics.median(crunch_times) if crunch_times else None,
            "milp_median_s": statistics.median(milp_times) if milp_times else None}

    # 2. exact P2 against the MILP's bisection
    exact_times, p2_checks = [], []
    milp_limit = 20.0 if quick else 60.0
    for seed in range(1 if quick else 3):
        loaded = scenario(8, LAYERS, seed)
        exact, exact_s = _solve(loaded, "jbba", "exact", repeats=3)
        milp, milp_s = _solve(loaded, "jbba", "milp", time_limit_s=milp_limit)
        rows += [_row("p2", loaded, "drawn", "jbba", "exact", exact, exact_s, seed),
                 _row("p2", loaded, "drawn", "jbba", "milp", milp, milp_s, seed)]
        assert exact.status in ("optimal", "infeasible"), exact.message
        assert "fallback" not in exact.extras, exact.message
        exact_times.append(exact_s)
        latency = exact.round_latency_s
        if milp.round_latency_s is None:  # infeasible, or no allocation within the limit
            if milp.status != "infeasible":
                continue
            agree = latency is None
        elif latency is None:
            agree = False
        elif milp.status == "optimal":
            agree = abs(latency / milp.round_latency_s - 1) <= 1e-6
        else:  # stopped at the limit: the optimum lies in its proven bracket
            agree = (milp.lower_bound_s * (1 - 1e-6) <= latency
                     <= milp.round_latency_s * (1 + 1e-6))
        p2_checks.append({"seed": seed, "milp_status": milp.status, "agree": bool(agree),
                          "exact_latency_s": latency, "milp_latency_s": milp.round_latency_s,
                          "gap_to_milp": _gap(latency, milp.round_latency_s)})

    # 3. packing at scale, and against exact where exact runs
    packing_32 = {}
    for memory, scale in (("drawn", 1.0), ("x3", 3.0)):
        times, bound_gaps, exact_gaps, exact_32_times, failed = [], [], [], [], 0
        for seed in range(3 if quick else 6):
            loaded = scenario(32, 4 * LAYERS, seed, scale)
            packing, packing_s = _solve(loaded, "jbba", "packing", repeats=3)
            exact, exact_s = _solve(loaded, "jbba", "exact")
            rows += [_row("packing", loaded, memory, "jbba", "packing", packing, packing_s,
                          seed),
                     _row("packing", loaded, memory, "jbba", "exact", exact, exact_s, seed)]
            assert exact.status in ("optimal", "infeasible"), exact.message
            assert "fallback" not in exact.extras, exact.message
            times.append(packing_s)
            exact_32_times.append(exact_s)
            if packing.round_latency_s is None:
                failed += 1
                continue
            bound_gaps.append(_gap(packing.round_latency_s, packing.lower_bound_s))
            exact_gaps.append(_gap(packing.round_latency_s, exact.round_latency_s))
        packing_32[memory] = {"median_s": statistics.median(times), "max_s": max(times),
                              "infeasible": failed, "instances": len(times),
                              "gap_to_own_bound": _stats(bound_gaps),
                              "gap_to_exact": _stats(exact_gaps),
                              "exact_median_s": statistics.median(exact_32_times),
                              "exact_max_s": max(exact_32_times)}
    grid = [(12, 48, 2)] if quick else [(12, 48, 5), (12, 96, 3), (16, 48, 2), (16, 96, 1)]
    to_exact = {}
    for memory, scale in (("drawn", 1.0), ("x3", 3.0)):
        for n_devices, n_blocks, seeds in grid:
            gaps, failed, exact_times_here = [], 0, []
            for seed in range(seeds):
                loaded = scenario(n_devices, n_blocks, seed, scale)
                exact, exact_s = _solve(loaded, "jbba", "exact")
                packing, packing_s = _solve(loaded, "jbba", "packing")
                rows += [_row("gap", loaded, memory, "jbba", "exact", exact, exact_s, seed),
                         _row("gap", loaded, memory, "jbba", "packing", packing, packing_s,
                              seed)]
                exact_times_here.append(exact_s)
                if exact.round_latency_s is None:
                    continue
                assert exact.status == "optimal" and "fallback" not in exact.extras
                if packing.round_latency_s is None:
                    failed += 1
                    continue
                gaps.append(_gap(packing.round_latency_s, exact.round_latency_s))
            to_exact[f"{memory} K={n_devices} N={n_blocks}"] = {
                "gap": _stats(gaps), "packing_infeasible": failed,
                "exact_median_s": statistics.median(exact_times_here)}

    print_table(rows)
    write_csv("several_blocks.csv", rows, out_dir)
    summary = {
        "rows": rows,
        "p1_milp_over_crunch": p1_ratio,
        "p1_agree": all(p1_agree),
        "p2_exact_s": {"median": statistics.median(exact_times), "max": max(exact_times)},
        "p2_checks": p2_checks, "p2_milp_time_limit_s": milp_limit,
        "packing_K32_N96": packing_32,
        "packing_to_exact": to_exact,
    }
    atomic_write_text(Path(out_dir or RESULTS) / "several_blocks.json",
                      json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    return summary


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f} %"


def headline(summary) -> list:
    lines = []
    for memory, ratio in summary["p1_milp_over_crunch"].items():
        if ratio["median"] is None:
            continue
        lines.append(f"P1, N = 24, K = 8, memory {memory}: crunch is {ratio['median']:.0f}x "
                     f"faster than milp (median over {ratio['instances']} instances, min "
                     f"{ratio['min']:.0f}x; crunch {1e3 * ratio['crunch_median_s']:.2f} ms, "
                     f"milp {1e3 * ratio['milp_median_s']:.0f} ms median; target >= 1000x); "
                     f"same latency to 1e-9: {'yes' if summary['p1_agree'] else 'NO'}")
    checks = summary["p2_checks"]
    finished = sum(c["milp_status"] == "optimal" for c in checks)
    disagree = [c for c in checks if not c["agree"]]
    lines.append(f"P2, N = 24, K = 8: exact {1e3 * summary['p2_exact_s']['median']:.0f} ms "
                 f"median, {1e3 * summary['p2_exact_s']['max']:.0f} ms max (target < 1 s); "
                 f"milp finished {finished} of {len(checks)} within "
                 f"{summary['p2_milp_time_limit_s']:.0f} s; exact agrees with it (or lies in its "
                 f"bracket) on {len(checks) - len(disagree)} of {len(checks)}"
                 + "".join(f"; seed {c['seed']}: exact {c['exact_latency_s']}, milp "
                           f"{c['milp_status']} {c['milp_latency_s']}" for c in disagree))
    for memory, data in summary["packing_K32_N96"].items():
        gap, exact = data["gap_to_own_bound"], data["gap_to_exact"]
        lines.append(f"packing P2, N = 96, K = 32, memory {memory}: "
                     f"{1e3 * data['median_s']:.0f} ms median, {1e3 * data['max_s']:.0f} ms "
                     f"max (target < 50 ms); infeasible on {data['infeasible']} of "
                     f"{data['instances']}; packing / exact - 1 median "
                     f"{_percent(exact['median'])}, max {_percent(exact['max'])} (target "
                     f"median < 1 %; exact {data['exact_median_s']:.1f} s median, "
                     f"{data['exact_max_s']:.1f} s max); gap to its own lower bound median "
                     f"{_percent(gap['median'])}, max {_percent(gap['max'])}")
    for key, data in summary["packing_to_exact"].items():
        gap = data["gap"]
        lines.append(f"packing / exact - 1, memory {key}: median {_percent(gap['median'])}, max "
                     f"{_percent(gap['max'])} over {gap['count']} (packing infeasible on "
                     f"{data['packing_infeasible']}; exact {data['exact_median_s']:.2g} s "
                     "median; target median < 1 %)")
    return lines


def main(argv=None):
    return standalone(__doc__, run, headline, argv,
                      quick_help="fewer seeds and only K = 12, N = 48 against exact")


if __name__ == "__main__":
    main()
