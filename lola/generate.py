"""Seeded scenario generator: heterogeneous device classes and a wireless uplink.

Every device draws a class, then its effective training throughput and the memory it lends to
fine-tuning uniformly from the class's range, and its uplink from the channel model below.

Device classes. Peak FP32 rates are the vendors' figures; the effective rate of a fine-tuning
step is taken as 10-35 % of peak (an assumption: PyTorch training on mobile and embedded GPUs is
far from peak), and devices lend 25-75 % of their memory.

============  =====================================================  ==============  ===========
class         source of the peak FP32 rate                           effective       memory lent
============  =====================================================  ==============  ===========
phone         Apple A16 Bionic GPU, about 1.8 TFLOP/s (vendor-        1.8e11-6.3e11   1.5-4 GB
              reported); 6 GB RAM
tablet        Apple M2 GPU, 3.6 TFLOP/s (Apple press release, 2022);  3.6e11-1.26e12  2-6 GB
              8 GB RAM
laptop        NVIDIA RTX 3060 Laptop GPU, up to 10.9 TFLOP/s (NVIDIA  1.1e12-3.8e12   3-6 GB
              product page); 6 GB VRAM
jetson        NVIDIA Jetson Orin NX 16 GB, 1.88 TFLOP/s FP32 (Jetson  1.9e11-6.6e11   4-12 GB
              Orin series data sheet); 16 GB shared
============  =====================================================  ==============  ===========

Classes for models of billions of parameters (:data:`LARGE_DEVICE_CLASSES`), drawn only when a
class mix names them, e.g. ``class_mix="large-models"`` (``lola scenario generate --class-mix
large-models``), so that the default mix and every scenario generated before are unchanged. Same
assumptions (10-35 % of peak, 25-75 % of the memory lent):

===============  ===================================================  ==============  =========
class            source of the peak FP32 rate and the memory          effective       lent
===============  ===================================================  ==============  =========
phone-16gb       Qualcomm Snapdragon 8 Gen 3 (Adreno 750), about      4.6e11-1.61e12  3-12 GB
                 4.6 TFLOP/s FP32: an estimate, not a vendor figure
                 (Qualcomm publishes none); 12-16 GB RAM (Samsung
                 Galaxy S24 Ultra 12 GB, OnePlus 12 16 GB)
laptop-16gb      Apple M2 Pro, 19-core GPU: 6.8 TFLOP/s, Apple's 3.6  6.8e11-2.38e12  4-12 GB
                 TFLOP/s for the 10-core M2 GPU (press release, 2022)
                 scaled by the cores; 16 GB unified memory
laptop-32gb      Apple M2 Max, 38-core GPU: 13.6 TFLOP/s, scaled      1.36e12-4.76e12 8-24 GB
                 likewise; 32 GB unified memory
jetson-agx-32gb  NVIDIA Jetson AGX Orin 32 GB: 1792 CUDA cores at     3.3e11-1.17e12  8-24 GB
                 930 MHz, 3.33 TFLOP/s FP32 (cores x 2 x clock, Jetson
                 AGX Orin series data sheet); 32 GB shared
jetson-agx-64gb  NVIDIA Jetson AGX Orin 64 GB: 2048 CUDA cores at     5.3e11-1.86e12  16-48 GB
                 1.3 GHz, 5.32 TFLOP/s FP32 (the same data sheet);
                 64 GB shared
===============  ===================================================  ==============  =========

Power (opt-in, ``energy=True``): every device gets ``tx_power_w`` = 0.2 W (below) and a
``compute_power_w`` that grows linearly with its drawn throughput across its class's power range
(a faster draw stands for a higher power mode), without any random draw, so the other keys are
those of ``energy=False``:

============  ==========  =============================================================
class         W           source
============  ==========  =============================================================
phone         2-5         estimate, not a vendor figure: the sustained (thermally limited)
                          power of a smartphone SoC under a continuous GPU load is a few W;
                          Apple publishes no power figure for the A16
tablet        4-10        estimate, not a vendor figure: a fanless tablet SoC (Apple M2)
                          under a sustained GPU load; Apple publishes no power figure
laptop        60-115      NVIDIA GeForce RTX 3060 Laptop GPU, total graphics power 60-115 W
                          (NVIDIA's product specifications); the GPU alone, not the laptop
jetson        10-25       NVIDIA Jetson Orin NX 16 GB power modes 10 W, 15 W, 25 W (Jetson
                          Orin NX series module data sheet)
phone-16gb    3-8         estimate, not a vendor figure: a flagship phone SoC under a
                          sustained GPU load; Qualcomm publishes no power figure
laptop-16gb   15-35       estimate, not a vendor figure: an M2 Pro package under GPU load;
                          Apple publishes no power figure
laptop-32gb   25-60       estimate, not a vendor figure: an M2 Max package under GPU load
jetson-agx-   15-40       NVIDIA Jetson AGX Orin 32 GB power modes 15 W to 40 W (Jetson AGX
32gb                      Orin series data sheet)
jetson-agx-   15-60       NVIDIA Jetson AGX Orin 64 GB power modes 15 W to 60 W (MAXN; the
64gb                      same data sheet)
============  ==========  =============================================================

``energy_budget_j`` (J per round, the same for every device) adds a budget to every device and
implies ``energy=True``. Both default off, so the documents of earlier versions (and the bundled
default scenario) are unchanged.

Channel (3GPP TR 36.931, Table 6.2.2-1 urban macro-cell model, as used throughout the edge-learning
literature): distance d uniform in [50, 500] m, path loss 128.1 + 37.6 log10(d / 1 km) dB,
Rayleigh fading (power gain |h|^2 ~ Exp(1)), transmit power 0.2 W (23 dBm, the maximum of a
class-3 LTE user equipment, TS 36.101), thermal noise N0 = -174 dBm/Hz raised by the base
station receiver's noise figure F = 5 dB, 20 MHz in total. For the ``fixed`` rate model the
spectral efficiency is

    rho_k = min(log2(1 + P g_k / (N0 F B / N)), rho_max),

the Shannon efficiency at an equal share of the bandwidth among the N blocks' devices, capped at
the top modulation and coding scheme, rho_max = 7.4063 bit/s/Hz (256-QAM). For the ``shannon``
rate model the scenario carries the noise F N0 as ``channel.noise_psd_w_per_hz`` and the rate is
the SPEC's b log2(1 + P g / (F N0 b)), without a cap. Both the noise figure and the cap are
arguments of the generators (``noise_figure_db``, ``max_spectral_efficiency``); None or 0 switches
either off.

Downlink (opt-in, ``downlink=True``, for split mode): the edge server's base station sends at
P_BS = 49 dBm over a 20 MHz downlink carrier (the macro-cell total transmit power for a 20 MHz
carrier, 3GPP TR 36.814 V9.0.0 Table A.2.1.1-2), its power spread evenly over the band and the
band shared evenly among the N blocks' devices; the device's receiver adds a noise figure of
9 dB (the UE value of the same table). The path loss and fading are the device's uplink draw
(reciprocal channel), and the efficiency is capped like the uplink's::

    R^down_k = (B_DL / N) min(log2(1 + P_BS g_k / (N0 F_UE B_DL)), rho_max)

The server's throughput (``server.flops_per_s``) is an NVIDIA A100 at 75 % of its 19.5 TFLOP/s
FP32 peak (data sheet; the utilisation is an assumption), as for ``centralized``.

>>> document = generate_scenario(5, seed=1)
>>> len(document["devices"]), document["channel"]["rate_model"]
(5, 'fixed')
>>> max(d["spectral_efficiency"] for d in document["devices"]) <= MAX_SPECTRAL_EFFICIENCY
True
>>> feasibility_warning(generate_scenario(3, seed=1))
'3 devices for 12 blocks: a device trains at most one block, so at least 12 devices are needed'
"""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import yaml

