"""Allocations with several blocks per device (specification, section 8): what every
several-blocks method needs of one, whatever found it.

* :func:`group_split`: the best bandwidth split of an allocation (P2), by bisection on the
  round latency with each device's least bandwidth for its whole set (and its energy floor);
* :func:`energy_ok`: the energy budgets at fixed bandwidths (P1);
* :func:`allocation_result`: the result of an allocation, its latency recomputed;
* :data:`NO_SETS`: the message of an instance that no allocation fits.

Examples
--------
>>> import numpy as np
>>> from solvers.model import Instance
>>> inst = Instance(block_flops=np.array([1.0, 2.0]), block_bits=np.ones(2),
...                 block_memory=np.ones(2), device_flops_per_s=np.ones(2),
...                 device_memory=np.full(2, 9.0), total_bandwidth_hz=2.0,
...                 device_spectral_efficiency=np.ones(2), device_max_blocks=np.array([2, 2]))
>>> latency, bandwidth = group_split(inst, [[0, 0], [0, 1]])
>>> np.round(latency, 6).tolist()  # one device: 2 + 2 / 2; two: 1 + 1 / b0 = 2 + 1 / b1
[3.0, 2.707107]
"""
from __future__ import annotations

import numpy as np

from .bandwidth import least_target, min_bandwidth
from .common import assignment_result
from .model import Instance, pair_energy
from .result import SolverResult

__all__ = ["group_split", "split_costs", "energy_ok", "allocation_result", "NO_SETS"]

NO_SETS = ("no allocation of the blocks to devices within their block caps (max_blocks), "
           "memory and energy budgets")


def group_split(instance: Instance, assignments, *, rtol=1e-12, max_iterations=200):
    """Best bandwidth split for each of M allocations (rows of ``assignments``, block ->
    device), by bisection on the round latency with each device's least bandwidth for its
    whole set (and its energy floor). Caps and memory are not checked here.

    Returns (latency_s (M,), bandwidth_hz (M, K)), inf where no split meets B.
    """
    assignments = np.atleast_2d(np.asarray(assignments, dtype=np.int64))
    n_rows = assignments.shape[0]
    flops = np.empty((n_rows, instance.n_devices))
    bits = np.empty_like(flops)
    used = np.empty(flops.shape, dtype=bool)
    single = np.zeros(flops.shape, dtype=np.int64) - 1  # the block of a one-block device
    for row, assignment in enumerate(assignments):
        flops[row], _, bits[row], count = instance.group_costs(assignment)
        used[row] = count > 0
        single[row, assignment] = np.where(count[assignment] == 1,
                                           np.arange(instance.n_blocks), -1)
    if instance.modes != ("local",):
        return _split_with_modes(instance, flops, bits, used, single, rtol=rtol,
                                 max_iterations=max_iterations)
    return split_costs(instance, flops, bits, used, rtol=rtol, max_iterations=max_iterations)


