"""How long do 1000 re-allocated rounds take, and what does keeping round 1's allocation cost?

1000 rounds (100 with ``--quick``) of the default family at K = 100
(``lola.generate.generate_scenario(100, seed=0)``, RoBERTa-base, ``fixed`` rate model), Rayleigh
fading drawn afresh every round (:mod:`lola.studies.rounds`), ``exact`` JBBA re-solving every
round, against the static variant that keeps round 1's allocation with the optimal bandwidth
split of each round. Target: the whole simulation under 30 s. Reports the static allocation's
loss against re-allocation in percent of the total time (round latencies plus solve times),
and in its median and worst round.
Writes ``results/rounds.csv`` (one row per round and method) and the two figures.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from lola.generate import generate_scenario
from lola.studies.rounds import plot_cumulative_time, plot_latency_distribution, simulate

from .common import RESULTS, print_table, standalone, write_csv

DEVICES = 100
TARGET_S = 30.0


def run(out_dir=None, quick=False) -> dict:
    """Simulate, write ``rounds.csv`` and the figures into ``out_dir``, return the headline."""
    from lola import plots

    rounds = 100 if quick else 1000
    scenario = generate_scenario(DEVICES, seed=0)
    started = time.perf_counter()
    simulation = simulate(scenario, problem="jbba", methods=["exact"], rounds=rounds, seed=0)
    wall_s = time.perf_counter() - started
    summary = {row["method"]: row for row in simulation.summary}
    exact, static = summary["exact"], summary["static-exact"]
    solve_times = [row["solve_time_s"] for row in simulation.rows("exact")]
    rows = [dict(entry, rounds=rounds, mean_round_latency_s=entry["total_latency_s"]
                 / max(1, rounds - entry["infeasible_rounds"]))
            for entry in simulation.summary]
    print_table(rows)
    out = Path(out_dir or RESULTS)
    write_csv("rounds.csv", simulation.per_round, out)
    plots.save(plot_cumulative_time(simulation), out / "rounds-cumulative-time.png")
    plots.save(plot_latency_distribution(simulation), out / "rounds-latency.png")
    return {"rounds": rounds, "devices": DEVICES, "wall_s": wall_s,
            "exact_solve_median_s": statistics.median(solve_times),
            "exact_total_time_s": exact["total_time_s"],
            "static_total_time_s": static["total_time_s"],
            "static_loss_percent": 100.0 * (static["total_time_s"] / exact["total_time_s"] - 1),
            "static_median_loss_percent": 100.0 * (
                float(np.nanmedian(simulation.latencies("static-exact")))
                / float(np.nanmedian(simulation.latencies("exact"))) - 1),
            "static_worst_round_s": float(np.nanmax(simulation.latencies("static-exact"))),
            "exact_worst_round_s": float(np.nanmax(simulation.latencies("exact"))),
            "static_infeasible_rounds": static["infeasible_rounds"], "rows": rows}


def headline(summary) -> list:
    return [f"{summary['rounds']} rounds of exact JBBA at K = {summary['devices']}, fresh "
            f"Rayleigh fading each round: {summary['wall_s']:.1f} s in all (target < "
            f"{TARGET_S:g} s); median solve {1e3 * summary['exact_solve_median_s']:.1f} ms",
            f"keeping round 1's allocation (static) costs {summary['static_loss_percent']:.1f} % "
            f"more total time than re-allocating every round ({summary['static_total_time_s']:.1f}"
            f" s against {summary['exact_total_time_s']:.1f} s; "
            f"{summary['static_infeasible_rounds']} infeasible rounds); median round "
            f"{summary['static_median_loss_percent']:.1f} % slower, worst round "
            f"{summary['static_worst_round_s']:.2f} s against "
            f"{summary['exact_worst_round_s']:.2f} s"]


def main(argv=None):
    return standalone(__doc__, run, headline, argv, quick_help="100 rounds instead of 1000")


if __name__ == "__main__":
    main()