from ._progress import paused_gc
from .scenario import DEFAULT_NOISE_PSD_W_PER_HZ, Scenario, load_scenario

__all__ = ["DEVICE_CLASSES", "LARGE_DEVICE_CLASSES", "ALL_DEVICE_CLASSES", "CLASS_MIXES",
           "generate_scenario", "draw_channel", "path_loss_db", "to_yaml",
           "to_json", "write_scenario", "scenario_format", "SCENARIO_FORMATS", "dump_yaml",
           "scaled_instance", "feasibility_warning", "receiver_noise_psd_w_per_hz",
           "TX_POWER_W", "DISTANCE_RANGE_M", "NOISE_FIGURE_DB", "MAX_SPECTRAL_EFFICIENCY",
           "DEVICE_POWER_W", "downlink_rate_bps"]

# name: (probability, (effective FLOP/s low, high), (memory bytes low, high))
DEVICE_CLASSES = {
    "phone": (0.4, (0.10 * 1.8e12, 0.35 * 1.8e12), (1.5e9, 4.0e9)),
    "tablet": (0.2, (0.10 * 3.6e12, 0.35 * 3.6e12), (2.0e9, 6.0e9)),
    "laptop": (0.2, (0.10 * 10.9e12, 0.35 * 10.9e12), (3.0e9, 6.0e9)),
    "jetson": (0.2, (0.10 * 1.88e12, 0.35 * 1.88e12), (4.0e9, 12.0e9)),
}
# Devices that can hold models of billions of parameters, drawn only when a class mix names them
# (sources in the module docstring); the first number is the class's weight in "large-models".
LARGE_DEVICE_CLASSES = {
    # Snapdragon 8 Gen 3 (Adreno 750), ~4.6 TFLOP/s FP32 (an estimate), 12-16 GB RAM
    "phone-16gb": (0.2, (0.10 * 4.6e12, 0.35 * 4.6e12), (3.0e9, 12.0e9)),
    # Apple M2 Pro, 19 GPU cores x Apple's 3.6 TFLOP/s / 10 cores for the M2 (press release,
    # 2022) = 6.8 TFLOP/s, 16 GB unified memory
    "laptop-16gb": (0.2, (0.10 * 6.8e12, 0.35 * 6.8e12), (4.0e9, 12.0e9)),
    # Apple M2 Max, 38 GPU cores, likewise 13.6 TFLOP/s, 32 GB unified memory
    "laptop-32gb": (0.2, (0.10 * 13.6e12, 0.35 * 13.6e12), (8.0e9, 24.0e9)),
    # Jetson AGX Orin 32 GB: 1792 CUDA cores x 2 x 930 MHz (Jetson AGX Orin data sheet)
    "jetson-agx-32gb": (0.2, (0.10 * 3.33e12, 0.35 * 3.33e12), (8.0e9, 24.0e9)),
    # Jetson AGX Orin 64 GB: 2048 CUDA cores x 2 x 1.3 GHz (the same data sheet)
    "jetson-agx-64gb": (0.2, (0.10 * 5.32e12, 0.35 * 5.32e12), (16.0e9, 48.0e9)),
}
ALL_DEVICE_CLASSES = {**DEVICE_CLASSES, **LARGE_DEVICE_CLASSES}
# Named class mixes (``class_mix="large-models"``, ``--class-mix large-models``): class weights.
CLASS_MIXES = {"large-models": {name: spec[0] for name, spec in LARGE_DEVICE_CLASSES.items()}}
# name: (compute power at the class's slowest throughput, at its fastest), W; sources in the
# module docstring (phone and tablet are estimates).
DEVICE_POWER_W = {
    "phone": (2.0, 5.0),      # estimate: sustained smartphone SoC power under GPU load
    "tablet": (4.0, 10.0),    # estimate: fanless tablet SoC (Apple M2) under GPU load
    "laptop": (60.0, 115.0),  # RTX 3060 Laptop GPU, 60-115 W total graphics power (NVIDIA)
    "jetson": (10.0, 25.0),   # Jetson Orin NX 16 GB power modes 10/15/25 W (NVIDIA data sheet)
    "phone-16gb": (3.0, 8.0),      # estimate: flagship phone SoC under sustained GPU load
    "laptop-16gb": (15.0, 35.0),   # estimate: Apple M2 Pro package under GPU load
    "laptop-32gb": (25.0, 60.0),   # estimate: Apple M2 Max package under GPU load
    "jetson-agx-32gb": (15.0, 40.0),  # Jetson AGX Orin 32 GB power modes 15-40 W (data sheet)
    "jetson-agx-64gb": (15.0, 60.0),  # Jetson AGX Orin 64 GB power modes 15-60 W (data sheet)
}
TX_POWER_W = 0.2                  # 23 dBm, 3GPP TS 36.101 power class 3
DISTANCE_RANGE_M = (50.0, 500.0)
DEFAULT_BANDWIDTH_HZ = 20e6
# Base station receiver noise figure: 5 dB, the eNB value of the system simulation parameters of
# 3GPP TR 36.814 V9.0.0 (E-UTRA physical layer aspects), Annex A.
NOISE_FIGURE_DB = 5.0
# Highest spectral efficiency of the LTE 256-QAM link adaptation: CQI index 15 (256-QAM, code
# rate 948/1024) of the 4-bit CQI Table 2, 3GPP TS 36.213 Table 7.2.3-2.
MAX_SPECTRAL_EFFICIENCY = 7.4063    # bit/s/Hz
SERVER_FLOPS_PER_S = 0.75 * 19.5e12  # NVIDIA A100, 19.5 TFLOP/s FP32 (data sheet), 75 % utilised
# Downlink (split mode): macro base station total transmit power for a 20 MHz carrier, 49 dBm,
# and the UE receiver noise figure, 9 dB: 3GPP TR 36.814 V9.0.0, Tables A.2.1.1-2 and -3.
DOWNLINK_TX_POWER_W = 10 ** (49 / 10) * 1e-3
DOWNLINK_BANDWIDTH_HZ = 20e6
DEVICE_NOISE_FIGURE_DB = 9.0


