"""The Python API: ``solve`` and ``compare``, from a scenario to a result tied back to names.

Data flows one way: scenario -> arrays (:func:`lola.costs.to_instance`) -> a registered solver ->
a :class:`Result` whose numbers are recomputed from the assignment and the bandwidths.

Examples
--------
>>> import lola
>>> result = lola.solve(lola.default_scenario(), problem="matching", method="crunch")
>>> result.status, len(result.assignment) == len(lola.default_scenario().blocks)
('optimal', True)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

import solvers
from solvers import SolverResult, Status
from solvers.feasibility import memory_shortfall
from solvers.result import NO_ASSIGNMENT

from . import costs
from ._hints import did_you_mean
from .scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Result", "DeviceReport", "Comparison", "compare", "solve", "default_scenario",
           "default_scenario_path", "default_method", "energy_budget_sweep", "with_energy_budget",
           "SERVER", "COMPARE_TIME_LIMIT_S", "check_problem", "check_modes"]

SERVER = "server"

#: Time limit that :func:`compare` gives, unless told otherwise, to the exact methods that run an
#: outside engine (``milp``, ``scip``): their run time grows without bound with the instance.
COMPARE_TIME_LIMIT_S = 60.0


def default_scenario_path():
    """Path of the bundled default scenario (RoBERTa-base blocks, 20 heterogeneous devices)."""
    return resources.files("lola") / "data" / "default.yaml"


def default_scenario() -> Scenario:
    return load_scenario(str(default_scenario_path()))


def default_method(problem: str) -> str:
    """The default method for ``problem``: the fastest available method that proves optimality.

    That is the registry's first exact method (``crunch`` for matching, ``exact`` for jbba);
    ``dual-ascent`` stays one ``method=`` away.

    >>> default_method("jbba"), default_method("matching")
    ('exact', 'crunch')
    """
    check_problem(problem)
    return next(m.name for m in solvers.methods_for(problem) if m.exact)


def check_problem(problem) -> None:
    if problem not in solvers.PROBLEMS:
        raise solvers.SolverInputError(
            f"unknown problem {problem!r}{did_you_mean(problem, solvers.PROBLEMS)}; choose one of "
            f"{', '.join(solvers.PROBLEMS)}")


def _check_time_limit(time_limit_s) -> None:
    if time_limit_s is None:
        return
    if (isinstance(time_limit_s, bool) or not isinstance(time_limit_s, (int, float))
            or not math.isfinite(time_limit_s) or time_limit_s <= 0):
        raise solvers.SolverInputError(
            f"time limit must be a positive finite number of seconds, got {time_limit_s!r}")


def _check_seed(seed) -> None:
    """Every seed is a non-negative integer (numpy's generators take no other), as every
    ``--seed`` of the command line."""
    import numbers

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise solvers.SolverInputError(f"seed must be a non-negative integer, got {seed!r}")


def _check_options(spec, options: dict) -> None:
    """A method takes only the options its solver declares; name the ones it does take."""
    accepted = [name for name in spec.options if name not in ("seed", "time_limit_s")]
    for name in options:
        if name not in accepted:
            takes = (f"its options are {', '.join(accepted)}" if accepted
                     else "it takes no options")
            raise solvers.SolverInputError(
                f"method {spec.name!r} has no option {name!r}{did_you_mean(name, accepted)}; {takes}")


@dataclass
class DeviceReport:
    name: str
    blocks: list
    bandwidth_hz: float
    compute_s: float
    upload_s: float
    latency_s: float
    memory_bytes: float
    energy_j: float | None = None  # E_k = P^c compute_s + P^tx upload_s; None: powers unknown
    energy_budget_j: float | None = None  # the scenario's budget, for the human table
    mode: str | None = None  # "local" or "split" for a device with blocks (section 9)
    server_s: float | None = None  # split mode: F^srv / f_srv
    downlink_s: float | None = None  # split mode: 8 A / R^down

    def to_dict(self) -> dict:
        entry = {"name": self.name, "blocks": list(self.blocks),
                 "bandwidth_hz": self.bandwidth_hz, "compute_s": self.compute_s,
                 "upload_s": self.upload_s, "latency_s": self.latency_s,
                 "memory_bytes": self.memory_bytes, "energy_j": self.energy_j,
                 # every device has the same keys: null mode for an idle device, null server_s
                 # and downlink_s outside split mode
                 "mode": self.mode}
        split = self.mode == "split"
        entry["server_s"] = self.server_s if split else None
        entry["downlink_s"] = self.downlink_s if split else None
        return entry


@dataclass
class Result:
    """The answer of one method on one scenario; :meth:`to_dict` is the JSON of the spec."""

    scenario: str
    problem: str
    method: str
    status: str
    round_latency_s: float | None
    assignment: list
    devices: list
    lower_bound_s: float | None
    solve_time_s: float
    message: str = ""
    history: list = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.status != Status.INFEASIBLE.value

    @property
    def total_energy_j(self) -> float | None:
        """Sum of ``energy_j`` over the devices that train or upload something, or None when
        there is no allocation or some such device's powers are unknown."""
        busy = [d for d in self.devices if d.blocks or d.bandwidth_hz > 0]
        if not self.feasible or not busy or any(d.energy_j is None for d in busy):
            return None
        return float(sum(d.energy_j for d in busy))

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "problem": self.problem, "method": self.method,
                "status": self.status, "round_latency_s": self.round_latency_s,
                "assignment": [dict(pair) for pair in self.assignment],
                "devices": [d.to_dict() for d in self.devices],
                "lower_bound_s": self.lower_bound_s, "solve_time_s": self.solve_time_s,
                "message": self.message}

    def to_networkx(self):
        """The allocation as a bipartite graph: blocks on one side, devices on the other.

        Node keys are ``("block", name)`` and ``("device", name)``, so that a block and a
        device may share a name.

        Returns
        -------
        networkx.Graph
            One node per block of :attr:`assignment` with ``bipartite=0``, ``kind="block"``,
            ``name`` and ``depth`` (1 for the block nearest the output: the scenario's block
            order). One node per device of the scenario with ``bipartite=1``,
            ``kind="device"``, ``name``, ``n_blocks``, ``bandwidth_hz``, ``compute_s``,
            ``upload_s``, ``latency_s``, ``memory_bytes`` and, where known, ``mode``
            (``"local"`` or ``"split"``), ``server_s``, ``downlink_s`` and ``energy_j``.
            One edge per (block, device) pair of the assignment; ``centralized`` joins every
            block to one node ``("server", "server")`` with ``bipartite=1`` and
            ``kind="server"``. The graph's own attributes are ``scenario``, ``problem``,
            ``method``, ``status`` and ``round_latency_s``. An infeasible result has the
            device nodes and no block nodes or edges.

        Examples
        --------
        >>> import lola
        >>> from networkx.algorithms import bipartite
        >>> result = lola.solve(lola.default_scenario(), problem="matching", method="crunch")
        >>> graph = result.to_networkx()
        >>> blocks = [node for node, side in graph.nodes(data="bipartite") if side == 0]
        >>> len(blocks), graph.number_of_edges(), bipartite.is_bipartite(graph)
        (12, 12, True)
        >>> graph.nodes["block", "layer.11"]["depth"]
        1
        >>> [device] = graph["block", "layer.11"]
        >>> device, graph.nodes[device]["mode"]
        (('device', 'phone-05'), 'local')
        >>> max(graph.nodes[d]["latency_s"] for _, d in graph.edges(blocks)) \\
        ...     == graph.graph["round_latency_s"]
        True
        """
        import networkx as nx

        graph = nx.Graph(scenario=self.scenario, problem=self.problem, method=self.method,
                         status=self.status, round_latency_s=self.round_latency_s)
        for device in self.devices:
            known = {key: getattr(device, key) for key in ("mode", "server_s", "downlink_s",
                                                            "energy_j")
                     if getattr(device, key) is not None}
            graph.add_node(("device", device.name), bipartite=1, kind="device",
                           name=device.name, n_blocks=len(device.blocks),
                           bandwidth_hz=device.bandwidth_hz, compute_s=device.compute_s,
                           upload_s=device.upload_s, latency_s=device.latency_s,
                           memory_bytes=device.memory_bytes, **known)
        centralized = self.extras.get("uploaders") is not None  # as _result names SERVER
        for depth, pair in enumerate(self.assignment, start=1):
            block = ("block", pair["block"])
            graph.add_node(block, bipartite=0, kind="block", name=pair["block"], depth=depth)
            if centralized:
                graph.add_node(("server", SERVER), bipartite=1, kind="server", name=SERVER)
                graph.add_edge(block, ("server", SERVER))
            else:
                graph.add_edge(block, ("device", pair["device"]))
        return graph


