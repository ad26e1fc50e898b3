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
from matplotlib import ticker, transforms
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import solvers

from ._io import atomic_write_bytes
from .profiles import load_profile
from .report import summarise

__all__ = ["method_colour", "method_marker", "plot_profile", "plot_sweep", "plot_convergence",
           "plot_allocation", "plot_solver_time", "save", "FIGURE_KINDS", "INFEASIBLE_TEXT",
           "plot_energy_budget", "plot_devices_sweep", "plot_cooperation", "plot_ledger"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]
# Markers distinct among the methods of each problem (the matching and the JBBA methods), so
# that curves differ in shape as well as colour; other names fall back to the list.
_MARKERS = {"crunch": "^", "bottleneck": "o", "exact": "^", "dual-ascent": "o", "milp": "v",
            "scip": "P", "brute": "X", "random": "*", "greedy": "s", "min-sum": "D",
            "centralized": "h"}
_FALLBACK_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p"]
FIGURE_KINDS = ("profile", "devices", "bandwidth", "memory", "convergence", "allocation",
                "solver-time", "energy", "several-blocks", "cooperation", "ledger")
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


def _dodge(sizes: dict) -> dict:
    """Horizontal offsets (points) that put the markers of the methods side by side, in the
    given order and centred on the true x, adjacent markers overlapping by a third at most."""
    names = list(sizes)
    offsets, position = {}, 0.0
    for i, name in enumerate(names):
        if i:
            position += 0.7 * (sizes[names[i - 1]] + sizes[name]) / 2
        offsets[name] = position
    middle = position / 2
    return {name: offset - middle for name, offset in offsets.items()}


def _seeds_text(counts) -> str:
    counts = sorted({int(n) for n in counts if n})
    if not counts:
        return "no seeds"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{span} seed" + ("" if counts == [1] else "s")


