"""How does solve time grow with the instance for exact, dual-ascent and the MILP baseline?

K = N from 10 to 500 on default-like instances (``fixed`` rate model), medians over repeats, in
one run. Targets: ``exact`` under 1 s at K = N = 200, and at least 100x faster than ``milp`` at
K = N = 50. The MILP (a bisection of cvxpy/HiGHS MILPs) runs up to K = N = 50 (100 without
``--quick``); every method's latency is checked against ``exact``. Writes
``results/jbba_scaling.csv``.
"""
from __future__ import annotations

from lola.generate import scaled_instance
from solvers import run_method

from .common import median_time, print_table, standalone, write_csv


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``jbba_scaling.csv`` into ``out_dir``, return the headline numbers."""
    sizes = [10, 20, 50, 100, 200] if quick else [10, 20, 50, 100, 200, 500]
    milp_max = 50 if quick else 100
    rows = []
    for size in sizes:
        instance = scaled_instance(size, size, seed=size)
        exact_s, exact = median_time(lambda: run_method("exact", "jbba", instance),
                                     3 if size <= 200 else 1)
        methods = {"exact": (exact_s, exact)}
        methods["dual-ascent"] = median_time(lambda: run_method("dual-ascent", "jbba", instance),
                                             3 if size <= 100 else 1)
        if size <= milp_max:
            methods["milp"] = median_time(lambda: run_method("milp", "jbba", instance), 1)
        for name, (seconds, result) in methods.items():
            assert result.round_latency_s <= exact.round_latency_s * (1 + 1e-6) or \
                name == "dual-ascent", (name, result.round_latency_s, exact.round_latency_s)
            rows.append({"K": size, "N": size, "method": name, "median_s": seconds,
                         "ratio_to_exact": seconds / exact_s,
                         "round_latency_s": result.round_latency_s,
                         "gap_to_exact": result.round_latency_s / exact.round_latency_s - 1})
    print_table(rows)
    write_csv("jbba_scaling.csv", rows, out_dir)
    by = {(r["K"], r["method"]): r for r in rows}
    return {"exact_s_K200": by[(200, "exact")]["median_s"],
            "milp_over_exact_K50": by[(50, "milp")]["ratio_to_exact"],
            "dual_ascent_s_K200": by[(200, "dual-ascent")]["median_s"], "rows": rows}


def headline(summary) -> list:
    return [f"exact JBBA at K = N = 200: {summary['exact_s_K200']:.3f} s (target < 1 s); "
            f"dual ascent {summary['dual_ascent_s_K200']:.3f} s",
            f"MILP baseline vs exact JBBA at K = N = 50: {summary['milp_over_exact_K50']:.0f}x "
            "slower (target >= 100x)"]


def main(argv=None):
    return standalone(__doc__, run, headline, argv, quick_help="K = N up to 200, fewer repeats")


if __name__ == "__main__":
    main()