def downlink_rate_bps(channel_gain, n_blocks: int, *,
                      max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY):
    """R^down_k = (B_DL / N) min(log2(1 + P_BS g_k / (N0 F_UE B_DL)), rho_max), bit/s (module
    docstring).

    >>> round(float(downlink_rate_bps(1e-12, 12)) / 1e6, 3)  # SNR 21.0 dB: 6.98 bit/s/Hz
    11.64
    """
    noise = receiver_noise_psd_w_per_hz(DEVICE_NOISE_FIGURE_DB) * DOWNLINK_BANDWIDTH_HZ
    efficiency = np.log2(1 + DOWNLINK_TX_POWER_W * np.asarray(channel_gain, float) / noise)
    if max_spectral_efficiency:
        efficiency = np.minimum(efficiency, max_spectral_efficiency)
    return DOWNLINK_BANDWIDTH_HZ / n_blocks * efficiency


def path_loss_db(distance_m):
    """128.1 + 37.6 log10(d / 1 km) (3GPP TR 36.931 urban macro)."""
    return 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=float) / 1000.0)


def draw_channel(rng, n_devices):
    """Distances (m), path losses (dB), Rayleigh power gains and the linear channel gains."""
    distance = rng.uniform(*DISTANCE_RANGE_M, n_devices)
    loss = path_loss_db(distance)
    fading = rng.exponential(1.0, n_devices)
    return distance, loss, fading, 10 ** (-loss / 10) * fading


def receiver_noise_psd_w_per_hz(noise_figure_db: float | None = NOISE_FIGURE_DB) -> float:
    """N0 F: the thermal noise density N0 (-174 dBm/Hz) raised by a noise figure F in dB.

    >>> round(10 * math.log10(receiver_noise_psd_w_per_hz(5.0) / 1e-3), 6)
    -169.0
    """
    return DEFAULT_NOISE_PSD_W_PER_HZ * 10 ** ((noise_figure_db or 0.0) / 10)


def _check_channel_options(noise_figure_db, max_spectral_efficiency):
    """The noise figure in dB (0 when off) and the efficiency cap (None when off), validated."""
    noise_figure_db = 0.0 if noise_figure_db is None else noise_figure_db
    if not (math.isfinite(noise_figure_db) and noise_figure_db >= 0):
        raise ValueError("noise_figure_db must be a finite number of dB, at least 0 "
                         f"(0 or None switches it off), got {noise_figure_db!r}")
    if max_spectral_efficiency in (None, 0):
        return float(noise_figure_db), None
    if not (math.isfinite(max_spectral_efficiency) and max_spectral_efficiency > 0):
        raise ValueError("max_spectral_efficiency must be a positive finite number of bit/s/Hz "
                         f"(0 or None switches the cap off), got {max_spectral_efficiency!r}")
    return float(noise_figure_db), float(max_spectral_efficiency)