def plot_sweep(rows, *, title: str | None = None) -> Figure:
    """Figures 2-4: round latency versus the swept quantity, one curve per method: the mean over
    the feasible seeds with its 95 % Student-t confidence interval (:func:`lola.report.summarise`),
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
    shift = _dodge({method: _marker_size(layer[method]) for method in summary})
    for method, data in summary.items():
        x = data["values"] * scale
        colour, marker = method_colour(method), method_marker(method)
        # each method drawn a few points to the side of the others, so that markers and
        # intervals of methods that reach the same latency stand side by side, not one over
        # another (the data stay at the true x; only the drawing is shifted)
        moved = transforms.offset_copy(latency_ax.transData, figure, x=shift[method], y=0,
                                       units="points")
        latency_ax.plot(x, data["mean"], color=colour, marker=marker,
                        ls="--" if _is_exact(method) else "-", lw=_width(layer[method]),
                        markersize=_marker_size(layer[method]), zorder=3 + layer[method],
                        label=method, transform=moved)
        # the interval of the mean, cut at 0 s (no latency is negative): a bar in the method's
        # colour beside the others' bars, rather than bands that cover one another
        shown = np.isfinite(data["mean"]) & np.isfinite(data["half_width"])
        if shown.any():
            latency_ax.vlines(x[shown], np.maximum((data["mean"] - data["half_width"])[shown],
                                                   0),
                              (data["mean"] + data["half_width"])[shown], colors=colour,
                              lw=2.0, alpha=0.55, zorder=2, transform=moved)
        # the shifted artists do not widen the data limits themselves: their data do
        low = np.maximum(data["mean"] - np.nan_to_num(data["half_width"]), 0)
        high = data["mean"] + np.nan_to_num(data["half_width"])
        points = np.column_stack([np.concatenate([x, x]), np.concatenate([low, high])])
        points = points[np.isfinite(points).all(axis=1)]
        if len(points):
            latency_ax.update_datalim(points)
            latency_ax.autoscale_view()
    if len(summary) > 1:
        latency_ax.margins(x=0.08)  # room for the methods drawn beside the first and last x
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
    if len(summary) > 1:
        legend_title += "\nmethods side by side at each point"
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


# Colours of the parts of a bar in the allocation figure.
_COMPUTE, _UPLOAD, _SERVER, _DOWNLINK = "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"
_SPLIT_HATCH = "//"


def plot_allocation(result) -> Figure:
    """Figure 6: per device with a block, stacked compute and upload time, its blocks and
    bandwidth, and the round latency as a line. Devices are ordered by the depth of their
    deepest block (1 = next to the output), then devices that only upload, longest first.

    A device that trains several blocks (section 8) runs one step for all of them: its bar
    spans one slot per block, divided by thin lines, under a bracket that names its blocks and
    their number. A device in split mode (section 9) is hatched, and its bar adds the server's
    part (``server_s``) and the downlink (``downlink_s``) between its own compute and its
    uploads, so that every bar is the device's whole latency.
    """
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
    split = np.array([getattr(d, "mode", None) == "split" for d in devices], dtype=bool)
    server = np.array([(d.server_s or 0.0) if s else 0.0 for d, s in zip(devices, split)])
    downlink = np.array([(d.downlink_s or 0.0) if s else 0.0 for d, s in zip(devices, split)])
    count = np.array([max(len(d.blocks), 1) for d in devices])
    grouped = bool((count > 1).any())

    def block_text(d, s):
        if not d.blocks:
            return "upload only"
        return _block_label(d.blocks) + (" (split)" if s else "")

    labels = [(block_text(d, s), f"{d.bandwidth_hz / 1e6:.3g} MHz")
              for d, s in zip(devices, split)]
    # One slot per block: a device's bar spans its slots, centred on them.
    first = np.concatenate([[0], np.cumsum(count)[:-1]]) if len(devices) else np.zeros(0)
    x = first + (count - 1) / 2
    slots = int(count.sum())
    # a label's width, at about 0.6 em per character, decides how much room a bar needs
    label_in = np.array([max(len(part) for part in pair) * 0.6 * _ANNOTATION_PT / 72
                         for pair in labels]) if labels else np.zeros(0)
    # slots are equally wide, so the device whose label is widest for its slots sets the width
    per_slot = float(((label_in + 0.15) / count).max()) if len(labels) else 0.0
    width_in = min(16.0, max(6.5, per_slot * slots + 1.5))
    # labels that would not fit side by side are turned upright
    upright = bool(((width_in - 1.2) / max(slots, 1) * count < label_in + 0.1).any())
    figure = plt.figure(figsize=(width_in, 5.4), layout="constrained")
    ax = figure.subplots()
    width = count - 0.2
    hatch = [_SPLIT_HATCH if s else None for s in split]
    ax.bar(x, compute, width=width, color=_COMPUTE, hatch=hatch, edgecolor="white", lw=0,
           label="compute (device)" if split.any() else
           ("compute" if compute.any() else "_nolegend_"))
    ax.bar(x, upload, width=width, bottom=compute + server + downlink, color=_UPLOAD,
           hatch=hatch, edgecolor="white", lw=0, label="upload")
    if split.any():  # the server's part and the downlink come between compute and upload
        ax.bar(x[split], server[split], width=width[split], bottom=compute[split],
               color=_SERVER, hatch=_SPLIT_HATCH, edgecolor="white", lw=0,
               label="server compute (split)")
        ax.bar(x[split], downlink[split], width=width[split],
               bottom=(compute + server)[split], color=_DOWNLINK, hatch=_SPLIT_HATCH,
               edgecolor="white", lw=0, label="downlink (split)")
    total = compute + server + downlink + upload
    ax.axhline(result.round_latency_s, color="#d62728", ls="--",
               label=f"round latency {result.round_latency_s:.3g} s")
    server_s = result.extras.get("server_compute_s") if not busy else None
    if server_s is not None:  # centralized: the server trains every block after the uploads
        slowest = float(upload.max()) if len(upload) else 0.0
        ax.bar([slots], [server_s], bottom=[slowest], color=_SERVER,
               label="server compute (after the slowest upload)")
        ax.annotate(f"all {len(result.assignment)} blocks", (slots, slowest + server_s),
                    textcoords="offset points", xytext=(0, 4), ha="center", va="bottom",
                    fontsize=_ANNOTATION_PT)
    bracket = 0.0
    if grouped:
        # The slots of a device's blocks: thin dividers inside the bar (one step for all of
        # them), a bracket over the bar, and the number of blocks on the bar.
        bracket = 0.04 * result.round_latency_s
        for i in np.flatnonzero(count > 1):
            left, right = first[i] - 0.4, first[i] + count[i] - 0.6
            ax.vlines(first[i] + 0.5 + np.arange(count[i] - 1), 0, total[i], colors="white",
                      lw=1.0, zorder=3)
            top = total[i] + 0.3 * bracket
            ax.plot([left, left, right, right], [top, top + bracket, top + bracket, top],
                    color="#333333", lw=1.0, zorder=3)
            # the count goes on the taller of the bar's two parts, where it has room
            bottom, height, colour = max((0.0, compute[i], _COMPUTE),
                                         (total[i] - upload[i], upload[i], _UPLOAD),
                                         key=lambda part: part[1])
            if height > 0.12 * result.round_latency_s:
                ax.text(x[i], bottom + height / 2, f"{count[i]}\nblocks", ha="center",
                        va="center", color="white", fontsize=_ANNOTATION_PT, fontweight="bold",
                        zorder=4, bbox=dict(facecolor=colour, edgecolor="none", pad=1.5))
    for i, (blocks, bandwidth) in enumerate(labels):
        separator = "  " if upright else "\n"
        lift = 1.3 * bracket if count[i] > 1 else 0.0
        ax.annotate(f"{blocks}{separator}{bandwidth}",
                    (x[i], total[i] + lift), textcoords="offset points", xytext=(0, 4),
                    ha="center", va="bottom", fontsize=_ANNOTATION_PT,
                    rotation=90 if upright else 0)
    names = [d.name for d in devices] + (["server"] if server_s is not None else [])
    ticks = list(x) + ([slots] if server_s is not None else [])
    ax.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, slots + (1 if server_s is not None else 0) - 0.4)
    if busy:
        xlabel = ("device, ordered by block depth (depth 1, next to the output, on the left); "
                  "above each bar: its block and bandwidth")
        if grouped:
            xlabel = ("device, ordered by its deepest block's depth (depth 1 on the left); a "
                      "bar spans one slot per block it trains;\nabove each bar: its blocks "
                      "(shallowest … deepest (number)) and bandwidth")
    else:
        xlabel = ("device, ordered by upload time; above each bar: its bandwidth; then the "
                  "server" if server_s is not None else
                  "device, ordered by upload time; above each bar: its bandwidth")
    ax.set(xlabel=xlabel, ylabel="time (s)")
    ax.set_ylim(0, result.round_latency_s * (1.55 if upright else 1.3) + 1.3 * bracket)
    figure.suptitle(f"{result.method} allocation on {result.scenario} ({result.problem})")
    handles, _ = ax.get_legend_handles_labels()
    if split.any():
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch=_SPLIT_HATCH,
                             label="split mode (hatched)"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncol=3, fontsize=_LEGEND_PT, frameon=False)
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
    their median). Budgets where a method finds no allocation have no latency to draw: they are
    marked × in a strip of their own above the latency axes, one row per method, labelled
    infeasible, so that no mark sits on the latency scale; a tighter budget can only slow the
    round, so each exact curve falls as the budget grows.
    """
    figure = plt.figure(figsize=(8, 4.8), layout="constrained")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    layer = _layers(methods)
    budgets = sorted({float(r["budget_j"]) for r in rows})
    solved = [r["round_latency_s"] for r in rows if r["round_latency_s"] is not None]
    floor = min(solved) if solved else 1.0
    curves, blocked = {}, {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        points, lost = [], []
        for budget in sorted({float(r["budget_j"]) for r in mine}):
            here = [r["round_latency_s"] for r in mine if float(r["budget_j"]) == budget
                    and r["round_latency_s"] is not None and r["status"] != "infeasible"]
            (points.append((budget, float(np.median(here)))) if here else lost.append(budget))
        curves[method], blocked[method] = points, lost
    strip = None
    if any(blocked.values()):
        grid = figure.add_gridspec(2, 1, height_ratios=[1 + 0.35 * len(methods), 8])
        ax = figure.add_subplot(grid[1])  # the latency axes stays figure.axes[0]
        strip = figure.add_subplot(grid[0], sharex=ax)
    else:
        ax = figure.add_subplot()
    for method in methods:
        colour, marker = method_colour(method), method_marker(method)
        if curves[method]:
            x, y = zip(*curves[method])
            ax.plot(x, y, color=colour, marker=marker, ls="--" if _is_exact(method) else "-",
                    lw=_width(layer[method]), markersize=_marker_size(layer[method]),
                    zorder=3 + layer[method], label=method)
        elif blocked[method]:  # in the legend all the same, with its own marker
            ax.plot([], [], color=colour, marker=marker, ls="--" if _is_exact(method) else "-",
                    lw=_width(layer[method]), markersize=_marker_size(layer[method]),
                    label=method)
    if strip is not None:
        row = {method: len(methods) - 1 - i for i, method in enumerate(methods)}
        for method in methods:
            if blocked[method]:
                strip.plot(blocked[method], [row[method]] * len(blocked[method]), ls="none",
                           marker="x", markersize=8, mew=2, color=method_colour(method),
                           label=f"{method}: infeasible")
        strip.set_ylim(-0.7, len(methods) - 0.3)
        strip.set_yticks([])
        strip.set_ylabel("infeasible", rotation=0, ha="right", va="center",
                         fontsize=_LEGEND_PT)
        strip.tick_params(axis="x", labelbottom=False)
        strip.grid(alpha=0.3, axis="x")
        strip.set_title("round latency versus the per-round energy budget")
    else:
        ax.set_title("round latency versus the per-round energy budget")
    if not solved:
        ax.text(0.5, 0.5, INFEASIBLE_TEXT, transform=ax.transAxes, ha="center", va="center",
                fontsize=_ANNOTATION_PT + 1)
        ax.set_ylim(0, floor)
    _plain_ticks(ax.xaxis, budgets)
    ax.set(xlabel="energy budget per device and round (J)", ylabel="round latency (s)")
    ax.grid(alpha=0.3, which="major")
    handles, labels = ax.get_legend_handles_labels()
    if strip is not None:
        handles.append(Line2D([], [], ls="none", marker="x", markersize=8, mew=2,
                              color="0.3"))
        labels.append("infeasible: no allocation\n(× in the strip above,\nin the method's colour)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
              fontsize=_LEGEND_PT)
    return figure


# The curves of plot_devices_sweep, in increasing cap: one block per device first.
_CAP_STYLES = [("#1f77b4", "o"), ("#d62728", "s"), ("#2ca02c", "^"), ("#9467bd", "D")]


def plot_devices_sweep(rows) -> Figure:
    """Optimal round latency versus the number of devices K, one block per device against up
    to M blocks per device (section 8), one panel per profile.

    ``rows``: dicts with ``profile``, ``blocks`` (N), ``devices`` (K), ``max_blocks``,
    ``status``, ``round_latency_s``, and for points not proven optimal ``method`` and
    ``lower_bound_s``, as :func:`lola.studies.blocks.latency_vs_devices` returns them. Proven
    optima are filled markers on solid lines; a point that is only feasible (the exact method
    does not scale to its K) is an open marker on a dotted line, with a bar down to its proven
    lower bound, so that the optimum lies on the bar; an infeasible point is a × on the lower
    edge. The dashed vertical line is K = N, the fewest devices that one block per device
    needs. Rows with several caps M > 1 give one curve each.
    """
    if not rows:
        raise ValueError("no rows to draw")
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    figure = plt.figure(figsize=(6.2 * len(profiles), 5.0), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(profiles)))
    handles = {}
    caps_all = sorted({int(r["max_blocks"]) for r in rows})
    for ax, profile in zip(axes, profiles):
        mine = [r for r in rows if r["profile"] == profile]
        caps = sorted({int(r["max_blocks"]) for r in mine})
        n_blocks = mine[0].get("blocks")
        counts = sorted({int(r["devices"]) for r in mine})
        for cap in caps:
            colour, marker = _CAP_STYLES[caps_all.index(cap) % len(_CAP_STYLES)]
            name = ("one block per device" if cap == 1
                    else f"up to {cap} blocks per device")
            curve = sorted((r for r in mine if int(r["max_blocks"]) == cap),
                           key=lambda r: r["devices"])
            solved = [r for r in curve if r["round_latency_s"] is not None
                      and r["status"] in ("optimal", "feasible")]
            proven = [r for r in solved if r["status"] == "optimal"]
            unproven = [r for r in solved if r["status"] != "optimal"]
            if solved:  # one line through every solved point: dotted where not proven
                ax.plot([r["devices"] for r in solved], [r["round_latency_s"] for r in solved],
                        color=colour, lw=1.0, ls=":", zorder=2)
            # solid between consecutive proven points
            for a, b in zip(solved, solved[1:]):
                if a["status"] == b["status"] == "optimal":
                    ax.plot([a["devices"], b["devices"]],
                            [a["round_latency_s"], b["round_latency_s"]], color=colour, lw=2.0,
                            zorder=3)
            if proven:
                ax.plot([r["devices"] for r in proven], [r["round_latency_s"] for r in proven],
                        ls="none", marker=marker, markersize=6, color=colour, zorder=4,
                        label=f"{name} (optimal)")
                handles.setdefault(name, Line2D([], [], color=colour, marker=marker, lw=2.0,
                                                markersize=6, label=f"{name}, optimal"))
            if unproven:
                ax.plot([r["devices"] for r in unproven],
                        [r["round_latency_s"] for r in unproven], ls="none", marker=marker,
                        markersize=6, color=colour, markerfacecolor="white",
                        markeredgecolor=colour, zorder=4, label=f"{name} (not proven)")
                bounds = [(r["devices"], r["lower_bound_s"], r["round_latency_s"])
                          for r in unproven if r.get("lower_bound_s")]
                if bounds:
                    ax.vlines([b[0] for b in bounds], [b[1] for b in bounds],
                              [b[2] for b in bounds], colors=colour, lw=1.0, alpha=0.6,
                              zorder=2)
                methods = ", ".join(sorted({str(r.get("method")) for r in unproven}))
                handles.setdefault(f"{name} unproven", Line2D(
                    [], [], color=colour, marker=marker, ls=":", lw=1.0,
                    markerfacecolor="white", markersize=6,
                    label=f"{name}, {methods}: not proven optimal (bar: down to its "
                    "proven lower bound)"))
            infeasible = [r["devices"] for r in curve if r["status"] == "infeasible"]
            if infeasible:
                # the two curves' crosses side by side, so that both stay visible
                shift = 0.03 * caps_all.index(cap)
                ax.plot(infeasible, [0.025 + shift] * len(infeasible), ls="none", marker="x",
                        markersize=7, mew=1.8, color=colour, clip_on=False, zorder=5,
                        transform=ax.get_xaxis_transform())
                handles.setdefault(f"{name} infeasible", Line2D(
                    [], [], ls="none", marker="x", markersize=7, mew=1.8, color=colour,
                    label=f"{name}: infeasible (× on the lower edge)"))
        if n_blocks and counts[0] <= n_blocks <= counts[-1]:
            ax.axvline(n_blocks, color="#555555", ls="--", lw=1.0, zorder=1)
            ax.annotate(f"K = N = {n_blocks}", (n_blocks, 1.0), xycoords=(
                "data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                        ha="left", va="top", fontsize=_ANNOTATION_PT, color="#555555")
        if not any(r["round_latency_s"] is not None for r in mine):
            ax.text(0.5, 0.5, INFEASIBLE_TEXT, transform=ax.transAxes, ha="center",
                    va="center", fontsize=_ANNOTATION_PT + 1)
        else:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            _plain_ticks(ax.yaxis)
        name = Path(profile).stem if str(profile).endswith(".json") else profile
        ax.set(xlabel="number of devices K", ylabel="round latency (s)",
               title=f"{name}: N = {n_blocks} blocks" if n_blocks else name)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="major")
    problems = sorted({r.get("problem", "") for r in rows} - {""})
    figure.suptitle("optimal round latency versus the number of devices"
                    + (f" ({', '.join(problems)})" if problems else ""))
    figure.legend(handles=list(handles.values()), loc="outside lower center", ncol=2,
                  fontsize=_LEGEND_PT, frameon=False)
    return figure


_WINNER_COLOURS = {"local": "#4c72b0", "split": "#dd8452", "centralized": "#8c8c8c"}


def plot_cooperation(rows) -> Figure:
    """Which is fastest, DEFT with local steps, DEFT with split mode allowed, or centralized
    training, over the edge server's throughput and the uplink bandwidth: one panel per device
    class mix.

    ``rows``: :func:`lola.studies.cooperation.cooperation_map`'s. Each cell is coloured by the
    winner on most seeds and labelled with the median over the seeds of the winner's round
    latency divided by the second fastest option's (:func:`_runner_up_ratio`): below 1, the
    winner is that much faster. Only the options that win a cell are in the legend.
    """
    mixes = list(dict.fromkeys(r["mix"] for r in rows))
    servers = sorted({float(r["server_flops_per_s"]) for r in rows})
    bands = sorted({float(r["bandwidth_hz"]) for r in rows})
    figure = plt.figure(figsize=(4.6 * len(mixes) + 0.4, 4.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(mixes), sharey=True, squeeze=False)[0])
    drawn = set()
    for ax, mix in zip(axes, mixes):
        for i, server in enumerate(servers):
            for j, band in enumerate(bands):
                here = [r for r in rows if r["mix"] == mix and r["bandwidth_hz"] == band
                        and r["server_flops_per_s"] == server and r["best"] is not None]
                if not here:
                    continue
                votes = [r["best"] for r in here]
                winner = max(_WINNER_COLOURS, key=votes.count)
                drawn.add(winner)
                ratios = [ratio for ratio in (_runner_up_ratio(r, winner) for r in here)
                          if ratio is not None]
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1,
                                           color=_WINNER_COLOURS[winner], alpha=0.85))
                ax.text(j, i, f"{np.median(ratios):.2f}" if ratios else "-", ha="center",
                        va="center", fontsize=_ANNOTATION_PT, color="white")
        ax.set_xlim(-0.5, len(bands) - 0.5)
        ax.set_ylim(-0.5, len(servers) - 0.5)
        ax.set_xticks(range(len(bands)), [f"{b / 1e6:g}" for b in bands])
        ax.set_yticks(range(len(servers)), [f"{s / 1e12:g}" for s in servers])
        ax.set_xlabel("uplink bandwidth B (MHz)")
        ax.set_title(f"devices: {mix}")
    axes[0].set_ylabel("edge server throughput (TFLOP/s)")
    names = {"local": "DEFT, local steps", "split": "DEFT with split mode",
             "centralized": "centralized"}
    handles = [Patch(color=colour, alpha=0.85, label=f"fastest: {names[name]}")
               for name, colour in _WINNER_COLOURS.items() if name in drawn]
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=_LEGEND_PT)
    figure.suptitle("fastest round: DEFT local, DEFT with split mode, or centralized\n"
                    "number: fastest option's latency / second fastest's (median over seeds; "
                    "split counts only where faster than local)", fontsize=11)
    return figure


