"""Exact solvers for problem P2, joint bandwidth-and-block allocation (JBBA).

P2: choose a one-to-one assignment a of blocks to devices and bandwidths b >= 0 with
sum_k b_k <= B, minimising T = max_n T_{a(n) n}(b_{a(n)}).

**The argument behind** :func:`solve_exact`. Fix a target T. A pair (k, n) meets it iff device k
gets at least w_kn(T) = :func:`~solvers.bandwidth.min_bandwidth` (infinite when C_n / f_k >= T, the
rate ceiling is below S_n / (T - C_n / f_k), or the pair is not memory-feasible). Devices do not
share bandwidth, so an allocation with round latency <= T exists iff some assignment has
sum_n w_{a(n) n}(T) <= B, i.e. iff the min-cost assignment W(T) = min_a sum_n w_{a(n) n}(T) (the
Hungarian method) is <= B. Every w_kn is non-increasing in T, hence so is W, and the optimum is
T* = min {T : W(T) <= B}: bisection on T brackets it, each step one min-cost assignment. The
result is the assignment and the bandwidths w(T_hi) at the feasible end (sum <= B); the
infeasible end T_lo is a proven lower bound. Stopping at (T_hi - T_lo) <= ``rtol`` T_hi makes
the answer optimal to that relative tolerance (default 1e-9; the contract asks for 1e-6).

:func:`solve_milp_jbba` runs the same bisection with each min-cost assignment posed as a MILP
through cvxpy and HiGHS, and :func:`solve_brute_jbba` enumerates assignments, each with its
optimal bandwidth split: two independent exact references.
"""
from __future__ import annotations

import time

import numpy as np

from . import brute
from .bandwidth import min_bandwidth, optimal_split
from .baselines import min_cost_matching
from .common import assignment_result
from .matching import check_milp_size, solve_crunch
from .milp import milp_assignment
from .model import Instance
from .result import SolverFailure, SolverResult, Status

__all__ = ["bandwidth_matrix", "solve_exact", "solve_milp_jbba", "solve_brute_jbba",
           "equal_share_start"]


def bandwidth_matrix(instance: Instance, target_s: float) -> np.ndarray:
    """w_kn(T) for all pairs as a (K, N) array, +inf where the pair cannot meet T."""
    need = min_bandwidth(
        target_s, flops=instance.block_flops[None, :],
        flops_per_s=instance.device_flops_per_s[:, None], bits=instance.block_bits[None, :],
        rate_model=instance.rate_model,
        spectral_efficiency=(None if instance.device_spectral_efficiency is None
                             else instance.device_spectral_efficiency[:, None]),
        snr_hz=None if instance.device_snr_hz is None else instance.device_snr_hz[:, None])
    return np.where(instance.memory_feasible(), need, np.inf)


def equal_share_start(instance: Instance):
    """A feasible start: CRUNCH at the equal share B / N, then the best split for it.

    Returns (assignment, latency_s, bandwidth per block) or None when infeasible.
    """
    start = solve_crunch(instance, instance.equal_bandwidth())
    if start.assignment is None:
        return None
    latency, bandwidth = optimal_split(instance, start.assignment[None, :])
    return start.assignment, float(latency[0]), bandwidth[0]


def _split_result(instance, assignment, block_bandwidth, status, **kwargs):
    bandwidth = np.zeros(instance.n_devices)
    bandwidth[assignment] = block_bandwidth
    return assignment_result(instance, assignment, bandwidth, status, **kwargs)


class _Bisection:
    """Where a bisection on T stopped: the feasible end ``hi`` with its ``assignment``, the
    proven infeasible end ``lo``, the number of probes, and why it stopped early (or "")."""

    def __init__(self, assignment, hi, lo, steps, stopped=""):
        self.assignment, self.hi, self.lo, self.steps, self.stopped = (
            assignment, hi, lo, steps, stopped)


def _deadline(time_limit_s):
    return None if time_limit_s is None else time.perf_counter() + float(time_limit_s)


def _bisect(instance: Instance, min_total, *, rtol, deadline=None):
    """Bisection on T with ``min_total(T, deadline) -> (total, assignment, proven)``.

    ``proven`` says whether ``total`` is the true minimum (False when a MILP probe stopped at
    its time limit: its ``total`` is then only an upper bound, enough to prove T feasible but
    not infeasible). With a ``deadline`` the bisection stops when it passes, or when a probe can
    decide nothing, keeping the interval proven so far; see the module docstring.
    """
    start = equal_share_start(instance)
    if start is None:
        return None
    assignment, hi, _ = start
    if not np.isfinite(hi):  # the equal-share start already overflows: no finite latency
        return None
    budget = instance.total_bandwidth_hz
    total, best, _ = min_total(hi, deadline)
    if best is None or total > budget:  # rounding at the start point
        hi *= 1 + 1e-9
        total, best, _ = min_total(hi, deadline)
        if best is None or total > budget:
            best = assignment
    # No assignment finishes before its slowest compute: a valid infeasible end.
    lo = 0.0
    steps = 0
    while hi - lo > rtol * hi:
        if deadline is not None and time.perf_counter() >= deadline:
            return _Bisection(best, hi, lo, steps, "time limit reached")
        mid = 0.5 * (lo + hi) if lo > 0 else hi / 2
        total, candidate, proven = min_total(mid, deadline)
        steps += 1
        if candidate is not None and total <= budget:
            hi, best = mid, candidate
        elif proven:
            lo = mid
        else:
            return _Bisection(best, hi, lo, steps, "time limit reached inside a probe")
    return _Bisection(best, hi, lo, steps)


