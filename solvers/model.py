"""The numeric cost model shared by every solver: rates, pair latencies, memory feasibility.

Every solver computes a latency through :func:`pair_latency` and a rate through
:func:`rate_bps`, so that two methods that pick the same pairs report bit-identical latencies and
threshold algorithms compare against exactly the values their answer is drawn from.

With the symbols of the specification (blocks n in depth order, devices k)::

    T_kn(b) = C_n / f_k + S_n / r_k(b)
    fixed:   r_k(b) = b * rho_k
    shannon: r_k(b) = b * log2(1 + a_k / b),   a_k = P_k g_k / N_0   (Hz)

The shannon rate grows with b but never exceeds its ceiling a_k / ln 2.

Examples
--------
>>> import numpy as np
>>> inst = Instance(block_flops=np.array([1e9, 2e9]), block_bits=np.array([1e6, 1e6]),
...                 block_memory=np.array([1.0, 2.0]), device_flops_per_s=np.array([1e9, 2e9]),
...                 device_memory=np.array([4.0, 4.0]), total_bandwidth_hz=2e6,
...                 device_spectral_efficiency=np.array([1.0, 2.0]))
>>> inst.latency_matrix(inst.matching_bandwidth())
array([[2. , 3. ],
       [1. , 1.5]])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Instance", "rate_bps", "pair_latency", "LN2"]

LN2 = math.log(2.0)


def rate_bps(bandwidth_hz, *, rate_model, spectral_efficiency=None, snr_hz=None):
    """Uplink rate r_k(b) in bit/s for bandwidths ``bandwidth_hz`` (broadcast with the device arrays).

    ``snr_hz`` is a_k = P_k g_k / N_0. A zero bandwidth gives a zero rate.
    """
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
    if rate_model == "fixed":
        return bandwidth_hz * spectral_efficiency
    if rate_model == "shannon":
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = bandwidth_hz * np.log1p(snr_hz / bandwidth_hz) / LN2
        return np.where(bandwidth_hz > 0, rate, 0.0)
    raise ValueError(f"unknown rate model {rate_model!r}; expected 'fixed' or 'shannon'")


def pair_latency(flops, flops_per_s, bits, rate):
    """T = C / f + S / r, infinite where the rate is zero. Broadcasts like numpy."""
    with np.errstate(divide="ignore"):
        return np.asarray(flops, dtype=float) / flops_per_s + np.asarray(bits, dtype=float) / rate


@dataclass(frozen=True)
class Instance:
    """One allocation instance as plain arrays (SI units), blocks listed in depth order.

    Parameters
    ----------
    block_flops, block_bits, block_memory : (N,) arrays
        C_n (FLOP), S_n = q D_n (bit) and m_n (byte); index 0 is depth 1.
    device_flops_per_s, device_memory : (K,) arrays
        f_k (FLOP/s) and M_k (byte).
    total_bandwidth_hz : float
        B (Hz).
    rate_model : {"fixed", "shannon"}
    device_spectral_efficiency : (K,) array, for ``fixed``
        rho_k (bit/s/Hz).
    device_snr_hz : (K,) array, for ``shannon``
        a_k = P_k g_k / N_0 (Hz).
    device_bandwidth_hz : (K,) array or None
        Per-device bandwidths b_k used by the matching problem when every device has one.
    server_flops_per_s, batch_bits : float or None
        The edge server's throughput and one mini-batch in bits, for the centralized reference.
    """

    block_flops: np.ndarray
    block_bits: np.ndarray
    block_memory: np.ndarray
    device_flops_per_s: np.ndarray
    device_memory: np.ndarray
    total_bandwidth_hz: float
    rate_model: str = "fixed"
    device_spectral_efficiency: np.ndarray | None = None
    device_snr_hz: np.ndarray | None = None
    device_bandwidth_hz: np.ndarray | None = None
    server_flops_per_s: float | None = None
    batch_bits: float | None = None

    @property
    def n_blocks(self) -> int:
        return int(self.block_flops.shape[0])

    @property
    def n_devices(self) -> int:
        return int(self.device_flops_per_s.shape[0])

    def rate(self, bandwidth_hz) -> np.ndarray:
        """r_k(b_k) for every device, ``bandwidth_hz`` of shape (K,) or broadcastable."""
        return rate_bps(bandwidth_hz, rate_model=self.rate_model,
                        spectral_efficiency=self.device_spectral_efficiency,
                        snr_hz=self.device_snr_hz)

    def rate_ceiling_bps(self) -> np.ndarray:
        """sup_b r_k(b): infinite for ``fixed``, a_k / ln 2 for ``shannon``."""
        if self.rate_model == "shannon":
            return self.device_snr_hz / LN2
        return np.full(self.n_devices, np.inf)

    def equal_bandwidth(self) -> np.ndarray:
        """B / N for every device (the share each of the N involved devices gets)."""
        return np.full(self.n_devices, self.total_bandwidth_hz / self.n_blocks)

    def matching_bandwidth(self) -> np.ndarray:
        """The fixed bandwidths of problem P1: b_k when given for all devices, else B / N."""
        if self.device_bandwidth_hz is not None:
            return np.asarray(self.device_bandwidth_hz, dtype=float)
        return self.equal_bandwidth()

    def compute_time_matrix(self) -> np.ndarray:
        """C_n / f_k as a (K, N) array."""
        return self.block_flops[None, :] / self.device_flops_per_s[:, None]

    def memory_feasible(self) -> np.ndarray:
        """(K, N) boolean array of m_n <= M_k."""
        return self.block_memory[None, :] <= self.device_memory[:, None]

    def latency_matrix(self, bandwidth_hz) -> np.ndarray:
        """T_kn(b_k) as a (K, N) array, +inf where the pair is not memory-feasible."""
        rate = self.rate(bandwidth_hz)
        latency = pair_latency(self.block_flops[None, :], self.device_flops_per_s[:, None],
                               self.block_bits[None, :], rate[:, None])
        return np.where(self.memory_feasible(), latency, np.inf)

    def assignment_latency(self, assignment, bandwidth_hz) -> np.ndarray:
        """Latency of each block's device: T_{a(n), n}(b_{a(n)}) for n = 1..N."""
        assignment = np.asarray(assignment, dtype=int)
        rate = self.rate(np.asarray(bandwidth_hz, dtype=float))[assignment]
        return pair_latency(self.block_flops, self.device_flops_per_s[assignment],
                            self.block_bits, rate)
