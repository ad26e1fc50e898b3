"""Several blocks per device at LLM scale: layers of equal blocks, the release programme (P1) and
the tiling LP (P2).

A decoder LLM with one LoRA block per adapted matrix has many blocks of equal cost: the matrices
of one transformer layer are reached by the same backward pass (equal C_n and m_n), and adapters
of one rank on matrices of one shape have equal payloads and extras. This module solves the
uniform case of :mod:`solvers.sets` (equal payloads S_n = S; equal extras delta_n = delta,
mu_n = mu over every block but the deepest; C_n and m_n non-decreasing in depth; local mode)
with any number of devices, exactly. It reads the structure from the data: a *layer* is a
maximal group of consecutive depths with equal (C_n, m_n), layers l = 0..L-1 counted from the
deep end, P_l the number of blocks deeper than layer l (P_0 = 0, P_L = N) and s_l = P_{l+1} - P_l
its size. Without ties every block is a layer of its own (L = N); nothing else changes.

Structure of the optimum
------------------------
**1. Runs by layer.** Some optimal allocation gives each device a contiguous run of depths
(the exchange argument of :mod:`solvers.sets`). A run of j blocks whose deepest block lies in
layer l costs::

    C = C_l + (j - 1) delta,   m = m_l + (j - 1) mu,   S(A) = j S,

whatever its position inside the layer: it is non-increasing in l (towards the output) and
non-decreasing in j, and so are its latency at a fixed bandwidth, its energy and its least
bandwidth for a target T.

**2. Release form (P1).** At a threshold T let J_k(l) be the most blocks device k may run with
its deepest block in layer l (cap, memory, energy, latency <= T; 0 when none): non-decreasing
in l. *T is feasible iff there are release layers rho_k (or none) with*::

    sum_{k : rho_k < l} J_k(rho_k) >= P_l      for l = 1..L.                       (H)

(=>) Take rho_k the layer of device k's deepest block: the runs that start below P_l cover the
P_l deepest positions and each holds at most J_k(rho_k) blocks. (<=) Lay the devices' runs from
the deep end in order of rho_k, J_k(rho_k) blocks each: by (H) the device released at rho starts
at a position >= P_rho, so its deepest block lies in layer rho or above, where it may run at
least J_k(rho) blocks (J_k grows with l); cut the runs at N (a shorter run costs no more).

**3. Canonical release layers.** Let sigma_k be the first layer at which J_k reaches its
largest value. Among the solutions of (H) there is one in which (i) no device is released after
sigma_k (moving it back to sigma_k keeps its count and counts it in more prefixes); (ii) a
device released at l < sigma_k could not wait until l + 1: the prefix l + 1 would fail without
it (delay every device that can wait, while one can: its count never falls, so this ends), so
the devices released at l before their sigma form a *minimal* cover of the deficit of layer l;
and (iii) no device k is released at l while a device k' waits with J_k'(l) >= J_k(l) and
J_k'(l') <= J_k(l') for every l' > l (swap the two: every prefix keeps its sum or gains; ties
are broken by index, so the swaps end). (ii) and (iii) together: the devices released early at
l form a minimal cover that is closed downwards in the order of (iii).

The **release programme** is a dynamic programme over the layers that follows exactly these
solutions. Its state after layer l is the set U of *in-progress* devices (J_k(l) > 0 and
l < sigma_k) that it has released, and for each U it keeps the largest surplus sum - P_{l+1} (a
larger surplus never hurts). Devices still waiting at sigma_k are released there. A state is
dropped when the blocks its later early releases must lose exceed its room (:func:`_prune`: a
fractional knapsack per later prefix). The programme is exponential in the number of
in-progress devices in the worst case: no polynomial algorithm is known here (the choice of
which devices cover which layers resembles the generalised assignment problem), and above
``max_states`` states in a layer the search is handed to the path MILP of :mod:`solvers.runs`.
With caps of 2 the order (iii) is total among in-progress devices (they hold 1 block and differ
only in sigma_k), so each deficit has a single cover; on the Llama-3-8B-shaped instance of the
benchmark (224 blocks in 32 layers, K = 64, caps 5) a layer holds at most about 1000 states.
P1's optimum is the least candidate run latency T_k(l, j) at which the programme succeeds
(binary search over the sorted candidates); before the programme, each test asks the LP
relaxation of (H) (:func:`release_relaxation`), which refuses most thresholds below the
optimum in milliseconds, and a narrow beam of the programme, which finds an allocation for
most thresholds above it.

**4. Tiling LP (P2).** At a target T device k's run (l, j) needs the least bandwidth
w_k(l, j, T) (:func:`~solvers.bandwidth.min_bandwidth`, its energy floor included, any rate
model). The least total bandwidth of an allocation meeting T is the integer optimum of::

    min  sum w_k(l, j, T) x_klj
    f_rj >= 0: run of j blocks from position r (r + j <= N); flow from 0 to N:
         sum_j f_rj - sum_j f_{r-j, j} = [r = 0]            for r = 0..N-1
    sum_{r in layer l} f_rj = sum_k x_klj                  for every layer l and length j
    sum_{l, j} x_klj <= 1,  x >= 0                          for every device k

For an integral tiling f the rest is a transportation problem (totally unimodular), so only f
needs to be integral; this LP is the path MILP's relaxation (:mod:`solvers.runs`) aggregated by
layer (an LP solution of either maps onto the other at the same cost), and on the LLM-shaped
instances its optimum is mostly integral. P2 runs Dinkelbach's iteration on it: at the latency
T of the best allocation so far, the least-bandwidth allocation (an integral LP vertex, else
the MILP with f integral) is split optimally (:func:`solvers.groups.group_split`) and its
latency is the next T; at the fixed point, a lower bound above B at T (1 - g) proves T optimal
to g (g from the method's rtol up, at most 1e-7): for any row duals y the Lagrangian value
``y . rhs + sum_j min(0, c_j - y A_j) u_j`` is at most the LP optimum (weak duality), so the
bound does not depend on the LP solver's tolerances. Where the LP's bound stays within B (an
integrality gap), the MILP decides, on the columns that the same duals do not rule out
(:meth:`TilingLP.solve_integral`).

Examples
--------
>>> import numpy as np
>>> from solvers.model import Instance
>>> inst = Instance(block_flops=np.array([1.0, 1.0, 3.0]), block_bits=np.ones(3),
...                 block_memory=np.ones(3), device_flops_per_s=np.array([1.0, 1.0]),
...                 device_memory=np.full(2, 9.0), total_bandwidth_hz=2.0,
...                 device_spectral_efficiency=np.ones(2), device_max_blocks=np.array([2, 2]))
>>> layer_tables(inst).starts.tolist()  # the deepest block, then the two equal ones
[0, 1, 3]
>>> result = solve_layers_p1(inst, inst.matching_bandwidth())
>>> result.assignment.tolist(), result.round_latency_s  # 1 + 2 on device 1, 3 + 1 on device 0
([1, 1, 0], 4.0)
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bandwidth import min_bandwidth
from .groups import NO_SETS, allocation_result, energy_ok, group_split
from .model import Instance, pair_latency
from .result import SolverFailure, SolverResult, Status

__all__ = ["Layers", "layer_tables", "release_programme", "release_relaxation", "TooManyStates",
           "solve_layers_p1", "TilingLP", "solve_layers_p2", "DEFAULT_MAX_STATES"]

#: The release programme hands over to the path MILP above this many states in one layer.
DEFAULT_MAX_STATES = 100_000
#: States per layer of the fast first pass of each P1 test (module docstring, 3).
BEAM = 8
#: The LP's feasibility tolerances: tighter than HiGHS's defaults (1e-7), so that the
#: Dinkelbach steps see the least bandwidth to about 1e-9 of B.
LP_TOLERANCE = 1e-9
#: Gaps g tried, in order, for the certificate at T (1 - g) (module docstring, 4).
CERTIFICATE_GAPS = (1e-9, 1e-8, 1e-7)
#: A dual bound (total bandwidth / B) above this proves that nothing fits B: 1 plus room for
#: the rounding of its own sum.
PROVEN_ABOVE = 1.0 + 1e-12


class TooManyStates(RuntimeError):
    """The release programme went past its state limit (the caller hands over)."""


# ---------------------------------------------------------------------------------------------
# Layers and run tables


@dataclass(frozen=True)
class Layers:
    """The blocks grouped in layers of equal (C_n, m_n), from the deep end (module docstring).

    Attributes
    ----------
    starts : (L + 1,) int array
        P_l: the blocks deeper than layer l; ``starts[-1]`` is N.
    layer_of : (N,) int array
        The layer of position r, r = 0 being the deepest block (index N - 1).
    flops, memory : (L, J) arrays
        C and m of a run of j = 1..J blocks whose deepest block lies in layer l.
    bits : (J,) array
        S(A) of a run of j blocks.
    allowed : (K, L, J) bool array
        The device's cap and memory hold (energy and latency are checked by the callers).
    """

    starts: np.ndarray
    layer_of: np.ndarray
    flops: np.ndarray
    memory: np.ndarray
    bits: np.ndarray
    allowed: np.ndarray

    @property
    def n_layers(self) -> int:
        return int(self.starts.size - 1)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)


def layer_tables(instance: Instance) -> Layers:
    """The layers of a uniform instance and its run costs per layer.

    The sums are accumulated as :meth:`Instance.group_costs` accumulates them (extras and
    payloads added one at a time from zero), so a run's latency here is bit-identical to the one
    reported for the allocation. Assumes the uniform case (equal payloads and extras).
    """
    n_blocks = instance.n_blocks
    most = int(min(n_blocks, instance.max_blocks().max()))
    flops = instance.block_flops[::-1]  # position r = 0 is the deepest block
    memory = instance.block_memory[::-1]
    new_layer = np.flatnonzero((flops[1:] != flops[:-1]) | (memory[1:] != memory[:-1])) + 1
    starts = np.concatenate([[0], new_layer, [n_blocks]]).astype(np.int64)
    layer_of = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    extra_flops = instance.extra_flops()[0] if n_blocks > 1 else 0.0
    extra_memory = instance.extra_memory()[0] if n_blocks > 1 else 0.0
    extras_flops = np.cumsum(np.concatenate([[0.0], np.full(most - 1, extra_flops)]))
    extras_memory = np.cumsum(np.concatenate([[0.0], np.full(most - 1, extra_memory)]))
    run_flops = flops[starts[:-1]][:, None] + extras_flops[None, :]
    run_memory = memory[starts[:-1]][:, None] + extras_memory[None, :]
    bits = np.cumsum(np.full(most, instance.block_bits[0]))
    count = np.arange(1, most + 1)
    allowed = ((count[None, None, :] <= instance.max_blocks()[:, None, None])
               & (run_memory[None] <= instance.device_memory[:, None, None]))
    return Layers(starts, layer_of, run_flops, run_memory, bits, allowed)


def _runs_to_assignment(n_blocks: int, runs) -> np.ndarray:
    """Runs (device, length) laid from the deepest block up, cut at N -> block -> device."""
    assignment = np.full(n_blocks, -1, dtype=np.int64)
    covered = 0
    for device, take in runs:
        take = min(int(take), n_blocks - covered)
        if take <= 0:
            break
        assignment[n_blocks - covered - take:n_blocks - covered] = device
        covered += take
    if covered != n_blocks:
        raise SolverFailure("several blocks per device: the runs found do not cover every "
                            "block (an internal error; please report it)")
    return assignment


# ---------------------------------------------------------------------------------------------
# P1: the release programme


def release_programme(capacity, sizes, *, max_states: int = DEFAULT_MAX_STATES, beam=None):
    """The release programme of the module docstring (3): release layers satisfying (H).

    Parameters
    ----------
    capacity : (K, L) int array
        J_k(l), non-decreasing in l.
    sizes : (L,) int array
        s_l, the blocks of each layer.
    max_states : int
        The most states one layer may hold; beyond, :class:`TooManyStates`.
    beam : int or None
        Keep only this many states per layer (those with the most room left, see
        :func:`_prune`): a fast search that may miss a solution. None: the exact programme.

    Returns
    -------
    (K,) int array of release layers (-1: the device is not used), or None when (H) has no
    solution (with ``beam``: when the search found none, which proves nothing).

    >>> release_programme(np.array([[1, 2], [2, 2]]), np.array([2, 2])).tolist()
    [1, 0]
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    n_devices, n_layers = capacity.shape
    most = capacity[:, -1]
    useful = most > 0
    start = np.where(useful, np.argmax(capacity > 0, axis=1), n_layers)
    saturated = np.where(useful, np.argmax(capacity == most[:, None], axis=1), n_layers)
    later = np.concatenate([np.cumsum(sizes[::-1])[::-1], [0]])  # blocks in layers >= l
    layers = []  # per layer: new mask -> (surplus, parent mask, devices released early)
    states = {0: 0}  # mask of the in-progress devices released so far -> largest surplus
    for layer in range(n_layers):
        instant = np.flatnonzero(useful & (start == layer) & (saturated == layer))
        closing = np.flatnonzero(useful & (start < layer) & (saturated == layer)).tolist()
        progress = np.flatnonzero(useful & (start <= layer) & (saturated > layer))
        instant_total = int(most[instant].sum())
        closing_most = [(k, int(most[k])) for k in closing]
        closing_bits = 0
        for k in closing:
            closing_bits |= 1 << k
        order, value, before, bit_of = _progress_order(capacity, progress, layer)
        size = int(sizes[layer])
        found = {}
        for mask, surplus in states.items():
            auto = instant_total
            for k, gain in closing_most:
                if not (mask >> k) & 1:
                    auto += gain
            base = mask & ~closing_bits
            deficit = size - surplus - auto
            if deficit <= 0:
                _keep(found, base, -deficit, mask, ())
                continue
            free = [i for i, k in enumerate(order) if not mask & bit_of[i]]
            for chosen in _minimal_covers(free, value, before, deficit):
                new_mask, gained = base, 0
                for i in chosen:
                    new_mask |= bit_of[i]
                    gained += value[i]
                _keep(found, new_mask, surplus + auto + gained - size, mask,
                      tuple(order[i] for i in chosen))
        if len(found) > max_states:
            raise TooManyStates(f"the release programme went past {max_states} states in a "
                                "layer")
        layers.append(found)
        states = {mask: entry[0] for mask, entry in found.items()}
        if layer + 1 < n_layers and states:
            states = _prune(states, capacity, most, useful, saturated, progress, layer, later,
                            beam)
        if not states:
            return None
    return _read_back(layers, states, capacity, useful, start, saturated, n_devices)


