"""The strategies of a race: who trains which blocks each round, and what the round costs.

Every strategy is priced by LoLa's cost model on the scenario's devices (sections 2, 8 and 16 of
the specification), with the same E local steps per round:

``deft``
    The allocation of section 3/8 by the default exact method (``exact``, P2 JBBA), solved on
    the scenario whose blocks' FLOPs are E times the profile's (E steps per round). Every block
    is trained by exactly one device; the round latency is the allocation's.
``fedavg-lora``
    M participants (``clients_per_round``, default every device), drawn by the round's seed
    among the devices whose memory holds a step that trains every block (m(all blocks) <= M_k;
    a device that cannot hold it cannot take part in this strategy). Each trains every block.
``depth-hetero``
    Each of the M participants (drawn among the devices that hold at least the head's step)
    trains the top d_k blocks (depths 1..d_k). The rule for d_k follows TimelyFL (Zhang et al.,
    "TimelyFL: Heterogeneity-aware Asynchronous Federated Learning with Adaptive Partial
    Training", CVPR Workshops 2023), the deadline-driven form of the depth-heterogeneous family
    (FedAdapter, HetLoRA, LEGEND): the round's compute deadline is the least time any
    participant needs to train *every* block it can hold at the deepest depth held by anyone,
    T_c = min_k E C(top D*)/f_k over the participants holding D* (D* the deepest prefix some
    participant's memory holds); each participant then trains the deepest prefix its memory
    holds whose compute time E C(top d)/f_k is within T_c (at least the head: a device too slow
    for the head within T_c trains the head alone).
``centralized``
    Section 4's reference: the N devices with the best uplinks at the equal share B/N each
    upload E mini-batches, and the edge server runs E N steps that train every block, each of
    FLOPs C_N; the round latency is E times section 4's.

For ``fedavg-lora`` and ``depth-hetero`` the round latency is the least over bandwidth splits
(sum_k b_k <= B over the participants) of max_k [E C(A_k)/f_k + S(A_k)/r_k(b_k)], with section 8's
C(A) = C_d + sum_{n in A, n != d} delta_n and S(A) = sum_n S_n: the exact min-max split of
:func:`solvers.bandwidth.least_target` that every LoLa method uses.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import least_target, min_bandwidth

from .. import costs

__all__ = ["STRATEGIES", "Plan", "RaceCosts", "plan_round", "StrategyError", "prefix_costs",
           "best_split_latency", "scaled_scenario", "participants"]

STRATEGIES = ("deft", "fedavg-lora", "depth-hetero", "centralized")


class StrategyError(ValueError):
    """A strategy that cannot run on this scenario (the message says why)."""


@dataclass
class Plan:
    """One round of one strategy: each device's blocks (or, for ``centralized``, the devices
    whose mini-batches the server trains on) and the round's modeled latency."""

    strategy: str
    assignment: dict            # device name -> list of block names (depth order)
    round_latency_s: float
    uploaders: list = dataclasses.field(default_factory=list)  # centralized only
    status: str = "optimal"


def prefix_costs(blocks) -> dict:
    """C, m and S (bits) of the top-d prefix sets, d = 1..N (section 8), as arrays over d."""
    flops = np.array([b.flops for b in blocks], float)
    memory = np.array([b.memory_bytes for b in blocks], float)
    extra_flops = np.array([b.extra_flops for b in blocks], float)
    extra_memory = np.array([b.extra_memory_bytes for b in blocks], float)
    bits = np.array([b.payload_bits for b in blocks], float)
    above_flops = np.concatenate([[0.0], np.cumsum(extra_flops)[:-1]])
    above_memory = np.concatenate([[0.0], np.cumsum(extra_memory)[:-1]])
    return {"flops": flops + above_flops, "memory": memory + above_memory,
            "bits": np.cumsum(bits)}


def best_split_latency(scenario, devices, flops, bits) -> tuple:
    """min over b (sum b_k <= B) of max_k flops_k / f_k + bits_k / r_k(b_k), and that b.

    ``devices`` are scenario devices; ``flops`` and ``bits`` their step's FLOPs and payload.
    """
    channel = scenario.channel
    speed = np.array([d.flops_per_s for d in devices], float)
    flops, bits = np.asarray(flops, float), np.asarray(bits, float)
    fixed = channel.rate_model == "fixed"
    efficiency = np.array([d.spectral_efficiency for d in devices], float) if fixed else None
    snr = None if fixed else np.array([costs.snr_hz(d, channel) for d in devices], float)

    def need(target):
        return min_bandwidth(target[:, None], flops=flops[None, :], flops_per_s=speed[None, :],
                             bits=bits[None, :], rate_model=channel.rate_model,
                             spectral_efficiency=None if efficiency is None
                             else efficiency[None, :],
                             snr_hz=None if snr is None else snr[None, :])

    compute = float((flops / speed).max())
    share = channel.total_bandwidth_hz / len(devices)
    rate = np.array([costs.rate_bps_of(d, channel, share) for d in devices])
    with np.errstate(divide="ignore"):
        hi = float((flops / speed + bits / rate).max()) * (1 + 1e-9)
    latency, bandwidth = least_target(need, np.array([compute]), np.array([hi]),
                                      channel.total_bandwidth_hz, rtol=1e-12,
                                      max_iterations=200, doublings=60)
    return float(latency[0]), bandwidth[0]


