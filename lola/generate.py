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

Channel (3GPP TR 36.931, Table 6.2.2-1 urban macro-cell model, as used throughout the edge-learning
literature): distance d uniform in [50, 500] m, path loss 128.1 + 37.6 log10(d / 1 km) dB,
Rayleigh fading (power gain |h|^2 ~ Exp(1)), transmit power 0.2 W (23 dBm, the maximum of a
class-3 LTE user equipment, TS 36.101), noise -174 dBm/Hz, 20 MHz in total. For the ``fixed`` rate
model the spectral efficiency is log2(1 + P g / (N0 B / N)), the Shannon efficiency at an equal
share of the bandwidth among the N blocks' devices.

>>> document = generate_scenario(5, seed=1)
>>> len(document["devices"]), document["channel"]["rate_model"]
(5, 'fixed')
"""
from __future__ import annotations

import math

import numpy as np
import yaml

from .scenario import DEFAULT_NOISE_PSD_W_PER_HZ

__all__ = ["DEVICE_CLASSES", "generate_scenario", "draw_channel", "path_loss_db", "to_yaml",
           "scaled_instance", "TX_POWER_W", "DISTANCE_RANGE_M"]

# name: (probability, (effective FLOP/s low, high), (memory bytes low, high))
DEVICE_CLASSES = {
    "phone": (0.4, (0.10 * 1.8e12, 0.35 * 1.8e12), (1.5e9, 4.0e9)),
    "tablet": (0.2, (0.10 * 3.6e12, 0.35 * 3.6e12), (2.0e9, 6.0e9)),
    "laptop": (0.2, (0.10 * 10.9e12, 0.35 * 10.9e12), (3.0e9, 6.0e9)),
    "jetson": (0.2, (0.10 * 1.88e12, 0.35 * 1.88e12), (4.0e9, 12.0e9)),
}
TX_POWER_W = 0.2                  # 23 dBm, 3GPP TS 36.101 power class 3
DISTANCE_RANGE_M = (50.0, 500.0)
DEFAULT_BANDWIDTH_HZ = 20e6
SERVER_FLOPS_PER_S = 0.75 * 19.5e12  # NVIDIA A100, 19.5 TFLOP/s FP32 (data sheet), 75 % utilised


def path_loss_db(distance_m):
    """128.1 + 37.6 log10(d / 1 km) (3GPP TR 36.931 urban macro)."""
    return 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=float) / 1000.0)


def draw_channel(rng, n_devices):
    """Distances (m), path losses (dB), Rayleigh power gains and the linear channel gains."""
    distance = rng.uniform(*DISTANCE_RANGE_M, n_devices)
    loss = path_loss_db(distance)
    fading = rng.exponential(1.0, n_devices)
    return distance, loss, fading, 10 ** (-loss / 10) * fading


def _batch_bytes(profile_info: dict) -> float | None:
    config = profile_info.get("config", {})
    if "batch_size" in config and "sequence_length" in config:
        # int64 input ids and int64 attention mask per token
        return float(config["batch_size"] * config["sequence_length"] * 16)
    return None


def generate_scenario(n_devices: int = 20, *, profile: str = "roberta-base",
                      rate_model: str = "fixed", total_bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ,
                      seed: int = 0, name: str | None = None) -> dict:
    """A scenario document (the YAML/JSON format) with ``n_devices`` random devices."""
    from .profiles import load_profile

    if n_devices < 1:
        raise ValueError("n_devices must be at least 1")
    if rate_model not in ("fixed", "shannon"):
        raise ValueError(f"rate_model must be 'fixed' or 'shannon', got {rate_model!r}")
    if not (math.isfinite(total_bandwidth_hz) and total_bandwidth_hz > 0):
        raise ValueError("total_bandwidth_hz must be a positive finite number")
    loaded = load_profile(profile)
    n_blocks = len(loaded.blocks)
    rng = np.random.default_rng(seed)
    classes = list(DEVICE_CLASSES)
    chosen = rng.choice(len(classes), size=n_devices,
                        p=[DEVICE_CLASSES[c][0] for c in classes])
    _, _, _, gain = draw_channel(rng, n_devices)
    share = total_bandwidth_hz / n_blocks
    counters = dict.fromkeys(classes, 0)
    devices = []
    for k in range(n_devices):
        cls = classes[chosen[k]]
        counters[cls] += 1
        _, speed, memory = DEVICE_CLASSES[cls]
        device = {"name": f"{cls}-{counters[cls]:02d}",
                  "flops_per_s": float(f"{rng.uniform(*speed):.4g}"),
                  "memory_bytes": float(f"{rng.uniform(*memory):.4g}")}
        if rate_model == "fixed":
            snr = TX_POWER_W * gain[k] / (DEFAULT_NOISE_PSD_W_PER_HZ * share)
            device["spectral_efficiency"] = float(f"{math.log2(1 + snr):.4g}")
        else:
            device["tx_power_w"] = TX_POWER_W
            device["channel_gain"] = float(f"{gain[k]:.4g}")
        devices.append(device)
    model = {"profile": profile, "bits_per_param": 32}
    batch = _batch_bytes(loaded.info)
    if batch:
        model["batch_bytes"] = batch
    return {"name": name or f"{profile}-{n_devices}-devices-seed{seed}",
            "model": model, "devices": devices,
            "channel": {"total_bandwidth_hz": float(total_bandwidth_hz), "rate_model": rate_model},
            "server": {"flops_per_s": SERVER_FLOPS_PER_S}}


class _Dumper(yaml.SafeDumper):
    """Floats in short scientific form (3.738e+11), always with a dot so that any YAML 1.1
    reader, not only LoLa's, reads them as numbers."""


def _represent_float(dumper, value):
    text = f"{value:.6g}"
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    elif "e" not in text and "." not in text:
        text += ".0"
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_Dumper.add_representer(float, _represent_float)


def to_yaml(document: dict, *, command: str | None = None) -> str:
    """YAML text of a generated scenario, with a header saying how it was made."""
    header = ["# Generated by LoLa's scenario generator (lola.generate): device classes, path",
              "# loss 128.1 + 37.6 log10(d/km) dB, Rayleigh fading, 0.2 W, -174 dBm/Hz."]
    if command:
        header.append(f"# Command: {command}")
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=100)
    return "\n".join(header) + "\n" + body


def scaled_instance(n_devices: int, n_blocks: int, *, seed: int = 0, rate_model: str = "fixed",
                    profile: str = "roberta-base", total_bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ):
    """A solver instance of any size for scaling studies, straight as arrays.

    N blocks whose FLOPs and memory are interpolated along ``profile``'s depth curve, and K
    devices drawn from the device classes and the channel model above.
    """
    from solvers import Instance

    from .profiles import load_profile

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
    snr_hz = TX_POWER_W * gain / DEFAULT_NOISE_PSD_W_PER_HZ
    efficiency = np.log2(1 + snr_hz / (total_bandwidth_hz / n_blocks))
    return Instance(block_flops=flops, block_bits=bits, block_memory=memory,
                    device_flops_per_s=speed, device_memory=device_memory,
                    total_bandwidth_hz=total_bandwidth_hz, rate_model=rate_model,
                    device_spectral_efficiency=efficiency if rate_model == "fixed" else None,
                    device_snr_hz=snr_hz if rate_model == "shannon" else None,
                    server_flops_per_s=SERVER_FLOPS_PER_S, batch_bits=8 * 32768.0)