def _finite_or_none(value):
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _explain_infeasible(scenario: Scenario, problem: str, instance=None) -> str:
    """Why no assignment exists, in words a user can act on."""
    blocks, devices = scenario.blocks, scenario.devices
    instance = instance if instance is not None else costs.to_instance(scenario)
    slots = int(instance.max_blocks().sum())
    if slots < len(blocks):
        if not instance.several_blocks:
            return (f"{len(blocks)} blocks need {len(blocks)} distinct devices but the scenario "
                    f"has {len(devices)}: add {len(blocks) - len(devices)} device(s), let devices "
                    "train several blocks (--max-blocks / max_blocks) or cut the model into "
                    "fewer blocks")
        return (f"{len(blocks)} blocks but the devices may train only {slots} in all "
                "(the sum of max_blocks): raise max_blocks, add devices or cut the model into "
                "fewer blocks")
    if instance.modes == ("split",):
        unavailable = _split_unavailable(scenario)
        if unavailable:
            return f"split mode is unavailable: {unavailable}"
        able = int(instance.split_allowed().any(axis=1).sum())
        if able < len(blocks):
            return (f"split mode only: each device trains one block, and only {able} of the "
                    f"{len(devices)} devices can run one in split mode (downlink_bps and "
                    f"split_memory_bytes <= memory_bytes) for {len(blocks)} blocks")
    if instance.modes != ("local",):
        return ("no allocation in the allowed modes (" + ",".join(instance.modes) + ") fits "
                "the devices' memory" + (", energy budgets" if instance.has_energy_budgets
                                         else "") + " and the round's bandwidth")
    if instance.several_blocks:
        return ("no allocation of the blocks to devices fits their block caps (max_blocks), "
                "memory" + (", energy budgets" if instance.has_energy_budgets else "")
                + " and the round's bandwidth: raise max_blocks or memory, add devices, or "
                "use smaller blocks")
    shortfall = memory_shortfall([b.memory_bytes for b in blocks],
                                 [d.memory_bytes for d in devices])
    if shortfall is not None:
        largest = max(d.memory_bytes for d in devices)
        block = blocks[shortfall.block_index]
        if shortfall.n_devices == 0:
            return (f"block {block.name!r} needs {block.memory_bytes:.4g} bytes of memory but the "
                    f"largest device has {largest:.4g}: no device can train it")
        return (f"memory: {shortfall.n_blocks} blocks (from {block.name!r} deeper) each need at "
                f"least {shortfall.need_bytes:.4g} bytes, but only {shortfall.n_devices} "
                f"device(s) have that much; add memory or devices, or use shallower blocks")
    if instance.has_energy_budgets:
        shallowest = blocks[int(np.argmin([b.flops for b in blocks]))]
        broke = [d.name for d in devices if d.energy_budget_j is not None
                 and d.compute_power_w * costs.compute_time_s(shallowest, d) >= d.energy_budget_j]
        hint = (f" ({', '.join(broke[:3])}{' and others' if len(broke) > 3 else ''} cannot "
                f"even compute block {shallowest.name!r} within energy_budget_j)" if broke else "")
        return ("no allocation keeps every device within its energy budget" + hint + ": raise "
                "energy_budget_j, add devices or bandwidth, or use smaller blocks")
    ceiling = instance.rate_ceiling_bps()
    if problem == "jbba" and instance.rate_model == "shannon":
        dead = [d.name for d, c in zip(devices, ceiling) if not c > 0 or not np.isfinite(
            float(np.max(instance.block_bits)) / c)]
        if dead:
            return (f"the shannon rate ceiling P g / (N0 ln 2) of {', '.join(dead[:3])} is too "
                    "low to carry a block's gradient in any finite time")
    return "no assignment of the blocks to devices has a finite round latency"


