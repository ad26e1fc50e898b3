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

Several blocks per device (specification, section 8): a device k with a set A of blocks whose
deepest block is d runs one step that costs, in FLOP, memory and bits::

    C(A) = C_d + sum_{n in A, n != d} delta_n     m(A) = m_d + sum_{n in A, n != d} mu_n
    S(A) = sum_{n in A} S_n                        T_k(A, b) = C(A) / f_k + S(A) / r_k(b)

with at most c_k blocks. :meth:`Instance.group_costs` computes these sums in one fixed order
(depth order), so every method and every report sees the same numbers; a set of one block
costs exactly C_n, m_n and S_n.

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

from dataclasses import dataclass

import numpy as np

from .rates import LN2, min_bandwidth, rate_bps, shannon_bandwidth_for_rate

__all__ = ["Instance", "rate_bps", "pair_latency", "pair_energy", "LN2"]



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
    block_extra_flops, block_extra_memory : (N,) arrays or None
        delta_n (FLOP) and mu_n (byte) of section 8; None means zero.
    device_max_blocks : (K,) int array or None
        c_k, the most blocks device k trains in a round; None means one each.
    modes : tuple of {"local", "split"}
        The execution modes a pair may use (section 9).
    split_device_flops, split_server_flops, split_memory, cut_bits : (N,) arrays or None
        F^dev_n, F^srv_n (FLOP), m^split_n (byte) and 8 A_n (bit); NaN for a block without
        the split keys.
    device_downlink_bps : (K,) array or None
        R^down_k (bit/s), NaN where a device has none.
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
    block_extra_flops: np.ndarray | None = None
    block_extra_memory: np.ndarray | None = None
    device_max_blocks: np.ndarray | None = None
    modes: tuple = ("local",)
    split_device_flops: np.ndarray | None = None
    split_server_flops: np.ndarray | None = None
    split_memory: np.ndarray | None = None
    cut_bits: np.ndarray | None = None
    device_downlink_bps: np.ndarray | None = None

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
        """B / min(K, N) for every device (the share of each involved device; B / N when
        K >= N, as with one block per device)."""
        return np.full(self.n_devices,
                       self.total_bandwidth_hz / min(self.n_devices, self.n_blocks))

    # -- several blocks per device (section 8) ------------------------------------------------

    def max_blocks(self) -> np.ndarray:
        """c_k for every device (1 where none is given)."""
        if self.device_max_blocks is None:
            return np.ones(self.n_devices, dtype=np.int64)
        return np.asarray(self.device_max_blocks, dtype=np.int64)

    @property
    def several_blocks(self) -> bool:
        """Whether some device may train more than one block (some c_k > 1)."""
        return self.device_max_blocks is not None and bool((self.max_blocks() > 1).any())

    def extra_flops(self) -> np.ndarray:
        return (np.zeros(self.n_blocks) if self.block_extra_flops is None
                else np.asarray(self.block_extra_flops, dtype=float))

    def extra_memory(self) -> np.ndarray:
        return (np.zeros(self.n_blocks) if self.block_extra_memory is None
                else np.asarray(self.block_extra_memory, dtype=float))

    def group_costs(self, assignment):
        """C(A_k), m(A_k), S(A_k) and ``|A_k|`` of every device for an assignment (block -> device).

        Returns four (K,) arrays (zero for devices without blocks). The extras of a device's
        blocks other than its deepest are added in depth order, so the numbers do not depend on
        the method that found the assignment.
        """
        assignment = np.asarray(assignment, dtype=np.int64)
        blocks = np.arange(self.n_blocks)
        count = np.bincount(assignment, minlength=self.n_devices)
        deepest = np.full(self.n_devices, -1, dtype=np.int64)
        np.maximum.at(deepest, assignment, blocks)
        shallower = blocks != deepest[assignment]
        flops = np.zeros(self.n_devices)
        memory = np.zeros(self.n_devices)
        bits = np.zeros(self.n_devices)
        np.add.at(flops, assignment[shallower], self.extra_flops()[shallower])
        np.add.at(memory, assignment[shallower], self.extra_memory()[shallower])
        np.add.at(bits, assignment, self.block_bits)
        used = count > 0
        top = np.where(used, deepest, 0)
        flops = np.where(used, self.block_flops[top] + flops, 0.0)
        memory = np.where(used, self.block_memory[top] + memory, 0.0)
        return flops, memory, bits, count

    def device_latency(self, assignment, bandwidth_hz) -> np.ndarray:
        """T_k(A_k, b_k) of every device with blocks, 0 for the others (a device with one block
        in its best allowed mode at b_k when split mode is allowed)."""
        flops, _, bits, count = self.group_costs(assignment)
        rate = self.rate(np.asarray(bandwidth_hz, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            latency = pair_latency(flops, self.device_flops_per_s, bits, rate)
        if self.has_split or self.modes != ("local",):
            assignment = np.asarray(assignment, dtype=np.int64)
            best, _ = self.pair_modes(bandwidth_hz)
            single = np.full(self.n_devices, np.inf)
            single[assignment] = best[assignment, np.arange(self.n_blocks)]
            latency = np.where(count == 1, single, latency if "local" in self.modes else np.inf)
        return np.where(count > 0, latency, 0.0)

    def allocation_fits(self, assignment, bandwidth_hz=None) -> bool:
        """Caps, memory and (at ``bandwidth_hz``) energy budgets of every device hold; a device
        with one block may use any allowed mode (section 9), one with several runs locally."""
        flops, memory, bits, count = self.group_costs(assignment)
        if (count > self.max_blocks()).any():
            return False
        local_ok = memory <= self.device_memory
        if self.modes != ("local",):
            assignment = np.asarray(assignment, dtype=np.int64)
            single = np.zeros(self.n_devices, dtype=bool)
            fits = self.memory_feasible()[assignment, np.arange(self.n_blocks)]
            single[assignment] = fits
            local_ok = np.where(count == 1, single,
                                (count == 0) | (local_ok & ("local" in self.modes)))
        if not local_ok.all():
            return False
        if bandwidth_hz is None or not self.has_energy_budgets:
            return True
        rate = self.rate(np.asarray(bandwidth_hz, dtype=float))
        energy = pair_energy(flops, self.device_flops_per_s, bits, rate,
                             self.device_compute_power_w, self.device_tx_power_w)
        fits = (count == 0) | ~np.isfinite(self.energy_budget_j()) \
            | (energy <= self.energy_budget_j())
        if self.modes != ("local",):  # a lone block: some allowed mode within the budget
            lone = np.isfinite(self.device_latency(assignment, bandwidth_hz))
            fits = np.where(count == 1, lone, fits)
        return bool(np.all(fits))

    def matching_bandwidth(self) -> np.ndarray:
        """The fixed bandwidths of problem P1: b_k when given for all devices, else B / N."""
        if self.device_bandwidth_hz is not None:
            return np.asarray(self.device_bandwidth_hz, dtype=float)
        return self.equal_bandwidth()

    # -- execution modes (section 9) ------------------------------------------------------------

    @property
    def has_split(self) -> bool:
        """Whether split mode is allowed and some pair can use it."""
        return ("split" in self.modes and self.split_device_flops is not None
                and self.device_downlink_bps is not None and self.server_flops_per_s is not None
                and bool(self.split_allowed().any()))

    def split_allowed(self) -> np.ndarray:
        """(K, N) pairs that can run in split mode: the block has the split keys, the device
        a downlink rate, the server a throughput, and m^split_n <= M_k."""
        if (self.split_device_flops is None or self.device_downlink_bps is None
                or self.server_flops_per_s is None):
            return np.zeros((self.n_devices, self.n_blocks), dtype=bool)
        with np.errstate(invalid="ignore"):
            return (np.isfinite(self.split_device_flops)[None, :]
                    & np.isfinite(self.device_downlink_bps)[:, None]
                    & (self.split_memory[None, :] <= self.device_memory[:, None]))

    def mode_terms(self):
        """Per allowed mode: (mode, fixed time (K, N), payload bits (1, N) or (K, N), allowed
        (K, N), compute FLOPs of the device (1, N)).

        The latency is time + bits / r_k(b), with::

            local: C_n / f_k,                                     S_n,         m_n <= M_k
            split: F^dev_n / f_k + F^srv_n / f_srv + 8 A_n / R^down_k,  8 A_n + S_n,  m^split_n <= M_k
        """
        terms = []
        if "local" in self.modes:
            terms.append(("local", self.compute_time_matrix(), self.block_bits[None, :],
                          self.memory_feasible_local(), self.block_flops[None, :]))
        if "split" in self.modes:
            allowed = self.split_allowed()
            with np.errstate(invalid="ignore", divide="ignore"):
                time = (self.split_device_flops[None, :] / self.device_flops_per_s[:, None]
                        + self.split_server_flops[None, :] / self.server_flops_per_s
                        + self.cut_bits[None, :] / self.device_downlink_bps[:, None]) \
                    if allowed.any() else np.full(allowed.shape, np.inf)
            terms.append(("split", np.where(allowed, time, np.inf),
                          (self.cut_bits + self.block_bits)[None, :] if allowed.any()
                          else self.block_bits[None, :], allowed,
                          (self.split_device_flops if allowed.any()
                           else self.block_flops)[None, :]))
        return terms

    def pair_modes(self, bandwidth_hz):
        """(K, N) latency at ``bandwidth_hz`` and the index (into :meth:`mode_terms`) of the
        best allowed mode of every pair (energy budgets included)."""
        rate = self.rate(bandwidth_hz)[:, None]
        best = np.full((self.n_devices, self.n_blocks), np.inf)
        which = np.zeros(best.shape, dtype=np.int64)
        budget = self.energy_budget_j()[:, None]
        for i, (_, time, bits, allowed, energy_flops) in enumerate(self.mode_terms()):
            with np.errstate(divide="ignore", invalid="ignore"):
                latency = time + bits / rate
                if self.has_energy_budgets:
                    energy = pair_energy(energy_flops, self.device_flops_per_s[:, None], bits,
                                         rate, np.asarray(self.device_compute_power_w)[:, None],
                                         np.asarray(self.device_tx_power_w)[:, None])
                    allowed = allowed & (~np.isfinite(budget) | (energy <= budget))
            latency = np.where(allowed, latency, np.inf)
            better = latency < best
            best = np.where(better, latency, best)
            which = np.where(better, i, which)
        return best, which

    def mode_bandwidth(self, target_s, *, devices=None):
        """(K, N) least bandwidth over the allowed modes for a pair to meet ``target_s``
        (energy floors included), +inf where no mode can."""

        rows = slice(None) if devices is None else devices
        quality = (self.device_spectral_efficiency if self.rate_model == "fixed"
                   else self.device_snr_hz)[rows, None]
        best = None
        index = np.arange(self.n_devices)[rows][:, None]
        for _, time, bits, allowed, energy_flops in self.mode_terms():
            bits_here = np.broadcast_to(bits, time.shape)[rows]
            need = min_bandwidth(target_s, flops=time[rows], flops_per_s=1.0, bits=bits_here,
                                 rate_model=self.rate_model,
                                 spectral_efficiency=quality if self.rate_model == "fixed"
                                 else None,
                                 snr_hz=quality if self.rate_model != "fixed" else None)
            if self.has_energy_budgets:
                floor = self.energy_floor(np.broadcast_to(energy_flops, time.shape)[rows],
                                          bits_here, index)
                need = np.maximum(need, floor)
            need = np.where(allowed[rows], need, np.inf)
            best = need if best is None else np.minimum(best, need)
        return best

    def compute_time_matrix(self) -> np.ndarray:
        """C_n / f_k as a (K, N) array."""
        return self.block_flops[None, :] / self.device_flops_per_s[:, None]

    def memory_feasible_local(self) -> np.ndarray:
        """(K, N) boolean array of m_n <= M_k."""
        return self.block_memory[None, :] <= self.device_memory[:, None]

    def memory_feasible(self) -> np.ndarray:
        """(K, N) pairs whose memory fits in some allowed mode (m_n <= M_k locally)."""
        fits = (self.memory_feasible_local() if "local" in self.modes
                else np.zeros((self.n_devices, self.n_blocks), dtype=bool))
        if "split" in self.modes:
            fits = fits | self.split_allowed()
        return fits

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
        rows = np.arange(self.n_devices) if devices is None else np.asarray(devices)
        return self.energy_floor(self.block_flops[None, blocks], self.block_bits[None, blocks],
                                 rows[:, None])

    def energy_floor(self, flops, bits, devices) -> np.ndarray:
        """The least bandwidth with P^c C / f_k + P^tx S / r_k(b) <= E^max_k, for step costs
        ``flops`` (C) and ``bits`` (S) on the devices of index array ``devices`` (broadcast
        together): 0 without a budget, +inf when no bandwidth is enough. Used for single blocks
        (:meth:`energy_bandwidth_floor`) and for the sets of section 8 alike."""
        flops = np.asarray(flops, dtype=float)
        bits = np.asarray(bits, dtype=float)
        rows = np.asarray(devices)
        budget = self.energy_budget_j()[rows]
        speed = self.device_flops_per_s[rows]
        compute_power = np.asarray(self.device_compute_power_w, dtype=float)[rows]
        tx_power = np.asarray(self.device_tx_power_w, dtype=float)[rows]
        budgeted = np.isfinite(budget)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            left_j = budget - compute_power * (flops / speed)
            rate = np.where(budgeted & (left_j > 0), tx_power * bits / left_j, np.inf)
            rate = np.broadcast_to(rate, np.broadcast_shapes(rate.shape, flops.shape,
                                                             speed.shape))
            if self.rate_model == "fixed":
                efficiency = self.device_spectral_efficiency[rows]
                floor = rate / efficiency
            else:

                floor = shannon_bandwidth_for_rate(rate, self.device_snr_hz[rows])
            floor = np.where(budgeted, floor, 0.0)
            floor = np.where(np.isnan(floor), np.inf, floor)
            quality = (self.device_spectral_efficiency if self.rate_model == "fixed"
                       else self.device_snr_hz)[rows]
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
        exceed the device's energy budget at that bandwidth (the best allowed mode's, when
        split mode is allowed)."""
        if self.has_split or self.modes != ("local",):
            return self.pair_modes(bandwidth_hz)[0]
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
