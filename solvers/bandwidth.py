"""Bandwidth as a function of a latency target, and the optimal split for a fixed assignment.

For a pair (k, n) and a round-latency target T the upload must fit in tau = T - C_n / f_k, so
the device needs the rate R = S_n / tau and the least bandwidth with r_k(b) >= R:

    fixed:    b = R / rho_k
    shannon:  b log2(1 + a_k / b) = R, solvable iff R < a_k / ln 2 (the rate ceiling). With
              s = R ln 2 / a_k in (0, 1):  b = a_k / (y - 1),  y = -W_{-1}(-s e^{-s}) / s,
              W_{-1} the lower branch of the Lambert W function; two Newton steps on
              b ln(1 + a/b) = R ln 2 polish the value where W loses digits (s near 1).

It is infinite when tau <= 0 or the rate is out of reach, and non-increasing in T.

For a fixed assignment, the best split equalises finishing times: the least T with
sum_k b_k(T) <= B, found by bisection on T (:func:`optimal_split`).

With energy budgets a device also needs at least e_kn (:meth:`~solvers.model.Instance.
energy_bandwidth_floor`), a floor that does not depend on T, so a pair meets T within its budget
iff it gets max(w_kn(T), e_kn): still non-increasing in T, and the split is the least T with
sum_k max(w_k(T), e_k) <= B (devices whose floor binds finish early and keep it).

>>> import numpy as np
>>> float(min_bandwidth(2.0, flops=1.0, flops_per_s=1.0, bits=4.0, rate_model="fixed",
...                     spectral_efficiency=2.0))
2.0
"""
from __future__ import annotations

import numpy as np

from .rates import LN2, min_bandwidth, shannon_bandwidth_for_rate

__all__ = ["min_bandwidth", "shannon_bandwidth_for_rate", "optimal_split", "least_target"]


def _mode_need(instance, assignments, efficiency, snr):
    """need(T) of :func:`optimal_split` when several execution modes are allowed: each pair's
    least bandwidth over its allowed modes (section 9), and each row's compute-only latency."""
    columns = np.arange(assignments.shape[1])[None, :]
    terms = []
    for _, time, bits, allowed, energy_flops in instance.mode_terms():
        time_here = time[assignments, columns]
        bits_here = np.broadcast_to(bits, time.shape)[assignments, columns]
        ok = allowed[assignments, columns]
        floor = None
        if instance.has_energy_budgets:
            floor = instance.energy_floor(
                np.broadcast_to(energy_flops, time.shape)[assignments, columns], bits_here,
                assignments)
        terms.append((time_here, bits_here, ok, floor))

    def need(target):
        best = None
        for time_here, bits_here, ok, floor in terms:
            value = min_bandwidth(target[:, None], flops=time_here, flops_per_s=1.0,
                                  bits=bits_here, rate_model=instance.rate_model,
                                  spectral_efficiency=efficiency, snr_hz=snr)
            if floor is not None:
                value = np.maximum(value, floor)
            value = np.where(ok, value, np.inf)
            best = value if best is None else np.minimum(best, value)
        return best
    compute = np.min([np.where(ok, t, np.inf) for t, _, ok, _ in terms], axis=0).max(axis=1)
    return need, compute


def optimal_split(instance, assignments, *, rtol=1e-12, max_iterations=200):
    """Best bandwidth split for each of M assignments, by bisection on the round latency.

    Parameters
    ----------
    instance : Instance
    assignments : (M, N) int array
        Device of each block, one assignment per row (memory feasibility is not checked here).

    Returns
    -------
    latency_s : (M,) array
        The least round latency each assignment reaches with sum_k b_k <= B (inf if none).
    bandwidth_hz : (M, N) array
        The bandwidth of the device of each block, with sum <= B.
    """
    assignments = np.atleast_2d(np.asarray(assignments, dtype=np.int64))
    flops = instance.block_flops[None, :]
    speed = instance.device_flops_per_s[assignments]
    efficiency = (None if instance.device_spectral_efficiency is None
                  else instance.device_spectral_efficiency[assignments])
    snr = None if instance.device_snr_hz is None else instance.device_snr_hz[assignments]
    bits = instance.block_bits[None, :]
    budget = instance.total_bandwidth_hz
    energy_floor = None
    if instance.has_energy_budgets:
        used = np.unique(assignments)  # the floor of the devices in play only
        floor = instance.energy_bandwidth_floor(devices=used)
        energy_floor = floor[np.searchsorted(used, assignments),
                             np.arange(assignments.shape[1])[None, :]]

    def local_need(target):
        need_hz = min_bandwidth(target[:, None], flops=flops, flops_per_s=speed, bits=bits,
                                rate_model=instance.rate_model, spectral_efficiency=efficiency,
                                snr_hz=snr)
        return need_hz if energy_floor is None else np.maximum(need_hz, energy_floor)

    need, compute = local_need, (flops / speed).max(axis=1)
    if instance.modes != ("local",):
        need, compute = _mode_need(instance, assignments, efficiency, snr)
    lo = compute.copy()  # infeasible: no time left to upload
    # Equal shares B / N give a feasible target, when the rates can carry the payloads at all.
    share = np.full(assignments.shape, budget / assignments.shape[1])
    rate = (share * efficiency if instance.rate_model == "fixed"
            else share * np.log1p(snr / share) / LN2)
    with np.errstate(divide="ignore"):
        hi = (flops / speed + bits / rate).max(axis=1) * (1 + 1e-9)  # margin for rounding
    if instance.modes != ("local",):
        hi = np.maximum(2 * compute, compute + 1e-9)  # the doubling below finds a feasible end
    if energy_floor is not None:
        # The floors alone overflow B: no target is feasible. Otherwise the equal-share target
        # may still fall short of a floor; the doubling below then moves it up (w -> 0 as T
        # grows, so the total tends to sum_k e_k < B).
        if instance.modes == ("local",):
            hi = np.where(energy_floor.sum(axis=1) < budget, hi, np.inf)
    return least_target(need, lo, hi, budget, rtol=rtol, max_iterations=max_iterations,
                        doublings=60)


def least_target(need, lo, hi, budget, *, rtol, max_iterations, doublings):
    """The least round latency T of each row with sum(need(T)) <= B, and need at it.

    ``need`` maps targets (M,) to bandwidths (M, K), non-increasing in T; ``lo`` (M,) are
    infeasible targets (or 0) and ``hi`` (M,) starting guesses. Each short ``hi`` moves to
    lo + 2 (hi - lo) up to ``doublings`` times (rows that stay short are infeasible: +inf),
    then a bisection closes [lo, hi] to ``rtol``. Returns (latency_s (M,), bandwidth (M, K)).
    """
    hi = np.asarray(hi, dtype=float).copy()
    lo = np.asarray(lo, dtype=float).copy()
    base = lo.copy()
    for _ in range(doublings):
        short = np.isfinite(hi) & ~(need(hi).sum(axis=1) <= budget)
        if not short.any():
            break
        with np.errstate(over="ignore"):  # a target that overflows is no target: inf below
            hi = np.where(short, base + 2 * (hi - base), hi)
    hi = np.where(need(hi).sum(axis=1) <= budget, hi, np.inf)
    finite = np.isfinite(hi)
    for _ in range(max_iterations):
        open_ = finite & (hi - lo > rtol * hi)
        if not open_.any():
            break
        mid = np.where(open_, 0.5 * (lo + hi), hi)
        ok = need(mid).sum(axis=1) <= budget
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid, lo)
    bandwidth = np.where(finite[:, None], need(np.where(finite, hi, lo + 1)), np.inf)
    return np.where(finite, hi, np.inf), bandwidth
