"""Split mode (specification, section 9): how often it wins, and what it costs the exact method.

1. **Share of instances where split mode wins**, by device class mix and by the downlink rate:
   generated scenarios (:func:`lola.generate.generate_scenario` with ``downlink=True``, the
   bundled ``roberta-base`` table with its measured split keys, an A100-class server), solved
   with ``exact`` under ``modes=("local",)`` and ``("local", "split")``; split "wins" when the
   second is faster by more than 1e-9 (it can always choose local). The downlink rate of every
   device is scaled by 1, 10 and 100 (the generator's cellular downlink, then links 10 and 100
   times faster), and the mixes are the generator's, phones only and laptops only.
2. **Exact P2 with both modes at K = N = 200** (target < 1 s): ``exact`` on a
   :func:`lola.generate.scaled_instance` whose blocks carry split costs interpolated along the
   measured ``roberta-base`` split keys, each device a downlink of the generator's model; its
   time against the same instance with local mode only.

Writes ``results/split_mode_share.csv`` and ``results/split_mode_timing.csv`` (one row per
solve) and ``results/split_mode.json`` (the summary).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import lola
import solvers
from lola._io import atomic_write_text
from lola.generate import downlink_rate_bps, generate_scenario, scaled_instance
from lola.profiles import load_profile

from .common import RESULTS, standalone, write_csv

MIXES = {"default": None, "phones": {"phone": 1}, "laptops": {"laptop": 1}}
DOWNLINK_SCALES = (1.0, 10.0, 100.0)


def _share(seeds) -> list:
    rows = []
    for mix, class_mix in MIXES.items():
        for scale in DOWNLINK_SCALES:
            for seed in seeds:
                document = generate_scenario(20, seed=seed, downlink=True, class_mix=class_mix)
                for device in document["devices"]:
                    device["downlink_bps"] *= scale
                local = lola.solve(document, method="exact")
                both = lola.solve(document, method="exact", modes=("local", "split"))
                wins = (local.round_latency_s is not None and both.round_latency_s is not None
                        and both.round_latency_s < local.round_latency_s * (1 - 1e-9))
                rows.append({"part": "share", "mix": mix, "downlink_scale": scale,
                             "seed": seed, "local_s": local.round_latency_s,
                             "split_s": both.round_latency_s, "split_wins": wins,
                             "split_devices": sum(d.mode == "split" for d in both.devices)})
    return rows


def _split_instance(size: int, seed: int):
    """K = N = ``size`` with split costs along the measured roberta-base split keys."""
    instance = scaled_instance(size, size, seed=seed)
    profile = load_profile("roberta-base").blocks
    depth = np.linspace(0, len(profile) - 1, size)

    def along(key):
        return np.interp(depth, np.arange(len(profile)), [getattr(b, key) for b in profile])
    rng = np.random.default_rng(seed)
    gains = 10 ** (-(128.1 + 37.6 * np.log10(rng.uniform(50, 500, size) / 1000)) / 10)
    gains = gains * rng.exponential(1.0, size)
    return replace(instance, modes=("local", "split"),
                   split_device_flops=along("split_device_flops"),
                   split_server_flops=along("split_server_flops"),
                   split_memory=along("split_memory_bytes"),
                   cut_bits=8 * along("cut_bytes"),
                   device_downlink_bps=downlink_rate_bps(gains, size))


def _timing(size, seeds, repeats) -> list:
    rows = []
    for seed in seeds:
        both = _split_instance(size, seed)
        local = replace(both, modes=("local",))
        for label, instance in (("local", local), ("local,split", both)):
            times, result = [], None
            for _ in range(repeats):
                started = time.perf_counter()
                result = solvers.run_method("exact", "jbba", instance)
                times.append(time.perf_counter() - started)
            rows.append({"part": "timing", "K": size, "N": size, "seed": seed, "modes": label,
                         "status": str(result.status), "round_latency_s": result.round_latency_s,
                         "median_s": statistics.median(times)})
    return rows


def run(out_dir=None, quick=False) -> dict:
    """Measure, write ``split_mode.csv`` and ``.json`` into ``out_dir``, return the summary."""
    seeds = range(2) if quick else range(5)
    share_rows = _share(seeds)
    timing_rows = _timing(200, range(2 if quick else 3), 1 if quick else 3)
    summary = {"share": {}, "timing": {}}
    for mix in MIXES:
        for scale in DOWNLINK_SCALES:
            here = [r for r in share_rows if r["mix"] == mix and r["downlink_scale"] == scale]
            summary["share"][f"{mix} x{scale:g}"] = {
                "instances": len(here), "split_wins": sum(r["split_wins"] for r in here),
                "median_gain": float(np.median([1 - r["split_s"] / r["local_s"] for r in here
                                                if r["split_s"] and r["local_s"]]))}
    for label in ("local", "local,split"):
        times = [r["median_s"] for r in timing_rows if r["modes"] == label]
        summary["timing"][label] = {"median_s": float(np.median(times)),
                                    "max_s": float(np.max(times))}
    write_csv("split_mode_share.csv", share_rows, out_dir)
    write_csv("split_mode_timing.csv", timing_rows, out_dir)
    atomic_write_text(Path(out_dir or RESULTS) / "split_mode.json",
                      json.dumps(summary, indent=2) + "\n")
    return summary


def headline(summary) -> list:
    lines = []
    for key, data in summary["share"].items():
        lines.append(f"split mode wins on {data['split_wins']} of {data['instances']} "
                     f"instances ({key} downlink; median gain {max(0.0, 100 * data['median_gain']):.2f} %)")
    both, local = summary["timing"]["local,split"], summary["timing"]["local"]
    lines.append(f"exact P2 at K = N = 200 with both modes: {both['median_s']:.3f} s median, "
                 f"{both['max_s']:.3f} s max (target < 1 s); local only {local['median_s']:.3f} s")
    return lines


def main(argv=None):
    return standalone(__doc__, run, headline, argv)


if __name__ == "__main__":
    main()
