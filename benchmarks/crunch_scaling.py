"""How much faster is CRUNCH than the general exact methods, and does it reach a million devices?

Measured in one run on default-like random instances (see ``lola.generate.scaled_instance``):

1. K = N = 100: CRUNCH vs the matrix-based bottleneck search vs the cvxpy/HiGHS MILP (target:
   CRUNCH >= 5000x faster than the MILP);
2. N = 300, K = 3000: CRUNCH vs the bottleneck search (target >= 3x);
3. N = 1000, K = 1e5 and 1e6: CRUNCH alone, wall time (target < 2 s at 1e6) and peak traced
   memory (numpy allocations, ``tracemalloc``), which should grow linearly in K + N.

Every pair of methods is also checked to return the same optimum. Writes
``results/crunch_scaling.csv``. ``--quick`` shrinks repeats and the largest size.
"""
from __future__ import annotations

import gc
import tracemalloc

from lola.generate import scaled_instance
from solvers import run_method

from .common import median_time, print_table, standalone, write_csv


def _time(method, instance, repeats):
    return median_time(lambda: run_method(method, "matching", instance), repeats)


def compare(n_devices, n_blocks, methods, repeats, seed=0):
    instance = scaled_instance(n_devices, n_blocks, seed=seed)
    rows, optimum = [], None
    crunch_s = None
    for method in methods:
        seconds, result = _time(method, instance, repeats[method])
        if optimum is None:
            optimum = result.round_latency_s
        assert abs(result.round_latency_s - optimum) <= 1e-9 * optimum, (method, result)
        crunch_s = seconds if method == "crunch" else crunch_s
        rows.append({"K": n_devices, "N": n_blocks, "method": method, "median_s": seconds,
                     "repeats": repeats[method], "ratio_to_crunch": seconds / crunch_s,
                     "round_latency_s": result.round_latency_s, "peak_mib": ""})
    return rows


def crunch_memory(n_devices, n_blocks, seed=0):
    instance = scaled_instance(n_devices, n_blocks, seed=seed)
    gc.collect()
    tracemalloc.start()
    seconds, result = _time("crunch", instance, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds, result = _time("crunch", instance, 3)  # untraced timing
    return {"K": n_devices, "N": n_blocks, "method": "crunch", "median_s": seconds, "repeats": 3,
            "ratio_to_crunch": 1.0, "round_latency_s": result.round_latency_s,
            "peak_mib": peak / 2**20}


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``crunch_scaling.csv`` into ``out_dir``, return the headline numbers."""
    rows = compare(100, 100, ["crunch", "bottleneck", "milp"],
                   {"crunch": 21 if quick else 101, "bottleneck": 5 if quick else 21,
                    "milp": 1 if quick else 5})
    rows += compare(3000, 300, ["crunch", "bottleneck"],
                    {"crunch": 5 if quick else 21, "bottleneck": 3 if quick else 7})
    for n_devices in ([10**4, 10**5] if quick else [10**4, 10**5, 10**6]):
        rows.append(crunch_memory(n_devices, 1000))
    print_table(rows)
    write_csv("crunch_scaling.csv", rows, out_dir)
    by = {(r["K"], r["N"], r["method"]): r for r in rows}
    largest = max(r["K"] for r in rows if r["N"] == 1000)
    return {
        "milp_over_crunch_K100": by[(100, 100, "milp")]["ratio_to_crunch"],
        "bottleneck_over_crunch_K100": by[(100, 100, "bottleneck")]["ratio_to_crunch"],
        "bottleneck_over_crunch_K3000_N300": by[(3000, 300, "bottleneck")]["ratio_to_crunch"],
        "crunch_largest_K": largest,
        "crunch_largest_s": by[(largest, 1000, "crunch")]["median_s"],
        "crunch_peak_mib": {str(r["K"]): r["peak_mib"] for r in rows if r["N"] == 1000},
        "rows": rows}


def headline(summary) -> list:
    return [f"CRUNCH vs cvxpy/HiGHS MILP at K = N = 100: "
            f"{summary['milp_over_crunch_K100']:.0f}x faster (target >= 5000x)",
            f"CRUNCH vs matrix threshold search at N = 300, K = 3000: "
            f"{summary['bottleneck_over_crunch_K3000_N300']:.0f}x faster (target >= 3x)",
            f"CRUNCH at N = 1000, K = {summary['crunch_largest_K']:.0e}: "
            f"{summary['crunch_largest_s']:.3f} s (target < 2 s at 1e6); traced peak memory "
            + ", ".join(f"{float(mib):.1f} MiB at K = {int(k):.0e}"
                        for k, mib in summary["crunch_peak_mib"].items())]


def main(argv=None):
    return standalone(__doc__, run, headline, argv, quick_help="fewer repeats, K up to 1e5")


if __name__ == "__main__":
    main()