def _device_reports(scenario, instance, outcome: SolverResult) -> list:
    blocks, channel = scenario.blocks, scenario.channel
    bandwidth = (np.zeros(len(scenario.devices)) if outcome.bandwidth_hz is None
                 else outcome.bandwidth_hz)
    trained = {}
    set_flops = set_memory = set_bits = None
    if outcome.assignment is not None and outcome.extras.get("uploaders") is None:
        for block_index, device_index in enumerate(outcome.assignment):
            trained.setdefault(int(device_index), []).append(block_index)
        set_flops, set_memory, set_bits, _ = instance.group_costs(outcome.assignment)
    uploads = {}
    if outcome.extras.get("uploaders") is not None:
        uploads = dict(zip(map(int, outcome.extras["uploaders"]), outcome.extras["upload_s"]))
    reports = []
    for k, device in enumerate(scenario.devices):
        mine = trained.get(k, [])
        compute = upload = latency = memory = 0.0
        if mine:  # section 8: one step for the whole set, its costs C(A), m(A), S(A)
            compute = costs.compute_time_of(set_flops[k], device)
            upload = costs.upload_time_of(set_bits[k], device, channel, bandwidth[k])
            latency = costs.latency_of(set_flops[k], set_bits[k], device, channel, bandwidth[k])
            memory = set_memory[k]
        mode = server = downlink = None
        if mine:
            mode = "local"
            if len(mine) == 1 and instance.modes != ("local",):
                mode, parts = _pair_mode(instance, k, mine[0], bandwidth[k])
                if mode == "split":
                    compute, server, downlink, upload, latency, memory = parts
        if k in uploads:
            upload = latency = float(uploads[k])
        busy = bool(mine) or k in uploads
        energy = costs.energy_j(device, float(compute), float(upload)) if busy else None
        reports.append(DeviceReport(device.name, [blocks[n].name for n in mine],
                                    float(bandwidth[k]), float(compute), float(upload),
                                    float(latency), float(memory),
                                    energy_j=energy, energy_budget_j=device.energy_budget_j,
                                    mode=mode, server_s=server, downlink_s=downlink))
    return reports