def _batch_bytes(profile_info: dict) -> float | None:
    config = profile_info.get("config", {})
    if "batch_size" in config and "sequence_length" in config:
        # int64 input ids and int64 attention mask per token
        return float(config["batch_size"] * config["sequence_length"] * 16)
    return None


def generate_scenario(n_devices: int = 20, *, profile: str = "roberta-base",
                      rate_model: str = "fixed", total_bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ,
                      seed: int = 0, name: str | None = None,
                      noise_figure_db: float | None = NOISE_FIGURE_DB,
                      max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY,
                      energy: bool = False, energy_budget_j: float | None = None,
                      downlink: bool = False, class_mix: dict | None = None) -> dict:
    """A scenario document (the YAML/JSON format) with ``n_devices`` random devices.

    Parameters
    ----------
    n_devices : int
        K, at least 1. Fewer devices than the profile has blocks gives a scenario that no method
        can solve; :func:`feasibility_warning` says so.
    profile, rate_model, total_bandwidth_hz, seed, name
        The bundled profile (or a profile file), ``fixed`` or ``shannon``, B in Hz, the seed of
        every draw, and the scenario's name (default ``{profile}-{K}-devices-seed{seed}``).
    noise_figure_db : float or None, default 5.0 (:data:`NOISE_FIGURE_DB`)
        The base station receiver's noise figure F, in dB, added to the thermal noise N0 of
        -174 dBm/Hz. ``fixed``: it lowers every SNR P g_k / (N0 F B / N) by F dB before the
        efficiency is taken. ``shannon``: the scenario gets ``channel.noise_psd_w_per_hz`` =
        N0 F (6 significant digits) and keeps the drawn ``channel_gain`` unchanged. 0 or None
        switches it off (no ``noise_psd_w_per_hz`` key, the loader's N0).
    max_spectral_efficiency : float or None, default 7.4063 (:data:`MAX_SPECTRAL_EFFICIENCY`)
        ``fixed`` only: rho_max in bit/s/Hz, the efficiency of the top 256-QAM modulation and
        coding scheme; every device's ``spectral_efficiency`` is min(log2(1 + SNR), rho_max).
        0 or None switches the cap off. The ``shannon`` rate b log2(1 + P g / (N0 F b)) of the
        SPEC has no such ceiling and the scenario format has no key for one, so ``shannon``
        scenarios are not capped.
    energy : bool, default False
        Give every device ``compute_power_w`` (its class's power range, module docstring) and
        ``tx_power_w`` (0.2 W), so that ``energy_j`` is reported. Draws nothing: the other keys
        are those of ``energy=False``.
    energy_budget_j : float or None, default None
        Every device's per-round ``energy_budget_j`` (J); implies ``energy=True``.
    downlink : bool, default False
        Give every device ``downlink_bps`` (the downlink model of the module docstring), for
        split mode. Draws nothing: the other keys are those of ``downlink=False``.
    class_mix : mapping of class name to weight, or a name of :data:`CLASS_MIXES`, optional
        The probabilities of the device classes (normalised), e.g. ``{"phone": 1}`` for phones
        only; by default those of :data:`DEVICE_CLASSES` (40 % phones, 20 % each of the rest).
        The classes of :data:`LARGE_DEVICE_CLASSES` are drawn only when the mix names them
        (``"large-models"``: one fifth each).

    Same arguments, same document.
    """
    from .profiles import load_profile

    if n_devices < 1:
        raise ValueError("n_devices must be at least 1")
    if rate_model not in ("fixed", "shannon"):
        raise ValueError(f"rate_model must be 'fixed' or 'shannon', got {rate_model!r}")
    if not (math.isfinite(total_bandwidth_hz) and total_bandwidth_hz > 0):
        raise ValueError("total_bandwidth_hz must be a positive finite number")
    noise_figure_db, cap = _check_channel_options(noise_figure_db, max_spectral_efficiency)
    if energy_budget_j is not None:
        if not (math.isfinite(energy_budget_j) and energy_budget_j > 0):
            raise ValueError("energy_budget_j must be a positive finite number of joules, got "
                             f"{energy_budget_j!r}")
        energy = True
    # Rounded as the file keeps it, so that a document and its YAML describe the same channel.
    noise_psd = (float(f"{receiver_noise_psd_w_per_hz(noise_figure_db):.6g}") if noise_figure_db
                 else DEFAULT_NOISE_PSD_W_PER_HZ)
    loaded = load_profile(profile)
    n_blocks = len(loaded.blocks)
    keys, columns = _device_columns(n_devices, seed=seed, n_blocks=n_blocks,
                                    class_mix=class_mix, rate_model=rate_model,
                                    noise_psd=noise_psd, share=total_bandwidth_hz / n_blocks,
                                    cap=cap, energy=energy, energy_budget_j=energy_budget_j,
                                    downlink=downlink)
    with paused_gc():
        devices = [dict(zip(keys, row)) for row in zip(*columns)]
    model = {"profile": profile, "bits_per_param": 32}
    batch = _batch_bytes(loaded.info)
    if batch:
        model["batch_bytes"] = batch
    channel = {"total_bandwidth_hz": float(total_bandwidth_hz), "rate_model": rate_model}
    if rate_model == "shannon" and noise_figure_db:
        channel["noise_psd_w_per_hz"] = noise_psd
    return {"name": name or f"{profile}-{n_devices}-devices-seed{seed}",
            "model": model, "devices": devices, "channel": channel,
            "server": {"flops_per_s": SERVER_FLOPS_PER_S}}


