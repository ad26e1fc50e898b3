"""Rates and the bandwidth a rate needs: the leaf of the solvers' cost model.

    fixed:   r_k(b) = b * rho_k
    shannon: r_k(b) = b * log2(1 + a_k / b),   a_k = P_k g_k / N_0   (Hz)

:func:`rate_bps` is every solver's rate; :func:`min_bandwidth` the least bandwidth that lets a
pair finish within a latency target, and :func:`shannon_bandwidth_for_rate` the inverse of the
shannon rate (:mod:`solvers.bandwidth` explains both). This module imports nothing of
``solvers``, so that the instance (:mod:`solvers.model`) and the bandwidth split
(:mod:`solvers.bandwidth`) can both build on it.

>>> float(min_bandwidth(2.0, flops=1.0, flops_per_s=1.0, bits=4.0, rate_model="fixed",
...                     spectral_efficiency=2.0))
2.0
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["LN2", "rate_bps", "min_bandwidth", "shannon_bandwidth_for_rate"]

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


def shannon_bandwidth_for_rate(rate_bps, snr_hz):
    """Least b with b log2(1 + a / b) >= R (inf when R >= a / ln 2). Broadcasts.

    Works in x = a / b, the root of G(x) = ln(1 + x) / x - s with s = R ln 2 / a: the Lambert W
    formula (or, within 1e-4 of the ceiling where W cancels, the series x = 2e + 8e^2/3 with
    e = 1 - s) starts Newton's method on G, which is decreasing and convex, so the iteration
    cannot wander off. A last check nudges b up until the computed rate reaches R, so the
    bandwidth returned is never short of the target because of rounding.
    """
    rate_bps, snr_hz = np.broadcast_arrays(np.asarray(rate_bps, float), np.asarray(snr_hz, float))
    s = rate_bps * LN2 / snr_hz
    result = np.full(s.shape, np.inf)
    reachable = (s < 1) & (s > 0)
    result[s <= 0] = 0.0
    if not reachable.any():
        return result
    sr, a, rate = s[reachable], snr_hz[reachable], rate_bps[reachable]
    from scipy.special import lambertw  # here: scipy's import is slow, shannon only

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        x = -np.real(lambertw(-sr * np.exp(-sr), k=-1)) / sr - 1.0
        near_ceiling = (1.0 - sr < 1e-4) | ~np.isfinite(x) | (x <= 0)
        e = 1.0 - sr
        x = np.where(near_ceiling, 2 * e + 8.0 / 3.0 * e * e, x)
        for _ in range(6):
            log_term = np.log1p(x)
            value = log_term / x - sr
            slope = (x / (1 + x) - log_term) / (x * x)
            step = np.where(slope < 0, value / slope, 0.0)
            x = np.where(x - step > 0, x - step, x / 4)
        b = a / x
        for _ in range(8):
            achieved = b * np.log1p(a / b) / LN2
            short = achieved < rate
            if not short.any():
                break
            b = np.where(short, b * (1 + 4 * (rate - achieved) / (rate * np.minimum(x, 1.0))
                                     + 1e-15), b)
    result[reachable] = b
    return result


def min_bandwidth(target_s, *, flops, flops_per_s, bits, rate_model, spectral_efficiency=None,
                  snr_hz=None):
    """Least bandwidth that lets a pair finish within ``target_s`` (inf if impossible)."""
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        slack = np.asarray(target_s, float) - np.asarray(flops, float) / flops_per_s
        rate = np.where(slack > 0, np.asarray(bits, float) / slack, np.inf)
        if rate_model == "fixed":
            need = np.where(slack > 0, rate / spectral_efficiency, np.inf)
        else:
            rate, snr = np.broadcast_arrays(rate, np.asarray(snr_hz, float))
            need = np.where(slack > 0, shannon_bandwidth_for_rate(rate, snr), np.inf)
    # A need that underflows to zero would give a zero rate: keep it the least positive normal.
    return np.maximum(need, np.finfo(float).tiny)