def _split_unavailable(scenario) -> str:
    """Why no pair can use split mode, or "" when some can (section 9: a pair needs the block's
    split keys, the device's downlink_bps and server.flops_per_s)."""
    missing = []
    if not any(b.splittable for b in scenario.blocks):
        missing.append("no block has the split keys (split_device_flops, split_server_flops, "
                       "split_memory_bytes, cut_bytes)")
    if not any(d.downlink_bps is not None for d in scenario.devices):
        missing.append("no device has downlink_bps")
    if scenario.server is None:
        missing.append("the scenario has no server.flops_per_s")
    return "; ".join(missing)


def _check_max_blocks(max_blocks) -> None:
    if isinstance(max_blocks, bool) or not isinstance(max_blocks, (int, np.integer)) \
            or max_blocks < 1:
        raise solvers.SolverInputError(
            f"max_blocks must be an integer >= 1, got {max_blocks!r}")


def _pair_mode(instance, device: int, block: int, bandwidth_hz: float):
    """The mode device ``device`` trains ``block`` in at ``bandwidth_hz`` (the best allowed one,
    as the solvers chose it) and, in split mode, its parts: compute, server, downlink, upload,
    latency (the solvers' own arithmetic) and memory."""
    bandwidth = np.zeros(instance.n_devices)
    bandwidth[device] = bandwidth_hz
    _, which = instance.pair_modes(bandwidth)
    mode = instance.mode_terms()[int(which[device, block])][0]
    if mode != "split":
        return mode, None
    speed = instance.device_flops_per_s[device]
    compute = instance.split_device_flops[block] / speed
    server = instance.split_server_flops[block] / instance.server_flops_per_s
    downlink = instance.cut_bits[block] / instance.device_downlink_bps[device]
    bits = instance.cut_bits[block] + instance.block_bits[block]
    with np.errstate(divide="ignore"):
        upload = bits / instance.rate(bandwidth)[device]
    latency = compute + server + downlink + upload
    return mode, (float(compute), float(server), float(downlink), float(upload),
                  float(latency), float(instance.split_memory[block]))


