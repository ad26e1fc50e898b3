"""A second exact opinion on P2: one mixed-integer second-order-cone program solved by SCIP.

For the ``fixed`` rate model, with binaries x_kn, per-pair bandwidths b_kn and the round latency
T::

    minimise T
    s.t.  sum_k x_kn = 1,  sum_n x_kn <= 1,  x_kn = 0 on memory-infeasible pairs
          0 <= b_kn <= B x_kn,  sum_kn b_kn <= B
          (T - C_n / f_k + M (1 - x_kn)) b_kn >= (S_n / rho_k) x_kn^2        (rotated cone)

With energy budgets, b_kn >= e_kn x_kn keeps every device at or above its energy floor
(:meth:`~solvers.model.Instance.energy_bandwidth_floor`), and pairs whose floor is infinite are
left out, so the program is P2 with budgets. When x_kn = 1 the cone says
C_n / f_k + S_n / (rho_k b_kn) <= T; when x_kn = 0 it is void. M is
an upper bound on T (the equal-share CRUNCH allocation's latency) plus the largest compute time.
The ``shannon`` rate is not second-order-cone representable, so this method takes ``fixed`` only.

SCIP's answer is used for its assignment: the bandwidths and the latency are then recomputed
with the exact optimal split of that assignment, so that solver tolerances never leak into the
reported numbers. Needs the ``scip`` extra (``pip install pyscipopt``).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import numpy as np

from .bandwidth import optimal_split
from .exact import split_result, equal_share_start
from .model import Instance
from .result import SolverFailure, SolverInputError, SolverResult, Status

__all__ = ["solve_scip"]


@contextlib.contextmanager
def _c_stdout_silenced():
    """Send the process's C-level standard output to /dev/null for the duration.

    SCIP answers Ctrl-C by ``printf``-ing "pressed CTRL-C 1 times ..." whatever its verbosity;
    without this, an interrupted command would leave that line on the user's standard output.
    """
    try:
        stdout_fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real file behind sys.stdout (notebooks)
        yield
        return
    sys.stdout.flush()
    saved = os.dup(stdout_fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stdout_fd)
        yield
    finally:
        try:
            ctypes.CDLL(None).fflush(None)  # empty C's buffer into /dev/null, not the terminal
        except (OSError, AttributeError):
            pass
        os.dup2(saved, stdout_fd)
        os.close(saved)
        os.close(devnull)


def solve_scip(instance: Instance, *, time_limit_s=None, **_) -> SolverResult:
    if instance.rate_model != "fixed":
        raise SolverInputError("scip poses P2 as a mixed-integer second-order-cone program, which "
                               "needs the fixed rate model; use exact for shannon")
    from pyscipopt import Model, quicksum

    start = equal_share_start(instance)
    if start is None or not np.isfinite(start[1]):
        return SolverResult.infeasible()
    upper = start[1]
    compute = instance.compute_time_matrix()
    allowed = instance.memory_feasible() & (compute < upper)
    energy_floor = instance.energy_bandwidth_floor()
    if energy_floor is not None:
        allowed &= energy_floor < instance.total_bandwidth_hz
    scale = upper  # times in units of the start latency, bandwidth in units of B
    budget = instance.total_bandwidth_hz
    big_m = 1.0 + compute[allowed].max() / scale
    model = Model("lola-jbba")
    model.hideOutput()
    model.setParam("limits/gap", 0.0)
    if time_limit_s is not None:
        model.setParam("limits/time", float(time_limit_s))
    latency = model.addVar("T", lb=0.0, ub=1.0)
    pairs = list(zip(*np.nonzero(allowed)))
    x, b = {}, {}
    for k, n in pairs:
        x[k, n] = model.addVar(f"x_{k}_{n}", vtype="B")
        b[k, n] = model.addVar(f"b_{k}_{n}", lb=0.0, ub=1.0)
        model.addCons(b[k, n] <= x[k, n])
        if energy_floor is not None and energy_floor[k, n] > 0:
            model.addCons(b[k, n] >= float(energy_floor[k, n] / budget) * x[k, n])
        weight = instance.block_bits[n] / (instance.device_spectral_efficiency[k] * budget
                                           * scale)
        slack = latency - compute[k, n] / scale + big_m * (1 - x[k, n])
        model.addCons(slack * b[k, n] >= weight * x[k, n] * x[k, n])
    for n in range(instance.n_blocks):
        model.addCons(quicksum(x[k, m] for k, m in pairs if m == n) == 1)
    for k in range(instance.n_devices):
        mine = [x[j, n] for j, n in pairs if j == k]
        if mine:
            model.addCons(quicksum(mine) <= 1)
    model.addCons(quicksum(b.values()) <= 1)
    model.setObjective(latency, "minimize")
    with _c_stdout_silenced():
        model.optimize()
    status = model.getStatus()
    if status == "userinterrupt":  # SCIP catches Ctrl-C itself; hand it back to the caller
        raise KeyboardInterrupt
    if status == "infeasible":
        return SolverResult.infeasible("SCIP proved no allocation beats the equal-share start")
    if model.getNSols() == 0:
        reason = (f"the time limit of {time_limit_s:g} s" if status == "timelimit"
                  else f"status {status}")
        raise SolverFailure(f"SCIP stopped at {reason} without a feasible allocation; raise "
                            "--time-limit or use exact, which scales")
    solution = model.getBestSol()
    assignment = np.empty(instance.n_blocks, dtype=np.int64)
    for (k, n), variable in x.items():
        if model.getSolVal(solution, variable) > 0.5:
            assignment[n] = k
    _, split = optimal_split(instance, assignment[None, :])
    bound = model.getDualbound() * scale
    result = split_result(instance, assignment, split[0],
                           Status.OPTIMAL if status == "optimal" else Status.FEASIBLE,
                           lower_bound_s=bound * (1 - 1e-6))  # SCIP's tolerance
    if status != "optimal":
        reason = (f"time limit of {time_limit_s:g} s reached" if status == "timelimit"
                  else f"SCIP stopped ({status})")
        result.message = f"{reason}; SCIP's dual bound is the lower bound"
    return result
