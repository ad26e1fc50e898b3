"""How long does the exact Pareto front of fine-tuning configurations take on the default grids?

Two grids, each configuration solved exactly (``jbba`` with its default exact method):
roberta-base, top L layers for L = 1..12 times ranks 1, 2, 4, 8, 16, 32, on the default scenario
(20 devices); roberta-large, L = 1..24 times the same ranks, on a generated 30-device scenario
(a 24-block configuration needs at least 24 devices). Targets: under 5 s and under 15 s per
grid (median over repeats, the whole study: configuring, solving, the front, the knee and the
grid representatives). The front is checked against a brute-force dominance test. Writes
``results/pareto_grid.csv`` (one row per configuration) and one figure per grid.
"""
from __future__ import annotations

import numpy as np

import lola
from lola.generate import generate_scenario
from lola.studies.pareto import DEFAULT_RANKS, pareto, plot_pareto

from .common import RESULTS, median_time, print_table, write_csv

TARGETS_S = {"roberta-base": 5.0, "roberta-large": 15.0}


def _grids():
    large = lola.load_scenario(generate_scenario(30, profile="roberta-large", seed=0))
    return [("roberta-base", lola.default_scenario()), ("roberta-large", large)]


def _check_front(result) -> None:
    values = np.array([[np.inf if p["round_latency_s"] is None else p["round_latency_s"],
                        -p["trainable_params"]] for p in result.points])
    feasible = [p["round_latency_s"] is not None for p in result.points]
    for i, point in enumerate(result.points):
        dominated = any(feasible[j] and np.all(values[j] <= values[i])
                        and np.any(values[j] < values[i]) for j in range(len(values)))
        assert point["on_front"] == (feasible[i] and not dominated), point


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``pareto_grid.csv`` and the figures into ``out_dir``, return headlines."""
    from pathlib import Path

    from lola.plots import save

    repeats = 1 if quick else 3
    rows, summary = [], {"grids": {}}
    for model, scenario in _grids():
        seconds, result = median_time(lambda: pareto(scenario, ranks=DEFAULT_RANKS), repeats)
        _check_front(result)
        knee = result.points[result.knee]
        summary["grids"][model] = {
            "scenario": result.scenario, "devices": len(scenario.devices),
            "configurations": len(result.points), "seconds": seconds, "target_s": TARGETS_S[model],
            "feasible": sum(p["round_latency_s"] is not None for p in result.points),
            "front_points": result.acme["front_points"],
            "grid_picks": len(result.acme["picks"]),
            "grid_dominated_picks": result.acme["dominated_picks"],
            "grid_front_missed": result.acme["front_points_missed"],
            "knee": {"layers": len(knee["layers"]), "rank": knee["rank"],
                     "round_latency_s": knee["round_latency_s"],
                     "trainable_params": knee["trainable_params"]}}
        for point in result.points:
            rows.append({"model": model, "L": len(point["layers"]), "rank": point["rank"],
                         "round_latency_s": point["round_latency_s"],
                         "trainable_params": point["trainable_params"],
                         "peak_memory_bytes": point["peak_memory_bytes"],
                         "on_front": point["on_front"], "grid_pick": point["acme_pick"]})
        save(plot_pareto(result), Path(out_dir or RESULTS) / f"pareto-{model}.png")
    print_table([{"model": model, **{key: value for key, value in grid.items()
                                     if key not in ("knee", "scenario")}}
                 for model, grid in summary["grids"].items()])
    write_csv("pareto_grid.csv", rows, out_dir)
    summary["rows"] = rows
    return summary


def headline(summary) -> list:
    lines = []
    for model, grid in summary["grids"].items():
        knee = grid["knee"]
        lines.append(
            f"{model}: {grid['configurations']} configurations on {grid['devices']} devices, "
            f"exact front in {grid['seconds']:.2f} s (target < {grid['target_s']:g} s); "
            f"{grid['front_points']} on the front; grid representatives: "
            f"{grid['grid_dominated_picks']} of {grid['grid_picks']} dominated, "
            f"{grid['grid_front_missed']} front points missed; knee: top {knee['layers']} "
            f"layers at rank {knee['rank']} ({knee['round_latency_s']:.3f} s)")
    return lines


def main(argv=None):
    from .common import standalone

    return standalone(__doc__, run, headline, argv, quick_help="one repeat instead of three")


if __name__ == "__main__":
    main()