MODES = ("local", "split")


def check_modes(modes) -> tuple:
    if isinstance(modes, str):
        modes = tuple(part.strip() for part in modes.split(","))
    modes = tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise solvers.SolverInputError(
            f"modes must be a non-empty selection of {', '.join(MODES)} without repeats, got "
            f"{','.join(map(str, modes)) or 'nothing'}")
    return tuple(m for m in MODES if m in modes)


def solve(scenario, problem: str = "jbba", method: str | None = None, *, seed: int = 0,
          time_limit_s: float | None = None, max_blocks: int = 1, modes=("local",),
          **options) -> Result:
    """Solve ``problem`` ("matching" or "jbba") on ``scenario`` with ``method``.

    Parameters
    ----------
    scenario : Scenario, path or mapping
        Anything :func:`lola.load_scenario` takes.
    problem : {"jbba", "matching"}
    method : str, optional
        A registered method name (``lola methods`` lists them). By default the fastest method
        that proves optimality (:func:`default_method`): ``exact`` for jbba, ``crunch`` for
        matching.
    seed : int
        Seed of every random choice the method makes; the same seed gives the same answer.
    time_limit_s : float, optional
        Wall-clock limit, for the methods that take one (``exact``, ``dual-ascent``, ``milp``,
        ``scip``; :attr:`solvers.Method.takes_time_limit`). When it is reached the result is
        ``feasible`` with the best proven lower bound, or :class:`solvers.SolverFailure` when no
        allocation was found in time.
    max_blocks : int
        c_k, the most blocks a device trains in one round (section 8), for every device whose
        scenario entry does not set ``max_blocks`` itself. With every c_k = 1 (the default) the
        problem is the one-block-per-device one; otherwise only the methods with the
        several-blocks capability (:attr:`solvers.Method.several_blocks`) accept it.
    modes : tuple of {"local", "split"} or a comma-separated string
        The execution modes of section 9 the method may choose for each device (default
        local only). Split mode needs the blocks' split keys, the devices' ``downlink_bps`` and
        ``server.flops_per_s``; a method that cannot choose modes refuses it, naming those that
        can.
    **options
        Method-specific options (e.g. ``repair=False`` or ``max_iterations`` for
        ``dual-ascent``); an option the method does not take is an error naming those it does.

    Raises
    ------
    ScenarioError
        The scenario is invalid, or lacks a key the method needs.
    solvers.SolverInputError
        A ``ValueError``: an unknown problem, method or option, a bad time limit, or a method
        that does not apply (wrong problem, instance too large to enumerate, energy budgets
        for a method without the ``energy`` capability, ...).
    solvers.SolverFailure
        The method produced no trustworthy answer (e.g. a MILP time limit with no incumbent).
    """
    check_problem(problem)
    _check_time_limit(time_limit_s)
    _check_seed(seed)
    _check_max_blocks(max_blocks)
    modes = check_modes(modes)
    method = method or default_method(problem)
    spec = solvers.get_method(method, problem)
    _check_options(spec, options)
    if time_limit_s is not None and not spec.takes_time_limit:
        takers = [m.name for m in solvers.methods_for(problem) if m.takes_time_limit]
        raise solvers.SolverInputError(
            f"method {method!r} takes no time limit; methods for {problem} that do: "
            f"{', '.join(takers)}")
    if spec.takes_seed:
        options["seed"] = seed
    if time_limit_s is not None:
        options["time_limit_s"] = float(time_limit_s)
    scenario = load_scenario(scenario)
    if method == "centralized":
        for key, present in (("server.flops_per_s", scenario.server is not None),
                             ("model.batch_bytes", scenario.model.batch_bytes is not None)):
            if not present:
                raise ScenarioError("missing; the centralized reference needs it", key=key,
                                    source=scenario.source)
    instance = costs.to_instance(scenario, max_blocks=int(max_blocks), modes=modes)
    if "local" in modes and "split" in modes and not instance.has_split:
        # no pair can split (the keys are missing): the local problem, said in the result
        from dataclasses import replace

        instance = replace(instance, modes=("local",))
    solvers.check_capabilities(spec, problem, instance)
    spec.load()
    started = time.perf_counter()
    # Overflow to inf and 0 * inf are handled explicitly (an infinite latency is an infeasible
    # pair); numpy's warnings about them would only clutter a user's terminal.
    with np.errstate(all="ignore"):
        outcome = spec.solver_for(problem, instance)(instance, **options)
    solve_time_s = time.perf_counter() - started
    with np.errstate(all="ignore"):
        return _result(scenario, problem, method, instance, outcome, solve_time_s, modes)