def _split_with_modes(instance, flops, bits, used, single, *, rtol, max_iterations):
    """:func:`group_split` when split mode is allowed: a one-block device needs the least
    bandwidth over its allowed modes (:meth:`Instance.mode_bandwidth`), a device with several
    blocks its local set's. A bisection on T, as :func:`split_costs`."""
    devices = np.broadcast_to(np.arange(instance.n_devices), flops.shape)
    lone = single >= 0
    floor = (instance.energy_floor(flops, bits, devices) if instance.has_energy_budgets
             else None)
    speed = instance.device_flops_per_s[None, :]
    quality = (instance.device_spectral_efficiency if instance.rate_model == "fixed"
               else instance.device_snr_hz)[None, :]
    budget = instance.total_bandwidth_hz
    local = "local" in instance.modes

    # each mode's fixed time, payload, allowed pairs and energy floor, gathered at the lone
    # device's block (the floors do not depend on T: computed once)
    block = np.where(lone, single, 0)
    terms = []
    for _, fixed_s, mode_bits, allowed, energy_flops in instance.mode_terms():
        time_here = fixed_s[devices, block]
        bits_here = np.broadcast_to(mode_bits, fixed_s.shape)[devices, block]
        ok = allowed[devices, block] & lone
        mode_floor = None
        if instance.has_energy_budgets:
            mode_floor = instance.energy_floor(
                np.broadcast_to(energy_flops, fixed_s.shape)[devices, block], bits_here,
                devices)
        terms.append((time_here, bits_here, ok, mode_floor))
    kind = {"spectral_efficiency": quality} if instance.rate_model == "fixed" else {
        "snr_hz": quality}

    def need(target):
        target = np.asarray(target, dtype=float)[:, None]
        sets_need = min_bandwidth(target, flops=flops, flops_per_s=speed, bits=bits,
                                  rate_model=instance.rate_model, **kind)
        if floor is not None:
            sets_need = np.maximum(sets_need, floor)
        if not local:
            sets_need = np.full(sets_need.shape, np.inf)
        value = np.where(used, sets_need, 0.0)
        best = np.full(value.shape, np.inf)
        for time_here, bits_here, ok, mode_floor in terms:
            mode_need = min_bandwidth(target, flops=time_here, flops_per_s=1.0, bits=bits_here,
                                      rate_model=instance.rate_model, **kind)
            if mode_floor is not None:
                mode_need = np.maximum(mode_need, mode_floor)
            best = np.minimum(best, np.where(ok, mode_need, np.inf))
        return np.where(lone, best, value)
    rows = flops.shape[0]
    return least_target(need, np.zeros(rows), np.full(rows, 1e-6), budget, rtol=rtol,
                        max_iterations=max_iterations, doublings=1100)


def split_costs(instance: Instance, flops, bits, used, *, rtol=1e-12, max_iterations=200):
    """:func:`group_split` from each device's step costs: (M, K) arrays of C(A_k), S(A_k) and
    whether device k trains anything."""
    devices = np.broadcast_to(np.arange(instance.n_devices), flops.shape)
    floor = None
    if instance.has_energy_budgets:
        floor = np.where(used, instance.energy_floor(flops, bits, devices), 0.0)
    speed = instance.device_flops_per_s[None, :]
    efficiency = (None if instance.device_spectral_efficiency is None
                  else instance.device_spectral_efficiency[None, :])
    snr = None if instance.device_snr_hz is None else instance.device_snr_hz[None, :]
    budget = instance.total_bandwidth_hz

    def need(target):
        need_hz = min_bandwidth(target[:, None], flops=flops, flops_per_s=speed, bits=bits,
                                rate_model=instance.rate_model, spectral_efficiency=efficiency,
                                snr_hz=snr)
        if floor is not None:
            need_hz = np.maximum(need_hz, floor)
        return np.where(used, need_hz, 0.0)

    compute = np.where(used, flops / speed, 0.0).max(axis=1)
    return least_target(need, compute, np.maximum(2 * compute, compute + 1e-9), budget,
                        rtol=rtol, max_iterations=max_iterations, doublings=1100)


def energy_ok(instance: Instance, flops, bits, devices, bandwidth_hz):
    """E_k(A, b) <= E^max_k for run costs broadcast with device indices (fixed bandwidth)."""
    if not instance.has_energy_budgets:
        return np.ones(np.broadcast_shapes(np.shape(flops), np.shape(devices)), dtype=bool)
    rate = instance.rate(bandwidth_hz)[devices]
    energy = pair_energy(flops, instance.device_flops_per_s[devices], bits, rate,
                         np.asarray(instance.device_compute_power_w)[devices],
                         np.asarray(instance.device_tx_power_w)[devices])
    budget = instance.energy_budget_j()[devices]
    return ~np.isfinite(budget) | (energy <= budget)


def allocation_result(instance, assignment, bandwidth_hz, status, **kwargs) -> SolverResult:
    """The result of an allocation; devices without blocks get no bandwidth."""
    trains = np.bincount(np.asarray(assignment, dtype=np.int64),
                         minlength=instance.n_devices) > 0
    bandwidth = np.where(trains, np.broadcast_to(bandwidth_hz, trains.shape), 0.0)
    return assignment_result(instance, assignment, bandwidth, status, **kwargs)
