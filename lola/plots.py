"""Figures of latency trade-offs. Each function takes results (or sweep rows, or profiles) and
returns a :class:`matplotlib.figure.Figure`; nothing is shown or saved here (see :func:`save`).

Figures are created through :mod:`matplotlib.pyplot`, so that a Jupyter kernel shows them inline
like any other figure; :func:`save` closes the figure it writes, so that scripts that save many
figures do not keep them all open.

Every method keeps one colour and one marker across all figures (:func:`method_colour`,
:func:`method_marker`), axes carry units, and each figure has a legend or labels that make it
readable without a caption.

>>> import lola, lola.plots
>>> result = lola.solve(lola.default_scenario(), problem="jbba", method="exact")
>>> figure = lola.plots.plot_allocation(result)
>>> figure.axes[0].get_ylabel()
'time (s)'
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import solvers

from ._io import atomic_write_bytes
from .profiles import load_profile
from .sweeps import summarise

__all__ = ["method_colour", "method_marker", "plot_profile", "plot_sweep", "plot_convergence",
           "plot_allocation", "plot_solver_time", "save", "FIGURE_KINDS", "INFEASIBLE_TEXT",
           "plot_energy_budget"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]
# Markers distinct among the methods of each problem (the matching and the JBBA methods), so
# that curves differ in shape as well as colour; other names fall back to the list.
_MARKERS = {"crunch": "^", "bottleneck": "o", "exact": "^", "dual-ascent": "o", "milp": "v",
            "scip": "P", "brute": "X", "random": "*", "greedy": "s", "min-sum": "D",
            "centralized": "h"}
_FALLBACK_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p"]
FIGURE_KINDS = ("profile", "devices", "bandwidth", "memory", "convergence", "allocation",
                "solver-time", "energy")
INFEASIBLE_TEXT = "no feasible allocation at any point"

# Text sizes (points): labels and ticks at matplotlib's 10 pt default, nothing below 9 pt.
_LEGEND_PT = 9
_ANNOTATION_PT = 9

# The swept quantity of each sweep kind: axis label, factor from the row's value to the axis
# unit, and the axis scale.
_SWEEP_AXES = {
    "devices": ("number of devices K", 1.0, "linear"),
    "bandwidth": ("total bandwidth B (MHz)", 1e-6, "log"),
    "memory": ("memory budget (× each device's generated budget)", 1.0, "linear"),
}
_SWEEP_TITLES = {
    "devices": "round latency versus the number of devices",
    "bandwidth": "round latency versus the total bandwidth",
    "memory": "round latency versus the devices' memory budgets",
}


def _index(method: str) -> int:
    names = list(solvers.METHODS)
    return names.index(method) if method in names else len(names) + sum(map(ord, method))


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure (registry order, then a stable fallback)."""
    return _PALETTE[_index(method) % len(_PALETTE)]


def method_marker(method: str) -> str:
    """The marker of ``method`` in every figure, so that curves differ without colour too."""
    return _MARKERS.get(method) or _FALLBACK_MARKERS[_index(method) % len(_FALLBACK_MARKERS)]


def _is_exact(method: str) -> bool:
    return method in solvers.METHODS and bool(solvers.METHODS[method].exact)


