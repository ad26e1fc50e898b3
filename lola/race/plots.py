"""The figure of a race: dev accuracy against modeled wall-clock time, and time to target."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_race"]

_COLOURS = {"deft": "#d62728", "fedavg-lora": "#1f77b4", "depth-hetero": "#2ca02c",
            "centralized": "#7f7f7f"}


def _as_dict(report) -> dict:
    return report if isinstance(report, dict) else report.to_dict()


def plot_race(report) -> Figure:
    """Left: each strategy's dev accuracy against modeled time, the mean over seeds (a line on
    the common grid of evaluation points) and the band from the lowest to the highest seed, with
    the target as a dashed line. Right: each strategy's time to target per seed (dots) and their
    mean (bar); a strategy with a seed that never reached it is marked "not reached" there.

    Takes a :class:`lola.race.RaceReport` or its ``to_dict()`` JSON.
    """
    data = _as_dict(report)
    target = data["target"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                         gridspec_kw={"width_ratios": [2.2, 1]})
    for strategy in data["strategies"]:
        colour = _COLOURS.get(strategy, None)
        curves = []
        for seed in data["seeds"]:
            points = [(r["modeled_time_s"], r["dev_accuracy"]) for r in data["rows"]
                      if r["strategy"] == strategy and r["seed"] == seed
                      and r["dev_accuracy"] is not None]
            if points:
                curves.append(np.array(points, float))
        if not curves:
            continue
        end = min(c[-1, 0] for c in curves)
        grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
        grid = grid[grid <= end]
        values = np.array([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
        left.plot(grid, values.mean(axis=0), color=colour, label=strategy, lw=1.8)
        if len(curves) > 1:
            left.fill_between(grid, values.min(axis=0), values.max(axis=0), color=colour,
                              alpha=0.18, lw=0)
    left.axhline(target, color="black", ls="--", lw=1, label=f"target {target:g}")
    left.set_xscale("log")
    left.set_xlabel("modeled wall-clock time (s, log scale)")
    left.set_ylabel("dev accuracy")
    seeds = len(data["seeds"])
    left.set_title(f"{data['task']} on {data['model']}: mean over {seeds} seed"
                   f"{'s' if seeds != 1 else ''}" + (" (band: min to max)" if seeds > 1 else ""))
    left.legend(loc="lower right", fontsize=8)
    left.grid(alpha=0.3)
    labels, positions = [], []
    for index, strategy in enumerate(data["strategies"]):
        runs = [s for s in data["summary"] if s["strategy"] == strategy]
        times = [s["time_to_target_s"] for s in runs if s["time_to_target_s"] is not None]
        colour = _COLOURS.get(strategy, None)
        if times:
            right.scatter([index] * len(times), times, color=colour, zorder=3, s=18)
        if times and len(times) == len(runs):
            right.bar(index, float(np.mean(times)), color=colour, alpha=0.35, width=0.6)
        else:
            right.text(index, 0.5, f"not reached\n({len(runs) - len(times)} of {len(runs)})",
                       transform=right.get_xaxis_transform(), ha="center", va="center",
                       fontsize=8, color=colour or "black")
        labels.append(strategy)
        positions.append(index)
    right.set_xticks(positions, labels, rotation=20, fontsize=8)
    right.set_ylabel(f"modeled time to {target:g} dev accuracy (s)")
    right.set_title("time to target")
    right.grid(alpha=0.3, axis="y")
    if any(s["time_to_target_s"] for s in data["summary"]):
        right.set_ylim(bottom=0)
    figure.tight_layout()
    return figure