def _runner_up_ratio(row: dict, winner: str):
    """The round latency of ``winner`` over the fastest of the other options of a row, or None
    when there is none to compare. Split mode may choose local steps everywhere, and then its
    latency is local's own: it counts as an option of its own only where it is faster."""
    latency = {"local": row.get("local_s"), "split": row.get("split_s"),
               "centralized": row.get("centralized_s")}
    if latency["split"] is not None and latency["local"] is not None and \
            not latency["split"] < latency["local"] * (1 - 1e-9):
        latency["split"] = None  # the same rounds as local
        if winner == "split":
            winner = "local"
    others = [value for name, value in latency.items() if name != winner and value is not None]
    if latency[winner] is None or not others:
        return None
    return latency[winner] / min(others)


def plot_ledger(ledger) -> Figure:
    """Bytes per round on each device's links (stacked: gradients up, cut activations up, cut
    gradients down, adapters down) for a :class:`lola.studies.ledger.Ledger`, with the
    centralized reference's total as a line."""
    devices = ledger.per_round["devices"]
    names = list(devices)
    parts = [("gradients_up", "gradients up", "#4c72b0"),
             ("cut_activations_up", "cut activations up", "#dd8452"),
             ("cut_gradients_down", "cut gradients down", "#c44e52"),
             ("adapters_down", "adapters down", "#55a868")]
    # the legend goes to the right of the bars, never over them: room for it on the right
    figure = plt.figure(figsize=(max(6.0, 0.45 * len(names) + 2.5) + 2.6, 4.8),
                        layout="constrained")
    ax = figure.subplots()
    bottom = np.zeros(len(names))
    for key, label, colour in parts:
        values = np.array([devices[name][key] for name in names], dtype=float) / 1e6
        if values.any():
            ax.bar(range(len(names)), values, bottom=bottom, color=colour, label=label)
        bottom += values
    if ledger.centralized_total is not None:
        per_round = ledger.centralized_total["total_bytes"] / ledger.rounds / 1e6
        ax.axhline(per_round, color="black", ls="--",
                   label=f"centralized, all devices together ({per_round:.3g} MB)")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel("MB per round")
    ratio = ("" if ledger.ratio_to_centralized is None
             else f"; {ledger.ratio_to_centralized:.3g} x centralized's bytes")
    ax.set_title(f"{ledger.method} on {ledger.scenario}: "
                 f"{ledger.per_round['total_bytes'] / 1e6:.3g} MB per round{ratio}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
              fontsize=_LEGEND_PT)
    return figure