def _device_columns(n_devices, *, seed, n_blocks, class_mix, rate_model, noise_psd, share, cap,
                    energy, energy_budget_j, downlink):
    """The devices of :func:`generate_scenario` as columns: their keys (in the order of every
    device's mapping) and one list of values per key.

    Vectorised, with the draws and the arithmetic of the per-device loop it replaced, in the same
    order: the class of every device, the channel of every device, then each device's throughput
    and memory in turn (one uniform pair per device), every number rounded to 4 significant
    digits exactly as ``float(f"{x:.4g}")`` does. Same seed, same values, to the bit.
    """
    rng = np.random.default_rng(seed)
    class_mix = _named_mix(class_mix)
    classes = _mix_classes(class_mix)
    chosen = rng.choice(len(classes), size=n_devices, p=_class_probabilities(class_mix))
    _, _, _, gain = draw_channel(rng, n_devices)
    speed_range = np.array([ALL_DEVICE_CLASSES[c][1] for c in classes])[chosen]
    memory_range = np.array([ALL_DEVICE_CLASSES[c][2] for c in classes])[chosen]
    # One (throughput, memory) pair per device, drawn in the order the loop drew them.
    low = np.stack([speed_range[:, 0], memory_range[:, 0]], axis=1)
    high = np.stack([speed_range[:, 1], memory_range[:, 1]], axis=1)
    drawn = rng.uniform(low, high)
    number = np.zeros(n_devices, dtype=np.int64)  # the device's rank within its class, from 1
    for c in range(len(classes)):
        members = np.flatnonzero(chosen == c)
        number[members] = np.arange(1, len(members) + 1)
    names = [f"{classes[c]}-{i:02d}" for c, i in zip(chosen.tolist(), number.tolist())]
    flops = _round_sig(drawn[:, 0])
    keys = ["name", "flops_per_s", "memory_bytes"]
    columns = [names, flops.tolist(), _round_sig(drawn[:, 1]).tolist()]
    constant = [TX_POWER_W] * n_devices
    if rate_model == "fixed":
        snr = TX_POWER_W * gain / (noise_psd * share)
        efficiency = _round_sig(np.fromiter(map(math.log2, (1 + snr).tolist()), float,
                                            count=n_devices))
        if cap is not None:
            efficiency = np.minimum(efficiency, cap)
        keys.append("spectral_efficiency")
        columns.append(efficiency.tolist())
    else:
        keys += ["tx_power_w", "channel_gain"]
        columns += [constant, _round_sig(gain).tolist()]
    if energy:
        power_range = np.array([DEVICE_POWER_W[c] for c in classes])[chosen]
        position = (flops - speed_range[:, 0]) / (speed_range[:, 1] - speed_range[:, 0])
        power = power_range[:, 0] + np.minimum(np.maximum(position, 0.0), 1.0) * (
            power_range[:, 1] - power_range[:, 0])
        keys.append("compute_power_w")
        columns.append(_round_sig(power).tolist())
        if "tx_power_w" not in keys:
            keys.append("tx_power_w")
            columns.append(constant)
        if energy_budget_j is not None:
            keys.append("energy_budget_j")
            columns.append([float(energy_budget_j)] * n_devices)
    if downlink:
        keys.append("downlink_bps")
        columns.append(_round_sig(downlink_rate_bps(gain, n_blocks,
                                                    max_spectral_efficiency=cap)).tolist())
    return keys, columns


