"""Several blocks per device, uniform case, many devices: a path MILP over contiguous runs.

In the uniform case (equal payloads and extras, costs non-decreasing in depth; see
:mod:`solvers.sets`) an optimal allocation covers the depths from the deep end with contiguous
runs, one per device. Such an allocation is a path in a small graph: nodes r = 0..N (r blocks
covered from the deep end), and an arc (k, r, j) from r to r + j for device k taking the j blocks
whose deepest is N - 1 - r. An allocation is a path from 0 to N that uses every device at most
once::

    sum_{arcs out of r} y - sum_{arcs into r} y = [r = 0]      (r = 0..N-1)
    sum_{arcs of k} y <= 1                                       (every device k)
    y binary

This is a compact MILP (K N max_j binaries, N + K rows, integral 0/1 data) whose size grows
polynomially in K, unlike the subset programme of :mod:`solvers.sets` (2^K states), so it takes
over above that programme's device limit:

* **P1** at fixed bandwidths: a binary search over the run latencies T_k(r, j) (the optimum is
  one of them) whose test is the pure 0/1 feasibility MILP over the arcs with T_k(r, j) <= T
  (no tolerance matters: every coefficient is 0 or 1). ``packing``'s allocation and proven
  lower bound bracket the search; a witness moves the upper end to its own latency.
* **P2**: with b_k(r, j, T) the least bandwidth of a run at latency T (its energy floor
  included; any rate model, since b is computed outside the MILP), Dinkelbach's iteration
  from ``packing``'s allocation: at the best latency T found so far, the path of least total
  bandwidth ``sum b_k(r, j, T) y`` is split optimally (:func:`solvers.sets.group_split`), and
  its own latency, at most T, is the next T. At a fixed point (no gain beyond the tolerance
  rtol) the feasibility MILP with the budget row ``sum b_k(r, j, T (1 - rtol)) y <= B`` must be
  infeasible, which proves T optimal to rtol; where it is not (HiGHS stops its minimisation at
  a relative gap of 1e-4), its witness is the next T. The budget row is B (1 - 1e-8), ten times
  HiGHS's feasibility tolerance, so that every witness truly fits B; the proof is thus for a
  budget 1e-8 below B, which moves the latency by about as much, far inside the 1e-6 of
  exactness.

HiGHS is called through ``highspy`` (silent, on the process's HiGHS scheduler: see
:mod:`solvers.highs`) with its default MIP settings and tightened primal feasibility (1e-9); the data are 0/1 apart from the budget row, which is scaled to O(1).
"""
from __future__ import annotations

import time

import numpy as np

from .highs import OPTIONS as HIGHS_OPTIONS
from .highs import quiet
from .model import Instance, pair_latency
from .result import SolverFailure, SolverResult, Status

__all__ = ["path_arcs", "paths_p1", "paths_p2"]

FEASIBILITY_TOLERANCE = 1e-9
#: The budget row of the P2 test is B (1 - margin): a witness then needs at most B, exactly.
BUDGET_MARGIN = 1e-8


def path_arcs(table):
    """The arcs (k, r, j) of the run graph whose entry in ``table`` (K, N, J) is finite, with
    r the number of blocks covered before the run (deepest first) and j its length; runs that
    would pass the shallowest block are left out. Returns (k, r, j, value) arrays."""
    n_devices, n_blocks, most = table.shape
    k, r, j = np.nonzero(np.isfinite(table))
    keep = r + j + 1 <= n_blocks
    k, r, j = k[keep], r[keep], j[keep] + 1
    return k, r, j, table[k, r, j - 1]


