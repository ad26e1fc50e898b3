"""Baseline matchings that LoLa's allocators are measured against.

All three take a (K, N) latency matrix with +inf on forbidden (memory-infeasible) pairs and return
a device per block, or None when no assignment over allowed pairs exists.

* ``random_matching``: a uniformly random-weighted feasible matching (seeded).
* ``greedy_matching``: depth-aware greedy: deepest block first, each to the free device that
  trains it fastest, repaired by a matching if it paints itself into a corner.
* ``min_sum_matching``: the Hungarian method on total latency, sum_n T_{a(n) n}.
"""
from __future__ import annotations

import numpy as np

from .bottleneck import perfect_matching

__all__ = ["random_matching", "greedy_matching", "min_sum_matching", "min_cost_matching"]


def min_cost_matching(cost: np.ndarray) -> np.ndarray | None:
    """Hungarian method (:func:`scipy.optimize.linear_sum_assignment`) on the columns of ``cost``.

    +inf entries are forbidden; returns the row of each column or None when infeasible.
    """
    if cost.shape[0] < cost.shape[1]:  # scipy would assign only K of the N blocks
        return None
    try:
        from scipy.optimize import linear_sum_assignment  # here: a slow import

        rows, cols = linear_sum_assignment(cost.T)
    except ValueError:  # scipy: "cost matrix is infeasible"
        return None
    assignment = np.empty(cost.shape[1], dtype=np.int64)
    assignment[rows] = cols
    if not np.all(np.isfinite(cost[assignment, np.arange(cost.shape[1])])):
        return None
    return assignment


def random_matching(latency: np.ndarray, seed=0) -> np.ndarray | None:
    rng = np.random.default_rng(seed)
    weights = np.where(np.isfinite(latency), rng.random(latency.shape), np.inf)
    return min_cost_matching(weights)


def min_sum_matching(latency: np.ndarray) -> np.ndarray | None:
    return min_cost_matching(latency)


def greedy_matching(latency: np.ndarray) -> np.ndarray | None:
    n_devices, n_blocks = latency.shape
    assignment = np.full(n_blocks, -1, dtype=np.int64)
    free = np.ones(n_devices, dtype=bool)
    for block in range(n_blocks - 1, -1, -1):
        options = np.where(free, latency[:, block], np.inf)
        device = int(np.argmin(options))
        if not np.isfinite(options[device]):
            break
        assignment[block], free[device] = device, False
    else:
        return assignment
    # Stuck (possible only when memory is not monotone in depth): any feasible matching instead.
    return perfect_matching(np.isfinite(latency))