def _result(scenario, problem, method, instance, outcome, solve_time_s,
            modes=("local",)) -> Result:
    message = outcome.message
    if "split" in modes and outcome.status is not Status.INFEASIBLE:
        unavailable = _split_unavailable(scenario)
        if unavailable:  # said, so that a local-only answer is not taken for a split one
            message = "; ".join(filter(None, [message, f"no pair can run split: {unavailable}"]))
    if outcome.status is Status.INFEASIBLE:
        message = _explain_infeasible(scenario, problem, instance)
        if instance.has_energy_budgets and outcome.message not in ("", NO_ASSIGNMENT):
            message = outcome.message  # the method's own reason (centralized's uploaders)
        assignment, latency = [], None
    elif outcome.extras.get("uploaders") is not None:
        assignment = [{"block": b.name, "device": SERVER} for b in scenario.blocks]
        latency = outcome.round_latency_s
    else:
        assignment = [{"block": b.name, "device": scenario.devices[int(k)].name}
                      for b, k in zip(scenario.blocks, outcome.assignment)]
        latency = outcome.round_latency_s
    return Result(scenario=scenario.name, problem=problem, method=method,
                  status=outcome.status.value, round_latency_s=_finite_or_none(latency),
                  assignment=assignment, devices=_device_reports(scenario, instance, outcome),
                  lower_bound_s=_finite_or_none(outcome.lower_bound_s),
                  solve_time_s=solve_time_s, message=message,
                  history=list(outcome.extras.get("history", [])), extras=outcome.extras)


@dataclass
class Comparison:
    """Every applicable method on one scenario: results, skipped methods, and the summary."""

    scenario: str
    problem: str
    results: list
    skipped: list  # (method, reason)
    time_limits: dict = field(default_factory=dict)  # method -> the limit it ran under

    @property
    def best_lower_bound_s(self):
        bounds = [r.lower_bound_s for r in self.results if r.lower_bound_s is not None]
        return max(bounds) if bounds else None

    @property
    def baselines(self) -> list:
        roles = {m.name: m.role for m in solvers.METHODS.values()}
        return [r for r in self.results if roles[r.method] in ("baseline", "reference")
                and r.round_latency_s is not None]

    def gap_to_bound(self, result):
        """(latency - best proven lower bound) / best proven lower bound."""
        bound = self.best_lower_bound_s
        if (result.round_latency_s is None or not bound
                or solvers.METHODS[result.method].role == "reference"):  # not the same problem
            return None
        return result.round_latency_s / bound - 1.0

    def reductions(self, result) -> dict:
        """1 - latency / baseline latency, for every baseline that produced an allocation."""
        if result.round_latency_s is None:
            return {}
        return {b.method: 1.0 - result.round_latency_s / b.round_latency_s
                for b in self.baselines if b is not result}

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.results if r.method != "centralized"}
        return "infeasible" if statuses == {"infeasible"} else "solved"

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "problem": self.problem,
                "best_lower_bound_s": self.best_lower_bound_s,
                "results": [dict(r.to_dict(), gap_to_bound=self.gap_to_bound(r),
                                 reduction_vs=self.reductions(r),
                                 total_energy_j=r.total_energy_j,
                                 time_limit_s=self.time_limits.get(r.method))
                            for r in self.results],
                "skipped": [{"method": m, "reason": why} for m, why in self.skipped]}