class _PathModel:
    """The path MILP of the module docstring over fixed arcs, built once; the budget row and
    the arcs' upper bounds (to drop arcs) change between solves."""

    def __init__(self, n_devices, n_blocks, k, r, j):
        from scipy.sparse import coo_matrix

        import highspy

        self.highspy = highspy
        self.k, self.r, self.j = k, r, j
        self.n_arcs = n_arcs = k.size
        arc = np.arange(n_arcs)
        # node rows 0..N-1 (out - in), device rows N..N+K-1
        rows = np.concatenate([r, (r + j)[r + j < n_blocks], n_blocks + k])
        cols = np.concatenate([arc, arc[r + j < n_blocks], arc])
        vals = np.concatenate([np.ones(n_arcs), -np.ones(int((r + j < n_blocks).sum())),
                               np.ones(n_arcs)])
        self.matrix = coo_matrix((vals, (rows, cols)),
                                 shape=(n_blocks + n_devices, n_arcs)).tocsc()
        self.row_lower = np.concatenate([[1.0], np.zeros(n_blocks - 1),
                                         np.full(n_devices, -np.inf)])
        self.row_upper = np.concatenate([[1.0], np.zeros(n_blocks - 1), np.ones(n_devices)])
        self.n_devices, self.n_blocks = n_devices, n_blocks

    def solve(self, *, usable=None, extra_rows=(), cost=None, deadline=None):
        """The path problem with the arcs outside ``usable`` fixed to 0, extra rows
        ``(coefficients over the arcs, lower, upper)`` and ``cost`` over the arcs to minimise
        (none: any feasible path). Returns the arc values, or None when HiGHS proves it
        infeasible; raises TimeoutError at the deadline without a solution."""
        from scipy.sparse import csc_matrix, vstack

        highspy = self.highspy
        n_cols = self.n_arcs
        matrix = self.matrix
        lower, upper = [self.row_lower], [self.row_upper]
        for coefficients, row_lower, row_upper in extra_rows:
            matrix = vstack([matrix, csc_matrix(np.atleast_2d(coefficients))])
            lower.append([row_lower])
            upper.append([row_upper])
        matrix = csc_matrix(matrix)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_cols, matrix.shape[0]
        lp.col_cost_ = np.zeros(n_cols) if cost is None else np.asarray(cost, dtype=float)
        col_upper = np.ones(n_cols) if usable is None else np.where(usable, 1.0, 0.0)
        lp.col_lower_, lp.col_upper_ = np.zeros(n_cols), col_upper
        lp.row_lower_ = np.where(np.isfinite(r := np.concatenate(lower)), r, -highspy.kHighsInf)
        lp.row_upper_ = np.where(np.isfinite(u := np.concatenate(upper)), u, highspy.kHighsInf)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n_cols
        with quiet():  # HiGHS's banner never reaches standard output
            solver = highspy.Highs()
            for option, value in HIGHS_OPTIONS.items():  # never "threads": see solvers/highs.py
                solver.setOptionValue(option, value)
            solver.setOptionValue("primal_feasibility_tolerance", FEASIBILITY_TOLERANCE)
            solver.setOptionValue("mip_feasibility_tolerance", FEASIBILITY_TOLERANCE)
            if deadline is not None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError
                solver.setOptionValue("time_limit", float(left))
            solver.passModel(lp)
            solver.run()
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None
        values = np.asarray(solver.getSolution().col_value)
        if status != highspy.HighsModelStatus.kOptimal or values.size != n_cols:
            if status == highspy.HighsModelStatus.kTimeLimit:
                raise TimeoutError
            raise SolverFailure(f"HiGHS ended the run-path MILP with status "
                                f"{solver.modelStatusToString(status)}")
        return values

    def runs(self, values):
        """The runs (device, length) of a solution's path, from the deep end."""
        chosen = np.flatnonzero(values[:self.n_arcs] > 0.5)
        order = np.argsort(self.r[chosen])
        chosen = chosen[order]
        covered, runs = 0, []
        for arc in chosen:
            if self.r[arc] != covered:  # a cycle-free path visits r in order; anything else
                raise SolverFailure("the run-path MILP returned a broken path")
            runs.append((int(self.k[arc]), int(self.j[arc])))
            covered += int(self.j[arc])
        if covered != self.n_blocks or len({k for k, _ in runs}) != len(runs):
            raise SolverFailure("the run-path MILP returned a broken path")
        return runs


