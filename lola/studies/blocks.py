"""Round latency versus the number of devices, one block per device against several (section 8).

With one block per device a model of N blocks needs K >= N devices; with up to M blocks per
device K >= N / M suffice, and even with K >= N sharing one backward pass can shorten the round.
:func:`latency_vs_devices` measures both on generated scenarios: for each K it solves with the
problem's default exact method at ``max_blocks=1`` and at ``max_blocks=M``, and returns one row
per (K, max_blocks). :func:`lola.plots.plot_devices_sweep` draws the rows.

The scenarios are nested: the devices of the scenario with K devices are the first K of one
draw of ``max(device_counts)`` devices from :func:`lola.generate.generate_scenario` (each
device's class, throughput, memory and channel are drawn independently, so the first K are a
draw of K devices). Adding devices then never lengthens the optimal P2 round, and the curves
show the effect of K rather than of a fresh draw at every K.

The exact several-blocks methods solve every K of the bundled profiles (a programme over
subsets of the devices for few devices, the layered methods of :mod:`solvers.layers` for many,
with the path MILP over contiguous runs behind them; see :mod:`solvers.sets`). With ``exact_up_to`` set, rows at ``max_blocks=M`` with more devices than
that come from ``beyond`` instead (``packing`` by default: fast, not proven optimal, with a
proven lower bound in ``lower_bound_s``), with the method named in the row and status
``feasible`` unless the method proves optimality; with ``beyond=None`` such rows are skipped
(status ``skipped``, no latency).

>>> rows = latency_vs_devices("roberta-base", [3, 12], max_blocks=4, problem="matching")
>>> [(r["devices"], r["max_blocks"], r["status"]) for r in rows]
[(3, 1, 'infeasible'), (3, 4, 'optimal'), (12, 1, 'optimal'), (12, 4, 'optimal')]
>>> one, several = (r["round_latency_s"] for r in rows[2:])
>>> several <= one  # a cap of 4 allows every one-block allocation
True
"""
from __future__ import annotations

import time

from solvers import get_method

from ..api import default_method, solve
from ..generate import generate_scenario
from ..profiles import load_profile

__all__ = ["latency_vs_devices", "COLUMNS"]

COLUMNS = ("profile", "blocks", "problem", "seed", "devices", "max_blocks", "method", "status",
           "round_latency_s", "lower_bound_s", "solve_time_s", "wall_s")


def latency_vs_devices(profile: str = "roberta-base", device_counts=None, max_blocks: int = 3,
                       seed: int = 0, problem: str = "jbba", *, rate_model: str = "fixed",
                       beyond: str | None = "packing", exact_up_to: int | None = None,
                       time_limit_s: float | None = None, progress=None) -> list:
    """Optimal round latency for each K in ``device_counts``, at one block per device and at
    up to ``max_blocks`` blocks per device.

    Parameters
    ----------
    profile : str
        A bundled profile name or a profile file; N is its number of blocks.
    device_counts : iterable of int, optional
        The values of K (default 1, 2, ..., 2N).
    max_blocks : int
        M, at least 2: the cap of every device in the several-blocks rows.
    seed : int
        Seed of the one device draw (module docstring).
    problem : {"jbba", "matching"}
        Solved by its default exact method (:func:`lola.default_method`).
    rate_model : {"fixed", "shannon"}
        Of the generated scenarios.
    beyond : str or None
        The method for several-blocks rows with more than ``exact_up_to`` devices (module
        docstring); None skips them.
    exact_up_to : int, optional
        The largest K solved exactly at ``max_blocks=M`` (default: every K).
    time_limit_s : float, optional
        Wall-clock limit of each solve by a method that takes one (:func:`lola.solve`); a
        solve that reaches it gives a ``feasible`` row with its proven lower bound.
    progress : callable, optional
        Called as ``progress(K, max_blocks)`` before each solve.

    Returns
    -------
    list of dict
        One row per (K, max_blocks), K ascending, 1 before M: the keys of :data:`COLUMNS`.
        ``round_latency_s`` is None when the status is ``infeasible`` or ``skipped``;
        ``wall_s`` is the whole call of :func:`lola.solve` (building the instance included),
        ``solve_time_s`` the method alone.
    """
    if int(max_blocks) != max_blocks or max_blocks < 2:
        raise ValueError(f"max_blocks must be an integer of at least 2, got {max_blocks!r}")
    n_blocks = len(load_profile(profile).blocks)
    counts = sorted({int(k) for k in (device_counts if device_counts is not None
                                      else range(1, 2 * n_blocks + 1))})
    if not counts or counts[0] < 1:
        raise ValueError(f"device counts must be positive integers, got {device_counts!r}")
    exact = default_method(problem)
    drawn = generate_scenario(counts[-1], profile=profile, rate_model=rate_model, seed=seed)
    rows = []
    for k in counts:
        document = dict(drawn, devices=drawn["devices"][:k],
                        name=f"{profile}-{k}-devices-seed{seed}")
        for cap in (1, int(max_blocks)):
            method = exact
            if cap > 1 and exact_up_to is not None and k > exact_up_to:
                method = beyond
            row = {"profile": profile, "blocks": n_blocks, "problem": problem, "seed": seed,
                   "devices": k, "max_blocks": cap, "method": method}
            if method is None:
                rows.append(dict(row, status="skipped", round_latency_s=None,
                                 lower_bound_s=None, solve_time_s=None, wall_s=None))
                continue
            if progress is not None:
                progress(k, cap)
            started = time.perf_counter()
            limit = time_limit_s if get_method(method, problem).takes_time_limit else None
            result = solve(document, problem=problem, method=method, max_blocks=cap,
                           time_limit_s=limit)
            rows.append(dict(row, status=result.status, round_latency_s=result.round_latency_s,
                             lower_bound_s=result.lower_bound_s,
                             solve_time_s=result.solve_time_s,
                             wall_s=time.perf_counter() - started))
    return rows
