"""Exact solvers for problem P2, joint bandwidth-and-block allocation (JBBA).

P2: choose a one-to-one assignment a of blocks to devices and bandwidths b >= 0 with
sum_k b_k <= B, minimising T = max_n T_{a(n) n}(b_{a(n)}).

**Energy budgets.** A device with a budget needs at least e_kn
(:meth:`~solvers.model.Instance.energy_bandwidth_floor`) whatever the target, so the bandwidth a
pair needs to meet T within its budget is max(w_kn(T), e_kn): :func:`bandwidth_matrix` and
:func:`pair_bandwidth` return that. It is still non-increasing in T, so every argument below
holds word for word with w replaced by it, and the solvers stay exact under budgets.

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

By default :func:`solve_exact` does not bisect blindly: it takes Dinkelbach-Newton steps (the
min-cost assignment at just below the incumbent latency, then that assignment's own optimal
latency: a handful of Hungarian steps instead of about 30), and each step looks only at every
block's N cheapest devices, with a final certification over all K devices; its docstring has
the argument. ``prune=False`` is the plain dense bisection, kept as the reference.

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
from .result import SolverFailure, SolverInputError, SolverResult, Status

__all__ = ["bandwidth_matrix", "solve_exact", "solve_milp_jbba", "solve_brute_jbba",
           "equal_share_start", "split_result"]


def bandwidth_matrix(instance: Instance, target_s: float, *, devices=None,
                     blocks=slice(None)) -> np.ndarray:
    """max(w_kn(T), e_kn) as a (K, N) array, +inf where the pair cannot meet T.

    ``devices`` (an index array) and ``blocks`` (a slice) restrict it to those rows and columns;
    e_kn is the energy floor (0 without budgets).
    """
    if instance.modes != ("local",):  # section 9: the least over the allowed modes
        return instance.mode_bandwidth(target_s, devices=devices)[:, blocks]
    rows = slice(None) if devices is None else devices
    quality = (instance.device_spectral_efficiency if instance.rate_model == "fixed"
               else instance.device_snr_hz)[rows, None]
    need = min_bandwidth(
        target_s, flops=instance.block_flops[None, blocks],
        flops_per_s=instance.device_flops_per_s[rows, None],
        bits=instance.block_bits[None, blocks], rate_model=instance.rate_model,
        spectral_efficiency=quality if instance.rate_model == "fixed" else None,
        snr_hz=quality if instance.rate_model != "fixed" else None)
    fits = instance.block_memory[None, blocks] <= instance.device_memory[rows, None]
    floor = instance.energy_bandwidth_floor(devices=devices, blocks=blocks)
    if floor is not None:
        need = np.maximum(need, floor)
    return np.where(fits, need, np.inf)


def pair_bandwidth(instance: Instance, target_s: float, assignment) -> np.ndarray:
    """max(w_{a(n) n}(T), e_{a(n) n}) for every block n: the (N,) bandwidths it needs."""
    assignment = np.asarray(assignment, dtype=np.int64)
    if instance.modes != ("local",):
        return instance.mode_bandwidth(target_s)[assignment, np.arange(instance.n_blocks)]
    quality = (instance.device_spectral_efficiency if instance.rate_model == "fixed"
               else instance.device_snr_hz)[assignment]
    need = min_bandwidth(
        target_s, flops=instance.block_flops, flops_per_s=instance.device_flops_per_s[assignment],
        bits=instance.block_bits, rate_model=instance.rate_model,
        spectral_efficiency=quality if instance.rate_model == "fixed" else None,
        snr_hz=quality if instance.rate_model != "fixed" else None)
    fits = instance.block_memory <= instance.device_memory[assignment]
    if instance.has_energy_budgets:
        used = np.unique(assignment)
        floor = instance.energy_bandwidth_floor(devices=used)
        need = np.maximum(need, floor[np.searchsorted(used, assignment),
                                      np.arange(instance.n_blocks)])
    return np.where(fits, need, np.inf)


#: Entries of w(T) held at once when scanning every device (8 MiB of float64 per array), so that
#: the memory of :func:`cheapest_devices` stays linear in K + N.
SCAN_ENTRIES = 1 << 20


def cheapest_devices(instance: Instance, target_s: float) -> np.ndarray:
    """The devices that are among some block's N cheapest at T: the union over n of the N
    devices with the least finite w_kn(T) (sorted indices; ties broken arbitrarily).

    Some min-cost assignment at T uses only these devices (the argument is in
    :func:`solve_exact`). One pass over the K x N values, a few blocks at a time.
    """
    n_devices, n_blocks = instance.n_devices, instance.n_blocks
    if n_devices <= n_blocks:
        return np.arange(n_devices)
    keep = np.zeros(n_devices, dtype=bool)
    width = max(1, SCAN_ENTRIES // n_devices)
    for first in range(0, n_blocks, width):
        need = bandwidth_matrix(instance, target_s, blocks=slice(first, first + width))
        cheapest = np.argpartition(need, n_blocks - 1, axis=0)[:n_blocks]
        finite = np.isfinite(np.take_along_axis(need, cheapest, axis=0))
        keep[cheapest[finite]] = True
    return np.flatnonzero(keep)


def equal_share_start(instance: Instance):
    """A feasible start: CRUNCH at the equal share B / N, then the best split for it.

    With energy budgets the equal share may leave a device below its energy floor e_kn while a
    larger share would do; then the start is the assignment of least total floor
    sum_n e_{a(n) n} (the Hungarian method), feasible for P2 iff that total is below B
    (w_kn(T) -> 0 as T grows), with its best split.

    Returns (assignment, latency_s, bandwidth per block) or None when infeasible.
    """
    start = solve_crunch(instance, instance.equal_bandwidth())
    assignment = start.assignment
    if assignment is not None:
        latency, bandwidth = optimal_split(instance, assignment[None, :])
    if instance.has_energy_budgets and (assignment is None or not np.isfinite(latency[0])):
        if instance.modes != ("local",):
            # as T grows the least bandwidth over the modes tends to the least energy floor
            floor = instance.mode_bandwidth(np.inf)
        else:
            floor = instance.energy_bandwidth_floor()
            floor = np.where(instance.memory_feasible(), floor, np.inf)
        assignment = min_cost_matching(floor)
        if assignment is None:
            return None
        latency, bandwidth = optimal_split(instance, assignment[None, :])
    if assignment is None:
        return None
    return assignment, float(latency[0]), bandwidth[0]


def split_result(instance, assignment, block_bandwidth, status, **kwargs):
    bandwidth = np.zeros(instance.n_devices)
    bandwidth[assignment] = block_bandwidth
    return assignment_result(instance, assignment, bandwidth, status, **kwargs)


class _Bisection:
    """Where a bisection on T stopped: the feasible end ``hi`` with its ``assignment``, the
    proven infeasible end ``lo``, the number of probes, and why it stopped early (or "")."""

    def __init__(self, assignment, hi, lo, steps, stopped=""):
        self.assignment, self.hi, self.lo, self.steps, self.stopped = (
            assignment, hi, lo, steps, stopped)


#: The tolerances an exact P2 method accepts: tight enough for the contract (1e-6), loose enough
#: for float64 to resolve (a bracket narrower than a few ulps never closes).
RTOL_RANGE = (1e-14, 1e-6)


def _check_rtol(rtol) -> None:
    low, high = RTOL_RANGE
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not low <= rtol <= high:
        raise SolverInputError(f"rtol must be a number between {low:g} and {high:g} (an exact "
                               f"method's relative tolerance), got {rtol!r}")


def _deadline(time_limit_s):
    return None if time_limit_s is None else time.perf_counter() + float(time_limit_s)


def _bisect(instance: Instance, min_total, *, rtol, deadline=None, start=None):
    """Bisection on T with ``min_total(T, deadline) -> (total, assignment, proven)``.

    ``proven`` says whether ``total`` is the true minimum (False when a MILP probe stopped at
    its time limit: its ``total`` is then only an upper bound, enough to prove T feasible but
    not infeasible). With a ``deadline`` the bisection stops when it passes, or when a probe can
    decide nothing, keeping the interval proven so far; see the module docstring. ``start`` is a
    feasible (assignment, latency) to start from (default: :func:`equal_share_start`).
    """
    start = start or equal_share_start(instance)
    if start is None:
        return None
    assignment, hi = start[0], start[1]
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


def _hungarian_total(instance, devices=None):
    """The min-cost assignment test W(T), over every device or over ``devices`` only."""
    def min_total(target, deadline=None):
        need = bandwidth_matrix(instance, target, devices=devices)
        assignment = min_cost_matching(need)
        if assignment is None:
            return np.inf, None, True
        total = float(need[assignment, np.arange(instance.n_blocks)].sum())
        return total, (assignment if devices is None else devices[assignment]), True
    return min_total


def _finish(instance, bisection, method_note="", **extras):
    if bisection is None:
        return SolverResult.infeasible()
    need = pair_bandwidth(instance, bisection.hi, bisection.assignment)
    if not need.sum() <= instance.total_bandwidth_hz:  # the equal-share start, kept on rounding
        latency, split = optimal_split(instance, bisection.assignment[None, :])
        need = split[0]
    status = Status.FEASIBLE if bisection.stopped else Status.OPTIMAL
    message = method_note
    if bisection.stopped:
        message = (f"{bisection.stopped} after {bisection.steps} bisection steps; the proven "
                   "infeasible end of the interval is the lower bound")
    return split_result(instance, bisection.assignment, need, status,
                         lower_bound_s=bisection.lo, message=message,
                         bisection_steps=bisection.steps, **extras)


def solve_exact(instance: Instance, *, rtol=1e-9, time_limit_s=None, prune=True,
                **_) -> SolverResult:
    """Exact P2 by bisection on T with a Hungarian min-total-bandwidth test (module docstring).

    **Pruning** (``prune=True``, the default) keeps the test exact while it looks at few devices.
    (i) At a fixed T, some min-cost assignment uses only devices that are among each block's N
    cheapest (:func:`cheapest_devices`): take a min-cost assignment; if block n sits on a device
    outside its N cheapest, at most N - 1 of those N are used by the other blocks, so one is
    free and needs no more bandwidth than n's device; moving n there keeps the cost minimal and
    touches no other block, so repeating it ends with every block on one of its N cheapest. So a
    probe over that union U(T) (at most N^2 devices, in practice a few N) decides W(T) <= B
    exactly. (ii) The bisection runs on the union D = U(T_start) of the start latency; a
    probe over D can only over-estimate W, so "feasible" answers are proven (the allocation is
    real) while "infeasible" ones are provisional. When it ends with the bracket (lo, hi], lo is
    certified over every device: if U(lo) is inside D the probe at lo was already exact;
    otherwise W(lo) is computed on U(lo) by (i), and if it fits in B after all, lo becomes the
    new feasible end, U(lo) joins D and the bisection resumes below it. Since W is
    non-increasing in T, a certified infeasible lo bounds every smaller T, and the result is
    optimal to ``rtol`` exactly as without pruning. Each certification scans the K x N values
    once, a few blocks at a time, so memory stays linear in K + N; every other probe costs a
    Hungarian step on |D| x N.

    ``prune=False`` runs every probe on the dense K x N matrix (the reference it is checked
    against). With ``time_limit_s`` it stops bisecting when the time is up and reports
    ``feasible`` with the interval proven so far (the allocation at its feasible end, its
    infeasible end as the lower bound).
    """
    _check_rtol(rtol)
    deadline = _deadline(time_limit_s)
    if not prune:
        return _finish(instance, _bisect(instance, _hungarian_total(instance), rtol=rtol,
                                         deadline=deadline))
    start = equal_share_start(instance)
    if start is None or not np.isfinite(start[1]):
        return SolverResult.infeasible()
    every_device = instance.n_devices <= 2 * instance.n_blocks  # the union would be (nearly) all
    candidates = None if every_device else cheapest_devices(instance, start[1])
    budget = instance.total_bandwidth_hz
    steps, certifications = 0, 0
    while True:
        search = _newton(instance, _hungarian_total(instance, candidates), start[:2], rtol=rtol,
                         deadline=deadline)
        steps += search.steps
        search.steps = steps
        if candidates is None:
            break
        if search.stopped:
            # The infeasible end was probed on the candidates only: certify it over every
            # device (one probe past the limit), or report no bound and the better allocation.
            if search.lo > 0:
                union = cheapest_devices(instance, search.lo)
                total, assignment, _ = _hungarian_total(instance, union)(search.lo)
                if assignment is not None and total <= budget:
                    search.assignment, search.hi, search.lo = assignment, search.lo, 0.0
            break
        union = cheapest_devices(instance, search.lo)
        certifications += 1
        if np.isin(union, candidates, assume_unique=True).all():
            break  # the probe at lo already saw an optimal assignment's devices
        total, assignment, _ = _hungarian_total(instance, union)(search.lo)
        steps += 1
        search.steps = steps
        if assignment is None or total > budget:
            break
        candidates = np.union1d(candidates, union)
        start = (assignment, search.lo)
    extras = {} if candidates is None else {"candidate_devices": int(candidates.size),
                                            "certifications": certifications}
    return _finish(instance, search, **extras)


def _newton(instance: Instance, min_total, start, *, rtol, deadline=None) -> _Bisection:
    """Dinkelbach-Newton search for T* = min {T : W(T) <= B}, bracketed like a bisection.

    With the incumbent latency hi (an allocation meets it), probe p = hi (1 - rtol): if the
    min-cost assignment a at p fits in B, a meets p, so its own optimal latency T_a (the exact
    split of :func:`~solvers.bandwidth.optimal_split`, where W_a(T_a) = B) is at most p and
    becomes the incumbent (the Newton step: usually far below p); otherwise p is a proven
    infeasible end and (p, hi] brackets T* to ``rtol``. Each probe lowers hi by at least
    ``rtol`` hi and there are finitely many assignments, so it ends; in practice after a few
    probes, where a bisection needs about log2(1 / rtol) = 30. When the Newton steps gain
    little, a bisection step on the bracket keeps the worst case at the bisection's.
    """
    assignment, hi = np.asarray(start[0]), float(start[1])
    budget = instance.total_bandwidth_hz
    lo, steps, slow = 0.0, 0, 0
    while hi - lo > rtol * hi:
        if deadline is not None and time.perf_counter() >= deadline:
            return _Bisection(assignment, hi, lo, steps, "time limit reached")
        # Newton probe just below the incumbent; after two slow Newton steps, a bisection step.
        probe = hi * (1 - rtol) if slow < 2 or lo <= 0 else 0.5 * (lo + hi)
        if slow >= 2 and lo <= 0:
            probe = hi / 2
        total, candidate, _ = min_total(probe, deadline)
        steps += 1
        if candidate is None or total > budget:
            lo = probe
            if probe >= hi * (1 - rtol):  # just below the incumbent: bracketed to rtol
                break
            slow = 0
            continue
        latency, _ = optimal_split(instance, candidate[None, :])
        new_hi = min(float(latency[0]), probe)
        slow = slow + 1 if new_hi > hi * (1 - 1e-3) else 0
        assignment, hi = candidate, new_hi
    return _Bisection(assignment, hi, lo, steps)


def solve_milp_jbba(instance: Instance, *, rtol=1e-9, time_limit_s=None, **_) -> SolverResult:
    """Exact P2 by the same bisection, each min-total-bandwidth assignment a cvxpy/HiGHS MILP.

    ``time_limit_s`` bounds the whole bisection: each MILP gets the time that is left, a probe
    stopped by it still proves its target feasible when its incumbent fits in B, or infeasible
    when HiGHS's bound exceeds B; otherwise the bisection stops with the interval proven so far.
    """
    _check_rtol(rtol)
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
    return split_result(instance, best, best_bandwidth, Status.OPTIMAL,
                         lower_bound_s=best_latency * (1 - 1e-12))
