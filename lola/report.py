"""Human-readable tables of results (the CLI's default output)."""
from __future__ import annotations

import textwrap

__all__ = ["format_result", "format_table", "format_comparison", "seconds_text", "summarise"]


def seconds_text(value) -> str:
    """A duration for a table: 4 significant digits and the unit, or "-" when there is none."""
    return "-" if value is None else f"{value:.4g} s"




def format_table(headers, rows, align=None) -> str:
    """A plain fixed-width table; ``align`` is a string of 'l'/'r' per column."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def format_result(result) -> str:
    lines = [f"scenario {result.scenario}  problem {result.problem}  method {result.method}",
             f"status {result.status}  round latency "
             f"{seconds_text(result.round_latency_s)}  lower bound "
             f"{seconds_text(result.lower_bound_s)}  solved in "
             f"{result.solve_time_s * 1e3:.3g} ms"]
    if result.message:
        lines.append(result.message)
    if result.round_latency_s is None:
        return "\n".join(lines)
    server = {pair["device"] for pair in result.assignment} == {"server"}
    if server:
        return _format_centralized(result, lines)
    rows = []
    energy = any(d.energy_j is not None for d in result.devices)
    split = any(d.mode == "split" for d in result.devices)
    several = any(len(d.blocks) > 1 for d in result.devices)
    for device in result.devices:
        if not device.blocks and device.bandwidth_hz == 0:
            continue
        slowest = "*" if device.latency_s == result.round_latency_s else ""
        modes = ([device.mode or "-", _seconds(device.server_s), _seconds(device.downlink_s)]
                 if split else [])
        rows.append([device.name + slowest, ", ".join(device.blocks) or "-",
                     f"{device.bandwidth_hz / 1e6:.3f}", f"{device.compute_s:.4f}"] + modes
                    + [f"{device.upload_s:.4f}", f"{device.latency_s:.4f}",
                       f"{device.memory_bytes / 1e9:.2f}"]
                    + ([_energy(device)] if energy else []))
    idle = sum(1 for d in result.devices if not d.blocks and d.bandwidth_hz == 0)
    headers = (["device", "blocks" if several else "block", "MHz", "compute s"]
               + (["mode", "server s", "down s"] if split else [])
               + ["upload s", "latency s", "memory GB"])
    lines += ["", format_table(headers + (["energy J"] if energy else []), rows,
                               "llrr" + ("lrr" if split else "") + "rrr"
                               + ("r" if energy else ""))]
    notes = []
    if several:
        notes.append("blocks: one step per device, down to its deepest block (listed last)")
    if split:
        notes.append("split: the server runs the layers above the block (server s), the cut's "
                     "gradient comes down (down s), upload s carries the cut and the gradient")
    if idle:
        notes.append(f"{idle} device(s) idle")
    if energy:
        notes.append("energy J: compute_power_w x compute s + tx_power_w x upload s, "
                     "/ the device's energy_budget_j where it has one")
    if any(row[0].endswith("*") for row in rows):
        notes.append("* sets the round latency")
    lines.append("(" + "; ".join(notes) + ")")
    return "\n".join(lines)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _energy(device) -> str:
    """E_k in J, with the device's budget where it has one ("12.3 / 15")."""
    if device.energy_j is None:
        return "-"
    if device.energy_budget_j is None:
        return f"{device.energy_j:.4g}"
    return f"{device.energy_j:.4g} / {device.energy_budget_j:.4g}"


def _format_centralized(result, lines) -> str:
    """The reference: devices only upload mini-batches; the server trains every block."""
    server_s = float(result.extras.get("server_compute_s", 0.0))
    uploaders = [d for d in result.devices if d.bandwidth_hz > 0]
    slowest = max((d.upload_s for d in uploaders), default=0.0)
    energy = any(d.energy_j is not None for d in uploaders)
    rows = [[d.name + ("*" if d.upload_s == slowest else ""), f"{d.bandwidth_hz / 1e6:.3f}",
             f"{d.upload_s:.4f}"] + ([_energy(d)] if energy else []) for d in uploaders]
    headers = ["uploads a mini-batch", "MHz", "upload s"] + (["energy J"] if energy else [])
    lines += ["", format_table(headers, rows, "lrr" + ("r" if energy else "")),
              f"server trains all {len(result.assignment)} blocks: {server_s:.4f} s",
              f"(round latency = slowest upload (*) {slowest:.4f} s + server compute "
              f"{server_s:.4f} s; {len(result.devices) - len(uploaders)} device(s) idle)"]
    return "\n".join(lines)


