"""CRUNCH: exact block-device matching (problem P1) for monotone depth costs.

Cutting, RecoUNting, CHecking over latency thresholds. Problem P1 asks for a one-to-one
assignment a of the N blocks to K devices minimising the round latency max_n T_{a(n) n}, with
only memory-feasible pairs.

The structure it exploits: when C_n, S_n and m_n are non-decreasing along one common order of
the blocks (depth), every device's latency T_kn = C_n / f_k + S_n / r_k is non-decreasing along it
too (floating-point division and addition are monotone, so this holds for the computed values,
not only the real ones), and so is memory feasibility. For a threshold T, device k can therefore
train exactly the blocks of a prefix of length p_k(T), and because the sets are nested, Hall's
condition for a perfect matching of the blocks reduces to a count:

    feasible(T)  <=>  #{k : p_k(T) >= j} >= N - j + 1   for j = 1..N.

Equivalently the optimum is  T* = max_j v_j  where v_j is the (N - j + 1)-th smallest latency
of block j over all devices. CRUNCH never forms the K x N latency matrix:

1. **Cutting.** Two columns give bounds: v_1 and v_N are lower bounds, and the N-th smallest
   latency of the deepest block is an upper bound (any N devices that can train the deepest block
   can train any block). Devices whose latency on the *shallowest* block exceeds the upper bound
   can never be used and are cut; the cut is repeated as the upper bound falls.
2. **Recounting.** p_k(T) for all remaining devices is a vectorised binary search over the
   depth order, O(K' log N) time and O(K') memory per probe.
3. **Checking.** The counting test above, O(K' + N).

The threshold search runs over the actual latency values between the bounds: pivots are drawn
from the values still in the interval (weighted by how many each device holds, with a seeded
generator), and once at most ``enumerate_below`` values remain they are listed, sorted and
bisected. The answer is therefore always one of the computed T_kn values, never a float that
merely lies between two of them.

**Energy budgets.** A device k with a budget E^max_k (and powers P^c_k, P^tx_k) may train block
n only if E_kn = P^c_k C_n / f_k + P^tx_k S_n / r_k <= E^max_k. Along the common order E_kn is
non-decreasing (the computed values too: every operation is monotone on non-negative floats), so
the blocks within the budget are a prefix, exactly like the memory-feasible ones: the device's
cap becomes the shorter of the two prefixes (found by a vectorised binary search), and the
nested-sets argument, hence the counting test and exactness, are unchanged.

If the costs are not monotone in one common order, the counting test would be wrong, so CRUNCH
refuses (returns ``None``) and the caller falls back to the general bottleneck assignment.

Examples
--------
>>> import numpy as np
>>> res = crunch_matching(block_flops=np.array([1.0, 2.0, 3.0]), block_bits=np.zeros(3),
...                       block_memory=np.ones(3), device_flops_per_s=np.array([1.0, 2.0, 3.0, 0.5]),
...                       device_rate_bps=np.ones(4), device_memory=np.ones(4))
>>> float(res.threshold), res.assignment.tolist()
(1.0, [0, 1, 2])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import pair_energy, pair_latency

__all__ = ["common_depth_order", "crunch_matching", "CrunchOutcome"]

_FANOUT = 16      # positions evaluated per device and round of the prefix search
_CHUNK = 1 << 16  # devices per chunk of the prefix search (bounds its temporaries)


@dataclass
class CrunchOutcome:
    """Result of :func:`crunch_matching`.

    ``assignment`` (device index per block, in the caller's block order) and ``threshold`` are
    None / inf when no assignment exists. ``monotone`` is False when CRUNCH refused the input;
    ``reason`` then says why. ``probes`` counts threshold checks, ``devices_kept`` the devices
    that survived the cut.
    """

    assignment: np.ndarray | None
    threshold: float
    monotone: bool = True
    reason: str = ""
    probes: int = 0
    devices_kept: int = 0
    order_is_listed: bool = True


def _non_decreasing(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def common_depth_order(block_flops, block_bits, block_memory):
    """An order of the blocks along which C, S and m are all non-decreasing, or None.

    The listed (depth) order is preferred; otherwise the lexicographic order by (C, S, m) is the
    only candidate: if any common order exists, that one is one too.
    """
    listed = np.arange(len(block_flops))
    if all(_non_decreasing(v) for v in (block_flops, block_bits, block_memory)):
        return listed
    order = np.lexsort((block_memory, block_bits, block_flops))
    if _non_decreasing(block_bits[order]) and _non_decreasing(block_memory[order]):
        return order
    return None


def _describe_non_monotone(block_flops, block_bits, block_memory) -> str:
    order = np.lexsort((block_memory, block_bits, block_flops))
    for name, values in (("payload", block_bits), ("memory", block_memory)):
        sorted_values = values[order]
        bad = np.nonzero(sorted_values[1:] < sorted_values[:-1])[0]
        if bad.size:
            i, j = int(order[bad[0]]), int(order[bad[0] + 1])
            return (f"block costs are not monotone in one common depth order: block #{j} needs "
                    f"at least the FLOPs of block #{i} but less {name}")
    return "block costs are not monotone in one common depth order"


class _Devices:
    """The devices still in play, as parallel arrays, with their prefix counts."""

    def __init__(self, index, flops_per_s, rate, cap, first_latency):
        self.index, self.flops_per_s, self.rate = index, flops_per_s, rate
        self.cap, self.first_latency = cap, first_latency

    def subset(self, keep):
        return _Devices(self.index[keep], self.flops_per_s[keep], self.rate[keep],
                        self.cap[keep], self.first_latency[keep])


def crunch_matching(**arrays) -> CrunchOutcome:
    """Exact bottleneck matching for monotone depth costs (see the module docstring).

    Parameters (keyword-only)
    -------------------------
    block_flops, block_bits, block_memory : (N,) arrays
        C_n, S_n, m_n in the listed block order.
    device_flops_per_s, device_rate_bps, device_memory : (K,) arrays
        f_k, r_k (at the device's fixed bandwidth) and M_k.
    device_energy_budget_j, device_compute_power_w, device_tx_power_w : (K,) arrays, optional
        E^max_k (+inf where none), P^c_k and P^tx_k: pairs over budget are excluded (see the
        module docstring). None (the default) means no budgets.
    seed : int
        Seed of the pivot sampler (the answer does not depend on it; the work does slightly).
    enumerate_below : int
        Once at most this many candidate values remain, they are listed and bisected.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return _crunch(**arrays)


def _crunch(*, block_flops, block_bits, block_memory, device_flops_per_s,
           device_rate_bps, device_memory, device_energy_budget_j=None,
           device_compute_power_w=None, device_tx_power_w=None, seed=0,
           enumerate_below=4096) -> CrunchOutcome:
    C = np.asarray(block_flops, dtype=float)
    S = np.asarray(block_bits, dtype=float)
    m = np.asarray(block_memory, dtype=float)
    n_blocks, n_devices = len(C), len(device_flops_per_s)
    order = common_depth_order(C, S, m)
    if order is None:
        return CrunchOutcome(None, np.inf, monotone=False, reason=_describe_non_monotone(C, S, m))
    C, S, m = C[order], S[order], m[order]
    listed = bool(np.array_equal(order, np.arange(n_blocks)))
    if n_devices < n_blocks or n_blocks == 0:
        return CrunchOutcome(None, np.inf, order_is_listed=listed)

    f = np.asarray(device_flops_per_s, dtype=float)
    r = np.asarray(device_rate_bps, dtype=float)
    cap = np.searchsorted(m, np.asarray(device_memory, dtype=float), side="right")
    cap[~(r > 0)] = 0  # a device with no uplink rate cannot deliver any gradient
    if device_energy_budget_j is not None:
        cap = np.minimum(cap, _energy_prefix(C, S, f, r, device_energy_budget_j,
                                             device_compute_power_w, device_tx_power_w))
    first = np.where(cap >= 1, pair_latency(C[0], f, S[0], r), np.inf)
    last = np.where(cap >= n_blocks, pair_latency(C[-1], f, S[-1], r), np.inf)

    # Cutting: bounds from the shallowest and the deepest block.
    lower = max(np.partition(first, n_blocks - 1)[n_blocks - 1], last.min())
    if not np.isfinite(lower):
        return CrunchOutcome(None, np.inf, order_is_listed=listed)
    upper = np.partition(last, n_blocks - 1)[n_blocks - 1]
    devices = _Devices(np.arange(n_devices), f, r, cap, first)
    probes = 0
    uniform_payload = bool(S[0] == S[-1])  # S is sorted, so all payloads are equal
    feasible_prefix = {}

    def counts(threshold, dev):
        """p_k(threshold): length of the prefix of blocks device k can train within it.

        A vectorised B-ary search: each round evaluates ``_FANOUT`` positions per device and
        keeps the bracket where the (monotone) test flips, so it takes ceil(log_B(N + 1))
        rounds instead of log2 ones; devices are handled in chunks to bound the temporaries.
        """
        if uniform_payload:
            return _uniform_payload_counts(threshold, C, S[0], dev)
        prefix = np.empty(len(dev.index), dtype=np.int64)
        steps = np.arange(_FANOUT)
        for start in range(0, len(dev.index), _CHUNK):
            part = slice(start, start + _CHUNK)
            lo = np.zeros(len(dev.index[part]), dtype=np.int64)
            hi = dev.cap[part].astype(np.int64)
            speed, rate = dev.flops_per_s[part], dev.rate[part]
            active = np.nonzero(lo < hi)[0]
            while active.size:
                span = hi[active] - lo[active]
                position = lo[active, None] + (span[:, None] * steps) // _FANOUT
                ok = (C[position] / speed[active, None] + S[position] / rate[active, None]
                      <= threshold)
                passed = ok.sum(axis=1)
                rows = np.arange(active.size)
                lo[active] = np.where(passed > 0, position[rows, passed - 1] + 1, lo[active])
                hi[active] = np.where(passed < _FANOUT,
                                      position[rows, np.minimum(passed, _FANOUT - 1)], hi[active])
                active = active[lo[active] < hi[active]]
            prefix[part] = lo
        return prefix

    def feasible(prefix, threshold=None):
        nonlocal probes
        probes += 1
        per_length = np.bincount(np.minimum(prefix, n_blocks), minlength=n_blocks + 1)
        at_least = np.cumsum(per_length[::-1])[::-1]  # at_least[j] = #{k : p_k >= j}
        ok = bool(np.all(at_least[1:] >= np.arange(n_blocks, 0, -1)))
        if ok and threshold is not None:
            feasible_prefix[threshold] = prefix
        return ok

    if not np.isfinite(upper):
        # Fewer than N devices hold the deepest block: every finite value is a candidate, and
        # the largest one is feasible iff any assignment is.
        deepest = np.maximum(cap - 1, 0)
        everything = np.where(cap >= 1, pair_latency(C[deepest], f, S[deepest], r), np.inf)
        finite = everything[np.isfinite(everything)]
        upper = finite.max() if finite.size else np.inf
        if not np.isfinite(upper) or not feasible(counts(upper, devices)):
            return CrunchOutcome(None, np.inf, probes=probes, order_is_listed=listed)

    devices = devices.subset(devices.first_latency <= upper)
    rng = None  # created on first use: most instances end before any sampling
    p_lo = counts(lower, devices)
    if feasible(p_lo, lower):
        threshold = lower
    else:
        p_hi = counts(upper, devices)
        threshold = None
        while threshold is None:
            width = p_hi - p_lo  # candidate values of each device in (lower, upper]
            total = int(width.sum())
            if total <= enumerate_below:
                threshold = _bisect_listed(devices, p_lo, width, C, S,
                                           lambda t: feasible(counts(t, devices), t))
                break
            rng = rng or np.random.default_rng(seed)
            cumulative = np.cumsum(width)
            pick = np.searchsorted(cumulative, rng.integers(0, total, size=31), side="right")
            offset = (rng.random(31) * width[pick]).astype(np.int64)
            block = p_lo[pick] + offset
            samples = np.sort(pair_latency(C[block], devices.flops_per_s[pick], S[block],
                                           devices.rate[pick]))
            pivot = samples[len(samples) // 2]
            if pivot >= upper:  # most candidates tie with the upper end: probe just below it
                pivot = np.nextafter(upper, -np.inf)
                if pivot <= lower:  # every candidate equals the upper end, which is feasible
                    threshold = upper
                    break
            p_pivot = counts(pivot, devices)
            if feasible(p_pivot):
                upper, p_hi = pivot, p_pivot
                keep = devices.first_latency <= upper
                if not keep.all():
                    devices = devices.subset(keep)
                    p_lo, p_hi = p_lo[keep], p_hi[keep]
            else:
                lower, p_lo = pivot, p_pivot

    # The nested sets make the matching trivial: the r-th most capable device takes the
    # (r+1)-th deepest block; Hall's condition guarantees it reaches that deep.
    prefix = feasible_prefix.get(threshold)
    if prefix is None or len(prefix) != len(devices.index):
        prefix = counts(threshold, devices)
    ranked = np.argsort(-prefix, kind="stable")[:n_blocks]
    sorted_assignment = devices.index[ranked][::-1]
    assignment = np.empty(n_blocks, dtype=np.int64)
    assignment[order] = sorted_assignment
    return CrunchOutcome(assignment, float(threshold), probes=probes,
                         devices_kept=len(devices.index), order_is_listed=listed)


def _energy_prefix(C, S, f, r, budget, compute_power, tx_power):
    """How many of the (sorted) blocks each device can train within its energy budget.

    E_kn is non-decreasing along the sorted blocks, so this is a binary search per device
    (vectorised over devices); devices without a finite budget get every block.
    """
    budget = np.asarray(budget, dtype=float)
    budgeted = np.isfinite(budget)
    n_blocks = len(C)
    lo = np.zeros(len(f), dtype=np.int64)  # blocks [0, lo) are known to fit
    hi = np.full(len(f), n_blocks, dtype=np.int64)
    rows = np.flatnonzero(budgeted)
    lo[~budgeted] = n_blocks
    while rows.size:
        mid = (lo[rows] + hi[rows] + 1) // 2  # candidate prefix length, >= 1
        energy = pair_energy(C[mid - 1], f[rows], S[mid - 1], r[rows], compute_power[rows],
                             tx_power[rows])
        fits = energy <= budget[rows]
        lo[rows] = np.where(fits, mid, lo[rows])
        hi[rows] = np.where(fits, hi[rows], mid - 1)
        rows = rows[lo[rows] < hi[rows]]
    return lo


def _uniform_payload_counts(threshold, C, payload_bits, dev):
    """p_k(threshold) when every block has the same payload S: one ``searchsorted`` on C.

    The guess C_n <= (T - S / r_k) f_k can be off by rounding, so it is corrected against the
    exact test C_n / f_k + S / r_k <= T, jumping over whole groups of equal C_n (which share
    one latency) so that ties cannot make the correction crawl.
    """
    upload = payload_bits / dev.rate
    guess = np.searchsorted(C, (threshold - upload) * dev.flops_per_s, side="right")
    prefix = np.minimum(guess, dev.cap)
    while True:
        below = np.nonzero(prefix > 0)[0]
        too_far = below[~(C[prefix[below] - 1] / dev.flops_per_s[below] + upload[below]
                          <= threshold)]
        above = np.nonzero(prefix < dev.cap)[0]
        too_short = above[C[prefix[above]] / dev.flops_per_s[above] + upload[above] <= threshold]
        if too_far.size == 0 and too_short.size == 0:
            return prefix
        prefix[too_far] = np.searchsorted(C, C[prefix[too_far] - 1], side="left")
        prefix[too_short] = np.minimum(np.searchsorted(C, C[prefix[too_short]], side="right"),
                                       dev.cap[too_short])


def _bisect_listed(devices, p_lo, width, C, S, is_feasible):
    """List the candidate values (lower, upper] and find the smallest feasible one."""
    holders = np.nonzero(width)[0]
    device_of = np.repeat(holders, width[holders])
    starts = np.repeat(np.cumsum(width[holders]) - width[holders], width[holders])
    block = p_lo[device_of] + (np.arange(len(device_of)) - starts)
    values = np.unique(pair_latency(C[block], devices.flops_per_s[device_of], S[block],
                                    devices.rate[device_of]))
    lo, hi = 0, len(values) - 1  # values[hi] is feasible: it has the counts of the upper end
    while lo < hi:
        mid = (lo + hi) // 2
        if is_feasible(values[mid]):
            hi = mid
        else:
            lo = mid + 1
    return values[lo]