def _round_sig(values, digits: int = 4) -> np.ndarray:
    """``float(f"{x:.{digits}g}")`` of every x, vectorised, with the same results to the bit.

    x is scaled by an exact power of ten to t in [10^(digits-1), 10^digits) and rounded to the
    integer d; d 10^e (one correctly rounded product or quotient of exact numbers) is then the
    double nearest the decimal d e(e), which is what ``float`` of the text gives. The values where
    that reasoning could fail (t within 1e-6 of a tie, a power of ten out of the exact range, a
    misjudged exponent, zero, negative or non-finite) go through the text, one by one.

    >>> _round_sig(np.array([3.73849e11, 0.5, 9999.6, 1.23456e-13])).tolist()
    [373800000000.0, 0.5, 10000.0, 1.235e-13]
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        exponent = np.floor(np.log10(x))
        shift = (digits - 1) - exponent  # t = x 10^shift
        bad = ~(np.isfinite(x) & (x > 0) & (np.abs(shift) <= 22))
        shift = np.where(bad, 0, shift).astype(np.int64)
        power = 10.0 ** np.abs(shift)  # exact: 10^k for k <= 22
        up = shift >= 0
        t = np.where(up, x * power, x / power)
        rounded = np.rint(t)
        fraction = t - np.floor(t)
        bad |= (np.abs(fraction - 0.5) < 1e-6) | (t < 10.0 ** (digits - 1)) | \
            (t >= 10.0 ** digits)
        out[:] = np.where(up, rounded / power, rounded * power)
    for i in np.flatnonzero(bad).tolist():
        out[i] = float(f"{x[i]:.{digits}g}")
    return out.reshape(np.shape(values))


def _named_mix(class_mix):
    """A mix given by name (:data:`CLASS_MIXES`) as its mapping; a mapping or None as given."""
    if not isinstance(class_mix, str):
        return class_mix
    if class_mix not in CLASS_MIXES:
        raise ValueError(f"class_mix {class_mix!r}: the named mixes are "
                         f"{', '.join(CLASS_MIXES)} (or give a mapping of class weights)")
    return CLASS_MIXES[class_mix]


def _mix_classes(class_mix) -> list:
    """The classes a mix draws from: those of :data:`DEVICE_CLASSES` (whose draws stay those of
    earlier versions) unless the mix names a class of :data:`LARGE_DEVICE_CLASSES`."""
    if class_mix is None or all(c in DEVICE_CLASSES for c in class_mix):
        return list(DEVICE_CLASSES)
    return list(ALL_DEVICE_CLASSES)


def _class_probabilities(class_mix) -> list:
    """The probability of each class of :func:`_mix_classes`, in its order."""
    if class_mix is None:
        return [DEVICE_CLASSES[c][0] for c in DEVICE_CLASSES]
    classes = _mix_classes(class_mix)
    unknown = [c for c in class_mix if c not in ALL_DEVICE_CLASSES]
    weights = [class_mix.get(c, 0) for c in classes]
    if unknown or any(not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)
                      for w in weights) or sum(weights) <= 0:
        raise ValueError(f"class_mix must give non-negative weights to some of "
                         f"{', '.join(ALL_DEVICE_CLASSES)}, got {class_mix!r}")
    return [w / sum(weights) for w in weights]


def feasibility_warning(scenario) -> str | None:
    """One line saying why no allocation can exist, when that is evident before solving.

    ``scenario`` is a document (as :func:`generate_scenario` returns), a file path or a
    :class:`~lola.scenario.Scenario`. Checked, for both problems in the local mode:

    * enough devices: sum_k c_k >= N, with c_k = 1 (one block per device) unless the device
      sets ``max_blocks``;
    * a block that no device has memory for: m_n > max_k M_k;
    * enough memory for the hungriest blocks together (Hall's condition of the memory-feasible
      matching): for every n, the devices with M_k >= m_n can take the blocks needing at
      least m_n (checked when c_k = 1 for all k, or memory is non-decreasing in depth).

    None means none of these shows, not that a method will find an allocation.
    """
    scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    blocks, devices = scenario.blocks, scenario.devices
    capacity = [getattr(device, "max_blocks", None) or 1 for device in devices]
    one_each = all(c == 1 for c in capacity)
    if sum(capacity) < len(blocks):
        if one_each:
            return (f"{len(devices)} devices for {len(blocks)} blocks: a device trains at most "
                    f"one block, so at least {len(blocks)} devices are needed")
        return (f"{len(devices)} devices train at most {sum(capacity)} blocks together "
                f"(max_blocks), fewer than the {len(blocks)} blocks")
    roomiest = max(devices, key=lambda device: device.memory_bytes)
    hungriest = max(blocks, key=lambda block: block.memory_bytes)
    if hungriest.memory_bytes > roomiest.memory_bytes:
        return (f"block {hungriest.name} needs {hungriest.memory_bytes:.4g} bytes of memory, more "
                f"than any device has (the most is {roomiest.memory_bytes:.4g}, {roomiest.name})")
    monotone = all(a.memory_bytes <= b.memory_bytes for a, b in zip(blocks, blocks[1:]))
    if one_each or monotone:
        needs = sorted((block.memory_bytes for block in blocks), reverse=True)
        memory = np.fromiter((device.memory_bytes for device in devices), float, len(devices))
        weights = np.array(capacity, dtype=float)  # sums exact far beyond any block count
        for count, need in enumerate(needs, start=1):
            room = int(weights[memory >= need].sum())
            if room < count:
                return (f"{count} blocks need at least {need:.4g} bytes of memory each, but the "
                        f"devices with that much memory can take only {room} of them")
    return None


class _Dumper(yaml.SafeDumper):
    """Floats in short scientific form (3.738e+11), always with a dot so that any YAML 1.1
    reader, not only LoLa's, reads them as numbers."""


def _float_text(value) -> str:
    text = f"{value:.6g}"
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    elif "e" not in text and "." not in text:
        text += ".0"
    return text


def _represent_float(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:float", _float_text(value))


_Dumper.add_representer(float, _represent_float)


class _ExactDumper(yaml.SafeDumper):
    """Floats as the shortest text that reads back as the very same number (short scientific
    form for large and small magnitudes, 2.192e+12), always with a dot in the mantissa so that
    YAML 1.1 readers take them as numbers too."""


def _exact_float_text(value) -> str:
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return repr(value)
    mantissa, exponent = np.format_float_scientific(value, unique=True).split("e")
    return f"{mantissa}{'0' if mantissa.endswith('.') else ''}e{exponent}"


def _represent_float_exactly(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:float", _exact_float_text(value))


_ExactDumper.add_representer(float, _represent_float_exactly)


def dump_yaml(document: dict, *, exact_floats: bool = False, progress=None) -> str:
    """YAML text of a scenario document, keys in their order. Floats in 6 significant digits, or
    with ``exact_floats`` the shortest text that reads back as the same number.

    The device list is written line by line (:func:`_device_lines`), the very text PyYAML's
    emitter writes but about a hundred times faster, whenever every device is a flat mapping of
    plain names and numbers (always so for generated scenarios); the rest goes through PyYAML.
    ``progress``, a :class:`lola._progress.Progress`, hears how many devices are written.
    """
    dumper = _ExactDumper if exact_floats else _Dumper
    devices = document.get("devices") if isinstance(document, dict) else None
    lines = _device_lines(devices, _exact_float_text if exact_floats else _float_text,
                          progress=progress) if isinstance(devices, list) and devices else None
    if lines is None:
        return yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=None,
                         width=100)
    placeholder = yaml.dump({**document, "devices": []}, Dumper=dumper, sort_keys=False,
                            default_flow_style=None, width=100)
    marker = "devices: []\n"
    at = placeholder.find(marker)
    if placeholder.count(marker) != 1 or (at > 0 and placeholder[at - 1] != "\n"):
        return yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=None,
                         width=100)
    return placeholder[:at] + "devices:\n" + "".join(lines) + placeholder[at + len(marker):]


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Words a YAML 1.1 reader takes for booleans or null: PyYAML quotes them, so they leave the
# hand-written path (case-insensitively, to be safe).
_RESERVED_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
_WIDTH = 100  # the emitter's line width (dump_yaml's width)


