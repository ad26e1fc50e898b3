"""Shared pieces of the benchmarks: default-like random instances, timing, atomic CSV."""
from __future__ import annotations

import csv
import io
import statistics
import time
from pathlib import Path

import numpy as np

from lola._io import atomic_write_text
from lola.profiles import load_profile
from solvers import Instance

RESULTS = Path(__file__).resolve().parent / "results"


def default_like_instance(n_devices, n_blocks, *, seed=0, rate_model="fixed",
                          profile="roberta-base") -> Instance:
    """Devices like the default scenario's classes; N blocks interpolated along the profile.

    Throughput log-uniform in [3e11, 3.5e12] FLOP/s, memory in [1, 12] GB, spectral efficiency in
    [1, 7] bit/s/Hz (or Rayleigh-faded path loss for shannon), 20 MHz in total.
    """
    rng = np.random.default_rng(seed)
    base = load_profile(profile).blocks
    depth = np.linspace(0, len(base) - 1, n_blocks)
    flops = np.interp(depth, np.arange(len(base)), [b.flops for b in base])
    memory = np.interp(depth, np.arange(len(base)), [b.memory_bytes for b in base])
    bits = np.full(n_blocks, 32.0 * base[0].params)
    speed = np.exp(rng.uniform(np.log(3e11), np.log(3.5e12), n_devices))
    device_memory = rng.uniform(1e9, 12e9, n_devices)
    snr = efficiency = None
    if rate_model == "fixed":
        efficiency = rng.uniform(1.0, 7.0, n_devices)
    else:  # 0.2 W, 128.1 + 37.6 log10(d km) dB path loss, d in [50, 500] m, Rayleigh fading
        distance_km = rng.uniform(0.05, 0.5, n_devices)
        gain = 10 ** (-(128.1 + 37.6 * np.log10(distance_km)) / 10) * rng.exponential(1.0, n_devices)
        snr = 0.2 * gain / (10 ** (-17.4) * 1e-3)
    return Instance(block_flops=flops, block_bits=bits, block_memory=memory,
                    device_flops_per_s=speed, device_memory=device_memory,
                    total_bandwidth_hz=2e7, rate_model=rate_model,
                    device_spectral_efficiency=efficiency, device_snr_hz=snr,
                    server_flops_per_s=1.5e13, batch_bits=8 * 32768.0)


def median_time(function, repeats):
    """Median wall time of ``repeats`` calls, and the last return value."""
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def write_csv(name, rows) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(RESULTS / name, buffer.getvalue())


def print_table(rows):
    from lola.report import format_table
    headers = list(rows[0])
    print(format_table(headers, [[_fmt(row[h]) for h in headers] for row in rows]))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