def _hungarian_total(instance):
    def min_total(target, deadline=None):
        need = bandwidth_matrix(instance, target)
        assignment = min_cost_matching(need)
        if assignment is None:
            return np.inf, None, True
        return float(need[assignment, np.arange(instance.n_blocks)].sum()), assignment, True
    return min_total


def _finish(instance, bisection, method_note=""):
    if bisection is None:
        return SolverResult.infeasible()
    need = bandwidth_matrix(instance, bisection.hi)[bisection.assignment,
                                                    np.arange(instance.n_blocks)]
    if not need.sum() <= instance.total_bandwidth_hz:  # the equal-share start, kept on rounding
        latency, split = optimal_split(instance, bisection.assignment[None, :])
        need = split[0]
    status = Status.FEASIBLE if bisection.stopped else Status.OPTIMAL
    message = method_note
    if bisection.stopped:
        message = (f"{bisection.stopped} after {bisection.steps} bisection steps; the proven "
                   "infeasible end of the interval is the lower bound")
    return _split_result(instance, bisection.assignment, need, status,
                         lower_bound_s=bisection.lo, message=message,
                         bisection_steps=bisection.steps)


def solve_exact(instance: Instance, *, rtol=1e-9, time_limit_s=None, **_) -> SolverResult:
    """Exact P2 by bisection on T with a Hungarian min-total-bandwidth test (module docstring).

    With ``time_limit_s`` it stops bisecting when the time is up and reports ``feasible`` with
    the interval proven so far (the allocation at its feasible end, its infeasible end as the
    lower bound).
    """
    return _finish(instance, _bisect(instance, _hungarian_total(instance), rtol=rtol,
                                     deadline=_deadline(time_limit_s)))


def solve_milp_jbba(instance: Instance, *, rtol=1e-9, time_limit_s=None, **_) -> SolverResult:
    """Exact P2 by the same bisection, each min-total-bandwidth assignment a cvxpy/HiGHS MILP.

    ``time_limit_s`` bounds the whole bisection: each MILP gets the time that is left, a probe
    stopped by it still proves its target feasible when its incumbent fits in B, or infeasible
    when HiGHS's bound exceeds B; otherwise the bisection stops with the interval proven so far.
    """
    check_milp_size(int(instance.memory_feasible().sum()), time_limit_s)
    deadline = _deadline(time_limit_s)
    budget = instance.total_bandwidth_hz

    def min_total(target, deadline=None):
        need = bandwidth_matrix(instance, target)
        if not np.isfinite(need).any(axis=0).all():
            return np.inf, None, True
        left = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
        try:
            outcome = milp_assignment(need, objective="sum", time_limit_s=left)
        except SolverFailure:
            if deadline is None:
                raise
            return np.inf, None, False  # stopped with no incumbent: decides nothing
        if outcome.infeasible:
            return np.inf, None, True
        total = float(need[outcome.assignment, np.arange(instance.n_blocks)].sum())
        proven = outcome.proven or (outcome.bound is not None and outcome.bound > budget)
        return total, outcome.assignment, proven
    return _finish(instance, _bisect(instance, min_total, rtol=rtol, deadline=deadline))


def solve_brute_jbba(instance: Instance, *, max_assignments=20_000, **_) -> SolverResult:
    """Enumerate memory-feasible assignments, each with its optimal bandwidth split."""
    brute.check_enumerable(instance.n_devices, instance.n_blocks, max_assignments)
    feasible = instance.memory_feasible()
    columns = np.arange(instance.n_blocks)
    best_latency, best, best_bandwidth = np.inf, None, None
    for batch in brute.enumerate_assignments(instance.n_devices, instance.n_blocks):
        batch = batch[feasible[batch, columns].all(axis=1)]
        if not len(batch):
            continue
        latency, bandwidth = optimal_split(instance, batch)
        i = int(np.argmin(latency))
        if latency[i] < best_latency:
            best_latency, best, best_bandwidth = latency[i], batch[i], bandwidth[i]
    if best is None or not np.isfinite(best_latency):
        return SolverResult.infeasible()
    return _split_result(instance, best, best_bandwidth, Status.OPTIMAL,
                         lower_bound_s=best_latency * (1 - 1e-12))
