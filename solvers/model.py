"""The numeric cost model shared by every solver: rates, pair latencies, memory feasibility.

Every solver computes a latency through :func:`pair_latency` and a rate through
:func:`rate_bps`, so that two methods that pick the same pairs report bit-identical latencies and
threshold algorithms compare against exactly the values their answer is drawn from.

With the symbols of the specification (blocks n in depth order, devices k)::

    T_kn(b) = C_n / f_k + S_n / r_k(b)
    fixed:   r_k(b) = b * rho_k
    shannon: r_k(b) = b * log2(1 + a_k / b),   a_k = P_k g_k / N_0   (Hz)

The shannon rate grows with b but never exceeds its ceiling a_k / ln 2.

Energy (optional): a device with compute power P^c_k, transmit power P^tx_k and a per-round
budget E^max_k spends E_kn(b) = P^c_k C_n / f_k + P^tx_k S_n / r_k(b) on block n and must keep
it within E^max_k. The compute part is fixed and the upload part decreases in b, so the budget
is a lower bound on the device's bandwidth (:meth:`Instance.energy_bandwidth_floor`)::

    E_kn(b) <= E^max_k  <=>  r_k(b) >= P^tx_k S_n / (E^max_k - P^c_k C_n / f_k)
                             (impossible when E^max_k <= P^c_k C_n / f_k)

and e_kn, the least such b, is R / rho_k for ``fixed`` and the shannon inverse otherwise. With
C_n and S_n non-decreasing in depth, E_kn(b) is non-decreasing in depth too (for the computed
values as well: products, quotients and sums of non-negative floats are monotone), so a device's
energy-feasible blocks at a fixed bandwidth are a prefix, like its memory-feasible ones.

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

__all__ = ["Instance", "rate_bps", "pair_latency", "pair_energy", "LN2"]

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


def pair_energy(flops, flops_per_s, bits, rate, compute_power_w, tx_power_w):
    """E = P^c C / f + P^tx S / r (J), infinite where the rate is zero. Broadcasts like numpy.

    The operations are those of the reported ``compute_s`` and ``upload_s``, so a reported
    energy and a solver's test of the budget see the same number.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (compute_power_w * (np.asarray(flops, dtype=float) / flops_per_s)
                + tx_power_w * (np.asarray(bits, dtype=float) / rate))


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
    device_compute_power_w, device_tx_power_w : (K,) arrays or None
        P^c_k and P^tx_k (W), NaN where a device does not give it; None when no device does.
    device_energy_budget_j : (K,) array or None
        E^max_k (J) per round, +inf where a device has no budget; None when none has one (then
        every method behaves exactly as without energy).
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
    device_compute_power_w: np.ndarray | None = None
    device_tx_power_w: np.ndarray | None = None
    device_energy_budget_j: np.ndarray | None = None

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

    @property
    def has_energy_budgets(self) -> bool:
        """Whether some device has a finite energy budget E^max_k."""
        return (self.device_energy_budget_j is not None
                and bool(np.isfinite(self.device_energy_budget_j).any()))

    def energy_budget_j(self) -> np.ndarray:
        """E^max_k for every device, +inf where there is none."""
        if self.device_energy_budget_j is None:
            return np.full(self.n_devices, np.inf)
        budget = np.asarray(self.device_energy_budget_j, dtype=float)
        return np.where(np.isfinite(budget), budget, np.inf)

    def energy_matrix(self, bandwidth_hz) -> np.ndarray:
        """E_kn(b_k) as a (K, N) array (NaN where a device's powers are unknown)."""
        rate = self.rate(bandwidth_hz)
        compute_power = (np.full(self.n_devices, np.nan) if self.device_compute_power_w is None
                         else np.asarray(self.device_compute_power_w, dtype=float))
        tx_power = (np.full(self.n_devices, np.nan) if self.device_tx_power_w is None
                    else np.asarray(self.device_tx_power_w, dtype=float))
        return pair_energy(self.block_flops[None, :], self.device_flops_per_s[:, None],
                           self.block_bits[None, :], rate[:, None], compute_power[:, None],
                           tx_power[:, None])

    def energy_feasible(self, bandwidth_hz) -> np.ndarray:
        """(K, N) boolean array of E_kn(b_k) <= E^max_k (True for devices without a budget)."""
        budget = self.energy_budget_j()
        if not self.has_energy_budgets:
            return np.ones((self.n_devices, self.n_blocks), dtype=bool)
        with np.errstate(invalid="ignore"):
            fits = self.energy_matrix(bandwidth_hz) <= budget[:, None]
        return fits | ~np.isfinite(budget)[:, None]

    def energy_bandwidth_floor(self, *, devices=None, blocks=slice(None)) -> np.ndarray | None:
        """e_kn: the least bandwidth with E_kn(b) <= E^max_k, as a (K, N) array.

        0 where the device has no budget, +inf where no bandwidth is enough (the compute energy
        alone exceeds the budget, or the shannon rate ceiling is below the rate it needs). None
        when no device has a budget. ``devices`` (an index array) and ``blocks`` (a slice)
        restrict it to those rows and columns. The value is nudged up until the energy computed
        at it (as every solver and report computes it) is within the budget.
        """
        if not self.has_energy_budgets:
            return None
        rows = slice(None) if devices is None else devices
        budget = self.energy_budget_j()[rows, None]
        flops = self.block_flops[None, blocks]
        bits = self.block_bits[None, blocks]
        speed = self.device_flops_per_s[rows, None]
        compute_power = np.asarray(self.device_compute_power_w, dtype=float)[rows, None]
        tx_power = np.asarray(self.device_tx_power_w, dtype=float)[rows, None]
        budgeted = np.isfinite(budget)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            left_j = budget - compute_power * (flops / speed)
            rate = np.where(budgeted & (left_j > 0), tx_power * bits / left_j, np.inf)
            rate = np.broadcast_to(rate, np.broadcast_shapes(rate.shape, flops.shape,
                                                             speed.shape))
            if self.rate_model == "fixed":
                efficiency = self.device_spectral_efficiency[rows, None]
                floor = rate / efficiency
            else:
                from .bandwidth import shannon_bandwidth_for_rate

                floor = shannon_bandwidth_for_rate(rate, self.device_snr_hz[rows, None])
            floor = np.where(budgeted, floor, 0.0)
            floor = np.where(np.isnan(floor), np.inf, floor)
            quality = (self.device_spectral_efficiency if self.rate_model == "fixed"
                       else self.device_snr_hz)[rows, None]
            for _ in range(8):  # rounding: never report an energy just above the budget
                finite = np.isfinite(floor) & (floor > 0)
                achieved = rate_bps(floor, rate_model=self.rate_model,
                                    spectral_efficiency=quality, snr_hz=quality)
                energy = pair_energy(flops, speed, bits, achieved, compute_power, tx_power)
                over = finite & ~(energy <= budget)
                if not over.any():
                    break
                floor = np.where(over, floor * (1 + 4 * np.finfo(float).eps), floor)
        return floor

    def latency_matrix(self, bandwidth_hz) -> np.ndarray:
        """T_kn(b_k) as a (K, N) array, +inf where the pair is not memory-feasible or would
        exceed the device's energy budget at that bandwidth."""
        rate = self.rate(bandwidth_hz)
        latency = pair_latency(self.block_flops[None, :], self.device_flops_per_s[:, None],
                               self.block_bits[None, :], rate[:, None])
        allowed = self.memory_feasible()
        if self.has_energy_budgets:
            allowed = allowed & self.energy_feasible(bandwidth_hz)
        return np.where(allowed, latency, np.inf)

    def assignment_latency(self, assignment, bandwidth_hz) -> np.ndarray:
        """Latency of each block's device: T_{a(n), n}(b_{a(n)}) for n = 1..N."""
        assignment = np.asarray(assignment, dtype=int)
        rate = self.rate(np.asarray(bandwidth_hz, dtype=float))[assignment]
        return pair_latency(self.block_flops, self.device_flops_per_s[assignment],
                            self.block_bits, rate)
