"""Several blocks per device (specification, section 8): exact and fast methods for P1 and P2.

A device k with a set A of blocks whose deepest block is d runs one step::

    C(A) = C_d + sum_{n in A, n != d} delta_n    m(A) = m_d + sum_{n in A, n != d} mu_n
    S(A) = sum_{n in A} S_n                       T_k(A, b) = C(A) / f_k + S(A) / r_k(b)

with |A| <= c_k and m(A) <= M_k; every block is trained by exactly one device.

Complexity
----------
**General extras are NP-hard, even with equal payloads.** Take a bin-packing instance with item
sizes a_1 <= ... <= a_N (integers) and K bins of capacity W. Build N blocks with
delta_n = a_n H, C_n = H_0 + a_n H (non-decreasing in depth), equal payloads S_n = S, no memory
limit, and K identical devices with f_k = 1, c_k = N and a fixed rate with S / r_k = 1. A set A
then costs T(A) = H_0 + H sum_{n in A} a_n + |A|, so with H > N the threshold
T* = H_0 + H W + N is met by every device exactly when its items fit a bin: P1 at T* decides bin
packing, which is strongly NP-hard. For such instances the exact methods are ``milp`` (a compact
MILP, below) and ``brute``; ``packing`` is a fast heuristic that reports a proven lower bound.

**Uniform extras (the per-layer LoRA case) are solved combinatorially.** When all payloads are
equal (S_n = S), all extras of the blocks that can be extras are equal (delta_n = delta,
mu_n = mu for every block but the deepest, which is never an extra) and C_n, m_n are
non-decreasing in depth, a device's cost depends only on the depth s of its deepest block and
its block count j::

    T_k(s, j) = (C_s + (j - 1) delta) / f_k + j S / r_k(b_k),   m = m_s + (j - 1) mu,

non-decreasing in both s and j. *Exchange argument.* Take any feasible allocation and a device
holding a block x that is not its deepest while a deeper block y > x is held by another device
as one that is not its deepest either: swapping x and y changes no set's size, deepest block or
cost. If y is the deepest block of its device, swapping makes that device's deepest block
shallower (or leaves it), which only lowers its cost. Repeating from the deepest block on gives
an allocation of the same or lower latency in which every device holds a *contiguous run* of
depths. So an allocation is a sequence of distinct devices covering depths N, N-1, ... from the
deep end, each taking j blocks below the current top s. For P1 at a threshold T, device k
covers at most J_k(s) = max{j : T_k(s, j) <= T, m fits, j <= c_k} blocks, and covering more
never hurts (J_k grows as s gets shallower). Hence with R(U) the most blocks that the devices
of a subset U can cover::

    R(U) = max_{k in U} R(U - k) + J_k(N - R(U - k)),   feasible at T iff R(all) >= N,

a dynamic programme over subsets, O(2^K K) per threshold: one pass over the subsets by size,
each subset's predecessors as an index table, several thresholds per pass. A search over the
O(K N max c) candidate values T_k(s, j) finds the least feasible one, starting at a counting
bound (the devices' longest runs at T must add up to N). For P2 the same sequences with bandwidth
b_k(s, j, T) = the least bandwidth meeting T (and the energy budget), and::

    W(U, r) = min_{k in U, j} W(U - k, r - j) + b_k(N - r + j, j, T),   feasible iff
    min_U W(U, N) <= B,

O(2^K K N max c) per probe, inside a bisection on T (relative 1e-9); the bandwidths of the
allocation found are then split optimally (:func:`group_split`). Both are polynomial in N and
exponential in the number of devices K (a parameterised algorithm, fine for the few devices
that make several blocks necessary). Above ``max_subset_devices`` devices (default
``DEFAULT_MAX_DEVICES``, ``DEFAULT_MAX_DEVICES_P2`` for P2) the same runs are found, exactly
as well, by the methods of :mod:`solvers.layers`, which group equal blocks into layers (the
matrices of one transformer layer): P1 by the release programme, a dynamic programme over the
layers whose states are the sets of devices released early, P2 by Dinkelbach's iteration on a
tiling LP whose integrality is needed on the tiling only. The path MILP of :mod:`solvers.runs`
(a path from the deep end to the shallow end through arcs (device, run), each device at most
once) is their fallback. Whether the uniform case is polynomial in K is open here: the choice
of which device covers which run resembles scheduling with position-dependent capacities.

Examples
--------
>>> import numpy as np
>>> from solvers.model import Instance
>>> inst = Instance(block_flops=np.array([1.0, 2.0, 3.0]), block_bits=np.ones(3),
...                 block_memory=np.ones(3), device_flops_per_s=np.array([1.0, 1.0]),
...                 device_memory=np.full(2, 9.0), total_bandwidth_hz=2.0,
...                 device_spectral_efficiency=np.ones(2), device_max_blocks=np.array([2, 2]))
>>> result = solve_sets_p1(inst, inst.matching_bandwidth())
>>> result.assignment.tolist(), result.round_latency_s  # (2 + 2) / 1 on device 0, 3 + 1 on 1
([0, 0, 1], 4.0)
"""
from __future__ import annotations

import bisect
import functools
import math
import time

import numpy as np

from .bandwidth import min_bandwidth
from .groups import NO_SETS, allocation_result, energy_ok, group_split
from .layers import solve_layers_p1, solve_layers_p2
from .model import LN2, Instance, pair_latency
from .result import SolverFailure, SolverInputError, SolverResult, Status

# the names the path MILP (:mod:`solvers.runs`) reads from here
_energy_ok, _result = energy_ok, allocation_result

__all__ = ["uniform_costs", "group_split", "solve_sets_p1", "solve_sets_p2",
           "solve_brute_sets", "solve_packing", "solve_greedy_sets", "solve_milp_sets",
           "DEFAULT_MAX_DEVICES", "DEFAULT_MAX_DEVICES_P2", "NO_SETS"]

#: The subset programme (2^K states) runs up to this many devices; the path MILP above
#: (P1; for P2, whose programme carries the covered count too, the MILP is faster from about
#: 8 devices on, measured on the benchmark's instances).
DEFAULT_MAX_DEVICES = 16
DEFAULT_MAX_DEVICES_P2 = 8


# ---------------------------------------------------------------------------------------------
# Costs of sets


def uniform_costs(instance: Instance) -> bool:
    """Whether the instance is in the uniform case of the module docstring (equal payloads,
    equal extras over every block but the deepest, C_n and m_n non-decreasing in depth)."""
    bits = instance.block_bits
    extra_flops = instance.extra_flops()[:-1]
    extra_memory = instance.extra_memory()[:-1]
    return bool((bits == bits[0]).all()
                and (extra_flops.size == 0 or (extra_flops == extra_flops[0]).all())
                and (extra_memory.size == 0 or (extra_memory == extra_memory[0]).all())
                and (np.diff(instance.block_flops) >= 0).all()
                and (np.diff(instance.block_memory) >= 0).all())


def _run_costs(instance: Instance):
    """(N, J) arrays of C, m and S of a run of j = 1..J blocks whose deepest is s (index).

    The sums are accumulated in the order of :meth:`Instance.group_costs` (from zero, one
    extra at a time), so the values are bit-identical to the costs of the allocation found.
    Entries with j > s + 1 (more blocks than exist at or above s) are +inf.
    """
    n_blocks = instance.n_blocks
    most = int(min(n_blocks, instance.max_blocks().max()))
    # row s, column i: block s - i (the run's blocks from the deepest up; < 0: none)
    block = np.arange(n_blocks)[:, None] - np.arange(most)[None, :]
    exists = block >= 0
    block = np.where(exists, block, 0)

    def running(values, first):
        """Sums from zero, one term at a time along each row (cumsum is sequential), of
        ``first`` (the deepest block's term) and ``values`` of the blocks above it."""
        terms = np.where(exists, values[block], 0.0)
        terms[:, 0] = first
        return np.where(exists, np.cumsum(terms, axis=1), np.inf)
    # group_costs adds extras one at a time from zero in increasing block index; this adds
    # them one at a time from zero from the deepest up, which gives the same sums only when
    # they are equal: the uniform case, the only one that uses these tables (the others go
    # through _general_run_costs). Payloads likewise (equal in the uniform case).
    flops = instance.block_flops[:, None] + running(instance.extra_flops(), 0.0)
    memory = instance.block_memory[:, None] + running(instance.extra_memory(), 0.0)
    bits = running(instance.block_bits, instance.block_bits)
    return flops, memory, bits


def _run_table(instance: Instance, flops, memory, bits):
    """(K, N, J) mask of runs each device may take: cap, memory (energy is checked later)."""
    caps = instance.max_blocks()
    most = flops.shape[1]
    count = np.arange(1, most + 1)
    allowed = (np.isfinite(flops)[None] & (count[None, None, :] <= caps[:, None, None])
               & (memory[None] <= instance.device_memory[:, None, None]))
    return allowed


def _runs_to_assignment(instance: Instance, runs) -> np.ndarray:
    """Runs (device, number of blocks) from the deepest block upwards -> block -> device."""
    assignment = np.empty(instance.n_blocks, dtype=np.int64)
    top = instance.n_blocks
    for device, take in runs:
        assignment[top - take:top] = device
        top -= take
    assert top == 0
    return assignment