def _tables(instance: Instance):
    from .sets import _run_costs, _run_table

    flops, memory, bits = _run_costs(instance)
    allowed = _run_table(instance, flops, memory, bits)
    return flops, bits, allowed


def paths_p1(instance: Instance, bandwidth_hz, deadline=None) -> SolverResult:
    """P1 with several blocks per device in the uniform case: binary search over the run
    latencies with the path MILP as the test (module docstring). Any number of devices;
    ``deadline`` (a ``time.perf_counter()`` value) stops the search with a proven bound."""
    from .sets import (NO_SETS, _assignment_to_runs, _energy_ok, _result, _runs_to_assignment,
                       solve_packing)

    flops, bits, allowed = _tables(instance)
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
    rate = instance.rate(bandwidth_hz)
    devices = np.arange(instance.n_devices)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        latency = pair_latency(flops[None], instance.device_flops_per_s[devices], bits[None],
                               rate[devices])
    allowed = allowed & _energy_ok(instance, flops[None], bits[None], devices, bandwidth_hz)
    latency = np.where(allowed, latency, np.inf)[:, ::-1, :]  # r covered: deepest N-1-r
    k, r, j, value = path_arcs(latency)
    if k.size == 0:
        return SolverResult.infeasible(NO_SETS)
    model = _PathModel(instance.n_devices, instance.n_blocks, k, r, j)
    candidates = np.unique(value)

    def witness(target):
        """Runs whose latencies are all at most ``target``, or None (proven)."""
        found = model.solve(usable=value <= target, deadline=deadline)
        return None if found is None else model.runs(found)

    # packing's allocation and proven lower bound bracket the search
    try:
        start = solve_packing(instance, bandwidth_hz)
    except SolverFailure:
        start = None
    if start is not None and start.assignment is None:
        return start  # its relaxation proves the instance infeasible
    lo, runs = -1, None  # candidates[lo] fails (or none is below), candidates[hi] passes
    if start is not None:
        if start.lower_bound_s is not None:
            lo = int(np.searchsorted(candidates, start.lower_bound_s)) - 1
        start_runs = _assignment_to_runs(start.assignment)
        if np.isfinite(worst := _chosen_value(model, start_runs, value)):
            runs, hi = start_runs, int(np.searchsorted(candidates, worst))
    if runs is None:
        try:
            runs = witness(candidates[-1])
        except TimeoutError:
            raise SolverFailure("the run-path MILP stopped at the time limit before any "
                                "allocation was found; raise the time limit") from None
        if runs is None:
            return SolverResult.infeasible(NO_SETS)
        hi = int(np.searchsorted(candidates, _chosen_value(model, runs, value)))
    stopped = False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            found = witness(candidates[mid])
        except TimeoutError:
            stopped = True
            break
        if found is None:
            lo = mid
        else:
            runs = found
            hi = int(np.searchsorted(candidates, _chosen_value(model, runs, value)))
    assignment = _runs_to_assignment(instance, runs)
    bound = None if lo < 0 else float(np.nextafter(candidates[lo], np.inf))
    status = Status.FEASIBLE if stopped else Status.OPTIMAL
    message = ("stopped at the time limit; lower_bound_s is proven" if stopped else
               "several blocks per device: binary search with a path MILP over contiguous runs")
    return _result(instance, assignment, bandwidth_hz, status, message=message,
                   **({"lower_bound_s": bound} if stopped else {}))


def _chosen_value(model, runs, value):
    """The largest arc value on the path of ``runs`` (inf if a run is not an arc)."""
    covered, worst = 0, -np.inf
    for device, take in runs:
        arc = np.flatnonzero((model.k == device) & (model.r == covered) & (model.j == take))
        if arc.size == 0:
            return np.inf
        worst = max(worst, float(value[arc[0]]))
        covered += take
    return worst