def save(figure: Figure, path) -> Path:
    """Save as PNG, PDF or SVG (by suffix), atomically (no half-written file on interruption),
    then close the figure, which is done with once written."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "pdf", "svg"):
        raise ValueError(f"figure format must be png, pdf or svg, got {path.suffix!r}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _plain_ticks(axis, values=None, *, log=False, most=9) -> None:
    """Tick labels as plain numbers (10, 20, 50 rather than 10^1, 2x10^1), placed at the plotted
    ``values`` when there are few of them and they lie far enough apart for their labels not to
    collide (else matplotlib's own ticks), and no minor tick labels."""
    if values is not None and 1 < len(values) <= most:
        position = np.log10(values) if log else np.asarray(values, dtype=float)
        gaps = np.diff(np.sort(position))
        if gaps.min() >= 0.07 * (position.max() - position.min()):
            axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _profile_host(profile) -> dict:
    """How a profile's latencies were obtained, from what the profile file records."""
    measurement = profile.info.get("measurement") or {}
    host = measurement.get("host") or {}
    return {"method": measurement.get("method", ""), "device": measurement.get("device"),
            "cpu": host.get("cpu"), "threads": host.get("threads"),
            "repetitions": measurement.get("repetitions")}


def _where(host: dict) -> str:
    """'CPU (AMD EPYC), 1 thread' from a profile's measurement record."""
    device = host["device"]
    text = "CPU" if device == "cpu" else ("GPU" if device and device.startswith("cuda")
                                          else (device or "an unrecorded device"))
    if device == "cpu" and host["cpu"]:
        text += f" ({host['cpu']})"
    if host["threads"]:
        text += f", {host['threads']} thread" + ("s" if host["threads"] != 1 else "")
    return text


def plot_profile(profiles) -> Figure:
    """Figure 1: FLOPs, step latency and peak memory of each block versus its depth.

    FLOPs and memory are what the profile records (counted and measured by ``lola profile``, or
    counted from the configuration for an analytic profile); the latency is measured wall-clock
    time, drawn only for profiles that have it, and the figure says on which device and with how
    many threads it was measured, as the profile file records it.
    """
    profiles = [load_profile(p) if isinstance(p, str) else p for p in profiles]
    figure = plt.figure(figsize=(12, 4.4), layout="constrained")
    flops_ax, latency_ax, memory_ax = figure.subplots(1, 3)
    handles, where = [], []
    for i, profile in enumerate(profiles):
        name = profile.info.get("model", Path(profile.source).stem)
        host = _profile_host(profile)
        colour = _PALETTE[i % len(_PALETTE)]
        marker = _FALLBACK_MARKERS[i % len(_FALLBACK_MARKERS)]
        style = dict(color=colour, marker=marker, markersize=4, lw=1.5)
        depth = [b.depth for b in profile.blocks]
        flops_ax.plot(depth, [b.flops / 1e12 for b in profile.blocks], label=name, **style)
        memory_ax.plot(depth, [b.memory_bytes / 1e9 for b in profile.blocks], label=name,
                       **style)
        if profile.latency_s:
            spread = np.array(profile.latency_spread_s or [0.0] * len(depth), dtype=float)
            latency_ax.errorbar(depth, profile.latency_s, yerr=spread / 2, capsize=2,
                                label=name, **style)
            where.append(_where(host))
            steps = f", median of {host['repetitions']} steps" if host["repetitions"] else ""
            text = f"{name}: latency measured on {_where(host)}{steps}"
        elif host["method"] == "measured":
            text = f"{name}: measured, no latency recorded"
        else:
            text = f"{name}: {host['method'] or 'unrecorded'} profile, counted, not timed"
        handles.append(Line2D([], [], label=text, **style))
    kinds = {_profile_host(p)["method"] for p in profiles}
    origin = next(iter(kinds)) if len(kinds) == 1 and kinds <= {"measured", "analytic"} \
        else "as recorded"
    flops_ax.set(xlabel="block depth (1 = next to the output)", ylabel="FLOPs per step (TFLOP)",
                 title="compute per step (counted)")
    latency_title = "step latency (measured)"
    if len(set(where)) == 1:
        latency_title += f"\non {where[0]}"
    latency_ax.set(xlabel="block depth (1 = next to the output)",
                   ylabel="step latency (s; bar = max − min)", title=latency_title)
    memory_ax.set(xlabel="block depth (1 = next to the output)", ylabel="peak memory (GB)",
                  title=f"peak memory per step ({origin})")
    for ax in (flops_ax, latency_ax, memory_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if not latency_ax.lines:
        latency_ax.text(0.5, 0.5, "no measured latency\n(analytic profile)", ha="center",
                        va="center", transform=latency_ax.transAxes, fontsize=11)
        latency_ax.set(title="step latency", xticks=[], yticks=[], xlabel="", ylabel="")
    figure.legend(handles=handles, loc="outside lower center", ncol=1, fontsize=_LEGEND_PT,
                  frameon=False)
    return figure


def _layers(methods) -> dict:
    """Drawing layer of each method, bottom first: heuristics in the given order, then the exact
    methods, dashed, on top. Each layer is drawn thinner and with smaller markers than the ones
    beneath it, so that curves that coincide stay visible one inside another, and the dashes of
    an exact method let a heuristic that reaches the optimum show through."""
    ordered = sorted(methods, key=_is_exact)  # stable: keeps the given order otherwise
    return {method: layer for layer, method in enumerate(ordered)}


def _width(layer: int) -> float:
    return max(1.0, 3.0 - 0.6 * layer)


def _marker_size(layer: int) -> float:
    return max(4.0, 9.5 - 1.5 * layer)


def _seeds_text(counts) -> str:
    counts = sorted({int(n) for n in counts if n})
    if not counts:
        return "no seeds"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{span} seed" + ("" if counts == [1] else "s")


def plot_sweep(rows, *, title: str | None = None) -> Figure:
    """Figures 2-4: round latency versus the swept quantity, one curve per method: the mean over
    the feasible seeds with its 95 % Student-t confidence interval (:func:`lola.sweeps.summarise`),
    the number of seeds stated in the legend. Below, the share of seeds that are feasible; a point
    where some seeds are infeasible is shaded, one where none is feasible is marked × on the
    axis, and a sweep with no feasible point at all says so in the figure.
    """
    if not rows:
        raise ValueError("no sweep rows to draw")
    parameter = rows[0]["parameter"]
    label, scale, xscale = _SWEEP_AXES.get(parameter, (parameter, 1.0, "linear"))
    summary = summarise(rows)
    figure = plt.figure(figsize=(8.8, 5.4), layout="constrained")
    latency_ax, feasible_ax = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    any_feasible = any(np.isfinite(data["mean"]).any() for data in summary.values())
    values = sorted({float(v) * scale for data in summary.values() for v in data["values"]})
    layer = _layers(summary)
    for method, data in summary.items():
        x = data["values"] * scale
        colour, marker = method_colour(method), method_marker(method)
        latency_ax.plot(x, data["mean"], color=colour, marker=marker,
                        ls="--" if _is_exact(method) else "-", lw=_width(layer[method]),
                        markersize=_marker_size(layer[method]), zorder=3 + layer[method],
                        label=method)
        # the interval of the mean, cut at 0 s: no latency is negative
        latency_ax.fill_between(x, np.maximum(data["mean"] - data["half_width"], 0),
                                data["mean"] + data["half_width"], color=colour, alpha=0.12,
                                lw=0, zorder=1)
    # Points where a method has no feasible seed: a mean over no seed is not a number, so they
    # are marked on the axis, in dark grey where every method is infeasible, else in the colour
    # of the method that is.
    infeasible = {method: {float(v) for v, share in zip(data["values"] * scale,
                                                         data["feasible"]) if share == 0}
                  for method, data in summary.items()}
    everyone = set.intersection(*infeasible.values())
    marks = [(value, "#333333") for value in sorted(everyone)]
    for method, points in infeasible.items():
        marks += [(value, method_colour(method)) for value in sorted(points - everyone)]
    if any_feasible:
        for value, colour in marks:
            latency_ax.plot([value], [0.03], ls="none", marker="x", markersize=9, mew=2,
                            color=colour, clip_on=False, zorder=10,
                            transform=latency_ax.get_xaxis_transform())
    if len({tuple(data["feasible"]) for data in summary.values()}) == 1:
        # feasibility is the scenario's (memory), the same for every method: one line
        data = next(iter(summary.values()))
        feasible_ax.plot(data["values"] * scale, 100 * data["feasible"], "o-", color="#333333",
                         label="every method")
    else:
        for method, data in summary.items():
            feasible_ax.plot(data["values"] * scale, 100 * data["feasible"],
                             color=method_colour(method), marker=method_marker(method),
                             ls="--" if _is_exact(method) else "-", lw=_width(layer[method]),
                             markersize=_marker_size(layer[method]), zorder=3 + layer[method])
    handles, _ = latency_ax.get_legend_handles_labels()
    partial = sorted({float(v) * scale for data in summary.values()
                      for v, share in zip(data["values"], data["feasible"]) if 0 < share < 1})
    for value in partial:
        latency_ax.axvline(value, color="#d62728", alpha=0.2, lw=8, zorder=0)
    if partial:
        handles.append(Line2D([], [], color="#d62728", alpha=0.2, lw=8,
                              label="some seeds infeasible"))
    if any_feasible and marks:
        handles.append(Line2D([], [], ls="none", marker="x", markersize=9, mew=2,
                              color="#333333", label="no seed feasible"))
    if not any_feasible:
        latency_ax.text(0.5, 0.5, f"{INFEASIBLE_TEXT}\n(every seed of every method is "
                        "infeasible; see below)", ha="center", va="center", fontsize=12,
                        transform=latency_ax.transAxes)
        latency_ax.set_yticks([])
    seeds = _seeds_text(n for data in summary.values() for n in data["seeds"])
    if max((n for data in summary.values() for n in data["feasible_seeds"]), default=0) > 1:
        legend_title = f"mean and 95 % t-interval\nover {seeds}"
    else:
        legend_title = f"mean over {seeds}\n(too few for an interval)"
    if not all((data["feasible"] == 1).all() for data in summary.values()):
        legend_title += "\n(feasible seeds only)"
    latency_ax.set(ylabel="round latency (s)", title=title or _SWEEP_TITLES.get(parameter))
    feasible_ax.set(xlabel=label, ylabel="feasible\nseeds (%)", ylim=(-8, 108),
                    yticks=[0, 50, 100])
    feasible_ax.set_xscale(xscale)
    _plain_ticks(feasible_ax.xaxis, values, log=xscale == "log")
    for ax in (latency_ax, feasible_ax):
        ax.grid(alpha=0.3)
    if any_feasible:
        latency_ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                          borderaxespad=0, title=legend_title, fontsize=_LEGEND_PT,
                          title_fontsize=_LEGEND_PT, alignment="left")
    if feasible_ax.get_legend_handles_labels()[0]:
        feasible_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                           fontsize=_LEGEND_PT)
    return figure


