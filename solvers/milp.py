"""Exact baselines posed as mixed-integer linear programs through cvxpy and HiGHS.

P1 as one MILP over the memory-feasible pairs (x_kn binary, t continuous)::

    minimise t
    s.t.  sum_k x_kn = 1                    (every block trained once)
          sum_n x_kn <= 1                   (every device trains at most one block)
          sum_n (T_kn / s) x_kn <= t        (round latency; s scales latencies to <= 1)

Solved with ``mip_rel_gap = mip_abs_gap = 0``. cvxpy hands back whatever values HiGHS holds, even
after a time limit with no incumbent, so the assignment is rounded and checked before it is
trusted, and the latency is recomputed from it rather than read from t.
"""
from __future__ import annotations

import warnings

import numpy as np

from .highs import OPTIONS as HIGHS_OPTIONS
from .highs import quiet
from .result import SolverFailure

__all__ = ["milp_assignment", "MilpOutcome"]

_TIGHT = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "mip_feasibility_tolerance": 1e-9,
          "primal_feasibility_tolerance": 1e-9}


class MilpOutcome:
    """``assignment`` (device per block) or None, ``proven`` optimal, ``bound`` on the objective."""

    def __init__(self, assignment, proven, bound, infeasible=False):
        self.assignment, self.proven, self.bound, self.infeasible = (
            assignment, proven, bound, infeasible)


def _check_assignment(x_value, rows, cols, n_devices, n_blocks):
    if x_value is None or not np.all(np.isfinite(x_value)):
        return None
    chosen = np.asarray(x_value).ravel() > 0.5
    per_block = np.bincount(cols[chosen], minlength=n_blocks)
    per_device = np.bincount(rows[chosen], minlength=n_devices)
    if np.any(per_block != 1) or np.any(per_device > 1):
        return None
    assignment = np.empty(n_blocks, dtype=np.int64)
    assignment[cols[chosen]] = rows[chosen]
    return assignment


def milp_assignment(cost: np.ndarray, *, objective: str, time_limit_s=None) -> MilpOutcome:
    """Solve an assignment MILP over the finite entries of the (K, N) ``cost`` matrix.

    ``objective="bottleneck"`` minimises max cost (problem P1); ``objective="sum"`` minimises the
    total cost (the min-total-bandwidth feasibility test of P2). Raises :class:`SolverFailure`
    when HiGHS stops (time limit) without a checked incumbent.
    """
    import cvxpy as cp
    import scipy.sparse as sp

    cost = np.asarray(cost, dtype=float)
    n_devices, n_blocks = cost.shape
    rows, cols = np.nonzero(np.isfinite(cost))
    if n_devices < n_blocks or np.unique(cols).size < n_blocks:
        return MilpOutcome(None, True, np.inf, infeasible=True)
    scale = float(np.abs(cost[rows, cols]).max()) or 1.0
    weights = cost[rows, cols] / scale
    n_pairs = len(rows)
    by_block = sp.csr_matrix((np.ones(n_pairs), (cols, np.arange(n_pairs))), (n_blocks, n_pairs))
    by_device = sp.csr_matrix((np.ones(n_pairs), (rows, np.arange(n_pairs))), (n_devices, n_pairs))
    x = cp.Variable(n_pairs, boolean=True)
    constraints = [by_block @ x == 1, by_device @ x <= 1]
    if objective == "bottleneck":
        t = cp.Variable()
        weighted = sp.csr_matrix((weights, (rows, np.arange(n_pairs))), (n_devices, n_pairs))
        constraints.append(weighted @ x <= t)
        problem = cp.Problem(cp.Minimize(t), constraints)
    elif objective == "sum":
        problem = cp.Problem(cp.Minimize(weights @ x), constraints)
    else:
        raise ValueError(f"objective must be 'bottleneck' or 'sum', got {objective!r}")
    options = dict(HIGHS_OPTIONS, **_TIGHT)
    if time_limit_s is not None:
        options["time_limit"] = float(time_limit_s)
    with warnings.catch_warnings():  # "solution may be inaccurate": checked below instead
        warnings.simplefilter("ignore", UserWarning)
        with quiet():  # HiGHS's banner never reaches standard output
            problem.solve(solver=cp.HIGHS, **options)
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return MilpOutcome(None, True, np.inf, infeasible=True)
    assignment = _check_assignment(x.value, rows, cols, n_devices, n_blocks)
    info = problem.solver_stats.extra_stats if problem.solver_stats else None
    bound = getattr(info, "mip_dual_bound", np.nan)
    bound = float(bound) * scale if bound is not None and np.isfinite(bound) else None
    if assignment is None:
        if problem.status == cp.USER_LIMIT:
            raise SolverFailure(f"HiGHS stopped at the time limit of {time_limit_s} s without a "
                                "feasible assignment; raise the time limit or use an exact "
                                "combinatorial method")
        raise SolverFailure(f"HiGHS returned status {problem.status!r} with no usable assignment")
    return MilpOutcome(assignment, problem.status == cp.OPTIMAL, bound)
