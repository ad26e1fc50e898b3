"""Problem P1 (block-device matching at fixed bandwidths) and the equal-share baselines.

Each entry point takes an :class:`~solvers.model.Instance` and the bandwidths to use, and returns
a :class:`~solvers.result.SolverResult`. The registry binds the bandwidths: the fixed ones of P1
(:meth:`Instance.matching_bandwidth`), or the equal share B / N for the baselines of P2.
"""
from __future__ import annotations

import numpy as np

from . import baselines, brute, crunch
from .bottleneck import bottleneck_assignment
from .common import assignment_result, device_bandwidth
from .milp import milp_assignment
from .model import Instance
from .result import SolverInputError, SolverResult, Status

__all__ = ["solve_crunch", "solve_bottleneck", "solve_milp", "solve_brute", "solve_random",
           "solve_greedy", "solve_min_sum", "solve_centralized"]


def _no_assignment(message=None):
    return SolverResult.infeasible(message) if message else SolverResult.infeasible()


def solve_bottleneck(instance: Instance, bandwidth_hz, **_) -> SolverResult:
    """General bottleneck assignment on the latency matrix, which is +inf on pairs that are not
    memory-feasible or would exceed the device's energy budget at its bandwidth."""
    value, assignment = bottleneck_assignment(instance.latency_matrix(bandwidth_hz))
    if assignment is None:
        return _no_assignment()
    return assignment_result(instance, assignment, device_bandwidth(instance, assignment, bandwidth_hz),
                             Status.OPTIMAL)


def solve_crunch(instance: Instance, bandwidth_hz, *, seed=0, **_) -> SolverResult:
    """CRUNCH at the given bandwidths; energy budgets enter as a shorter per-device prefix of
    blocks (see :mod:`solvers.crunch`), so the answer stays exact. With split mode allowed
    (section 9) a pair's latency is the best over its modes, no longer monotone in depth (the
    device's part shrinks with depth while the server's grows): the general bottleneck
    assignment solves it instead, exactly, and the result says so."""
    if instance.modes != ("local",):
        result = solve_bottleneck(instance, bandwidth_hz)
        result.message = ("split mode breaks the monotone depth costs CRUNCH counts on; solved "
                          "by the general bottleneck assignment instead")
        result.extras["fallback"] = "bottleneck"
        return result
    outcome = crunch.crunch_matching(
        block_flops=instance.block_flops, block_bits=instance.block_bits,
        block_memory=instance.block_memory, device_flops_per_s=instance.device_flops_per_s,
        device_rate_bps=instance.rate(bandwidth_hz), device_memory=instance.device_memory,
        device_energy_budget_j=instance.energy_budget_j() if instance.has_energy_budgets else None,
        device_compute_power_w=instance.device_compute_power_w,
        device_tx_power_w=instance.device_tx_power_w, seed=seed)
    if not outcome.monotone:
        result = solve_bottleneck(instance, bandwidth_hz)
        result.message = f"{outcome.reason}; solved by the general bottleneck assignment instead"
        result.extras["fallback"] = "bottleneck"
        return result
    if outcome.assignment is None:
        return _no_assignment()
    message = "" if outcome.order_is_listed else (
        "blocks are monotone in cost order rather than in the listed depth order")
    return assignment_result(instance, outcome.assignment,
                             device_bandwidth(instance, outcome.assignment, bandwidth_hz),
                             Status.OPTIMAL, message=message, probes=outcome.probes,
                             devices_kept=outcome.devices_kept)


MILP_MAX_PAIRS = 250_000  # beyond this many binaries, cvxpy's compile alone takes minutes


def check_milp_size(n_pairs: int, time_limit_s) -> None:
    """Refuse MILPs too large to finish unless the caller bounds the time."""
    if n_pairs > MILP_MAX_PAIRS and time_limit_s is None:
        raise SolverInputError(
            f"milp would pose {n_pairs} binary variables, more than {MILP_MAX_PAIRS} it handles "
            "in reasonable time; give a time limit (--time-limit) or use crunch / exact")


