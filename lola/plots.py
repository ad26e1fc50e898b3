"""Figures of latency trade-offs. Each function takes results (or sweep rows, or profiles) and
returns a :class:`matplotlib.figure.Figure`; nothing is shown or saved here (see :func:`save`).

Every method keeps one colour across all figures (:func:`method_colour`), axes carry units, and
each figure has a legend or labels that make it readable without a caption.

>>> import lola, lola.plots
>>> result = lola.solve(lola.default_scenario(), problem="jbba", method="exact")
>>> figure = lola.plots.plot_allocation(result)
>>> figure.axes[0].get_ylabel()
'time (s)'
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import solvers

from ._io import atomic_write_bytes
from .profiles import load_profile
from .sweeps import PARAMETERS, summarise

__all__ = ["method_colour", "plot_profile", "plot_sweep", "plot_convergence", "plot_allocation",
           "plot_solver_time", "save", "FIGURE_KINDS"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]
FIGURE_KINDS = ("profile", "devices", "bandwidth", "memory", "convergence", "allocation",
                "solver-time")


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure (registry order, then a stable fallback)."""
    names = list(solvers.METHODS)
    index = names.index(method) if method in names else len(names) + sum(map(ord, method))
    return _PALETTE[index % len(_PALETTE)]


def save(figure: Figure, path) -> Path:
    """Save as PNG, PDF or SVG (by suffix), atomically: no half-written file on interruption."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "pdf", "svg"):
        raise ValueError(f"figure format must be png, pdf or svg, got {path.suffix!r}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_profile(profiles) -> Figure:
    """Figure 1: FLOPs, measured latency and peak memory of each block versus its depth."""
    profiles = [load_profile(p) if isinstance(p, str) else p for p in profiles]
    figure = Figure(figsize=(12, 3.8), layout="constrained")
    flops_ax, latency_ax, memory_ax = figure.subplots(1, 3)
    for i, profile in enumerate(profiles):
        label = profile.info.get("model", Path(profile.source).stem)
        method = profile.info.get("measurement", {}).get("method", "")
        if method and method != "measured":
            label += f" ({method})"
        colour = _PALETTE[i % len(_PALETTE)]
        depth = [b.depth for b in profile.blocks]
        flops_ax.plot(depth, [b.flops / 1e12 for b in profile.blocks], "o-", color=colour,
                      label=label)
        memory_ax.plot(depth, [b.memory_bytes / 1e9 for b in profile.blocks], "o-",
                       color=colour, label=label)
        if profile.latency_s:
            spread = np.array(profile.latency_spread_s or [0.0] * len(depth))
            latency_ax.errorbar(depth, profile.latency_s, yerr=spread / 2, fmt="o-",
                                color=colour, capsize=2, label=label)
    flops_ax.set(xlabel="block depth (1 = next to the output)", ylabel="FLOPs per step (TFLOP)",
                 title="compute")
    latency_ax.set(xlabel="block depth", ylabel="measured step latency (s)",
                   title="latency (median, bar = spread)")
    memory_ax.set(xlabel="block depth", ylabel="peak memory (GB)", title="memory")
    if not latency_ax.lines:
        latency_ax.text(0.5, 0.5, "no measured latency\n(analytic profile)", ha="center",
                        va="center", transform=latency_ax.transAxes)
    for ax in (flops_ax, latency_ax, memory_ax):
        ax.grid(alpha=0.3)
    flops_ax.legend()
    return figure


def plot_sweep(rows, *, title: str | None = None) -> Figure:
    """Figures 2-4: round latency versus the swept quantity, one curve per method, with a 95 %
    confidence band over seeds; where some seeds are infeasible (blocks stop fitting), the
    feasible fraction is drawn below."""
    parameter = rows[0]["parameter"]
    summary = summarise(rows)
    figure = Figure(figsize=(7, 5.2), layout="constrained")
    latency_ax, feasible_ax = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for method, data in summary.items():
        colour = method_colour(method)
        exact = method in solvers.METHODS and solvers.METHODS[method].exact
        # exact references dashed, so that a method that reaches the optimum stays visible
        latency_ax.plot(data["values"], data["mean"], "o--" if exact else "o-", color=colour,
                        label=method, markersize=4 if exact else 6)
        latency_ax.fill_between(data["values"], data["mean"] - data["half_width"],
                                data["mean"] + data["half_width"], color=colour, alpha=0.15)
        feasible_ax.plot(data["values"], 100 * data["feasible"], "o-", color=colour)
    partial = sorted({value for data in summary.values()
                      for value, share in zip(data["values"], data["feasible"]) if share < 1})
    for value in partial:  # where blocks stop fitting on some seeds
        latency_ax.axvline(value, color="#d62728", alpha=0.25, lw=6)
    if partial:
        latency_ax.plot([], [], color="#d62728", alpha=0.25, lw=6,
                        label="some seeds infeasible")
    latency_ax.set(ylabel="round latency (s)",
                   title=title or f"round latency versus {PARAMETERS[parameter]}")
    feasible_ax.set(xlabel=PARAMETERS[parameter], ylabel="feasible (%)", ylim=(-5, 105))
    if parameter == "bandwidth":
        latency_ax.set_xscale("log")
    for ax in (latency_ax, feasible_ax):
        ax.grid(alpha=0.3)
    latency_ax.legend(title="mean over feasible seeds, 95 % band", fontsize="small")
    return figure


def plot_convergence(result) -> Figure:
    """Figure 5: best primal latency, dual bound and relative gap per dual-ascent iteration."""
    history = result.history
    if not history:
        raise ValueError(f"method {result.method!r} recorded no iteration history")
    iteration = [h["iteration"] for h in history]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(iteration, [h["primal_s"] for h in history], color=method_colour(result.method),
            label="best feasible latency (primal)")
    ax.plot(iteration, [h["best_dual_s"] for h in history], color="#444444", ls="--",
            label="best dual bound")
    ax.plot(iteration, [h["dual_s"] for h in history], color="#999999", lw=0.8, alpha=0.7,
            label="dual value this iteration")
    ax.set(xlabel="iteration", ylabel="round latency (s)",
           title=f"{result.method} on {result.scenario}")
    gap_ax = ax.twinx()
    gap_ax.semilogy(iteration, [max(h["gap"], 1e-12) for h in history], color="#2ca02c",
                    lw=1, label="relative gap")
    gap_ax.set_ylabel("relative gap (log)")
    lines = ax.get_lines() + gap_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize="small")
    ax.grid(alpha=0.3)
    return figure


def plot_allocation(result) -> Figure:
    """Figure 6: per device with a block, stacked compute and upload time, its block and
    bandwidth, and the round latency as a line."""
    if result.round_latency_s is None:
        raise ValueError("an infeasible result has no allocation to draw")
    devices = [d for d in result.devices if d.blocks or d.bandwidth_hz > 0]
    names = [d.name for d in devices]
    compute = np.array([d.compute_s for d in devices])
    upload = np.array([d.upload_s for d in devices])
    figure = Figure(figsize=(max(6, 0.6 * len(devices) + 2), 4.8), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(devices))
    ax.bar(x, compute, color="#1f77b4", label="compute")
    ax.bar(x, upload, bottom=compute, color="#ff7f0e", label="upload")
    ax.axhline(result.round_latency_s, color="#d62728", ls="--",
               label=f"round latency {result.round_latency_s:.3f} s")
    for i, device in enumerate(devices):
        text = ", ".join(device.blocks) or "upload"
        ax.annotate(f"{text}\n{device.bandwidth_hz / 1e6:.2f} MHz", (i, compute[i] + upload[i]),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set(ylabel="time (s)", title=f"{result.method} allocation on {result.scenario} "
                                    f"({result.problem})")
    ax.set_ylim(0, result.round_latency_s * 1.25)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_solver_time(rows) -> Figure:
    """Figure 7: solve time versus instance size (K = N) on log-log axes, every method.

    ``rows``: dicts with ``size``, ``method`` and ``solve_time_s`` (several per point are
    reduced to their median).
    """
    figure = Figure(figsize=(7, 4.8), layout="constrained")
    ax = figure.subplots()
    for method in dict.fromkeys(r["method"] for r in rows):
        sizes = sorted({r["size"] for r in rows if r["method"] == method})
        times = [np.median([r["solve_time_s"] for r in rows
                            if r["method"] == method and r["size"] == s]) for s in sizes]
        ax.loglog(sizes, times, "o-", color=method_colour(method), label=method)
    ax.set(xlabel="instance size K = N", ylabel="solve time (s)",
           title="solver time versus instance size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return figure
