"""Figures of a DEFT run: the cost model against the measured steps, and the loss over rounds.

Each function returns a :class:`matplotlib.figure.Figure` (save it with :func:`lola.plots.save`).
They take a :class:`lola.flower.server.DeftReport` or its ``to_dict()`` JSON, so that a saved run
can be drawn again.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

__all__ = ["plot_compute", "plot_loss", "plot_deft"]

_SIZE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
_SIZE_MARKERS = ["o", "s", "^", "D", "v", "P"]


def _as_dict(report) -> dict:
    return report if isinstance(report, dict) else report.to_dict()


def _compute_axes(axes, data: dict) -> None:
    clients = [c for row in data["per_round"] for c in row["clients"]]
    sizes = sorted({len(c["blocks"]) for c in clients})
    for index, size in enumerate(sizes):
        chosen = [c for c in clients if len(c["blocks"]) == size]
        axes.scatter([1e3 * c["predicted_compute_s_host"] for c in chosen],
                     [1e3 * c["measured_compute_s"] for c in chosen],
                     s=28, alpha=0.8, color=_SIZE_COLOURS[index % len(_SIZE_COLOURS)],
                     marker=_SIZE_MARKERS[index % len(_SIZE_MARKERS)],
                     label=f"{size} block{'s' if size > 1 else ''} per device")
    values = [1e3 * c[key] for c in clients
              for key in ("predicted_compute_s_host", "measured_compute_s")]
    low, high = min(values) / 1.25, max(values) * 1.25
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="measured = predicted")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    for axis in (axes.xaxis, axes.yaxis):  # plain numbers at 1, 2, 5 x 10^k
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())
    axes.set_xlabel("predicted step C(A) / f_host (ms)")
    axes.set_ylabel("measured step (ms)")
    median = data.get("compute_ratio_median")
    title = "step time per client and round"
    if median is not None:
        spread = data.get("compute_ratio_spread", {})
        title += (f"\nmeasured / predicted: median {median:.2f}"
                  + (f", quartiles {spread['q1']:.2f} to {spread['q3']:.2f}"
                     if spread.get("q1") is not None else ""))
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=9, loc="upper left")


def plot_compute(report) -> Figure:
    """Measured step time against the cost model's C(A) / f_host, one point per client and
    round, coloured by the number of blocks the client trained; the diagonal is where the model
    is exact."""
    figure, axes = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    _compute_axes(axes, _as_dict(report))
    return figure


def _loss_axes(axes, data: dict, centralized) -> None:
    rounds = [0] + [row["round"] for row in data["per_round"]]
    axes.plot(rounds, [data["initial_eval_loss"]] + [row["eval_loss"] for row in
                                                    data["per_round"]],
              marker="o", color="#1f77b4", label=f"DEFT, {data['method']}: held-out loss")
    axes.plot([row["round"] for row in data["per_round"]],
              [row["train_loss"] for row in data["per_round"]], linestyle="--", marker=".",
              color="#1f77b4", alpha=0.6, label="DEFT: devices' mini-batch loss")
    if centralized:
        axes.plot([row["round"] for row in centralized],
                  [row["eval_loss"] for row in centralized], marker="s", color="#d62728",
                  label="centralized, same adapters and data: held-out loss")
    axes.set_xlabel("round")
    axes.set_ylabel("cross-entropy loss")
    axes.set_xticks(rounds if len(rounds) <= 12 else np.linspace(0, rounds[-1], 7).round())
    axes.set_title(f"loss over rounds ({data['model']} model, seed {data['seed']})",
                   fontsize=10)
    axes.legend(fontsize=9)


def plot_loss(report, centralized=None) -> Figure:
    """Held-out loss over rounds for LoLa's allocation (and the devices' mini-batch losses),
    against centralized fine-tuning of the same adapters on the same data
    (:func:`lola.flower.centralized_run`) when given."""
    figure, axes = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    _loss_axes(axes, _as_dict(report), centralized)
    return figure


def plot_deft(report, centralized=None) -> Figure:
    """:func:`plot_compute` and :func:`plot_loss` side by side."""
    data = _as_dict(report)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    _compute_axes(left, data)
    _loss_axes(right, data, centralized)
    return figure