def plot_convergence(result) -> Figure:
    """Figure 5: best primal latency, dual bound and relative gap per dual-ascent iteration.

    Only ``dual-ascent`` records an iteration history; any other result raises ``ValueError``.
    """
    history = result.history
    if not history:
        raise ValueError(f"convergence is drawn for dual-ascent only: method {result.method!r} "
                         "has no iteration history (only dual-ascent records one)")
    iteration = np.array([h["iteration"] for h in history])
    figure = plt.figure(figsize=(7.5, 5), layout="constrained")
    ax = figure.subplots()
    ax.plot(iteration, [h["primal_s"] for h in history], color=method_colour(result.method),
            lw=2, label="best feasible latency (primal)", zorder=3)
    ax.plot(iteration, [h["best_dual_s"] for h in history], color="#222222", ls="--", lw=2.2,
            label="best dual bound", zorder=3)
    # The dual value of each iteration, as dots on top of the bound it often equals.
    every = max(1, len(history) // 60)
    ax.plot(iteration, [h["dual_s"] for h in history], ls="none", marker="o", markersize=3.5,
            markevery=every, color="#ff7f0e", label="dual value of the iteration", zorder=4)
    ax.set(xlabel="iteration", ylabel="round latency (s)")
    gap_ax = ax.twinx()
    gap_ax.semilogy(iteration, [max(h["gap"], 1e-12) for h in history], color="#2ca02c",
                    lw=1.2, ls=":", label="relative gap (right axis)")
    gap_ax.set_ylabel("relative gap (primal − bound) / primal", color="#2ca02c")
    gap_ax.tick_params(axis="y", colors="#2ca02c")
    figure.suptitle(f"{result.method} on {result.scenario}")
    lines = ax.get_lines() + gap_ax.get_lines()
    figure.legend(lines, [line.get_label() for line in lines], loc="outside lower center",
                  ncol=2, fontsize=_LEGEND_PT, frameon=False)
    ax.grid(alpha=0.3)
    return figure


def _block_label(blocks) -> str:
    if len(blocks) <= 2:
        return ", ".join(blocks)
    return f"{blocks[0]} … {blocks[-1]} ({len(blocks)})"


def plot_allocation(result) -> Figure:
    """Figure 6: per device with a block, stacked compute and upload time, its blocks and
    bandwidth, and the round latency as a line. Devices are ordered by the depth of their
    deepest block (1 = next to the output), then devices that only upload, longest first."""
    if result.round_latency_s is None:
        raise ValueError("an infeasible result has no allocation to draw")
    # result.assignment lists the blocks in depth order, depth 1 first
    depth = {pair["block"]: i + 1 for i, pair in enumerate(result.assignment)}
    busy = sorted((d for d in result.devices if d.blocks),
                  key=lambda d: max(depth.get(b, 0) for b in d.blocks))
    uploading = sorted((d for d in result.devices if not d.blocks and d.bandwidth_hz > 0),
                       key=lambda d: -d.latency_s)
    devices = busy + uploading
    compute = np.array([d.compute_s for d in devices])
    upload = np.array([d.upload_s for d in devices])
    labels = [(_block_label(d.blocks) or "upload only", f"{d.bandwidth_hz / 1e6:.3g} MHz")
              for d in devices]
    # a label's width, at about 0.6 em per character, decides how much room a bar needs
    label_in = max(len(part) for pair in labels for part in pair) * 0.6 * _ANNOTATION_PT / 72
    width_in = min(16.0, max(6.5, (label_in + 0.15) * len(devices) + 1.5))
    # labels that would not fit side by side are turned upright
    upright = (width_in - 1.2) / max(len(devices), 1) < label_in + 0.1
    figure = plt.figure(figsize=(width_in, 5.4), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(devices))
    ax.bar(x, compute, color="#1f77b4", label="compute" if compute.any() else "_nolegend_")
    ax.bar(x, upload, bottom=compute, color="#ff7f0e", label="upload")
    ax.axhline(result.round_latency_s, color="#d62728", ls="--",
               label=f"round latency {result.round_latency_s:.3g} s")
    server_s = result.extras.get("server_compute_s") if not busy else None
    if server_s is not None:  # centralized: the server trains every block after the uploads
        slowest = float(upload.max()) if len(upload) else 0.0
        ax.bar([len(devices)], [server_s], bottom=[slowest], color="#2ca02c",
               label="server compute (after the slowest upload)")
        ax.annotate(f"all {len(result.assignment)} blocks", (len(devices), slowest + server_s),
                    textcoords="offset points", xytext=(0, 4), ha="center", va="bottom",
                    fontsize=_ANNOTATION_PT)
    for i, (blocks, bandwidth) in enumerate(labels):
        separator = "  " if upright else "\n"
        ax.annotate(f"{blocks}{separator}{bandwidth}",
                    (i, compute[i] + upload[i]), textcoords="offset points", xytext=(0, 4),
                    ha="center", va="bottom", fontsize=_ANNOTATION_PT,
                    rotation=90 if upright else 0)
    names = [d.name for d in devices] + (["server"] if server_s is not None else [])
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, len(names) - 0.4)
    if busy:
        xlabel = ("device, ordered by block depth (depth 1, next to the output, on the left); "
                  "above each bar: its block and bandwidth")
    else:
        xlabel = ("device, ordered by upload time; above each bar: its bandwidth; then the "
                  "server" if server_s is not None else
                  "device, ordered by upload time; above each bar: its bandwidth")
    ax.set(xlabel=xlabel, ylabel="time (s)")
    ax.set_ylim(0, result.round_latency_s * (1.55 if upright else 1.3))
    figure.suptitle(f"{result.method} allocation on {result.scenario} ({result.problem})")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=_LEGEND_PT,
              frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_solver_time(rows) -> Figure:
    """Figure 7: solve time versus instance size (K = N) on log-log axes, every method.

    ``rows``: dicts with ``size``, ``method`` and ``solve_time_s`` (several per point are
    reduced to their median).
    """
    figure = plt.figure(figsize=(8, 4.8), layout="constrained")
    ax = figure.subplots()
    seeds = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    layer = _layers(methods)
    for method in methods:
        sizes = sorted({r["size"] for r in rows if r["method"] == method})
        times = []
        for size in sizes:
            here = [r["solve_time_s"] for r in rows if r["method"] == method and r["size"] == size]
            seeds.append(len(here))
            times.append(np.median(here))
        ax.loglog(sizes, times, color=method_colour(method), marker=method_marker(method),
                  ls="--" if _is_exact(method) else "-", lw=_width(layer[method]),
                  markersize=_marker_size(layer[method]), zorder=3 + layer[method],
                  label=method)
    all_sizes = sorted({r["size"] for r in rows})
    _plain_ticks(ax.xaxis, all_sizes, log=True)
    statistic = "median over " + _seeds_text(seeds) if max(seeds, default=1) > 1 else "one run"
    ax.set(xlabel="instance size K = N (devices = blocks)",
           ylabel=f"solve time (s, {statistic})", title="solver time versus instance size")
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
              fontsize=_LEGEND_PT)
    return figure