def scaled_scenario(scenario, steps: int):
    """The scenario whose blocks' FLOPs (local, extra and split) are ``steps`` times its own:
    the cost of a round of ``steps`` local steps."""
    if steps == 1:
        return scenario

    def scale(block):
        changes = {"flops": block.flops * steps, "extra_flops": block.extra_flops * steps}
        for key in ("split_device_flops", "split_server_flops"):
            if getattr(block, key) is not None:
                changes[key] = getattr(block, key) * steps
        return dataclasses.replace(block, **changes)

    model = dataclasses.replace(scenario.model, blocks=tuple(scale(b) for b in scenario.blocks))
    return dataclasses.replace(scenario, model=model)


def participants(eligible, count, rng) -> list:
    """``count`` of the ``eligible`` device indices (all when count is None or larger), drawn
    without replacement by ``rng``, in scenario order."""
    eligible = list(eligible)
    if count is None or count >= len(eligible):
        return eligible
    return sorted(rng.choice(eligible, size=count, replace=False).tolist())


@dataclass
class RaceCosts:
    """The scenario and the options that price every strategy's rounds."""

    scenario: object
    local_steps: int = 1
    clients_per_round: int | None = None
    max_blocks: int = 1

    def __post_init__(self):
        self.blocks = list(self.scenario.blocks)
        self.names = [b.name for b in self.blocks]
        self.prefix = prefix_costs(self.blocks)
        self.devices = list(self.scenario.devices)


def _deft(costs_: RaceCosts, rng) -> Plan:
    from .. import api

    scenario = scaled_scenario(costs_.scenario, costs_.local_steps)
    result = api.solve(scenario, problem="jbba", max_blocks=costs_.max_blocks)
    if result.round_latency_s is None:
        raise StrategyError(f"deft: no allocation of the blocks on this scenario "
                            f"({result.message})")
    assignment = {d.name: list(d.blocks) for d in result.devices if d.blocks}
    return Plan("deft", assignment, float(result.round_latency_s), status=result.status)


def _prefix_round(costs_: RaceCosts, chosen, depth_of, strategy) -> Plan:
    steps = costs_.local_steps
    devices = [costs_.devices[k] for k in chosen]
    depths = np.array([depth_of[k] for k in chosen])
    flops = steps * costs_.prefix["flops"][depths - 1]
    bits = costs_.prefix["bits"][depths - 1]
    latency, _ = best_split_latency(costs_.scenario, devices, flops, bits)
    if not np.isfinite(latency):
        raise StrategyError(f"{strategy}: the participants' uploads do not fit in the total "
                            f"bandwidth at any round latency")
    assignment = {costs_.devices[k].name: costs_.names[:depth_of[k]] for k in chosen}
    return Plan(strategy, assignment, latency)


def _memory_depth(costs_: RaceCosts) -> np.ndarray:
    """The deepest prefix each device's memory holds (0: not even the head)."""
    memory = np.array([d.memory_bytes for d in costs_.devices], float)
    fits = costs_.prefix["memory"][None, :] <= memory[:, None]
    # prefix memory is non-decreasing in d for measured profiles; count the leading run anyway
    return np.where(fits.all(axis=1), fits.shape[1], np.argmin(fits, axis=1))


def _fedavg(costs_: RaceCosts, rng) -> Plan:
    n = len(costs_.names)
    eligible = np.flatnonzero(_memory_depth(costs_) >= n)
    if len(eligible) == 0:
        raise StrategyError("fedavg-lora: no device's memory holds a step that trains every "
                            f"block ({costs_.prefix['memory'][-1]:.4g} B)")
    chosen = participants(eligible, costs_.clients_per_round, rng)
    return _prefix_round(costs_, chosen, {k: n for k in chosen}, "fedavg-lora")


def _depth_hetero(costs_: RaceCosts, rng) -> Plan:
    held = _memory_depth(costs_)
    eligible = np.flatnonzero(held >= 1)
    if len(eligible) == 0:
        raise StrategyError("depth-hetero: no device's memory holds the head's step")
    chosen = participants(eligible, costs_.clients_per_round, rng)
    steps = costs_.local_steps
    speed = {k: costs_.devices[k].flops_per_s for k in chosen}
    deepest = max(held[k] for k in chosen)
    deadline = min(steps * costs_.prefix["flops"][deepest - 1] / speed[k]
                   for k in chosen if held[k] >= deepest)
    depth_of = {}
    for k in chosen:
        within = steps * costs_.prefix["flops"][:held[k]] / speed[k] <= deadline * (1 + 1e-12)
        depth_of[k] = max(1, int(np.flatnonzero(within).max()) + 1 if within.any() else 1)
    return _prefix_round(costs_, chosen, depth_of, "depth-hetero")


def _centralized(costs_: RaceCosts, rng) -> Plan:
    from .. import api

    result = api.solve(costs_.scenario, problem="jbba", method="centralized")
    if result.round_latency_s is None:
        raise StrategyError(f"centralized: {result.message}")
    uploaders = [d.name for d in result.devices if d.bandwidth_hz > 0]
    latency = costs_.local_steps * float(result.round_latency_s)
    return Plan("centralized", {}, latency, uploaders=uploaders, status=result.status)


_PLANNERS = {"deft": _deft, "fedavg-lora": _fedavg, "depth-hetero": _depth_hetero,
             "centralized": _centralized}


def plan_round(strategy: str, costs_: RaceCosts, rng) -> Plan:
    """The round of ``strategy`` on ``costs_`` (module docstring); ``rng`` draws participants."""
    try:
        planner = _PLANNERS[strategy]
    except KeyError:
        raise StrategyError(f"--strategies {strategy}: unknown strategy; choose from "
                            f"{', '.join(STRATEGIES)}") from None
    return planner(costs_, rng)