def _plain(text) -> bool:
    return (type(text) is str and _PLAIN_NAME.fullmatch(text) is not None
            and text.lower() not in _RESERVED_WORDS)


def _device_lines(devices, float_text, *, progress=None, chunk: int = 65536,
                  by_column: bool = True):
    """The lines PyYAML writes for a block sequence of flat flow mappings (``- {name: x, a: 1.0,
    ...}``, wrapped after a comma once a line passes 100 columns, continued with two spaces), or
    None when a device is anything else (a value that is not a plain name, an int or a finite
    float; the same mapping twice), which PyYAML then writes itself."""
    if len(set(map(id, devices))) != len(devices):
        return None  # PyYAML would write anchors and aliases
    if set(map(type, devices)) != {dict}:
        return None
    uniform = _uniform_device_lines(devices, float_text) if by_column else None
    if uniform is not None:
        if progress is not None:
            progress.update(len(devices))
        return uniform
    texts = {}  # value -> its text; generated values repeat a lot (4 significant digits)
    good_keys = set()
    lines = []
    for start in range(0, len(devices), chunk):
        for device in devices[start:start + chunk]:
            if type(device) is not dict or not device:
                return None
            line = "- {"
            column = 3
            first = True
            for key, value in device.items():
                if key not in good_keys:
                    if not _plain(key) or len(key) >= 128:
                        return None
                    good_keys.add(key)
                kind = type(value)
                if kind is not float and kind is not int and kind is not str:
                    return None
                text = texts.get((kind, value))
                if text is None:
                    if kind is float:
                        if not math.isfinite(value):
                            return None
                        text = float_text(value)
                    elif kind is int:
                        text = str(value)
                    elif _plain(value):
                        text = value
                    else:
                        return None
                    if value or kind is not float:  # not 0.0 and -0.0 alike
                        texts[(kind, value)] = text
                if first:
                    item = f"{key}: {text}"
                    first = False
                else:
                    line += ","
                    column += 1
                    if column > _WIDTH:
                        line += "\n  "
                        column = 2
                        item = f"{key}: {text}"
                    else:
                        item = f" {key}: {text}"
                line += item
                column += len(item)
            lines.append(line + "}\n")
        if progress is not None:
            progress.update(min(start + chunk, len(devices)))
    return lines


def _uniform_device_lines(devices, float_text):
    """:func:`_device_lines` for devices that all have the keys of the first, in its order (a
    generated list), a column at a time: each distinct value is written once, and the lines that
    are too long to stay on one line go through :func:`_device_lines` one by one. None when the
    devices differ in their keys or a column mixes what the cache would confuse (ints and
    floats, zeros)."""
    keys = tuple(devices[0])
    if not keys or set(map(tuple, devices)) != {keys}:
        return None
    if not all(_plain(key) and len(key) < 128 for key in keys):
        return None
    item_columns = []
    for key in keys:
        column = [device[key] for device in devices]
        kinds = set(map(type, column))
        if not kinds <= {float, int, str}:
            return None
        distinct = set(column)
        if kinds == {float}:
            if 0.0 in distinct or not all(map(math.isfinite, distinct)):
                return None
            texts = {value: f"{key}: {float_text(value)}" for value in distinct}
        elif kinds == {int}:
            texts = {value: f"{key}: {value}" for value in distinct}
        elif kinds == {str}:
            if not all(map(_plain, distinct)):
                return None
            texts = {value: f"{key}: {value}" for value in distinct}
        else:
            return None
        item_columns.append(list(map(texts.__getitem__, column)))
    lines = ["- {" + ", ".join(items) + "}\n" for items in zip(*item_columns)]
    for i, line in enumerate(lines):
        if len(line) > _WIDTH + 2:  # a comma may pass column 100: PyYAML wraps there
            lines[i] = _device_lines([devices[i]], float_text, by_column=False)[0]
    return lines