def plot_energy_budget(rows) -> Figure:
    """Optimal round latency against a per-round energy budget, one curve per method.

    ``rows``: dicts with ``budget_j``, ``method``, ``round_latency_s`` and ``status``, as
    :func:`lola.api.energy_budget_sweep` returns them (several rows per point are reduced to
    their median). Budgets where a method finds no allocation are marked with an open marker
    on the lower edge and labelled infeasible; a tighter budget can only slow the round, so each
    exact curve falls as the budget grows.
    """
    figure = plt.figure(figsize=(8, 4.8), layout="constrained")
    ax = figure.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    layer = _layers(methods)
    budgets = sorted({float(r["budget_j"]) for r in rows})
    solved = [r["round_latency_s"] for r in rows if r["round_latency_s"] is not None]
    floor = min(solved) if solved else 1.0
    infeasible_shown = False
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        points, blocked = [], []
        for budget in sorted({float(r["budget_j"]) for r in mine}):
            here = [r["round_latency_s"] for r in mine if float(r["budget_j"]) == budget
                    and r["round_latency_s"] is not None and r["status"] != "infeasible"]
            (points.append((budget, float(np.median(here)))) if here else blocked.append(budget))
        colour, marker = method_colour(method), method_marker(method)
        if points:
            x, y = zip(*points)
            ax.plot(x, y, color=colour, marker=marker, ls="--" if _is_exact(method) else "-",
                    lw=_width(layer[method]), markersize=_marker_size(layer[method]),
                    zorder=3 + layer[method], label=method)
        if blocked:
            ax.plot(blocked, [0.0] * len(blocked), ls="none", marker=marker,
                    markerfacecolor="none", markeredgecolor=colour, markersize=8,
                    transform=ax.get_xaxis_transform(), clip_on=False, zorder=5,
                    label=None if points else method)
            infeasible_shown = True
    if not solved:
        ax.text(0.5, 0.5, INFEASIBLE_TEXT, transform=ax.transAxes, ha="center", va="center",
                fontsize=_ANNOTATION_PT + 1)
        ax.set_ylim(0, floor)
    _plain_ticks(ax.xaxis, budgets)
    ax.set(xlabel="energy budget per device and round (J)", ylabel="round latency (s)",
           title="round latency versus the per-round energy budget")
    ax.grid(alpha=0.3, which="major")
    handles, labels = ax.get_legend_handles_labels()
    if infeasible_shown:
        handles.append(Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                              markeredgecolor="0.3", markersize=8))
        labels.append("infeasible (open marker on the axis)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
              fontsize=_LEGEND_PT)
    return figure