def _keep(found, mask, surplus, parent, released):
    """Keep the largest surplus for each state (and how it was reached)."""
    current = found.get(mask)
    if current is None or current[0] < surplus:
        found[mask] = (surplus, parent, released)


def _prune(states, capacity, most, useful, saturated, progress, layer, later, beam):
    """The states after ``layer`` from which the last prefix can still be met, by a bound on
    the blocks that the later early releases must lose.

    Every device still waiting ends up released; released at l'' it holds J_k(l'') = most_k -
    loss, so the last prefix needs the total loss to stay within the *room* F = surplus + sum
    of the waiting devices' most - the blocks above ``layer``. Each later prefix l' must be met
    by releases at layers below it: a device released there holds at most J_k(l' - 1) and loses
    at least most_k - J_k(l' - 1), so the least loss that covers the prefix's need is at least
    that of the fractional knapsack over the waiting devices (by loss per block). A state whose
    bound for some l' exceeds F (or whose waiting devices cannot cover some l' at all) is
    dropped. With ``beam`` only the states with the most room are kept.
    """
    n_layers = capacity.shape[1]
    waiting = np.flatnonzero(useful & (saturated > layer))
    masks = list(states)
    surplus = np.array([states[mask] for mask in masks], dtype=float)
    waits = np.ones((len(masks), waiting.size))
    column = {k: i for i, k in enumerate(waiting.tolist())}
    for k in progress.tolist():
        if k in column:
            waits[:, column[k]] = [0.0 if (mask >> k) & 1 else 1.0 for mask in masks]
    room = surplus + waits @ most[waiting] - later[layer + 1]
    if waiting.size == 0:  # nothing left to release: the surplus must cover every later layer
        return {mask: states[mask] for mask, ok in zip(masks, (room >= 0).tolist()) if ok}
    prefixes = np.arange(layer + 2, n_layers + 1)
    need = (later[layer + 1] - later[prefixes])[:, None] - surplus[None, :]  # (P, S)
    if (need > 0).any():
        gain = capacity[waiting][:, prefixes - 1].T.astype(float)  # (P, W)
        loss = most[waiting][None, :] - gain
        order = np.argsort(np.where(gain > 0, loss / np.maximum(gain, 1.0), np.inf), axis=1,
                           kind="stable")
        gain = np.take_along_axis(gain, order, axis=1)
        loss = np.take_along_axis(loss, order, axis=1)
        present = waits[:, order]  # (S, P, W): the waiting devices in each prefix's order
        gains = np.cumsum(present * gain[None], axis=2)
        losses = np.cumsum(present * loss[None], axis=2)
        need = need.T  # (S, P)
        taken = (gains < need[:, :, None]).sum(axis=2)  # whole devices before the last one
        last = np.minimum(taken, waiting.size - 1)[:, :, None]
        before = np.maximum(last - 1, 0)
        gain_before = np.where(last > 0, np.take_along_axis(gains, before, axis=2), 0.0)[..., 0]
        loss_before = np.where(last > 0, np.take_along_axis(losses, before, axis=2), 0.0)[..., 0]
        gain_last = np.take_along_axis(gains, last, axis=2)[..., 0] - gain_before
        loss_last = np.take_along_axis(losses, last, axis=2)[..., 0] - loss_before
        fraction = np.clip((need - gain_before) / np.maximum(gain_last, 1e-300), 0.0, 1.0)
        bound = np.where(need <= 0, 0.0, np.where(taken >= waiting.size, np.inf,
                                                  loss_before + fraction * loss_last))
        worst = bound.max(axis=1)
    else:
        worst = np.zeros(len(masks))
    keep = worst <= room + 1e-9
    if beam is not None and keep.sum() > beam:
        score = np.where(keep, room - worst, -np.inf)
        keep = np.zeros(keep.size, dtype=bool)
        keep[np.argsort(-score, kind="stable")[:beam]] = True
    return {mask: states[mask] for mask, ok in zip(masks, keep.tolist()) if ok}