def solve_milp(instance: Instance, bandwidth_hz, *, time_limit_s=None, **_) -> SolverResult:
    latency = instance.latency_matrix(bandwidth_hz)
    check_milp_size(int(np.isfinite(latency).sum()), time_limit_s)
    outcome = milp_assignment(latency, objective="bottleneck", time_limit_s=time_limit_s)
    if outcome.infeasible:
        return _no_assignment()
    bandwidth = device_bandwidth(instance, outcome.assignment, bandwidth_hz)
    if outcome.proven:
        return assignment_result(instance, outcome.assignment, bandwidth, Status.OPTIMAL)
    result = assignment_result(instance, outcome.assignment, bandwidth, Status.FEASIBLE,
                               message=f"time limit of {time_limit_s} s reached; the MILP's "
                                       "best bound is reported as the lower bound")
    if outcome.bound is not None:
        result.lower_bound_s = min(outcome.bound, result.round_latency_s)
    return result


def solve_brute(instance: Instance, bandwidth_hz, *, max_assignments=brute.DEFAULT_MAX_ASSIGNMENTS,
                **_) -> SolverResult:
    value, assignment = brute.brute_bottleneck(instance.latency_matrix(bandwidth_hz),
                                               max_assignments)
    if assignment is None:
        return _no_assignment()
    return assignment_result(instance, assignment, device_bandwidth(instance, assignment, bandwidth_hz),
                             Status.OPTIMAL)


def _baseline(matcher):
    def solve(instance: Instance, bandwidth_hz, **options) -> SolverResult:
        assignment = matcher(instance.latency_matrix(bandwidth_hz), **options)
        if assignment is None:
            return _no_assignment()
        return assignment_result(instance, assignment,
                                 device_bandwidth(instance, assignment, bandwidth_hz), Status.FEASIBLE)
    solve.__doc__ = f"Baseline: {matcher.__name__} at the given bandwidths."
    solve.__wrapped__ = matcher  # its options are the matcher's (see registry.Method.options)
    return solve


def _random(latency, seed=0, **_):
    return baselines.random_matching(latency, seed=seed)


def _greedy(latency, **_):
    return baselines.greedy_matching(latency)


def _min_sum(latency, **_):
    return baselines.min_sum_matching(latency)


solve_random = _baseline(_random)
solve_greedy = _baseline(_greedy)
solve_min_sum = _baseline(_min_sum)


def solve_centralized(instance: Instance, bandwidth_hz=None, **_) -> SolverResult:
    """Reference, not DEFT: the N best uplinks ship a mini-batch each, the server trains.

    latency = max_k (batch_bits / r_k(B / N)) + N * C_N / f_server over the N devices with the
    highest rate at the equal share B / N. With energy budgets the uploaders are chosen among
    the devices that can afford their upload, P^tx_k batch_bits / r_k(B / N) <= E^max_k (they
    compute nothing); too few such devices is infeasible.
    """
    n_blocks = instance.n_blocks
    if instance.server_flops_per_s is None or instance.batch_bits is None:
        raise ValueError("centralized needs server.flops_per_s and model.batch_bytes")
    if instance.n_devices < n_blocks:
        return _no_assignment(f"centralized needs {n_blocks} devices to upload mini-batches")
    share = instance.equal_bandwidth()
    rate = instance.rate(share)
    if instance.has_energy_budgets:
        budget = instance.energy_budget_j()
        with np.errstate(divide="ignore", invalid="ignore"):
            upload_energy = instance.device_tx_power_w * (instance.batch_bits / rate)
        affordable = ~np.isfinite(budget) | (upload_energy <= budget)
        if affordable.sum() < n_blocks:
            return _no_assignment(
                f"centralized needs {n_blocks} devices to upload mini-batches, but only "
                f"{int(affordable.sum())} can afford the upload energy within their budgets")
        rate_usable = np.where(affordable, rate, -np.inf)
    else:
        rate_usable = rate
    uploaders = np.argsort(-rate_usable, kind="stable")[:n_blocks]
    upload_s = instance.batch_bits / rate[uploaders]
    server_s = n_blocks * instance.block_flops[-1] / instance.server_flops_per_s
    latency = float(upload_s.max() + server_s)
    bandwidth = np.zeros(instance.n_devices)
    bandwidth[uploaders] = share[uploaders]
    return SolverResult(Status.FEASIBLE, np.full(n_blocks, -1, dtype=np.int64), bandwidth,
                        latency, None, "", {"uploaders": uploaders, "upload_s": upload_s,
                                            "server_compute_s": server_s})
