"""Exact JBBA at scale: how long does ``exact`` take for 10^4 to 10^6 devices?

Default-like instances (``lola.generate.scaled_instance``, ``fixed`` rate model), timed through
``lola.solve`` (its ``solve_time_s``, the solver alone: building the scenario and the per-device
report are not in it) with the result checked. Targets: K = 10^4, N = 100 under 0.3 s;
K = 10^5 under 3 s; K = 10^6 under 30 s with memory linear in K + N (the solver's traced peak is
reported, from a separate ``tracemalloc`` run since tracing slows it down); K = N = 1000 under
5 s; at least 20x faster than the dense bisection (``prune=False``, the method it replaced) at
K = 10^4, N = 100, which must give the same latency to 1e-9; ``dual-ascent`` at K = N = 20 under
20 ms median. Writes ``results/exact_scaling.csv``.
"""
from __future__ import annotations

import statistics
import tracemalloc

import lola
from lola.generate import scaled_instance
from solvers import run_method

from .common import print_table, standalone, write_csv


def _scenario(instance) -> dict:
    """The scenario document of a scaled instance (blocks inline), for ``lola.solve``."""
    return {"name": f"scaled-{instance.n_devices}x{instance.n_blocks}",
            "model": {"blocks": [{"name": f"block.{n}", "flops": float(flops),
                                  "memory_bytes": float(memory), "params": float(bits / 32)}
                                 for n, (flops, memory, bits) in enumerate(zip(
                                     instance.block_flops, instance.block_memory,
                                     instance.block_bits))]},
            "devices": [{"name": f"device-{k}", "flops_per_s": float(speed),
                         "memory_bytes": float(memory), "spectral_efficiency": float(rho)}
                        for k, (speed, memory, rho) in enumerate(zip(
                            instance.device_flops_per_s, instance.device_memory,
                            instance.device_spectral_efficiency))],
            "channel": {"total_bandwidth_hz": instance.total_bandwidth_hz,
                        "rate_model": instance.rate_model}}


def _traced_peak_mib(instance) -> float:
    tracemalloc.start()
    try:
        run_method("exact", "jbba", instance)
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``exact_scaling.csv`` into ``out_dir``, return the headline numbers."""
    sizes = [(10_000, 100), (100_000, 100), (1000, 1000)]
    if not quick:
        sizes.insert(2, (1_000_000, 100))
    rows = []
    lola.solve(_scenario(scaled_instance(200, 20, seed=0)))  # imports, caches
    for n_devices, n_blocks in sizes:
        instance = scaled_instance(n_devices, n_blocks, seed=1)
        result = lola.solve(_scenario(instance), problem="jbba", method="exact")
        assert result.status == "optimal", result.message
        row = {"K": n_devices, "N": n_blocks, "method": "exact", "solve_s": result.solve_time_s,
               "round_latency_s": result.round_latency_s,
               "candidate_devices": result.extras.get("candidate_devices", n_devices),
               "probes": result.extras["bisection_steps"],
               "traced_peak_mib": _traced_peak_mib(instance)}
        rows.append(row)
        if (n_devices, n_blocks) == (10_000, 100):
            dense = lola.solve(_scenario(instance), problem="jbba", method="exact", prune=False)
            assert abs(dense.round_latency_s / result.round_latency_s - 1) <= 2e-9
            rows.append(dict(row, method="exact, dense (prune=False)", solve_s=dense.solve_time_s,
                             round_latency_s=dense.round_latency_s, candidate_devices=n_devices,
                             probes=dense.extras["bisection_steps"], traced_peak_mib=float("nan")))
    small = lola.load_scenario(_scenario(scaled_instance(20, 20, seed=1)))
    times = [lola.solve(small, method="dual-ascent").solve_time_s for _ in range(21)]
    rows.append({"K": 20, "N": 20, "method": "dual-ascent", "solve_s": statistics.median(times),
                 "round_latency_s": lola.solve(small, method="dual-ascent").round_latency_s,
                 "candidate_devices": 20, "probes": float("nan"),
                 "traced_peak_mib": float("nan")})
    print_table(rows)
    write_csv("exact_scaling.csv", rows, out_dir)
    by = {(r["K"], r["N"], r["method"]): r for r in rows}
    exact_1e4 = by[(10_000, 100, "exact")]
    summary = {"rows": rows, "exact_s": {f"{r['K']}x{r['N']}": r["solve_s"] for r in rows
                                         if r["method"] == "exact"},
               "peak_mib": {f"{r['K']}x{r['N']}": r["traced_peak_mib"] for r in rows
                            if r["method"] == "exact"},
               "dense_over_exact_1e4": (by[(10_000, 100, "exact, dense (prune=False)")]["solve_s"]
                                        / exact_1e4["solve_s"]),
               "dual_ascent_s_20": by[(20, 20, "dual-ascent")]["solve_s"]}
    return summary


def headline(summary) -> list:
    times = ", ".join(f"{size}: {seconds:.3g} s" for size, seconds in summary["exact_s"].items())
    peaks = ", ".join(f"{size}: {mib:.1f} MiB" for size, mib in summary["peak_mib"].items())
    return [f"exact JBBA (K x N): {times} (targets 0.3 / 3 / 30 s at K = 1e4 / 1e5 / 1e6, "
            "N = 100; 5 s at K = N = 1000)",
            f"exact JBBA traced peak: {peaks}",
            f"dense bisection / exact at K = 1e4, N = 100: "
            f"{summary['dense_over_exact_1e4']:.0f}x (target >= 20x)",
            f"dual-ascent at K = N = 20: {1e3 * summary['dual_ascent_s_20']:.1f} ms median "
            "(target < 20 ms)"]


def main(argv=None):
    return standalone(__doc__, run, headline, argv, quick_help="up to K = 1e5")


if __name__ == "__main__":
    main()