def _progress_order(capacity, progress, layer):
    """The in-progress devices at ``layer`` in a linear extension of the order (iii): by
    decreasing J_k(layer), then increasing sum of later capacities, then index; their values
    J_k(layer), for each the positions (in that order) of the devices that come before it
    in (iii) (J_k'(l) >= J_k(l) and J_k'(l') <= J_k(l') for every later l'), as a bit mask,
    and each device's bit in a state's mask."""
    if progress.size == 0:
        return [], [], [], []
    now = capacity[progress, layer]
    later = capacity[progress, layer + 1:]
    order = np.lexsort((progress, later.sum(axis=1), -now))
    devices = progress[order]
    now, later = now[order], later[order]
    # before[a, b]: a comes before b in (iii)
    before = (now[:, None] >= now[None, :]) & (later[:, None, :] <= later[None, :, :]).all(axis=2)
    same = (now[:, None] == now[None, :]) & (later[:, None, :] == later[None, :, :]).all(axis=2)
    index = np.arange(devices.size)
    before &= ~same | (index[:, None] < index[None, :])
    np.fill_diagonal(before, False)
    masks = []
    for b in range(devices.size):
        bits = 0
        for a in np.flatnonzero(before[:, b]).tolist():
            bits |= 1 << a
        masks.append(bits)
    devices = devices.tolist()
    return devices, now.tolist(), masks, [1 << k for k in devices]