def compare(scenario, problem: str = "jbba", methods=None, *, seed: int = 0,
            time_limit_s: float | None = None, progress=None,
            max_blocks: int = 1, modes=("local",)) -> Comparison:
    """Run every applicable method (or ``methods``) on ``scenario``.

    Methods that refuse the instance (``brute`` on a large one, ``centralized`` without a
    server) are listed in ``skipped`` with the reason instead of failing the comparison.

    ``time_limit_s`` applies to every method that takes a time limit. Without it, the exact
    methods that run an outside engine (``milp``, ``scip``) get :data:`COMPARE_TIME_LIMIT_S`
    each, so that a comparison always ends; one that hits it reports ``feasible`` with its
    engine's bound. ``Comparison.time_limits`` records the limit each method ran under.
    Each result of ``Comparison.to_dict()`` carries ``total_energy_j``, the round's energy
    summed over the devices that train or upload (:attr:`Result.total_energy_j`; null when some
    such device's powers are unknown), shown as the table's ``energy J`` column.
    ``progress(method, time_limit_s)``, if given, is called before each method runs.
    ``max_blocks`` is passed to :func:`solve`; methods that train one block per device are
    then skipped with the reason.
    """
    check_problem(problem)
    _check_time_limit(time_limit_s)
    _check_seed(seed)
    _check_max_blocks(max_blocks)
    modes = check_modes(modes)
    scenario = load_scenario(scenario)
    names = methods or [m.name for m in solvers.methods_for(problem)]
    results, skipped, limits = [], [], {}
    for name in names:
        spec = solvers.METHODS.get(name)
        limit = None
        if spec is not None and spec.takes_time_limit:
            limit = time_limit_s if time_limit_s is not None else (
                COMPARE_TIME_LIMIT_S if spec.requires else None)
        if progress is not None:
            progress(name, limit)
        try:
            results.append(solve(scenario, problem, name, seed=seed, time_limit_s=limit,
                                 max_blocks=max_blocks, modes=modes))
            limits[name] = limit
        except (solvers.SolverInputError, solvers.SolverFailure) as err:
            if methods:  # asked for by name: the caller wants to know
                raise
            skipped.append((name, str(err)))
        except ScenarioError as err:
            if methods:
                raise
            skipped.append((name, f"{err.key}: {err.reason}"))
    return Comparison(scenario.name, problem, results, skipped, limits)


def with_energy_budget(scenario, energy_budget_j: float) -> Scenario:
    """``scenario`` with every device's ``energy_budget_j`` set to ``energy_budget_j`` (J).

    Every device must carry ``compute_power_w`` and ``tx_power_w``
    (``lola.generate.generate_scenario(..., energy=True)`` writes them); otherwise a
    :class:`ScenarioError` names the first one without.
    """
    from dataclasses import replace

    scenario = load_scenario(scenario)
    for i, device in enumerate(scenario.devices):
        for power in ("compute_power_w", "tx_power_w"):
            if getattr(device, power) is None:
                raise ScenarioError("required when energy_budget_j is given",
                                    key=f"devices[{i}].{power}", source=scenario.source)
    if not (math.isfinite(energy_budget_j) and energy_budget_j > 0):
        raise ValueError(f"energy_budget_j must be a positive finite number of joules, got "
                         f"{energy_budget_j!r}")
    devices = tuple(replace(d, energy_budget_j=float(energy_budget_j)) for d in scenario.devices)
    return replace(scenario, devices=devices)


def energy_budget_sweep(scenario, budgets_j, *, problem: str = "jbba", methods=("exact",),
                        seed: int = 0) -> list:
    """The round latency of each method when every device gets the same per-round energy
    budget, for each budget in ``budgets_j`` (J).

    Returns one row per (budget, method): ``{"budget_j", "method", "round_latency_s",
    "status"}`` (``round_latency_s`` None where no allocation fits the budget), the input of
    :func:`lola.plots.plot_energy_budget`.
    """
    scenario = load_scenario(scenario)
    rows = []
    for budget in budgets_j:
        budgeted = with_energy_budget(scenario, float(budget))
        for method in methods:
            result = solve(budgeted, problem, method, seed=seed)
            rows.append({"budget_j": float(budget), "method": method,
                         "round_latency_s": result.round_latency_s, "status": result.status})
    return rows