def paths_p2(instance: Instance, rtol=1e-9, deadline=None) -> SolverResult:
    """P2 with several blocks per device in the uniform case: Dinkelbach's iteration with the
    path MILP, certified by its feasibility test (module docstring), started from
    ``packing``'s allocation and proven lower bound. Any number of devices, either rate
    model; ``deadline`` stops it with a proven bound."""
    from .sets import (NO_SETS, _result, _run_needs, _runs_to_assignment, double_until,
                       group_split, solve_packing)

    flops, bits, allowed = _tables(instance)
    need = _run_needs(instance, flops, bits, allowed)
    budget = instance.total_bandwidth_hz
    every = allowed[:, ::-1, :]
    k, r, j, _ = path_arcs(np.where(every, 0.0, np.inf))
    if k.size == 0:
        return SolverResult.infeasible(NO_SETS)
    model = _PathModel(instance.n_devices, instance.n_blocks, k, r, j)

    def witness(target):
        """An allocation whose runs need at most B at ``target``, or None (proven)."""
        cost = need(target)[:, ::-1, :][k, r, j - 1]
        usable = cost <= budget
        if not usable.any():
            return None
        row = np.where(usable, cost, 0.0) / budget
        found = model.solve(usable=usable, extra_rows=[(row, -np.inf, 1.0 - BUDGET_MARGIN)],
                            deadline=deadline)
        return None if found is None else _runs_to_assignment(instance, model.runs(found))

    def cheapest(target):
        """The allocation of least total bandwidth at ``target`` (to HiGHS's gap), or None."""
        cost = need(target)[:, ::-1, :][k, r, j - 1]
        usable = cost <= budget
        if not usable.any():
            return None
        found = model.solve(usable=usable, cost=np.where(usable, cost, 0.0) / budget,
                            deadline=deadline)
        return None if found is None else _runs_to_assignment(instance, model.runs(found))

    try:
        start = solve_packing(instance)
    except SolverFailure:
        start = None
    if start is not None and start.assignment is None:
        return start  # packing's relaxation proves it
    if start is not None:
        lo, hi, best = max(start.lower_bound_s or 0.0, 0.0), start.round_latency_s, \
            start.assignment
    else:
        found = double_until(
            witness, float(np.min(flops[np.isfinite(flops)]) / instance.device_flops_per_s.max()),
            200, "the run-path MILP")
        if found is None:
            return SolverResult.infeasible(NO_SETS)
        lo, _, best = found
        hi = float(group_split(instance, best)[0][0])
    stopped = False
    while lo < hi * (1 - rtol):  # the same product as the target below: no rounding loop
        try:
            # Dinkelbach's step: the allocation that needs the least bandwidth at hi meets B
            # at its own latency, at most hi; a fixed point is optimal
            step = cheapest(hi)
            if step is not None:
                latency = float(group_split(instance, step)[0][0])
                if latency < hi * (1 - rtol):
                    hi, best = latency, step
                    continue
            # no progress: hi is optimal unless some allocation fits B just below it
            target = max(lo, hi * (1 - rtol))
            found = witness(target)
        except TimeoutError:
            stopped = True
            break
        if found is None:
            lo = target
            continue
        latency = float(group_split(instance, found)[0][0])  # at most target: the margin
        if latency < hi:
            hi, best = latency, found
        else:  # cannot happen unless HiGHS breaks its tolerance; stop rather than loop
            lo = target
    latency, bandwidth = group_split(instance, best)
    if not np.isfinite(latency[0]):
        return SolverResult.infeasible(NO_SETS)
    status = Status.FEASIBLE if stopped else Status.OPTIMAL
    message = ("stopped at the time limit; lower_bound_s is proven" if stopped else
               "several blocks per device: path MILP over contiguous runs (Dinkelbach)")
    return _result(instance, best, bandwidth[0], status, lower_bound_s=min(lo, latency[0]),
                   message=message)