def to_json(document: dict, *, progress=None, chunk: int = 65536) -> str:
    """JSON text of a scenario document, keys in their order: one top-level key a line, one
    device a line. Floats are written exactly (Python's shortest repr)."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    parts = []
    for key, value in document.items():
        if key == "devices" and isinstance(value, list) and value:
            rows = []
            for start in range(0, len(value), chunk):
                rows.extend(map(encode, value[start:start + chunk]))
                if progress is not None:
                    progress.update(min(start + chunk, len(value)))
            text = "[\n    " + ",\n    ".join(rows) + "\n  ]"
        else:
            text = encode(value)
        parts.append(f"  {encode(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


SCENARIO_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def scenario_format(path) -> str:
    """``yaml`` or ``json``, from the file's extension (.yaml, .yml, .json, in any case); a
    ``ValueError`` naming the path for any other.

    >>> scenario_format("big.JSON"), scenario_format("lab.yml")
    ('json', 'yaml')
    """
    suffix = os.path.splitext(os.fspath(path))[1]
    try:
        return SCENARIO_FORMATS[suffix.lower()]
    except KeyError:
        shown = f"extension {suffix!r}" if suffix else "no extension"
        raise ValueError(f"{os.fspath(path)}: {shown}: a scenario file ends in .yaml, .yml or "
                         f".json") from None


def write_scenario(path, document: dict, *, command: str | None = None,
                   noise_figure_db: float | None = NOISE_FIGURE_DB,
                   max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY,
                   progress=None) -> str:
    """The text of ``document`` in the format of ``path``'s extension (:func:`scenario_format`):
    JSON for .json, else YAML with :func:`to_yaml`'s header. Writes nothing: the caller does."""
    if scenario_format(path) == "json":
        return to_json(document, progress=progress)
    return to_yaml(document, command=command, noise_figure_db=noise_figure_db,
                   max_spectral_efficiency=max_spectral_efficiency, progress=progress)


def to_yaml(document: dict, *, command: str | None = None,
            noise_figure_db: float | None = NOISE_FIGURE_DB,
            max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY,
            progress=None) -> str:
    """YAML text of a generated scenario, with a header saying how it was made.

    ``noise_figure_db`` and ``max_spectral_efficiency`` are those the document was generated with
    (the generator's defaults unless given); the header states them.
    """
    noise_figure_db, cap = _check_channel_options(noise_figure_db, max_spectral_efficiency)
    noise = f"-174 dBm/Hz + {noise_figure_db:g} dB noise figure" if noise_figure_db else \
        "-174 dBm/Hz"
    if document.get("channel", {}).get("rate_model", "fixed") != "fixed":
        ceiling = "no efficiency cap (shannon)"
    elif cap is None:
        ceiling = "no efficiency cap"
    else:
        ceiling = f"efficiency at most {cap:g} bit/s/Hz"
    header = ["# Generated by LoLa's scenario generator (lola.generate): device classes, path",
              "# loss 128.1 + 37.6 log10(d/km) dB, Rayleigh fading, 0.2 W,",
              f"# {noise}, {ceiling}."]
    if command:
        header.append(f"# Command: {command}")
    return "\n".join(header) + "\n" + dump_yaml(document, progress=progress)


def scaled_instance(n_devices: int, n_blocks: int, *, seed: int = 0, rate_model: str = "fixed",
                    profile: str = "roberta-base", total_bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ,
                    noise_figure_db: float | None = NOISE_FIGURE_DB,
                    max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY):
    """A solver instance of any size for scaling studies, straight as arrays.

    N blocks whose FLOPs and memory are interpolated along ``profile``'s depth curve, and K
    devices drawn from the device classes and the channel model above: ``device_snr_hz`` is
    P g_k / (N0 F) for ``shannon``, and ``device_spectral_efficiency`` is
    min(log2(1 + P g_k / (N0 F B / N)), rho_max) for ``fixed``. ``noise_figure_db`` (F, default
    5 dB) and ``max_spectral_efficiency`` (rho_max, default 7.4063 bit/s/Hz, ``fixed`` only)
    are those of :func:`generate_scenario`; None or 0 switches either off.
    """
    from solvers import Instance

    from .profiles import load_profile

    noise_figure_db, cap = _check_channel_options(noise_figure_db, max_spectral_efficiency)
    base = load_profile(profile).blocks
    depth = np.linspace(0, len(base) - 1, n_blocks)
    flops = np.interp(depth, np.arange(len(base)), [b.flops for b in base])
    memory = np.interp(depth, np.arange(len(base)), [b.memory_bytes for b in base])
    bits = np.full(n_blocks, 32.0 * base[0].params)
    rng = np.random.default_rng(seed)
    classes = list(DEVICE_CLASSES)
    chosen = rng.choice(len(classes), size=n_devices, p=[DEVICE_CLASSES[c][0] for c in classes])
    low = np.array([DEVICE_CLASSES[c][1][0] for c in classes])[chosen]
    high = np.array([DEVICE_CLASSES[c][1][1] for c in classes])[chosen]
    speed = rng.uniform(low, high)
    low = np.array([DEVICE_CLASSES[c][2][0] for c in classes])[chosen]
    high = np.array([DEVICE_CLASSES[c][2][1] for c in classes])[chosen]
    device_memory = rng.uniform(low, high)
    _, _, _, gain = draw_channel(rng, n_devices)
    snr_hz = TX_POWER_W * gain / receiver_noise_psd_w_per_hz(noise_figure_db)
    efficiency = np.log2(1 + snr_hz / (total_bandwidth_hz / n_blocks))
    if cap is not None:
        efficiency = np.minimum(efficiency, cap)
    return Instance(block_flops=flops, block_bits=bits, block_memory=memory,
                    device_flops_per_s=speed, device_memory=device_memory,
                    total_bandwidth_hz=total_bandwidth_hz, rate_model=rate_model,
                    device_spectral_efficiency=efficiency if rate_model == "fixed" else None,
                    device_snr_hz=snr_hz if rate_model == "shannon" else None,
                    server_flops_per_s=SERVER_FLOPS_PER_S, batch_bits=8 * 32768.0)
