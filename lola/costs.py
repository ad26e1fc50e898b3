"""The latency and memory model of the specification (section 2), tied to a scenario.

    compute time      C_n / f_k                      (s)
    payload           S_n = q D_n                    (bit)
    rate, fixed       r_k(b) = b rho_k               (bit/s)
    rate, shannon     r_k(b) = b log2(1 + P_k g_k / (N_0 b))
    latency           T_kn(b) = C_n / f_k + S_n / r_k(b)
    memory-feasible   m_n <= M_k
    energy            E_k = P^c_k compute_s + P^tx_k upload_s   (J, section 10)

The arithmetic itself lives in :mod:`solvers.model` so that the solvers and the reports compute
bit-identical numbers; this module turns a :class:`~lola.scenario.Scenario` into those arrays.
"""
from __future__ import annotations

import numpy as np

from solvers.model import Instance, pair_latency, rate_bps

from .scenario import Block, Channel, Device, Scenario

__all__ = ["to_instance", "rate_bps_of", "latency_s", "compute_time_s", "upload_time_s",
           "compute_time_of", "upload_time_of", "latency_of",
           "snr_hz", "rate_ceiling_bps", "energy_j"]


def snr_hz(device: Device, channel: Channel) -> float:
    """a_k = P_k g_k / N_0 in Hz (shannon model)."""
    return device.tx_power_w * device.channel_gain / channel.noise_psd_w_per_hz


def rate_ceiling_bps(device: Device, channel: Channel) -> float:
    """The supremum over b of r_k(b): infinite for ``fixed``, a_k / ln 2 for ``shannon``."""
    if channel.rate_model == "shannon":
        return snr_hz(device, channel) / np.log(2.0)
    return float("inf")


def rate_bps_of(device: Device, channel: Channel, bandwidth_hz: float) -> float:
    """r_k(b) for one device."""
    if channel.rate_model == "shannon":
        return float(rate_bps(bandwidth_hz, rate_model="shannon",
                              snr_hz=snr_hz(device, channel)))
    return float(rate_bps(bandwidth_hz, rate_model="fixed",
                          spectral_efficiency=device.spectral_efficiency))


def compute_time_s(block: Block, device: Device) -> float:
    return block.flops / device.flops_per_s


def compute_time_of(flops: float, device: Device) -> float:
    """C / f_k for a step of ``flops`` (a block, or a set's C(A) of section 8)."""
    return float(np.float64(flops) / device.flops_per_s)


def upload_time_of(bits: float, device: Device, channel: Channel, bandwidth_hz: float) -> float:
    """S / r_k(b) for a payload of ``bits`` (a block's S_n, or a set's S(A))."""
    with np.errstate(divide="ignore"):
        return float(np.float64(bits) / rate_bps_of(device, channel, bandwidth_hz))


def latency_of(flops: float, bits: float, device: Device, channel: Channel,
               bandwidth_hz: float) -> float:
    """C / f_k + S / r_k(b), computed exactly as the solvers compute it."""
    return float(pair_latency(flops, device.flops_per_s, bits,
                              rate_bps_of(device, channel, bandwidth_hz)))


def upload_time_s(block: Block, device: Device, channel: Channel, bandwidth_hz: float) -> float:
    with np.errstate(divide="ignore"):
        return float(np.float64(block.payload_bits) / rate_bps_of(device, channel, bandwidth_hz))


def latency_s(block: Block, device: Device, channel: Channel, bandwidth_hz: float) -> float:
    """T_kn(b), computed exactly as the solvers compute it."""
    return float(pair_latency(block.flops, device.flops_per_s, block.payload_bits,
                              rate_bps_of(device, channel, bandwidth_hz)))


def energy_j(device: Device, compute_s: float, upload_s: float) -> float | None:
    """E_k = compute_power_w compute_s + tx_power_w upload_s, or None when a power is unknown.

    A device that computes nothing (compute_s = 0, the uploaders of ``centralized``) needs only
    its transmit power. The operations are those of :func:`solvers.model.pair_energy`.
    """
    if device.tx_power_w is None or (device.compute_power_w is None and compute_s != 0):
        return None
    compute_power = device.compute_power_w or 0.0
    return float(compute_power * compute_s + device.tx_power_w * upload_s)


def to_instance(scenario: Scenario, *, max_blocks: int = 1,
                modes: tuple = ("local",)) -> Instance:
    """The scenario as the arrays the solvers work on (blocks in depth order).

    ``max_blocks`` is c_k for every device that does not set its own ``max_blocks``
    (section 8); with every c_k = 1 the instance is the one-block-per-device problem.
    ``modes`` are the execution modes the pairs may use (section 9); split mode needs the
    blocks' split keys, the devices' ``downlink_bps`` and the server's ``flops_per_s``, and a
    pair without them stays local.
    """
    blocks, devices, channel = scenario.blocks, scenario.devices, scenario.channel

    def column(objects, attribute):
        return np.array([getattr(o, attribute) for o in objects], dtype=float)

    shannon = channel.rate_model == "shannon"
    bandwidths = [d.bandwidth_hz for d in devices]

    def optional_column(attribute, missing):
        values = [getattr(d, attribute) for d in devices]
        if all(v is None for v in values):
            return None
        return np.array([missing if v is None else v for v in values], dtype=float)
    return Instance(
        block_flops=column(blocks, "flops"),
        block_bits=column(blocks, "payload_bits"),
        block_memory=column(blocks, "memory_bytes"),
        device_flops_per_s=column(devices, "flops_per_s"),
        device_memory=column(devices, "memory_bytes"),
        total_bandwidth_hz=channel.total_bandwidth_hz,
        rate_model=channel.rate_model,
        device_spectral_efficiency=None if shannon else column(devices, "spectral_efficiency"),
        device_snr_hz=np.array([snr_hz(d, channel) for d in devices]) if shannon else None,
        device_bandwidth_hz=(np.array(bandwidths, dtype=float)
                             if all(b is not None for b in bandwidths) else None),
        server_flops_per_s=scenario.server.flops_per_s if scenario.server else None,
        batch_bits=8 * scenario.model.batch_bytes if scenario.model.batch_bytes else None,
        device_compute_power_w=optional_column("compute_power_w", np.nan),
        device_tx_power_w=optional_column("tx_power_w", np.nan),
        device_energy_budget_j=optional_column("energy_budget_j", np.inf),
        block_extra_flops=column(blocks, "extra_flops"),
        block_extra_memory=column(blocks, "extra_memory_bytes"),
        # in split mode only, every device trains one block whatever its cap
        device_max_blocks=np.array([1 if "local" not in modes else
                                    max_blocks if d.max_blocks is None else d.max_blocks
                                    for d in devices], dtype=np.int64),
        modes=tuple(modes),
        **_split_arrays(blocks, devices),
    )


def _split_arrays(blocks, devices) -> dict:
    """The section 9 arrays (NaN where a block or device lacks its keys), or {} if none has."""
    if not any(b.splittable for b in blocks):
        return {}

    def of(objects, attribute, scale=1.0):
        return np.array([np.nan if getattr(o, attribute) is None
                         else scale * getattr(o, attribute) for o in objects], dtype=float)
    downlink = of(devices, "downlink_bps")
    return {"split_device_flops": of(blocks, "split_device_flops"),
            "split_server_flops": of(blocks, "split_server_flops"),
            "split_memory": of(blocks, "split_memory_bytes"),
            "cut_bits": of(blocks, "cut_bytes", 8.0),
            "device_downlink_bps": None if np.isnan(downlink).all() else downlink}
