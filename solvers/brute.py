"""Enumeration of every one-to-one assignment, for tiny instances only.

There are K! / (K - N)! ways to give the N blocks to distinct devices among K. ``brute`` refuses
instances with more than ``max_assignments`` of them rather than running for hours.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .result import SolverInputError

__all__ = ["count_assignments", "check_enumerable", "enumerate_assignments"]

DEFAULT_MAX_ASSIGNMENTS = 200_000


def count_assignments(n_devices: int, n_blocks: int) -> int:
    """K! / (K - N)!, or 0 when K < N."""
    return math.perm(n_devices, n_blocks) if n_devices >= n_blocks else 0


def check_enumerable(n_devices, n_blocks, max_assignments=DEFAULT_MAX_ASSIGNMENTS):
    count = count_assignments(n_devices, n_blocks)
    if count > max_assignments:
        raise SolverInputError(
            f"brute would enumerate {count:.3g} assignments of {n_blocks} blocks to {n_devices} "
            f"devices, more than its limit of {max_assignments}; use an exact method that scales "
            "(crunch or bottleneck for matching, exact for jbba)")
    return count


def enumerate_assignments(n_devices: int, n_blocks: int, chunk: int = 4096):
    """Yield (M, N) int arrays whose rows are all injective maps blocks -> devices."""
    permutations = itertools.permutations(range(n_devices), n_blocks)
    while True:
        rows = list(itertools.islice(permutations, chunk))
        if not rows:
            return
        yield np.array(rows, dtype=np.int64).reshape(len(rows), n_blocks)


def brute_bottleneck(latency: np.ndarray, max_assignments=DEFAULT_MAX_ASSIGNMENTS):
    """(value, assignment) minimising max_n latency[a(n), n], or (inf, None) if none is finite."""
    n_devices, n_blocks = latency.shape
    check_enumerable(n_devices, n_blocks, max_assignments)
    best_value, best = np.inf, None
    columns = np.arange(n_blocks)
    for batch in enumerate_assignments(n_devices, n_blocks):
        values = latency[batch, columns].max(axis=1)
        i = int(np.argmin(values))
        if values[i] < best_value:
            best_value, best = float(values[i]), batch[i].copy()
    return best_value, best