def _milliseconds(seconds: float) -> str:
    milliseconds = 1e3 * seconds
    return f"{milliseconds:.3g}" if milliseconds < 1000 else f"{milliseconds:.0f}"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _joules(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_comparison(comparison) -> str:
    baselines = [b.method for b in comparison.baselines]
    energy = any(r.total_energy_j is not None for r in comparison.results)
    headers = (["method", "status", "latency s", "gap to bound", "time ms", "time limit"]
               + (["energy J"] if energy else []) + [f"vs {name}" for name in baselines])
    rows = []
    for result in comparison.results:
        reductions = comparison.reductions(result)
        latency = "-" if result.round_latency_s is None else f"{result.round_latency_s:.4f}"
        limit = comparison.time_limits.get(result.method)
        rows.append([result.method, result.status, latency,
                     _percent(comparison.gap_to_bound(result)),
                     _milliseconds(result.solve_time_s), "-" if limit is None else f"{limit:g} s"]
                    + ([_joules(result.total_energy_j)] if energy else [])
                    + [_percent(reductions[b]) if b in reductions else "-" for b in baselines])
    bound = comparison.best_lower_bound_s
    lines = [f"scenario {comparison.scenario}  problem {comparison.problem}  best proven lower "
             f"bound {seconds_text(bound)}", "",
             format_table(headers, rows, "ll" + "r" * (len(headers) - 2)), ""]
    lines += textwrap.wrap(
        "gap to bound: latency / best proven lower bound - 1; vs X: reduction of the round "
        "latency against baseline X, 1 - latency / latency of X (positive is faster; the JSON's "
        "reduction_vs)" + ("; energy J: the round's energy summed over the devices that train or "
                           "upload (the JSON's total_energy_j)" if energy else ""), 100)
    reasons = {}
    for result in comparison.results:
        if result.round_latency_s is None and result.message:
            reasons.setdefault(result.message, []).append(result.method)
    for reason, methods in reasons.items():
        lines.append(f"infeasible ({', '.join(methods)}): {reason}")
    for result in comparison.results:
        if result.status == "feasible" and comparison.time_limits.get(result.method) is not None \
                and "time limit" in result.message:
            lines.append(f"{result.method}: {result.message}")
    for method, reason in comparison.skipped:
        lines.append(f"skipped {method}: {reason}")
    return "\n".join(lines)


def summarise(rows) -> dict:
    """Per method: values, mean latency, 95 % confidence half-width, seed counts, feasible share.

    At each value, over the n seeds whose scenario is feasible (``round_latency_s`` not None),
    the mean latency x̄ and the half-width t_{0.975, n-1} · s / √n of the two-sided 95 %
    Student-t confidence interval for the mean (s: the sample standard deviation); the
    half-width is 0 where fewer than two seeds are feasible, the mean NaN where none is.
    ``seeds`` counts the rows at each value, ``feasible_seeds`` the feasible ones, and
    ``feasible`` is their ratio.

    >>> rows = [{"method": "m", "value": 1, "round_latency_s": x} for x in (1.0, 2.0, 3.0)]
    >>> data = summarise(rows)["m"]
    >>> float(data["mean"][0]), round(float(data["half_width"][0]), 4), int(data["seeds"][0])
    (2.0, 2.4841, 3)
    """
    import numpy as np
    from scipy import stats

    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        values = sorted({r["value"] for r in rows if r["method"] == method})
        mean, half, seeds, feasible_seeds = [], [], [], []
        for value in values:
            latency = [r["round_latency_s"] for r in rows
                       if r["method"] == method and r["value"] == value]
            finite = np.array([x for x in latency if x is not None], dtype=float)
            n = len(finite)
            seeds.append(len(latency))
            feasible_seeds.append(n)
            mean.append(finite.mean() if n else np.nan)
            half.append(float(stats.t.ppf(0.975, n - 1) * finite.std(ddof=1) / np.sqrt(n))
                        if n > 1 else 0.0)
        seeds, feasible_seeds = np.array(seeds), np.array(feasible_seeds)
        summary[method] = {"values": np.array(values, dtype=float), "mean": np.array(mean),
                           "half_width": np.array(half), "seeds": seeds,
                           "feasible_seeds": feasible_seeds,
                           "feasible": feasible_seeds / np.maximum(seeds, 1)}
    return summary