def _minimal_covers(free, value, before, deficit):
    """The sets of positions in ``free`` (in the order of :func:`_progress_order`, values
    non-increasing) whose values sum to at least ``deficit`` while dropping the last (the
    smallest) falls short, and that hold every free position that comes before one of theirs."""
    free_bits = 0
    for i in free:
        free_bits |= 1 << i
    rest = [0] * (len(free) + 1)
    for t in range(len(free) - 1, -1, -1):
        rest[t] = rest[t + 1] + value[free[t]]
    covers = []
    chosen = []

    def extend(t, chosen_bits, total):
        if total + rest[t] < deficit:
            return
        for u in range(t, len(free)):
            i = free[u]
            if before[i] & free_bits & ~chosen_bits:
                continue  # a free device that comes first is not released
            if total + rest[u] < deficit:
                return
            chosen.append(i)
            if total + value[i] >= deficit:
                covers.append(tuple(chosen))
            else:
                extend(u + 1, chosen_bits | (1 << i), total + value[i])
            chosen.pop()
    extend(0, 0, 0)
    return covers


def _read_back(layers, states, capacity, useful, start, saturated, n_devices):
    """The release layer of every device along the path that reached a final state."""
    release = np.full(n_devices, -1, dtype=np.int64)
    mask = next(iter(states))
    for layer in range(len(layers) - 1, -1, -1):
        _, parent, released = layers[layer][mask]
        for k in released:
            release[k] = layer
        for k in np.flatnonzero(useful & (saturated == layer)).tolist():
            if start[k] == layer or not (parent >> k) & 1:
                release[k] = layer
        mask = parent
    return release


def solve_layers_p1(instance: Instance, bandwidth_hz, *, max_states: int = DEFAULT_MAX_STATES,
                    deadline=None) -> SolverResult:
    """P1 with several blocks per device, uniform case: binary search over the candidate run
    latencies T_k(l, j) (the optimum is one of them) with the release programme as the test
    (module docstring, 2-3). Each test first asks the LP relaxation of (H)
    (:func:`release_relaxation`), whose failure proves the threshold infeasible, then runs the
    programme with a narrow beam, which proves it feasible when it finds an allocation, and the
    exact programme only when neither decides; an allocation found moves the upper end to its
    own latency. Hands over to the path MILP of :mod:`solvers.runs` (and says so) when the
    programme grows past ``max_states`` states in a layer. ``deadline`` (a
    ``time.perf_counter()`` value) stops the search with the best allocation found and a
    proven lower bound."""
    bandwidth_hz = np.asarray(bandwidth_hz, dtype=float)
    tables = layer_tables(instance)
    rate = instance.rate(bandwidth_hz)
    devices = np.arange(instance.n_devices)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        latency = pair_latency(tables.flops[None], instance.device_flops_per_s[devices],
                               tables.bits[None, None, :], rate[devices])
    allowed = tables.allowed & energy_ok(instance, tables.flops[None],
                                         tables.bits[None, None, :], devices, bandwidth_hz)
    latency = np.where(allowed, latency, np.inf)
    candidates = np.unique(latency[np.isfinite(latency)])
    if candidates.size == 0:
        return SolverResult.infeasible(NO_SETS)
    count = np.arange(1, latency.shape[2] + 1)

    def capacity_at(index):
        return np.where(latency <= candidates[index], count, 0).max(axis=2)

    def runs_at(index):
        """Runs meeting candidates[index] with their worst latency's index, or None (proven)."""
        capacity = capacity_at(index)
        if (np.diff(capacity, axis=1) < 0).any():  # costs not monotone in floating point
            raise TooManyStates("run latencies that do not fall towards the output (in "
                                "floating point)")
        if not release_relaxation(capacity, tables.sizes):
            return None
        release = release_programme(capacity, tables.sizes, max_states=max_states,
                                    beam=BEAM)
        if release is None:
            release = release_programme(capacity, tables.sizes, max_states=max_states)
        if release is None:
            return None
        runs = _release_runs(release, capacity, tables.starts[-1])
        worst, covered = -np.inf, 0
        for device, take in runs:
            worst = max(worst, latency[device, tables.layer_of[covered], take - 1])
            covered += take
        return runs, int(np.searchsorted(candidates, worst))

    # below the counting bound no candidate passes (every device at its best for each prefix)
    lo = _counting_bound(latency, count, candidates, tables.starts) - 1
    stopped = False
    try:
        found = runs_at(candidates.size - 1)
        if found is None:
            return SolverResult.infeasible(NO_SETS)
        runs, hi = found
        while hi - lo > 1:
            if deadline is not None and time.perf_counter() > deadline:
                stopped = True
                break
            mid = (lo + hi) // 2
            here = runs_at(mid)
            if here is None:
                lo = mid
            else:
                runs, hi = here
    except TooManyStates as reason:
        from .runs import paths_p1

        result = paths_p1(instance, bandwidth_hz, deadline)
        result.message = (f"several blocks per device: {reason}; solved by the path MILP over "
                          "contiguous runs instead")
        result.extras["fallback"] = "path MILP"
        return result
    assignment = _runs_to_assignment(instance.n_blocks, runs)
    if stopped:
        return allocation_result(instance, assignment, bandwidth_hz, Status.FEASIBLE,
                                 lower_bound_s=float(candidates[lo + 1]),
                                 message="stopped at the time limit; lower_bound_s is proven")
    result = allocation_result(instance, assignment, bandwidth_hz, Status.OPTIMAL,
                               message="several blocks per device: release programme over "
                               "layers of equal blocks")
    if not result.round_latency_s <= candidates[hi]:
        raise SolverFailure("several blocks per device: the release programme's allocation "
                            "misses its threshold (an internal error; please report it)")
    return result


