"""General exact bottleneck assignment on a latency matrix (problem P1, no monotonicity assumed).

Minimise max_n L[a(n), n] over one-to-one assignments a of the N blocks (columns) to the K devices
(rows), where L is +inf on forbidden pairs. The optimum is one of the finite entries of L, so a
bisection over the sorted distinct finite entries, with a maximum bipartite matching
(Hopcroft-Karp, :func:`scipy.sparse.csgraph.maximum_bipartite_matching`) on the pairs
``L <= T`` as the feasibility test, finds it exactly in O(log(KN)) matchings.

>>> import numpy as np
>>> L = np.array([[4.0, 1.0], [2.0, 9.0], [3.0, 3.0]])
>>> value, assignment = bottleneck_assignment(L)
>>> float(value), assignment.tolist()
(2.0, [1, 0])
"""
from __future__ import annotations

import numpy as np

__all__ = ["bottleneck_assignment", "perfect_matching"]


def perfect_matching(allowed: np.ndarray) -> np.ndarray | None:
    """A matching of every column of the boolean (K, N) array ``allowed`` to distinct rows.

    Returns the row of each column, or None when no such matching exists.
    """
    n_rows, n_cols = allowed.shape
    if n_cols == 0:
        return np.zeros(0, dtype=np.int64)
    if n_rows < n_cols:
        return None
    from scipy.sparse import csr_matrix  # here: scipy's imports are slow
    from scipy.sparse.csgraph import maximum_bipartite_matching

    graph = csr_matrix(allowed.T.astype(np.int8))  # rows: columns of ``allowed``
    match = maximum_bipartite_matching(graph, perm_type="column")
    if np.any(match < 0):
        return None
    return match.astype(np.int64)


def bottleneck_assignment(latency: np.ndarray):
    """Exact bottleneck assignment of the columns of ``latency`` to distinct rows.

    Returns ``(value, assignment)``, or ``(inf, None)`` when no assignment uses only finite
    entries. ``value`` is an entry of ``latency``, compared exactly (no tolerance is needed since
    the candidates are the matrix's own values).
    """
    latency = np.asarray(latency, dtype=float)
    finite = np.isfinite(latency)
    if perfect_matching(finite) is None:
        return np.inf, None
    values = np.unique(latency[finite])
    lo, hi = 0, len(values) - 1
    # A cheap lower bound: every column needs its cheapest row.
    lo = int(np.searchsorted(values, latency.min(axis=0).max(), side="left"))
    best = None
    while lo < hi:
        mid = (lo + hi) // 2
        matching = perfect_matching(latency <= values[mid])
        if matching is None:
            lo = mid + 1
        else:
            hi, best = mid, matching
    if best is None or latency[best, np.arange(latency.shape[1])].max() > values[lo]:
        best = perfect_matching(latency <= values[lo])
    return float(values[lo]), best