def double_until(test, hi, tries, engine):
    """Double a target from ``hi`` until ``test`` (target -> allocation or None, proven) finds
    an allocation. Returns (lo, hi, allocation), lo the last target that failed (0 if none), or
    None when ``tries`` doublings find none; a TimeoutError of the test is a SolverFailure."""
    lo = 0.0
    for _ in range(tries):
        try:
            found = test(hi)
        except TimeoutError:
            raise SolverFailure(f"{engine} stopped at the time limit before any allocation "
                                "was found; raise the time limit") from None
        if found is not None:
            return lo, hi, found
        lo, hi = hi, 2 * hi
    return None


def _check_subset_limit(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SolverInputError(f"max_subset_devices must be an integer of at least 0, got "
                               f"{value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# The subset programme (uniform case)


def _subset_layers(n_devices: int):
    """Masks grouped by popcount, as int arrays (layer p holds the masks with p devices)."""
    masks = np.arange(1 << n_devices, dtype=np.int64)
    popcount = np.zeros(1 << n_devices, dtype=np.int64)
    for k in range(n_devices):
        popcount += (masks >> k) & 1
    return [masks[popcount == p] for p in range(n_devices + 1)]


@functools.lru_cache(maxsize=4)
def _subset_lattice(n_devices: int):
    """The subsets of K devices ranked by (size, mask), for :func:`_cover_runs`: for each size
    q = 1..K, the rank of its first subset and, for each of its subsets, the ranks of its q
    predecessors (without one of its devices, in increasing device order) and those devices,
    as (C(K, q), q) arrays. Rank 0 is the empty set. Cached per K (read-only)."""
    masks = np.arange(1 << n_devices, dtype=np.int64)
    size = np.zeros(masks.size, dtype=np.int64)
    for k in range(n_devices):
        size += (masks >> k) & 1
    order = np.lexsort((masks, size))  # by size, then mask
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    layers, start = [], 1
    for count in range(1, n_devices + 1):
        members = order[start:start + math.comb(n_devices, count)]
        _, device = np.nonzero((members[:, None] >> np.arange(n_devices)) & 1)
        device = device.reshape(members.size, count)
        before = rank[members[:, None] ^ (1 << device)]
        for array in (device, before):
            array.flags.writeable = False
        layers.append((start, before, device))
        start += members.size
    return tuple(layers)


@functools.lru_cache(maxsize=4)
def _lattice_index(n_devices: int, n_blocks: int, width: int):
    """For each size of :func:`_subset_lattice`, the flat index of (threshold p, device) rows
    in a (P, K, N + 1) table, for P = ``width`` thresholds at once (cached)."""
    layers = _subset_lattice(n_devices)
    offset = (np.arange(width) * n_devices)[:, None, None]
    bases = tuple((offset + device) * (n_blocks + 1) for _, _, device in layers)
    for base in bases:
        base.flags.writeable = False
    return bases


def _cover_runs(capacity, n_blocks):
    """The subset programme of P1 for P thresholds at once: ``capacity[p, k, r]`` = blocks
    device k covers at threshold p when r are covered already (its deepest block is then
    N - 1 - r). Returns (feasible (P,), runs) with ``runs(p)`` the runs of a covering
    sequence at threshold p.

    One pass over the subsets by size (:func:`_subset_lattice`): each subset's reach is the
    best over its predecessors, R(U) = max_k min(R(U - k) + capacity[k, R(U - k)], N), ties to
    the lowest device; the sequence is read back from the first size at which some subset
    reaches N, its first such subset in mask order."""
    width, n_devices, _ = capacity.shape
    layers = _subset_lattice(n_devices)
    bases = _lattice_index(n_devices, n_blocks, width)
    # after[p, k, r] = min(r + capacity, N): where device k leaves the cover (r = N: as is)
    covered = np.arange(n_blocks + 1)
    after = np.full((width, n_devices, n_blocks + 1), n_blocks, dtype=np.int64)
    after[:, :, :n_blocks] = np.minimum(covered[:-1] + capacity, n_blocks)
    flat = after.reshape(-1)
    reach = np.zeros((width, 1 << n_devices), dtype=np.int64)  # by rank
    values = []  # each size's (P, C, q) candidates: the choices are read back from them
    for (start, before, _), base in zip(layers, bases):
        value = flat[base + reach[:, before]]  # (P, C, q)
        reach[:, start:start + before.shape[0]] = value.max(axis=2)
        values.append(value)
    feasible = reach[:, -1] >= n_blocks

    def runs(p):
        if not feasible[p]:
            return None
        # ranks go by size, then mask: the first rank that reaches N is the first subset of
        # the least size that does
        position, sequence = int(np.argmax(reach[p] >= n_blocks)), []
        starts = [first for first, _, _ in layers]
        while position:
            size = bisect.bisect_right(starts, position) - 1
            start, before, device = layers[size]
            i = int(np.argmax(values[size][p, position - start]))  # ties: the lowest device
            sequence.append(int(device[position - start, i]))
            position = int(before[position - start, i])
        found, covered = [], 0
        for k in reversed(sequence):
            take = int(after[p, k, covered]) - covered
            if take > 0:
                found.append((k, take))
            covered += take
        return found
    return feasible, runs


def _hand_over(instance, bandwidth_hz, name, err, **options) -> SolverResult:
    """Outside the uniform case (or above the device limit) an exact method hands over to
    enumeration on tiny instances, else to the MILP where it applies, and says so."""
    if instance.n_devices ** instance.n_blocks <= 20_000:
        result, other = solve_brute_sets(instance, bandwidth_hz), "enumeration"
    else:
        import importlib.util

        if importlib.util.find_spec("cvxpy") is None:
            raise err
        if bandwidth_hz is None and instance.rate_model != "fixed":
            raise SolverInputError(
                f"{err}; no exact method covers this instance: the MILP solves P2 with "
                "several blocks per device only for the fixed rate model and enumeration only "
                "tiny instances; packing gives an allocation with a proven lower bound") from None
        result, other = solve_milp_sets(instance, bandwidth_hz, **options), "the MILP"
    reason = str(err).split(";")[0]
    prefix = f"{name} with several blocks per device"
    reason = reason[len(prefix):].lstrip(": ") if reason.startswith(prefix) else reason
    result.message = f"several blocks per device: {reason}; solved by {other} instead"
    result.extras["fallback"] = other
    return result


def _bracket(instance: Instance):
    """Two uniform instances around ``instance``: every extra and payload at its least (lo)
    and at its largest (hi) value. Every allocation costs no more under lo and no less under
    hi than it truly does (C(A), m(A), S(A) and the energy grow with delta, mu and S), so the
    optimum of lo is a lower bound and an allocation found under hi is feasible, with a true
    latency at most its hi latency."""
    from dataclasses import replace

    n_blocks = instance.n_blocks
    extra_flops = instance.extra_flops()[:-1]
    extra_memory = instance.extra_memory()[:-1]

    def at(pick):
        def value(values):  # a single block has no extras: 0
            return float(pick(values)) if values.size else 0.0
        return replace(instance,
                       block_extra_flops=np.full(n_blocks, value(extra_flops)),
                       block_extra_memory=np.full(n_blocks, value(extra_memory)),
                       block_bits=np.full(n_blocks, value(instance.block_bits)))
    return at(np.min), at(np.max)


def _monotone(instance: Instance) -> bool:
    return bool((np.diff(instance.block_flops) >= 0).all()
                and (np.diff(instance.block_memory) >= 0).all())


def _sandwich(instance, solve_uniform, name, bandwidth_hz, tolerance, **options):
    """Solve the uniform case exactly, or bracket a near-uniform instance (measured extras
    differ by a few bytes or FLOPs): an allocation from the hi instance whose true latency
    meets the lo instance's optimum (to ``tolerance``) is optimal; otherwise hand over."""
    if instance.has_split:
        if instance.n_devices ** instance.n_blocks <= 20_000:
            result = solve_brute_sets(instance, bandwidth_hz)
            result.message = ("split mode with several blocks per device: solved by "
                              "enumeration")
            result.extras["fallback"] = "enumeration"
            return result
        raise SolverInputError(
            f"{name}: split mode together with several blocks per device is solved exactly "
            f"only by enumeration, and {instance.n_devices}^{instance.n_blocks} allocations "
            "are too many; use modes local with max_blocks, or split mode with max_blocks 1")
    try:
        if not _monotone(instance):
            raise SolverInputError(
                f"{name} with several blocks per device needs costs that grow with depth; "
                "methods for this instance: milp (exact), brute (tiny), packing (fast)")
    except SolverInputError as err:
        return _hand_over(instance, bandwidth_hz, name, err, **options)
    if uniform_costs(instance):
        return solve_uniform(instance)
    low, high = _bracket(instance)
    upper = solve_uniform(high)
    if upper.assignment is None:  # hi infeasible: decide on the true instance
        err = SolverInputError(f"{name} with several blocks per device found no allocation "
                               "under the largest extras; unequal extras")
        return _hand_over(instance, bandwidth_hz, name, err, **options)
    lower = solve_uniform(low)
    bound = lower.lower_bound_s if lower.lower_bound_s is not None else lower.round_latency_s
    if bandwidth_hz is None:
        latency, bandwidth = group_split(instance, upper.assignment)
        result = _result(instance, upper.assignment, bandwidth[0], Status.FEASIBLE)
    else:
        result = _result(instance, upper.assignment, bandwidth_hz, Status.FEASIBLE)
    if bound is not None and result.round_latency_s is not None and \
            result.round_latency_s <= bound * (1 + tolerance):
        result.status, result.lower_bound_s = Status.OPTIMAL, min(bound,
                                                                  result.round_latency_s)
        result.message = ("several blocks per device: unequal extras bracketed between their "
                          "least and largest values; the bounds meet")
        return result
    err = SolverInputError(f"{name} with several blocks per device: unequal extras bracketed "
                           f"to within {result.round_latency_s / bound - 1:.2e}")
    try:
        return _hand_over(instance, bandwidth_hz, name, err, **options)
    except SolverInputError:
        result.lower_bound_s = bound
        result.message = (f"unequal extras: the best allocation under their largest values, "
                          f"within {result.round_latency_s / bound - 1:.2e} of the bound under "
                          "their least (no exact method applies here)")
        return result


def solve_sets_p1(instance: Instance, bandwidth_hz, *,
                  max_subset_devices: int = DEFAULT_MAX_DEVICES, **_) -> SolverResult:
    """P1 with several blocks per device: in the uniform case, a search over the candidate run
    latencies T_k(s, j) with the subset programme as the test (module docstring), or above
    ``max_subset_devices`` devices the release programme of :mod:`solvers.layers`; unequal
    extras are bracketed (:func:`_sandwich`); other instances go to enumeration (tiny) or the
    MILP, exactly, and the message says so."""
    limit = _check_subset_limit(max_subset_devices)

    def solve_uniform(inst):
        if inst.n_devices <= limit:
            return _uniform_p1(inst, bandwidth_hz)
        return solve_layers_p1(inst, bandwidth_hz)
    return _sandwich(instance, solve_uniform, "crunch", bandwidth_hz, 1e-12)


def _uniform_p1(instance: Instance, bandwidth_hz) -> SolverResult:
    n_blocks, n_devices = instance.n_blocks, instance.n_devices
    flops, memory, bits = _run_costs(instance)
    allowed = _run_table(instance, flops, memory, bits)
    rate = instance.rate(np.asarray(bandwidth_hz, dtype=float))
    devices = np.arange(n_devices)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        latency = pair_latency(flops[None], instance.device_flops_per_s[devices], bits[None],
                               rate[devices])
    allowed &= _energy_ok(instance, flops[None], bits[None], devices, bandwidth_hz)
    latency = np.where(allowed, latency, np.inf)
    candidates = np.unique(latency[np.isfinite(latency)])
    if candidates.size == 0:
        return SolverResult.infeasible(NO_SETS)
    by_covered = latency[:, ::-1, :]  # (K, r, J): r covered, top N-1-r
    most = by_covered.shape[2]

    def programme(targets):
        # capacity at T: J_k(s) = the most blocks j with latency <= T (latency grows with j)
        fits = by_covered[None] <= np.asarray(targets)[:, None, None, None]
        capacity = np.where(fits.any(axis=3), most - np.argmax(fits[..., ::-1], axis=3), 0)
        return _cover_runs(capacity, n_blocks)

    # Below T0 no candidate passes: some run must hold the deepest block, and the devices'
    # longest runs anywhere (device k takes j blocks somewhere from the least T_k(s, j') over
    # s and j' >= j on) must add up to N.
    longest = np.minimum.accumulate(latency.min(axis=1)[:, ::-1], axis=1)[:, ::-1]
    if longest.size < n_blocks:
        return SolverResult.infeasible(NO_SETS)
    least = max(np.partition(longest.ravel(), n_blocks - 1)[n_blocks - 1],
                latency[:, -1, :].min())
    # candidates[lo] fails (or lo = -1), candidates[hi] passes once ``runs`` is known: a
    # search with several thresholds per pass, as many as keep a pass about as cheap as one
    # threshold's (a pass costs numpy calls more than elements while the subsets are few)
    lo, hi = int(np.searchsorted(candidates, least)) - 1, candidates.size - 1
    width = max(1, min(16, 1024 >> n_devices))
    runs = None
    while runs is None or hi - lo > 1:
        span = hi - lo
        if span <= 0:  # every candidate is below T0
            return SolverResult.infeasible(NO_SETS)
        if runs is None:  # the first pass: the largest candidate must pass
            points = lo + (np.arange(1, width + 1) * span + width - 1) // width
        else:
            points = lo + (np.arange(1, width + 1) * span + width) // (width + 1)
            points = points[points < hi]
        points = np.unique(points)
        feasible, runs_at = programme(candidates[points])
        if runs is None and not feasible[-1]:
            return SolverResult.infeasible(NO_SETS)
        passing = np.flatnonzero(feasible)
        if passing.size:
            first = int(passing[0])
            hi, runs = int(points[first]), (runs_at, first)
            if first > 0:
                lo = int(points[first - 1])
        else:
            lo = int(points[-1])
    runs_at, p = runs
    assignment = _runs_to_assignment(instance, runs_at(p))
    return _result(instance, assignment, np.asarray(bandwidth_hz, dtype=float), Status.OPTIMAL,
                   message="several blocks per device: subset programme over contiguous runs")


def _least_candidate(candidates, passes):
    """The least of the sorted ``candidates`` that ``passes``, by binary search; the last one
    must pass (the test is assumed monotone: it fails below some value and passes above)."""
    lo, hi = -1, len(candidates) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(candidates[mid]):
            hi = mid
        else:
            lo = mid
    return candidates[hi]


def _run_needs(instance: Instance, flops, bits, allowed):
    """A function T -> (K, N, J) least bandwidths of every run (inf where not allowed)."""
    devices = np.arange(instance.n_devices)[:, None, None]
    speed = instance.device_flops_per_s[devices]
    efficiency = (None if instance.device_spectral_efficiency is None
                  else instance.device_spectral_efficiency[devices])
    snr = None if instance.device_snr_hz is None else instance.device_snr_hz[devices]
    floor = None
    if instance.has_energy_budgets:
        floor = instance.energy_floor(np.where(allowed, flops[None], 0.0),
                                      np.where(allowed, bits[None], 0.0), devices)

    def need(target):
        with np.errstate(all="ignore"):
            value = min_bandwidth(target, flops=flops[None], flops_per_s=speed, bits=bits[None],
                                  rate_model=instance.rate_model,
                                  spectral_efficiency=efficiency, snr_hz=snr)
        if floor is not None:
            value = np.maximum(value, floor)
        return np.where(allowed, value, np.inf)
    return need


def _bandwidth_runs(need, layers, n_blocks, budget):
    """The subset programme of P2 at one target: the runs of an allocation whose least total
    bandwidth is within ``budget``, or None. ``need[k, r, j-1]``: device k covering j blocks
    when r are covered."""
    n_devices, _, most = need.shape
    size = 1 << n_devices
    total = np.full((size, n_blocks + 1), np.inf)
    total[0, 0] = 0.0
    choice = np.full((size, n_blocks + 1, 2), -1, dtype=np.int64)
    for layer in layers[:-1]:
        for k in range(n_devices):
            source = layer[(layer >> k) & 1 == 0]
            if source.size == 0:
                continue
            target = source | (1 << k)
            here = total[source]  # (m, N+1)
            for j in range(1, most + 1):
                cost = need[k, :n_blocks + 1 - j, j - 1]  # r = 0 .. N - j
                value = here[:, :n_blocks + 1 - j] + cost[None, :]
                current = total[target, j:]
                better = value < current
                if not better.any():
                    continue
                rows, cols = np.nonzero(better)
                total[target[rows], cols + j] = value[rows, cols]
                choice[target[rows], cols + j] = np.stack(
                    [np.full(rows.size, k), np.full(rows.size, j)], axis=1)
    best = int(np.argmin(total[:, n_blocks]))
    if not total[best, n_blocks] <= budget:
        return None
    runs, mask, covered = [], best, n_blocks
    while covered > 0:
        k, j = (int(v) for v in choice[mask, covered])
        runs.append((k, j))
        mask ^= 1 << k
        covered -= j
    return runs[::-1]


def solve_sets_p2(instance: Instance, *, rtol=1e-9, time_limit_s=None,
                  max_subset_devices: int = DEFAULT_MAX_DEVICES_P2, **_) -> SolverResult:
    """P2 with several blocks per device: in the uniform case, bisection on the round latency
    with the bandwidth subset programme as an exact test, then the optimal split of the
    allocation found (module docstring), or above ``max_subset_devices`` devices the tiling LP
    of :mod:`solvers.layers` (either rate model); unequal extras are bracketed
    (:func:`_sandwich`); other instances go to enumeration (tiny) or the MILP (fixed rate
    model), exactly, and the message says so; shannon ones that none of these covers are
    refused."""
    limit = _check_subset_limit(max_subset_devices)
    deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s

    def solve_uniform(inst):
        if inst.n_devices <= limit:
            return _uniform_p2(inst, rtol, deadline)
        return solve_layers_p2(inst, rtol, deadline)
    return _sandwich(instance, solve_uniform, "exact", None, 10 * rtol, rtol=rtol,
                     time_limit_s=time_limit_s)


def _uniform_p2(instance: Instance, rtol, deadline) -> SolverResult:
    n_blocks = instance.n_blocks
    flops, memory, bits = _run_costs(instance)
    allowed = _run_table(instance, flops, memory, bits)
    need = _run_needs(instance, flops, bits, allowed)
    layers = _subset_layers(instance.n_devices)
    deepest_first = np.arange(n_blocks - 1, -1, -1)
    budget = instance.total_bandwidth_hz

    def runs_at(target):
        return _bandwidth_runs(need(target)[:, deepest_first, :], layers, n_blocks, budget)

    try:
        start = solve_packing(instance)
    except SolverFailure:  # packing missed; the search below decides
        start = SolverResult.infeasible(NO_SETS)
        hi = np.inf
    else:
        if start.assignment is None:
            return start  # packing's relaxation proves it
        hi = start.round_latency_s
    lo = max(start.lower_bound_s or 0.0, 0.0)
    if not np.isfinite(hi):
        # the heuristic may miss a feasible allocation: look for one with growing targets
        compute = float(np.min(flops[np.isfinite(flops)]) /
                        instance.device_flops_per_s.max()) if np.isfinite(flops).any() else 1.0
        hi = max(compute, 1e-12)
        for _ in range(200):
            if runs_at(hi) is not None:
                break
            hi *= 2
        else:
            return SolverResult.infeasible(NO_SETS)
        if runs_at(hi) is None:
            return SolverResult.infeasible(NO_SETS)
    best_runs = runs_at(hi)
    if best_runs is None:  # the heuristic's own allocation is a witness for hi
        best = start.assignment
    else:
        best = _runs_to_assignment(instance, best_runs)
    stopped = False
    while hi - lo > rtol * hi:
        if deadline is not None and time.perf_counter() > deadline:
            stopped = True
            break
        mid = 0.5 * (lo + hi)
        runs = runs_at(mid)
        if runs is None:
            lo = mid
        else:
            hi, best = mid, _runs_to_assignment(instance, runs)
    latency, bandwidth = group_split(instance, best)
    if not np.isfinite(latency[0]):
        return SolverResult.infeasible(NO_SETS)
    status = Status.FEASIBLE if stopped else Status.OPTIMAL
    message = ("stopped at the time limit; lower_bound_s is proven" if stopped
               else "several blocks per device: bisection with an exact subset programme")
    return _result(instance, best, bandwidth[0], status, lower_bound_s=lo, message=message)


# ---------------------------------------------------------------------------------------------
# Enumeration (tiny instances)


def _enumerate(n_devices, n_blocks, chunk=4096):
    total = n_devices ** n_blocks
    powers = n_devices ** np.arange(n_blocks - 1, -1, -1, dtype=np.int64)
    for start in range(0, total, chunk):
        codes = np.arange(start, min(start + chunk, total), dtype=np.int64)
        yield (codes[:, None] // powers[None, :]) % n_devices


def solve_brute_sets(instance: Instance, bandwidth_hz=None, *, max_assignments=20_000,
                     **_) -> SolverResult:
    """Enumerate all K^N allocations (caps, memory, energy), P1 at ``bandwidth_hz`` or P2
    (``bandwidth_hz=None``) with each allocation's optimal split."""
    count = instance.n_devices ** instance.n_blocks
    if count > max_assignments:
        raise SolverInputError(
            f"brute force with several blocks per device would enumerate {count} allocations "
            f"(K^N = {instance.n_devices}^{instance.n_blocks}), more than max_assignments = "
            f"{max_assignments}; use crunch/exact (uniform blocks), milp or packing")
    best_latency, best, best_bandwidth = np.inf, None, None
    for batch in _enumerate(instance.n_devices, instance.n_blocks):
        keep = [row for row in batch if instance.allocation_fits(row)]
        if not keep:
            continue
        if bandwidth_hz is not None:
            for row in keep:
                if not instance.allocation_fits(row, bandwidth_hz):
                    continue
                latency = float(instance.device_latency(row, bandwidth_hz).max())
                if latency < best_latency:
                    best_latency, best, best_bandwidth = latency, row, bandwidth_hz
            continue
        latency, bandwidth = group_split(instance, np.array(keep))
        i = int(np.argmin(latency))
        if latency[i] < best_latency:
            best_latency, best, best_bandwidth = latency[i], keep[i], bandwidth[i]
    if best is None or not np.isfinite(best_latency):
        return SolverResult.infeasible(NO_SETS)
    bound = best_latency if bandwidth_hz is not None else best_latency * (1 - 1e-12)
    return _result(instance, best, np.asarray(best_bandwidth, dtype=float), Status.OPTIMAL,
                   lower_bound_s=bound)


# ---------------------------------------------------------------------------------------------
# Fast methods: packing by depth (with a proven lower bound) and the greedy baseline


def _contiguous_costs(instance: Instance):
    """(N, J) run costs with the instance's own (possibly unequal) extras and payloads."""
    return _run_costs(instance) if uniform_costs(instance) else _general_run_costs(instance)


def _general_run_costs(instance: Instance):
    n_blocks = instance.n_blocks
    most = int(min(n_blocks, instance.max_blocks().max()))
    flops = np.full((n_blocks, most), np.inf)
    memory = np.full((n_blocks, most), np.inf)
    bits = np.full((n_blocks, most), np.inf)
    for s in range(n_blocks):
        for j in range(1, min(most, s + 1) + 1):
            assignment = np.zeros(n_blocks, dtype=np.int64)
            assignment[s - j + 1:s + 1] = 1
            f, m, b, _ = _one_device(instance).group_costs(assignment)
            flops[s, j - 1], memory[s, j - 1], bits[s, j - 1] = f[1], m[1], b[1]
    return flops, memory, bits


def _one_device(instance: Instance) -> Instance:
    """A two-device copy of the instance used only to evaluate set costs."""
    from dataclasses import replace

    two = np.ones(2)
    return replace(instance, device_flops_per_s=two, device_memory=two,
                   device_spectral_efficiency=two, device_snr_hz=two, device_bandwidth_hz=None,
                   device_compute_power_w=None, device_tx_power_w=None,
                   device_energy_budget_j=None, device_max_blocks=None)


def _greedy_runs(cost, n_blocks, budget=None, caps=None):
    """Cover depths from the deep end: at each top, the unused device and run length with the
    lowest cost per block among those that keep within ``budget`` when a budget is given, or
    the longest run (ties: the device that gains least from shallower tops) when ``cost`` is a
    feasibility mask (boolean, or finite where feasible). ``cost[k, r, j - 1]``: device k
    covering j blocks when r are covered."""
    n_devices, _, most = cost.shape
    lengths = np.arange(1, most + 1)
    # a run may not reach past the shallowest block
    too_long = lengths[None, :] > n_blocks - np.arange(n_blocks)[:, None]
    covered, runs, spent = 0, [], 0.0
    if budget is None:
        fits = (cost if cost.dtype == bool else np.isfinite(cost)) & ~too_long[None]
        # how many runs fit at the shallowest top (the device that gains least from it)
        later = (cost if cost.dtype == bool else np.isfinite(cost))[:, -1, :].sum(axis=1)
        while covered < n_blocks:
            here = fits[:, covered, :]
            take = np.where(here.any(axis=1), most - np.argmax(here[:, ::-1], axis=1), 0)
            # the longest run, then the least count at the shallowest top, then the first
            k = int(np.argmax(take * (most + 1) - later))
            if not take[k]:
                return None
            runs.append((k, int(take[k])))
            covered += int(take[k])
            fits[k] = False  # used
        return runs
    per_block = np.where(too_long[None], np.inf, cost / lengths)
    # keep enough capacity in the other free devices for the blocks left after this run:
    # N - covered - j <= free caps - c_k, i.e. c_k - j <= free caps + covered - N (a used
    # device's row gets a spare above any such bound: it is out)
    spare = caps[:, None] - lengths
    free_caps = int(caps.sum())
    huge = n_blocks + int(caps.sum()) + most + 1
    while covered < n_blocks:
        here = np.where(spare > free_caps + covered - n_blocks, np.inf,
                        per_block[:, covered, :])
        k, j = divmod(int(np.argmin(here)), most)
        if here[k, j] == np.inf:
            return None
        spent += cost[k, covered, j]
        runs.append((k, j + 1))
        covered += j + 1
        spare[k] = huge
        free_caps -= int(caps[k])
    if not spent <= budget:
        return None
    return runs


def _lower_bound_p1(instance, latency_single, caps_at, breakpoints):
    """min T such that every block has a device with T_kn <= T and the devices' largest sets
    can hold N blocks (a relaxation of P1: proven lower bound). The relaxation changes only at
    the single-block latencies and at ``breakpoints`` (where ``caps_at`` changes), so the least
    such value where it holds is the bound."""
    values = np.concatenate([latency_single.ravel(), np.ravel(breakpoints)])
    candidates = np.unique(values[np.isfinite(values)])
    if candidates.size == 0:
        return None
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    def relaxed(target):
        caps = caps_at(target)
        if caps.sum() < instance.n_blocks:
            return False
        reach = latency_single <= target
        if not reach.any(axis=0).all():
            return False
        rows = np.repeat(np.arange(instance.n_devices), np.minimum(caps, instance.n_blocks))
        edges = reach[rows].T  # block -> device copy
        matched = maximum_bipartite_matching(csr_matrix(edges.astype(np.int8)),
                                             perm_type="column")
        return bool((matched >= 0).all())
    if not relaxed(candidates[-1]):
        return None
    return float(_least_candidate(candidates, relaxed))


def _cheapest_set_latency(instance, bandwidth_hz):
    """(K, J) a lower bound on T_k(A) over all sets with |A| = j: the cheapest deepest block
    plus the j - 1 smallest extras, and the j smallest payloads."""
    most = int(min(instance.n_blocks, instance.max_blocks().max()))
    extras = np.concatenate([[0.0], np.cumsum(np.sort(instance.extra_flops()))])[:most]
    payload = np.cumsum(np.sort(instance.block_bits))[:most]
    flops = instance.block_flops.min() + extras
    rate = instance.rate(np.asarray(bandwidth_hz, dtype=float))
    with np.errstate(divide="ignore"):
        latency = flops[None, :] / instance.device_flops_per_s[:, None] + payload[None, :] / \
            rate[:, None]
    memory = instance.block_memory.min() + np.concatenate(
        [[0.0], np.cumsum(np.sort(instance.extra_memory()))])[:most]
    latency = np.where(memory[None, :] <= instance.device_memory[:, None], latency, np.inf)
    caps = instance.max_blocks()
    return np.where(np.arange(1, most + 1)[None, :] <= caps[:, None], latency, np.inf)


def solve_packing(instance: Instance, bandwidth_hz=None, **_) -> SolverResult:
    """Packing by depth: contiguous runs from the deepest block, each device as many blocks as
    fit (P1, binary search over the run latencies) or the cheapest bandwidth per block (P2,
    bisection on the latency, then the optimal split). Not exact in general; it reports a
    proven lower bound from a relaxation (P1: every block reachable and the largest sets
    holding N blocks; P2: the least bandwidths of single blocks add up to at most B, since a
    set needs at least the sum of its blocks' needs, and the block counts of
    :func:`_count_need_relaxation`). P2 then improves the runs of the budgeted search and
    of the P1 search at equal shares by a local search (:func:`_improve_runs`)."""
    n_blocks = instance.n_blocks
    flops, memory, bits = _contiguous_costs(instance)
    allowed = _run_table(instance, flops, memory, bits)
    if bandwidth_hz is not None:
        bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
        single = instance.latency_matrix(bandwidth_hz)
        cheapest = _cheapest_set_latency(instance, bandwidth_hz)
        bound = _lower_bound_p1(
            instance, single, lambda t: (cheapest <= t).sum(axis=1),
            cheapest) if np.isfinite(single).any() else None
        runs = _packing_p1_runs(instance, bandwidth_hz, flops, bits, allowed)
        if runs is None:
            return _packing_failed(bound)
        best = _runs_to_assignment(instance, runs)
        result = _result(instance, best, bandwidth_hz, Status.FEASIBLE, lower_bound_s=bound)
        if bound is not None and result.round_latency_s <= bound:
            result.status = Status.OPTIMAL
        return result
    need = _run_needs(instance, flops, bits, allowed)
    budget = instance.total_bandwidth_hz
    deepest_first = np.arange(n_blocks - 1, -1, -1)
    caps = np.minimum(instance.max_blocks(), n_blocks)

    def runs_at(target):
        return _greedy_runs(need(target)[:, deepest_first, :], n_blocks, budget, caps)
    bound = _lower_bound_p2(instance)
    if bound is None:
        return _packing_failed(None)
    lo = bound
    hi = max(lo, 1e-9) * 2
    starts = []
    # the bound is a proven lower bound, so 2^20 times it is generous; where the budgeted
    # greedy finds nothing even there, the equal-share start below is used alone
    for _ in range(20):
        found = runs_at(hi)
        if found is not None:
            break
        hi *= 2
    else:
        hi = None
    if hi is not None:
        for _ in range(40):
            if hi - lo <= 1e-4 * hi:
                break
            mid = 0.5 * (lo + hi)
            runs = runs_at(mid)
            if runs is not None:
                hi, found = mid, runs
            else:
                lo = mid
        starts.append(found)
    equal = _packing_p1_runs(instance, instance.equal_bandwidth(), flops, bits, allowed)
    if equal is not None:
        starts.append(equal)
    if not starts:
        return _packing_failed(bound)
    best_runs, best_latency = None, np.inf
    curves = _RunCurves(instance, flops, bits, allowed)
    for runs in starts:
        with np.errstate(all="ignore"):
            runs, latency = _improve_runs(instance, runs, curves)
        if latency < best_latency:
            best_runs, best_latency = runs, latency
    if not np.isfinite(best_latency):
        return _packing_failed(bound)
    best = _runs_to_assignment(instance, best_runs)
    latency, bandwidth = group_split(instance, best)
    return _result(instance, best, bandwidth[0], Status.FEASIBLE, lower_bound_s=bound)


def _packing_p1_runs(instance: Instance, bandwidth_hz, flops, bits, allowed):
    """Packing's P1 search at fixed bandwidths: the least run latency T at which the greedy
    cover (:func:`_greedy_runs`, longest run first) covers every block, by binary search over
    the run latencies; its runs, or None where it covers nothing even at the largest."""
    n_blocks = instance.n_blocks
    devices = np.arange(instance.n_devices)[:, None, None]
    rate = instance.rate(bandwidth_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        latency = pair_latency(flops[None], instance.device_flops_per_s[devices], bits[None],
                               rate[devices])
    allowed = allowed & _energy_ok(instance, flops[None], bits[None], devices, bandwidth_hz)
    latency = np.where(allowed, latency, np.inf)[:, ::-1, :]  # r covered: deepest N-1-r
    candidates = np.unique(latency[np.isfinite(latency)])
    if candidates.size == 0:
        return None
    found = {}

    def runs_at(target):
        if target not in found:
            found[target] = _greedy_runs(latency <= target, n_blocks)
        return found[target]
    if runs_at(candidates[-1]) is None:
        return None
    return runs_at(_least_candidate(candidates, lambda target: runs_at(target) is not None))


HEURISTIC_MISSED = ("{name} found no allocation within the caps, memory, energy budgets and "
                    "bandwidth, which does not prove that none exists ({name} is a heuristic); "
                    "an exact method decides it (exact or crunch, milp, brute)")


def _packing_failed(bound) -> SolverResult:
    """Infeasible when the relaxation proves it (no bound exists); otherwise packing only
    missed, which proves nothing: :class:`SolverFailure` (status infeasible would say the
    instance is)."""
    if bound is None:
        return SolverResult.infeasible(NO_SETS)
    raise SolverFailure(HEURISTIC_MISSED.format(name="packing"))


def _assignment_to_runs(assignment) -> list:
    """Contiguous runs (device, length) from the deepest block up; assumes contiguity."""
    runs = []
    for device in assignment[::-1]:
        if runs and runs[-1][0] == int(device):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((int(device), 1))
    return runs


class _RunCurves:
    """Each run's least bandwidth as a function of the target T, with its slope, for the
    local search: device k covering j blocks whose deepest is s needs (section 8, and
    :func:`~solvers.bandwidth.min_bandwidth`)::

        w(T) = max(b_k(S(s, j) / (T - C(s, j) / f_k)), e_k(s, j)),   +inf for T <= C / f_k,

    with b_k the inverse of the rate (R / rho_k, or the shannon inverse) and e_k the energy
    floor. Each w is convex and non-increasing in T (the inverse rate is convex increasing,
    S / (T - C / f) convex decreasing), so the need of a set of runs, sum w(T), is convex too:
    its tangent at any T lies below it, and a Newton step from the left never passes the
    least T at which the runs fit in B.

    Runs are gathered as (4, ...) arrays of C / f (+inf where the run is not allowed: cap,
    memory), S, rho_k or a_k, and e (0 without energy budgets); a run of length 0 is none
    (C = S = 0: it needs nothing).
    """

    def __init__(self, instance: Instance, flops, bits, allowed):
        self.fixed = instance.rate_model == "fixed"
        self.floors = instance.has_energy_budgets
        self.budget = instance.total_bandwidth_hz
        devices = np.arange(instance.n_devices)[:, None, None]
        speed = instance.device_flops_per_s[devices]
        quality = (instance.device_spectral_efficiency if self.fixed
                   else instance.device_snr_hz)[devices]
        floor = np.zeros(allowed.shape)
        if self.floors:
            floor = instance.energy_floor(np.where(allowed, flops[None], 0.0),
                                          np.where(allowed, bits[None], 0.0), devices)
        with np.errstate(invalid="ignore"):
            compute = np.where(allowed, flops[None] / speed, np.inf)
        shape = allowed.shape
        # one more length (index J) for "no run"
        table = np.zeros((4, shape[0], shape[1], shape[2] + 1))
        table[:, :, :, :-1] = [compute, np.broadcast_to(bits[None], shape),
                               np.broadcast_to(quality, shape), floor]
        table[2, :, :, -1] = 1.0
        # flat, with one more column: a run longer than J (not allowed: C / f = +inf)
        self.table = np.concatenate([table.reshape(4, -1), [[np.inf], [0.0], [1.0], [0.0]]],
                                    axis=1)
        self.most = shape[2]
        self.n_blocks = shape[1]

    def gather(self, device, take, covered):
        """The terms of runs (device, length, blocks covered below it): (4, *shape)."""
        width = self.most + 1
        index = (device * self.n_blocks + (self.n_blocks - 1 - covered)) * width \
            + np.where(take > 0, take - 1, self.most)
        index = np.where(take > self.most, self.table.shape[1] - 1, index)
        return self.table[:, index]

    def need(self, target, terms):
        """(w(T), w'(T)) of runs gathered by :meth:`gather`, at targets broadcast with them;
        the slope is meaningless where w is +inf."""
        compute, bits, quality, floor = terms
        slack = target - compute
        if self.fixed:
            need = np.where(slack > 0, bits / slack / quality, np.inf)
            slope = -need / slack
        else:
            from .bandwidth import shannon_bandwidth_for_rate

            rate = np.where(slack > 0, bits / slack, np.inf)
            need = np.where(slack > 0, shannon_bandwidth_for_rate(rate, quality), np.inf)
            ratio = quality / need  # dr/db = (ln(1 + x) - x / (1 + x)) / ln 2 at x = a / b
            slope = np.where(bits > 0, -(rate / slack) * LN2
                             / (np.log1p(ratio) - ratio / (1 + ratio)), 0.0)
        if self.floors:
            slope = np.where(floor >= need, 0.0, slope)
            need = np.maximum(need, floor)
        return need, slope

    def least_target(self, terms, lo, hi=None):
        """The least T at which runs ``terms`` (4, n) fit in B: a Newton method from the left
        (each tangent step stays below the root, by convexity), bisection where the need is
        infinite; ``lo`` is below the root, ``hi`` (None: found by doubling) meets B.
        Returns +inf when no T does."""
        budget = self.budget
        lo = max(float(lo), float(np.max(terms[0], initial=0.0)))
        if not np.isfinite(lo):
            return np.inf
        if hi is None:
            hi = max(2 * lo, lo + 1e-9)
            for _ in range(1100):
                if self.need(hi, terms)[0].sum() <= budget:
                    break
                hi = lo + 2 * (hi - lo)
            else:
                return np.inf
        target = lo
        for _ in range(200):
            if hi - lo <= 1e-15 * hi:
                break
            need, slope = self.need(target, terms)
            total = need.sum()
            if total <= budget:
                if target - lo <= 1e-12 * target:  # at the root, to rounding
                    return target
                hi = target
                target = 0.5 * (lo + hi)
                continue
            lo = target
            step = (total - budget) / -slope.sum() if np.isfinite(total) else np.inf
            if not 0 < step < hi - target:  # no tangent, or rounding: bisect
                target = 0.5 * (lo + hi)
            elif step <= 1e-9 * target:  # converging quadratically: the error is now ~step^2
                return target + step
            else:
                target = target + step
        return hi


@functools.lru_cache(maxsize=64)
def _move_table(n_runs: int, n_idle: int) -> np.ndarray:
    """The moves of :func:`_moves` for ``n_runs`` runs and ``n_idle`` idle devices, in their
    order, as rows of indices into the current runs' arrays (padded: run R takes 0 blocks and
    covers from 0, R + 1 takes 2; devices: R + i is idle device i); a move is valid if
    take[v] >= 2, drops runs d1 and d2 (R: none) and adds::

        (device[a1], take[t1] + take[u1] + c1, covered[p1]),
        (device[a2], take[t2] + take[u2] + c2, covered[p2] + (the first's length if chain))

    in the rows v, d1, d2, a1, a2, t1, t2, u1, u2, c1, c2, p1, p2, chain (length 0: none).
    """
    rows = []
    pad, two = n_runs, n_runs + 1
    for i in range(n_runs - 1):  # a boundary moved by one block, a split to an idle device
        for shift in (-1, 1):
            rows.append((i if shift < 0 else i + 1, i, i + 1, i, i + 1, i, i + 1, pad, pad,
                         shift, -shift, i, i, 1))
        for idle in range(min(n_idle, 4)):
            rows.append((i, i, pad, i, n_runs + idle, i, pad, pad, pad, -1, 1, i, i, 1))
    for i in range(n_runs):  # a run to an idle device, swapped with a later one, merged
        for idle in range(n_idle):
            rows.append((two, i, pad, n_runs + idle, 0, i, pad, pad, pad, 0, 0, i, i, 0))
        for other in range(i + 1, n_runs):
            rows.append((two, i, other, other, i, i, other, pad, pad, 0, 0, i, other, 0))
        if i + 1 < n_runs:
            rows.append((two, i, i + 1, i, 0, i, pad, i + 1, pad, 0, 0, i, i, 0))
    table = np.array(rows, dtype=np.int64).reshape(-1, 14).T.copy()
    table.flags.writeable = False
    return table


def _moves(device, take, n_devices):
    """Allocations one move away from the runs (``device``, ``take``), deepest first, in a
    fixed order: for each boundary between adjacent runs, moved by one block either way, then
    the upper run's last block split off to each of the first four idle devices; then for each
    run, handed to each idle device, its device swapped with each later run's, merged with
    the run below it (:func:`_move_table`).

    Returns the positions of the (at most two) runs each move drops (R: none) as a (2, M)
    array, and the (device, length, blocks covered below) of the (at most two) runs it adds
    as three (2, M) arrays (length 0: none).
    """
    n_runs = device.size
    used = np.zeros(n_devices, dtype=bool)
    used[device] = True
    idle = np.flatnonzero(~used)
    table = _move_table(n_runs, idle.size)
    take_of = np.concatenate([take, [0, 2]])
    table = table[:, take_of[table[0]] >= 2]
    length = take_of[table[5:7]] + take_of[table[7:9]] + table[9:11]
    covered = np.concatenate([np.cumsum(take) - take, [0]])[table[11:13]]
    covered[1] += table[13] * length[0]
    return table[1:3], (np.concatenate([device, idle])[table[3:5]], length, covered)


def _improve_runs(instance, runs, curves, *, rounds=50):
    """Local search over contiguous allocations (:func:`_moves`), best improvement: each round
    takes the move whose optimal bandwidth split has the least latency, as long as it improves
    the current one (by more than a relative 1e-12); stops at a local optimum or after
    ``rounds`` moves. Returns the runs and their latency.

    A move drops at most two runs and adds at most two, so a neighbour's need at a target T
    is the current runs' minus the dropped ones' plus the added ones' (:class:`_RunCurves`).
    One evaluation at T0 = the current latency (1 - 1e-12) keeps the neighbours that meet it,
    each with the tangent lower bound T0 - g(T0) / g'(T0) on its latency (g(T) = need - B is
    convex and decreasing). The one with the least bound is solved (:meth:`_RunCurves.
    least_target`); the others whose bound is below its latency are evaluated there, and only
    those that meet it can beat it: they get a new tangent bound and the loop repeats with
    them. So the best move is found without solving every neighbour.
    """
    budget = curves.budget
    margin = 1 + 1e-9  # on tangent steps: rounding must not lift a lower bound past the root
    device = np.array([k for k, _ in runs], dtype=np.int64)
    take = np.array([j for _, j in runs], dtype=np.int64)
    covered = np.cumsum(take) - take
    terms = curves.gather(device, take, covered)
    current = curves.least_target(terms, 0.0)
    for _ in range(rounds):
        if not np.isfinite(current):
            break
        drop, (add_device, add_take, add_covered) = _moves(device, take, instance.n_devices)
        if drop.shape[1] == 0:
            break
        added = curves.gather(add_device, add_take, add_covered)  # (4, 2, M)

        def evaluate(target, rows):
            """(need - B, its slope) of the neighbours ``rows`` at ``target``."""
            need, slope = curves.need(target, terms)
            # a run needing more than B makes any set that keeps it miss B: clip, so that
            # dropping it below is a subtraction of finite numbers
            over = need > 2 * budget
            need = np.append(np.where(over, 2 * budget, need), 0.0)
            slope = np.append(np.where(over, 0.0, slope), 0.0)
            new_need, new_slope = curves.need(target, added[:, :, rows])
            first, second = drop[:, rows]
            total = (need.sum() - need[first] - need[second]) + (new_need[0] + new_need[1])
            total_slope = (slope.sum() - slope[first] - slope[second]) \
                + (new_slope[0] + new_slope[1])
            return total - budget, total_slope

        def neighbour(row):
            kept = np.ones(device.size + 1, dtype=bool)
            kept[drop[:, row]] = False
            kept = kept[:-1]
            real = add_take[:, row] > 0
            return (np.concatenate([terms[:, kept], added[:, real, row]], axis=1),
                    np.concatenate([device[kept], add_device[real, row]]),
                    np.concatenate([take[kept], add_take[real, row]]),
                    np.concatenate([covered[kept], add_covered[real, row]]))

        start = current * (1 - 1e-12)
        gap, slope = evaluate(start, slice(None))
        alive = np.flatnonzero(gap <= 0)
        bound = np.where(slope[alive] < 0, start + margin * gap[alive] / -slope[alive], 0.0)
        upper = np.full(alive.size, start)
        best, best_latency = -1, np.inf
        while alive.size:
            pick = int(np.argmin(bound))
            candidate = int(alive[pick])
            found = neighbour(candidate)
            latency = curves.least_target(found[0], bound[pick], upper[pick])
            if latency < best_latency * (1 - 1e-13) or (
                    latency <= best_latency * (1 + 1e-13) and candidate < best):
                best, best_latency, best_found = candidate, latency, found
            keep = bound <= best_latency * (1 + 1e-13)
            keep[pick] = False
            alive, bound = alive[keep], bound[keep]
            if alive.size == 0:
                break
            # only a neighbour that meets the best latency can beat it
            target = best_latency * (1 + 1e-13)
            gap, slope = evaluate(target, alive)
            meets = gap <= 0
            tangent = np.where(slope < 0, target + margin * gap / -slope, 0.0)
            alive, bound = alive[meets], np.maximum(bound, tangent)[meets]
            upper = np.full(alive.size, target)
        if best < 0:  # no neighbour met the target after all (rounding)
            break
        terms, device, take, covered = best_found
        order = np.argsort(covered, kind="stable")
        terms, device, take, covered = terms[:, order], device[order], take[order], \
            covered[order]
        current = best_latency
    return [(int(k), int(j)) for k, j in zip(device, take)], current


class _Threshold:
    """What is known of a non-increasing function ``value`` of T against a budget B: the
    largest T seen above B and the least seen within it (with their values). :meth:`meets`
    answers from them where monotonicity decides, and evaluates only in between;
    :meth:`narrow` closes the gap by the Illinois method on 1 / value - 1 / B (increasing,
    finite where the value is +inf, nearly linear near a pole of the need)."""

    def __init__(self, value, budget):
        self.value, self.budget = value, budget
        self.above = (-np.inf, np.inf)  # (T, value(T)) with value > B
        self.within = (np.inf, 0.0)  # (T, value(T)) with value <= B

    def meets(self, target) -> bool:
        if target >= self.within[0]:
            return True
        if target <= self.above[0]:
            return False
        value = self.value(target)
        if value <= self.budget:
            self.within = (target, value)
            return True
        self.above = (target, value)
        return False

    def narrow(self, rtol):
        """Evaluate until the least T within B is bracketed to ``rtol`` (both ends finite)."""
        def reciprocal(value):
            return 1.0 / value - 1.0 / self.budget
        (lo, value_lo), (hi, value_hi) = self.above, self.within
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return
        f_lo, f_hi = reciprocal(value_lo), reciprocal(value_hi)
        side = 0
        for _ in range(100):
            if hi - lo <= rtol * hi:
                break
            target = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi > f_lo else np.nan
            # a step of at least half the tolerance: a root at one end closes the bracket
            target = min(max(target, lo + 0.5 * rtol * hi), hi - 0.5 * rtol * hi)
            if not lo < target < hi:
                target = 0.5 * (lo + hi)
            met = self.meets(target)
            f_target = reciprocal((self.within if met else self.above)[1])
            if met:
                hi, f_hi = target, f_target
                f_lo = 0.5 * f_lo if side == 1 else f_lo  # Illinois: the same end twice
                side = 1
            else:
                lo, f_lo = target, f_target
                f_hi = 0.5 * f_hi if side == -1 else f_hi
                side = -1


def _lower_bound_p2(instance: Instance):
    """The least T (bisection to a relative 1e-9) at which two relaxations of P2 fit in B:

    * every block has a device that can carry it alone, and the single-block needs, each
      block at its cheapest device, add up to at most B. Valid because a set needs at least
      the sum of its blocks' needs: C(A) >= C_n and S(A) = sum S_n, so the rate a set needs
      is at least the sum of the rates its blocks need alone, and the inverse rate (linear,
      or convex through zero for shannon) is superadditive; the same holds for the energy
      floors;
    * the block counts of :func:`_count_need_relaxation`.

    Both are non-increasing in T, so the bisection's tests are read from what is known of
    each (:class:`_Threshold`), which the Illinois method first narrows to a relative 1e-12
    around its threshold: the same bound from about half the evaluations. Returns None when
    the relaxations are never met.
    """
    speed = instance.device_flops_per_s[:, None]
    efficiency = (None if instance.device_spectral_efficiency is None
                  else instance.device_spectral_efficiency[:, None])
    snr = None if instance.device_snr_hz is None else instance.device_snr_hz[:, None]
    floor = instance.energy_bandwidth_floor()
    fits = instance.memory_feasible()
    budget = instance.total_bandwidth_hz

    def cheapest_total(target):
        need = min_bandwidth(target, flops=instance.block_flops[None, :], flops_per_s=speed,
                             bits=instance.block_bits[None, :], rate_model=instance.rate_model,
                             spectral_efficiency=efficiency, snr_hz=snr)
        if floor is not None:
            need = np.maximum(need, floor)
        return np.where(fits, need, np.inf).min(axis=0).sum()
    compute = np.where(fits, instance.compute_time_matrix(), np.inf).min(axis=0).max()
    if not np.isfinite(compute):
        return None
    relaxations = (_Threshold(cheapest_total, budget),
                   _Threshold(_count_need_relaxation(instance), budget))

    def meets(target):
        return all(relaxation.meets(target) for relaxation in relaxations)
    lo, hi = compute, 2 * compute
    for _ in range(200):
        if meets(hi):
            break
        lo, hi = hi, compute + 2 * (hi - compute)
    else:
        return None
    # narrow each threshold that the bisection may ask about: above lo, and above the targets
    # at which an earlier relaxation already fails
    failing = lo
    for relaxation in relaxations:
        if not relaxation.meets(failing):
            relaxation.meets(hi)
            relaxation.narrow(1e-12)
        failing = max(failing, relaxation.above[0])
    for _ in range(60):
        if hi - lo <= 1e-9 * hi:
            break
        mid = 0.5 * (lo + hi)
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return float(lo)


def _count_need_relaxation(instance: Instance):
    """T -> a lower bound on the least total bandwidth of any allocation meeting T.

    Each device k takes some j_k blocks (sum j_k = N, j_k <= c_k) and needs at least the
    bandwidth of the cheapest conceivable j_k-set: C_min + the j_k - 1 smallest extras, the
    j_k smallest payloads, the j_k - 1 smallest extra memories (C_deepest instead of C_min for
    the one device that holds the deepest block, which some device must). A knapsack over
    devices (counts up to N, with a flag for the deepest block) minimises the sum, as a tree
    of min-plus products (pairs of devices, pairs of pairs, ...).
    """
    n_blocks, n_devices = instance.n_blocks, instance.n_devices
    most = int(min(n_blocks, instance.max_blocks().max()))
    extras = np.concatenate([[0.0], np.cumsum(np.sort(instance.extra_flops()[:-1]))])
    extras = np.pad(extras, (0, max(0, most - extras.size)), constant_values=np.inf)[:most]
    payload = np.cumsum(np.sort(instance.block_bits))[:most]
    memory_extra = np.concatenate([[0.0], np.cumsum(np.sort(instance.extra_memory()[:-1]))])
    memory_extra = np.pad(memory_extra, (0, max(0, most - memory_extra.size)),
                          constant_values=np.inf)[:most]
    count = np.arange(1, most + 1)
    caps = instance.max_blocks()[:, None]
    speed = instance.device_flops_per_s[:, None]
    efficiency = (None if instance.device_spectral_efficiency is None
                  else instance.device_spectral_efficiency[:, None])
    snr = None if instance.device_snr_hz is None else instance.device_snr_hz[:, None]
    devices = np.arange(n_devices)[:, None]
    options = []
    for anchor_flops, anchor_memory in ((instance.block_flops.min(),
                                         instance.block_memory.min()),
                                        (instance.block_flops[-1], instance.block_memory[-1])):
        flops = anchor_flops + extras[None, :]
        memory = anchor_memory + memory_extra[None, :]
        ok = (count[None, :] <= caps) & (memory <= instance.device_memory[:, None])
        floor = (instance.energy_floor(np.broadcast_to(flops, (n_devices, most)),
                                       np.broadcast_to(payload, (n_devices, most)), devices)
                 if instance.has_energy_budgets else None)
        options.append((flops, ok, floor))

    # the knapsack as a tree of min-plus products: pairs of devices, then pairs of pairs, ...;
    # each level's (blocks of the first, blocks in all) -> blocks of the second, as an index
    # table (the last column of the second is +inf: more blocks than it may hold)
    tables, length, groups = [], most + 1, n_devices
    while groups > 1:
        size = min(2 * length - 1, n_blocks + 1)
        shift = np.arange(size)[None, :] - np.arange(length)[:, None]
        tables.append(np.where((shift >= 0) & (shift < length), shift, length))
        length, groups = size, (groups + 1) // 2

    def total(target):
        level = np.full((n_devices, 2, most + 1), np.inf)  # [device, holds deepest?, blocks]
        level[:, 0, 0] = 0.0
        for flag, (flops, ok, floor) in enumerate(options):
            need = min_bandwidth(target, flops=flops, flops_per_s=speed, bits=payload[None, :],
                                 rate_model=instance.rate_model, spectral_efficiency=efficiency,
                                 snr_hz=snr)
            if floor is not None:
                need = np.maximum(need, floor)
            level[:, flag, 1:] = np.where(ok, need, np.inf)
        for index in tables:
            if level.shape[0] % 2:
                level = np.concatenate([level, _nothing(level.shape[2])], axis=0)
            first, second = level[0::2], level[1::2]
            other = np.concatenate([second, np.full(second.shape[:2] + (1,), np.inf)],
                                   axis=2)[:, :, index]  # (pairs, 2, blocks of first, all)
            plain = (first[:, 0, :, None] + other[:, 0]).min(axis=1)
            deep = np.minimum((first[:, 0, :, None] + other[:, 1]).min(axis=1),
                              (first[:, 1, :, None] + other[:, 0]).min(axis=1))
            level = np.stack([plain, deep], axis=1)
        return level[0, 1, n_blocks] if level.shape[2] > n_blocks else np.inf
    return total


def _nothing(length):
    """(1, 2, length) min-plus unit: no blocks at cost 0, nothing else."""
    unit = np.full((1, 2, length), np.inf)
    unit[0, 0, 0] = 0.0
    return unit


def solve_greedy_sets(instance: Instance, bandwidth_hz, **_) -> SolverResult:
    """Greedy baseline with several blocks: deepest block first, each to the device whose set
    would finish soonest with it (caps, memory and energy kept), at the given bandwidths."""
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
    assignment = np.full(instance.n_blocks, -1, dtype=np.int64)
    caps = instance.max_blocks()
    for block in range(instance.n_blocks - 1, -1, -1):
        best, best_latency = -1, np.inf
        for k in range(instance.n_devices):
            mine = assignment == k
            if mine.sum() >= caps[k]:
                continue
            trial = np.where(mine, 1, 0)
            trial[block] = 1
            probe = _one_device(instance)
            f, m, b, _ = probe.group_costs(trial)
            if m[1] > instance.device_memory[k]:
                continue
            if not _energy_ok(instance, f[1], b[1], k, bandwidth_hz):
                continue
            rate = instance.rate(bandwidth_hz)[k]
            latency = float(pair_latency(f[1], instance.device_flops_per_s[k], b[1], rate))
            if latency < best_latency:
                best, best_latency = k, latency
        if best < 0:
            raise SolverFailure(HEURISTIC_MISSED.format(name="greedy"))
        assignment[block] = best
    return _result(instance, assignment, bandwidth_hz, Status.FEASIBLE)


# ---------------------------------------------------------------------------------------------
# MILP (any extras)


def _milp_model(instance: Instance):
    """cvxpy variables and the constraints every allocation of section 8 satisfies.

    x_kn = 1 when device k trains block n, z_kn = 1 when n is its deepest block::

        sum_k x_kn = 1,  z <= x,  sum_n z_kn <= 1,  x_kn <= sum_{n' >= n} z_kn',
        sum_n x_kn <= c_k,  sum_n mu_n x_kn + sum_n (m_n - mu_n) z_kn <= M_k

    The third and fourth force z onto the deepest block of every device that trains one, so
    C(A_k) = sum_n delta_n x_kn + (C_n - delta_n) z_kn exactly (and m(A_k) likewise).
    """
    import cvxpy as cp

    n_devices, n_blocks = instance.n_devices, instance.n_blocks
    x = cp.Variable((n_devices, n_blocks), boolean=True)
    z = cp.Variable((n_devices, n_blocks), boolean=True)
    at_or_deeper = np.tril(np.ones((n_blocks, n_blocks)))  # row n', column n: n' >= n
    extra_flops, extra_memory = instance.extra_flops(), instance.extra_memory()
    memory = x @ extra_memory + z @ (instance.block_memory - extra_memory)
    flops = x @ extra_flops + z @ (instance.block_flops - extra_flops)
    constraints = [cp.sum(x, axis=0) == 1, z <= x, cp.sum(z, axis=1) <= 1,
                   x <= z @ at_or_deeper, cp.sum(x, axis=1) <= instance.max_blocks(),
                   memory <= instance.device_memory]
    return cp, x, z, flops, constraints


def _milp_solve(cp, problem, time_limit_s):
    """HiGHS with zero optimality gaps. Its default feasibility tolerances are kept: with
    1e-9 (as the one-block MILP uses) HiGHS reported "optimal" for a worse allocation on a
    several-blocks instance with energy budgets (a regression test pins it); the allocation is
    recomputed from x anyway, so the tolerance does not reach the reported numbers."""
    import warnings

    from .highs import OPTIONS, quiet

    options = {**OPTIONS, "mip_rel_gap": 0.0, "mip_abs_gap": 0.0}
    if time_limit_s is not None:
        options["time_limit"] = max(float(time_limit_s), 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with quiet():  # HiGHS's banner never reaches standard output
            problem.solve(solver=cp.HIGHS, **options)


def _milp_assignment(x_value, instance):
    if x_value is None or not np.all(np.isfinite(x_value)):
        return None
    chosen = np.asarray(x_value) > 0.5
    if not (chosen.sum(axis=0) == 1).all():
        return None
    assignment = np.argmax(chosen, axis=0).astype(np.int64)
    return assignment if instance.allocation_fits(assignment) else None


def solve_milp_sets(instance: Instance, bandwidth_hz=None, *, rtol=1e-9, time_limit_s=None,
                    **_) -> SolverResult:
    """MILP with several blocks per device through cvxpy and HiGHS (:func:`_milp_model`).

    P1 (``bandwidth_hz`` given) is one MILP minimising t with
    ``flops_k / f_k + sum_n S_n x_kn / r_k <= t`` (and the linear energy budgets). P2 (fixed
    rate model) is a bisection on T over MILPs that minimise sum_k b_k subject to
    ``rho_k (T b_k - (sum_n delta_n w_kn + (C_n - delta_n) v_kn) / f_k) >= sum_n S_n x_kn``
    with w = b x and v = b z linearised exactly (x, z binary, 0 <= b <= B); energy budgets
    take the same form. The shannon rate is not linear in b: P2 under it is refused.
    """
    deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
    cp, x, z, flops, constraints = _milp_model(instance)
    speed = instance.device_flops_per_s
    bits_of = x @ instance.block_bits
    budget_j = instance.energy_budget_j()
    # integer indices: cvxpy expressions do not take numpy boolean masks as numpy does
    budgeted = (np.flatnonzero(np.isfinite(budget_j)) if instance.has_energy_budgets
                else np.zeros(0, dtype=np.int64))
    compute_power = (np.nan_to_num(np.asarray(instance.device_compute_power_w, dtype=float))
                     if instance.device_compute_power_w is not None else np.zeros(
                         instance.n_devices))
    tx_power = (np.nan_to_num(np.asarray(instance.device_tx_power_w, dtype=float))
                if instance.device_tx_power_w is not None else np.zeros(instance.n_devices))
    if bandwidth_hz is not None:
        bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
        rate = instance.rate(bandwidth_hz)
        scale = float(np.max(instance.block_flops) / speed.min()
                      + np.sum(instance.block_bits) / rate.min()) or 1.0
        t = cp.Variable()
        latency = (cp.multiply(flops, 1.0 / (speed * scale))
                   + cp.multiply(bits_of, 1.0 / (rate * scale)))
        constraints = constraints + [latency <= t]
        if budgeted.size:
            energy = (cp.multiply(flops, compute_power / speed)
                      + cp.multiply(bits_of, tx_power / rate))
            constraints.append(energy[budgeted] <= budget_j[budgeted])
        problem = cp.Problem(cp.Minimize(t), constraints)
        _milp_solve(cp, problem, None if deadline is None else deadline - time.perf_counter())
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return SolverResult.infeasible(NO_SETS)
        assignment = _milp_assignment(x.value, instance)
        if assignment is None or not instance.allocation_fits(assignment, bandwidth_hz):
            raise SolverFailure(f"HiGHS returned status {problem.status!r} with no usable "
                                "allocation; raise the time limit")
        status = Status.OPTIMAL if problem.status == cp.OPTIMAL else Status.FEASIBLE
        return _result(instance, assignment, bandwidth_hz, status)
    if instance.rate_model != "fixed":
        raise SolverInputError(
            "milp solves P2 with several blocks per device only for the fixed rate model (the "
            "shannon rate is not linear in the bandwidth); use exact (uniform blocks), brute "
            "(tiny instances) or packing")
    try:
        start = solve_packing(instance)
    except SolverFailure:  # packing missed; the doubling below decides
        start = None
    if start is not None and start.assignment is None:
        return start  # packing's relaxation proves it
    budget = instance.total_bandwidth_hz
    efficiency = instance.device_spectral_efficiency

    def feasible(target):
        cp_, x_, z_, flops_, base = _milp_model(instance)
        share = cp_.Variable(instance.n_devices, nonneg=True)  # b_k / B
        w = cp_.Variable((instance.n_devices, instance.n_blocks), nonneg=True)  # share * x
        v = cp_.Variable((instance.n_devices, instance.n_blocks), nonneg=True)  # share * z
        shares = cp_.reshape(share, (instance.n_devices, 1), order="C")
        ones = np.ones((1, instance.n_blocks))
        link = [w <= x_, w <= shares @ ones, w >= shares @ ones - (1 - x_),
                v <= z_, v <= shares @ ones, v >= shares @ ones - (1 - z_), share <= 1]
        extra = instance.extra_flops()
        spent = (w @ extra + v @ (instance.block_flops - extra)) / speed  # share * C(A) / f
        carried = cp_.multiply(efficiency * budget,
                               target * share - spent)  # rate * (T - C/f)
        need_bits = x_ @ instance.block_bits
        scale = float(np.sum(instance.block_bits)) or 1.0
        rows = [carried / scale >= need_bits / scale]
        if budgeted.size:
            energy_room = cp_.multiply(efficiency * budget,
                                       cp_.multiply(budget_j, share) - cp_.multiply(
                                           compute_power, spent))
            rows.append(energy_room[budgeted] / scale
                        >= cp_.multiply(tx_power, need_bits)[budgeted] / scale)
        problem = cp_.Problem(cp_.Minimize(cp_.sum(share)), base + link + rows)
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            raise TimeoutError
        _milp_solve(cp_, problem, left)
        if problem.status in (cp_.INFEASIBLE, cp_.INFEASIBLE_INACCURATE):
            return None
        if problem.status != cp_.OPTIMAL:
            raise TimeoutError
        if problem.value > 1 + 1e-9:
            return None
        return _milp_assignment(x_.value, instance)

    stopped = False
    if start is not None:
        hi, best = start.round_latency_s, start.assignment
        lo = start.lower_bound_s or 0.0
    else:  # no allocation in hand: double a target until the MILP finds one
        found = double_until(feasible, float(np.max(instance.block_flops) / speed.min()), 80,
                             "HiGHS")
        if found is None:
            return SolverResult.infeasible(NO_SETS)
        lo, hi, best = found
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        try:
            found = feasible(mid)
        except TimeoutError:
            stopped = True
            break
        if found is None:
            lo = mid
        else:
            # HiGHS proved an allocation within B at mid (to its feasibility tolerance); its
            # exact split is computed once, at the end
            hi, best = mid, found
    latency, bandwidth = group_split(instance, best)
    status = Status.FEASIBLE if stopped else Status.OPTIMAL
    return _result(instance, best, bandwidth[0], status, lower_bound_s=lo,
                   message="stopped at the time limit" if stopped else "")