def _release_runs(release, capacity, n_blocks):
    """Runs (device, length) from release layers: devices in order of release (then index),
    each with J_k(rho_k) blocks, the last ones cut at N (module docstring, 2)."""
    order = np.lexsort((np.arange(release.size), release))
    runs, covered = [], 0
    for k in order.tolist():
        if release[k] < 0 or covered >= n_blocks:
            continue
        take = min(int(capacity[k, release[k]]), n_blocks - covered)
        runs.append((k, take))
        covered += take
    return runs


def _counting_bound(latency, count, candidates, starts):
    """The least candidate index at which every device at its best for each prefix on its own
    could cover it (a relaxation of (H)): no smaller candidate passes."""
    lo, hi = 0, candidates.size - 1
    prefix_need = starts[1:]

    def holds(target):
        capacity = np.where(latency <= target, count, 0).max(axis=2)
        return bool((capacity.sum(axis=0) >= prefix_need).all())
    if not holds(candidates[hi]):
        return hi
    while hi > lo:
        mid = (lo + hi) // 2
        if holds(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi


def release_relaxation(capacity, sizes) -> bool:
    """Whether the LP relaxation of (H) may hold: False proves that no release layers satisfy
    (H) (module docstring, 2). Each device k takes a fraction x_kj of its option "j blocks from
    layer rho_k(j) on" (rho_k(j) the first layer with J_k >= j; an option with the same layer
    as a longer one is left out), sum_j x_kj <= 1, and the LP maximises the least surplus t of
    the prefixes: sum_{rho_k(j) < l} j x_kj - t >= P_l. The proof does not rest on the LP
    solver's tolerances: for any duals y the Lagrangian value bounds t* from above (weak
    duality, t boxed in [-N, N]), and (H) fails when that bound is below 0.

    >>> release_relaxation(np.array([[2, 2], [1, 2]]), np.array([2, 2]))
    True
    >>> release_relaxation(np.array([[1, 1], [0, 1]]), np.array([2, 2]))
    False
    """
    import highspy
    from scipy.sparse import coo_matrix

    from .highs import OPTIONS, quiet

    capacity = np.asarray(capacity, dtype=np.int64)
    n_devices, n_layers = capacity.shape
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(float)
    n_blocks = float(starts[-1])
    most = int(capacity.max(initial=0))
    if most == 0:
        return False
    count = np.arange(1, most + 1)
    reaches = capacity[:, :, None] >= count[None, None, :]  # (K, L, J)
    release = np.where(reaches.any(axis=1), np.argmax(reaches, axis=1), n_layers)  # (K, J)
    longer = np.concatenate([release[:, 1:], np.full((n_devices, 1), n_layers + 1)], axis=1)
    device, length = np.nonzero((release < n_layers) & (release < longer))
    layer = release[device, length]
    length = length + 1
    n_x = device.size
    if n_x == 0:
        return False
    # rows: K device rows (<= 1), L prefix rows (>= P_l); columns: x, then t
    prefix = np.arange(1, n_layers + 1)
    counts = (layer[None, :] < prefix[:, None])  # (L, n_x)
    rows_p, cols_p = np.nonzero(counts)
    rows = np.concatenate([device, n_devices + rows_p, n_devices + np.arange(n_layers)])
    cols = np.concatenate([np.arange(n_x), cols_p, np.full(n_layers, n_x)])
    values = np.concatenate([np.ones(n_x), length[cols_p].astype(float), -np.ones(n_layers)])
    matrix = coo_matrix((values, (rows, cols)), shape=(n_devices + n_layers, n_x + 1)).tocsc()
    infinity = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_x + 1, n_devices + n_layers
    cost = np.concatenate([np.zeros(n_x), [-1.0]])  # minimise -t
    lower = np.concatenate([np.zeros(n_x), [-n_blocks]])
    upper = np.concatenate([np.ones(n_x), [n_blocks]])
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_ = np.concatenate([np.full(n_devices, -infinity), starts[1:]])
    lp.row_upper_ = np.concatenate([np.ones(n_devices), np.full(n_layers, infinity)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    with quiet():  # HiGHS's banner never reaches standard output
        solver = highspy.Highs()
        for option, value in OPTIONS.items():  # never "threads": see solvers/highs.py
            solver.setOptionValue(option, value)
        solver.passModel(lp)
        solver.run()
    if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return True  # no proof
    dual = np.asarray(solver.getSolution().row_dual)
    dual[:n_devices] = np.minimum(dual[:n_devices], 0.0)  # rows <= 1
    dual[n_devices:] = np.maximum(dual[n_devices:], 0.0)  # rows >= P_l
    reduced = cost - matrix.T @ dual
    bound = float(dual[:n_devices].sum() + dual[n_devices:] @ starts[1:]
                  + np.minimum(reduced * lower, reduced * upper).sum())  # <= min(-t) = -t*
    return not bound > 1e-9


# ---------------------------------------------------------------------------------------------
# P2: the tiling LP


class TilingLP:
    """The tiling LP of the module docstring (4) over fixed columns, built once; each solve sets
    the columns' costs (the least bandwidths w_k(l, j, T) / B, +inf for a run that cannot meet
    T) and starts from the previous basis.

    Columns: x_klj for the (device, layer, length) triples allowed by cap and memory, then
    f_rj for the runs (r, j) with r + j <= N. Rows: the N flow rows, the L J slot rows, the K
    device rows.
    """

    def __init__(self, tables: Layers, n_devices: int):
        from scipy.sparse import coo_matrix

        n_blocks, n_layers = int(tables.starts[-1]), tables.n_layers
        most = tables.flops.shape[1]
        reach = n_blocks - tables.starts[:-1]  # the longest run from layer l's first position
        usable = tables.allowed & (np.arange(1, most + 1)[None, None, :] <= reach[None, :, None])
        self.device, self.layer, self.length = np.nonzero(usable)
        self.length = self.length + 1
        run_start, run_length = np.nonzero(np.arange(n_blocks)[:, None]
                                           + np.arange(1, most + 1)[None, :] <= n_blocks)
        self.run_start, self.run_length = run_start, run_length + 1
        n_x, n_f = self.device.size, run_start.size
        self.n_x, self.n_f = n_x, n_f
        self.n_blocks, self.layer_of, self.most = n_blocks, tables.layer_of, most
        f_column = n_x + np.arange(n_f)
        end = run_start + self.run_length
        inner = end < n_blocks
        slot_of_run = n_blocks + tables.layer_of[run_start] * most + self.run_length - 1
        slot_of_x = n_blocks + self.layer * most + self.length - 1
        rows = np.concatenate([run_start, end[inner], slot_of_run, slot_of_x,
                               n_blocks + n_layers * most + self.device])
        columns = np.concatenate([f_column, f_column[inner], f_column, np.arange(n_x),
                                  np.arange(n_x)])
        values = np.concatenate([np.ones(n_f), -np.ones(int(inner.sum())), np.ones(n_f),
                                 -np.ones(n_x), np.ones(n_x)])
        n_rows = n_blocks + n_layers * most + n_devices
        self.matrix = coo_matrix((values, (rows, columns)), shape=(n_rows, n_x + n_f)).tocsc()
        self.row_lower = np.concatenate([[1.0], np.zeros(n_blocks - 1),
                                         np.zeros(n_layers * most), np.full(n_devices, -np.inf)])
        self.row_upper = np.concatenate([[1.0], np.zeros(n_blocks - 1),
                                         np.zeros(n_layers * most), np.ones(n_devices)])
        self.n_devices = n_devices
        self._solver = None
        self._last = None  # (dual bound, reduced costs) of the last LP solve

    def _model(self, x_cost, x_upper, integral: bool):
        """The HiGHS model (highspy copies the arrays: they are set whole, never in place)."""
        import highspy

        n_columns = self.n_x + self.n_f
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_columns, self.matrix.shape[0]
        lp.col_cost_ = np.concatenate([x_cost, np.zeros(self.n_f)])
        lp.col_lower_ = np.zeros(n_columns)
        lp.col_upper_ = np.concatenate([x_upper, np.ones(self.n_f)])
        infinity = highspy.kHighsInf
        lp.row_lower_ = np.where(np.isfinite(self.row_lower), self.row_lower, -infinity)
        lp.row_upper_ = np.where(np.isfinite(self.row_upper), self.row_upper, infinity)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = self.matrix.indptr
        lp.a_matrix_.index_ = self.matrix.indices
        lp.a_matrix_.value_ = self.matrix.data
        if integral:
            lp.integrality_ = ([highspy.HighsVarType.kContinuous] * self.n_x
                               + [highspy.HighsVarType.kInteger] * self.n_f)
        return lp

    @staticmethod
    def _new_solver(deadline):
        import highspy

        from .highs import OPTIONS, quiet

        with quiet():  # HiGHS's banner never reaches standard output
            solver = highspy.Highs()
        for option, value in OPTIONS.items():  # never "threads": see solvers/highs.py
            solver.setOptionValue(option, value)
        solver.setOptionValue("primal_feasibility_tolerance", LP_TOLERANCE)
        solver.setOptionValue("dual_feasibility_tolerance", LP_TOLERANCE)
        if deadline is not None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError
            solver.setOptionValue("time_limit", float(left))
        return solver

    def _costs(self, cost):
        """(costs, upper bounds) of the x columns: a run that cannot meet T is fixed at 0."""
        usable = np.isfinite(cost)
        return np.where(usable, cost, 0.0), usable.astype(float)

    def solve(self, cost, deadline=None):
        """The LP with the x columns' ``cost`` (+inf: unusable). Returns (bound, value, runs,
        x): a proven lower bound on the least total cost of an allocation (+inf when none
        exists), the LP's value, its tiling's runs as (position, length) pairs when integral
        (else None), and the x part of its solution."""
        import highspy

        from .highs import quiet

        x_cost, x_upper = self._costs(cost)
        index = np.arange(self.n_x, dtype=np.int32)
        if self._solver is None:
            self._solver = self._new_solver(deadline)
            self._solver.setOptionValue("simplex_strategy", 4)  # primal: warm starts
            lp = self._model(x_cost, x_upper, integral=False)
            with quiet():
                self._solver.passModel(lp)
        else:
            self._solver.changeColsCost(self.n_x, index, x_cost)
            self._solver.changeColsBounds(self.n_x, index, np.zeros(self.n_x), x_upper)
            if deadline is not None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError
                self._solver.setOptionValue("time_limit", float(left))
        with quiet():
            self._solver.run()
        status = self._solver.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return np.inf, np.inf, None, None
        if status == highspy.HighsModelStatus.kTimeLimit:
            raise TimeoutError
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverFailure(f"HiGHS ended the tiling LP with status "
                                f"{self._solver.modelStatusToString(status)}")
        solution = self._solver.getSolution()
        values = np.asarray(solution.col_value)
        bound = self._dual_bound(np.asarray(solution.row_dual), x_cost, x_upper)
        value = float(x_cost @ values[:self.n_x])
        return bound, value, self._tiling(values[self.n_x:]), values[:self.n_x]

    def _dual_bound(self, row_dual, x_cost, x_upper):
        """y . rhs + sum_j min(0, c_j - y A_j) u_j: a lower bound on the LP's optimum for any
        duals y (weak duality), the device rows' duals clipped to <= 0 (their rows are <= 1).
        Keeps the reduced costs c_j - y A_j for :meth:`solve_integral`."""
        dual = row_dual.copy()
        device_rows = slice(self.matrix.shape[0] - self.n_devices, None)
        dual[device_rows] = np.minimum(dual[device_rows], 0.0)
        cost = np.concatenate([x_cost, np.zeros(self.n_f)])
        upper = np.concatenate([x_upper, np.ones(self.n_f)])
        reduced = cost - self.matrix.T @ dual
        rhs = np.where(np.isfinite(self.row_lower), self.row_lower, self.row_upper)
        bound = float(dual @ rhs + np.minimum(reduced, 0.0) @ upper)
        self._last = (bound, reduced)
        return bound

    def _tiling(self, flow):
        """The runs (position, length) of an integral tiling, else None."""
        if np.abs(flow - np.round(flow)).max(initial=0.0) > 1e-6:
            return None
        chosen = np.flatnonzero(flow > 0.5)
        runs = sorted(zip(self.run_start[chosen].tolist(), self.run_length[chosen].tolist()))
        covered = 0
        for start, take in runs:
            if start != covered:
                return None
            covered += take
        return runs if covered == self.n_blocks else None

    def solve_integral(self, cost, deadline=None, cutoff=1.0 + LP_TOLERANCE):
        """The MILP with the tiling integral (the rest is then a transportation problem, whose
        optimum for an integral tiling is integral): its runs of least cost among those costing
        at most ``cutoff``, or None when none does; TimeoutError at the deadline.

        Called right after :meth:`solve` with the same costs, it first fixes every column whose
        reduced cost alone would lift the LP's bound past ``cutoff``: for an allocation x (0/1,
        which loses nothing) and the duals y of that solve, cost(x) = bound + sum_j d_j x_j -
        sum_j min(0, d_j) u_j, every term of the sums non-negative, so a column with d_j >
        cutoff - bound is 0 and one with d_j < -(cutoff - bound) at its upper bound in every
        allocation that costs at most ``cutoff``."""
        import highspy

        from .highs import quiet

        x_cost, x_upper = self._costs(cost)
        lp = self._model(x_cost, x_upper, integral=True)
        if self._last is not None:
            bound, reduced = self._last
            slack = cutoff - bound
            upper = np.concatenate([x_upper, np.ones(self.n_f)])
            lower = np.zeros(upper.size)
            upper = np.where(reduced > slack, 0.0, upper)
            lower = np.where(reduced < -slack, upper, lower)
            lp.col_upper_, lp.col_lower_ = upper, lower
        solver = self._new_solver(deadline)
        solver.setOptionValue("mip_rel_gap", 0.0)
        solver.setOptionValue("mip_feasibility_tolerance", LP_TOLERANCE)
        solver.setOptionValue("objective_bound", float(cutoff))
        with quiet():
            solver.passModel(lp)
            solver.run()
        status = solver.getModelStatus()
        if status in (highspy.HighsModelStatus.kInfeasible,
                      highspy.HighsModelStatus.kObjectiveBound):
            return None
        if status == highspy.HighsModelStatus.kTimeLimit:
            raise TimeoutError
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverFailure(f"HiGHS ended the tiling MILP with status "
                                f"{solver.modelStatusToString(status)}")
        runs = self._tiling(np.round(np.asarray(solver.getSolution().col_value)[self.n_x:]))
        if runs is None:
            raise SolverFailure("HiGHS returned a tiling MILP solution that is no tiling")
        return runs

    def assign(self, runs, cost):
        """The devices of a tiling's runs at least total cost (a min-cost assignment of runs
        to devices, each at most once): (device, length) runs from the deep end, or None when
        the runs cannot all get a device."""
        from scipy.optimize import linear_sum_assignment

        slot = self.layer * self.most + self.length - 1
        slot_cost = np.full((int(self.layer_of[-1] + 1) * self.most, self.n_devices), np.inf)
        slot_cost[slot, self.device] = cost
        start = np.array([r for r, _ in runs])
        take = np.array([j for _, j in runs])
        table = slot_cost[self.layer_of[start] * self.most + take - 1]
        finite = np.isfinite(table)
        if not finite.any(axis=1).all():
            return None
        big = (np.max(table[finite]) + 1.0) * (len(runs) + 1)
        rows, devices = linear_sum_assignment(np.where(finite, table, big))
        if not finite[rows, devices].all():
            return None
        chosen = dict(zip(rows.tolist(), devices.tolist()))
        return [(chosen[row], int(j)) for row, j in enumerate(take.tolist())]


def solve_layers_p2(instance: Instance, rtol=1e-9, deadline=None) -> SolverResult:
    """P2 with several blocks per device, uniform case: Dinkelbach's iteration on the tiling LP
    with an LP-dual certificate (module docstring, 4). Any number of devices, either rate
    model, energy budgets; ``deadline`` (a ``time.perf_counter()`` value) stops it with a
    proven bound.

    First Dinkelbach's iteration runs on the LP itself (a fractional solution's own latency is
    the T at which its bandwidths sum to B), which ends at the least T where the LP fits B, a
    lower bound on the optimum; then on allocations, each step the allocation of least
    bandwidth (the LP's when its tiling is integral, else the MILP's), until the certificate.
    """
    tables = layer_tables(instance)
    budget = instance.total_bandwidth_hz
    model = TilingLP(tables, instance.n_devices)
    k, layer, length = model.device, model.layer, model.length
    if k.size == 0:
        return SolverResult.infeasible(NO_SETS)
    speed = instance.device_flops_per_s[k]
    quality = {"spectral_efficiency": instance.device_spectral_efficiency[k]} \
        if instance.rate_model == "fixed" else {"snr_hz": instance.device_snr_hz[k]}
    flops, bits = tables.flops[layer, length - 1], tables.bits[length - 1]
    floor = (instance.energy_floor(flops, bits, k) if instance.has_energy_budgets
             else np.zeros(k.size))

    def cost_at(target, columns=slice(None)):
        """w_k(l, j, T) / B of the columns (+inf: the run cannot meet T within B)."""
        with np.errstate(all="ignore"):
            need = min_bandwidth(target, flops=flops[columns], flops_per_s=speed[columns],
                                 bits=bits[columns], rate_model=instance.rate_model,
                                 **{key: value[columns] for key, value in quality.items()})
        need = np.maximum(need, floor[columns]) / budget
        return np.where(need <= 1.0, need, np.inf)

    def allocation(runs, cost):
        placed = model.assign(runs, cost)
        return None if placed is None else _runs_to_assignment(instance.n_blocks, placed)

    def latency_of(assignment):
        return float(group_split(instance, assignment)[0][0])

    def fractional_latency(x, target):
        """The least T <= target at which the LP solution x needs at most B (bisection)."""
        active = np.flatnonzero(x > 0)
        weight = x[active]
        lo_t = float((flops[active] / speed[active]).max(initial=0.0))
        hi_t = target
        for _ in range(100):
            if hi_t - lo_t <= 1e-12 * hi_t:
                break
            mid = 0.5 * (lo_t + hi_t)
            if weight @ cost_at(mid, active) <= 1.0:
                hi_t = mid
            else:
                lo_t = mid
        return hi_t

    def exact_least(target):
        """The allocation of least bandwidth at target, or None when none fits B (proven by
        the LP's bound or the MILP)."""
        cost = cost_at(target)
        bound, _, runs, _ = model.solve(cost, deadline)
        if bound > PROVEN_ABOVE:
            return None
        if runs is None:
            runs = model.solve_integral(cost, deadline)
            if runs is None:
                return None
        return allocation(runs, cost)

    lo, best, best_latency, stopped = 0.0, None, np.inf, False
    try:
        # a first allocation: the least bandwidth at a loose target (twice the longest
        # compute time of any run), else the least energy floors (T = +inf), where none
        # proves the instance infeasible
        loose = 2 * float((flops / speed).max())
        start = exact_least(loose) if loose > 0 else None
        if start is None:
            start = exact_least(np.inf)
        if start is None:
            return SolverResult.infeasible(NO_SETS)
        best, best_latency = start, latency_of(start)
        hi = best_latency
        if not np.isfinite(hi):  # its floors fill B exactly: no finite latency
            return SolverResult.infeasible(NO_SETS)
        # Dinkelbach's iteration on the LP
        while True:
            cost = cost_at(hi)
            bound, value, runs, x = model.solve(cost, deadline)
            if bound > PROVEN_ABOVE:
                lo = max(lo, hi)
            if not value <= 1.0 + LP_TOLERANCE:
                break
            if runs is not None and (found := allocation(runs, cost)) is not None:
                step = latency_of(found)
                if step < best_latency:
                    best, best_latency = found, step
            else:
                step = fractional_latency(x, hi)
            if not step < hi * (1 - rtol):
                break
            hi = step
        # Dinkelbach's iteration on allocations from the best one, then the certificate
        while True:
            step = exact_least(best_latency)
            if step is not None and (here := latency_of(step)) < best_latency * (1 - rtol):
                best, best_latency = step, here
                continue
            # the certificate: the LP's bound above B at T (1 - g), else the MILP's word
            for gap in CERTIFICATE_GAPS:
                target = best_latency * (1 - gap)
                if model.solve(cost_at(target), deadline)[0] > PROVEN_ABOVE:
                    lo = max(lo, target)
                    break
            else:
                step = exact_least(target)
                if step is not None and (here := latency_of(step)) < best_latency:
                    best, best_latency = step, here
                    continue
                lo = max(lo, target)  # nothing fits B at target (to HiGHS's tolerance)
            break
    except TimeoutError:
        stopped = True
        if best is None:
            raise SolverFailure("the tiling LP stopped at the time limit before any allocation "
                                "was found; raise the time limit") from None
    latency, bandwidth = group_split(instance, best)
    if not np.isfinite(latency[0]):
        return SolverResult.infeasible(NO_SETS)
    status = Status.FEASIBLE if stopped else Status.OPTIMAL
    message = ("stopped at the time limit; lower_bound_s is proven" if stopped else
               "several blocks per device: tiling LP over layers of equal blocks (Dinkelbach)")
    return allocation_result(instance, best, bandwidth[0], status,
                             lower_bound_s=min(lo, latency[0]), message=message)
