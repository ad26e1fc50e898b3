"""The traffic ledger (specification, section 12): the bytes an allocation moves on each link.

For the allocation a method returns, one round of DEFT moves, in bytes:

* **up**, from each device that trains a set A of blocks: the gradients of its blocks,
  S(A) / 8 = sum_{n in A} q D_n / 8 (q = ``model.bits_per_param``, D_n = block ``params``);
* **down**, to each device that trains: the updated adapters of every block, sum_n q D_n / 8,
  so that it starts the next round from the aggregated model (sent on each device's own link;
  ``broadcast_bytes`` is the same payload counted once, for a shared broadcast channel);
* in split mode (section 9), a device also sends the hidden state at its cut up (A_n bytes,
  block ``cut_bytes``) and receives its gradient down (A_n bytes); 0 for local devices.

The **centralized** reference moves, per round, one mini-batch (``model.batch_bytes``) up from
each of the N uploading devices and nothing down; it needs ``model.batch_bytes`` and
``server.flops_per_s`` and is null without them. Over R rounds every figure is R times the
round's (the allocation is the same every round; :mod:`lola.studies.rounds` draws fresh ones).

>>> ledger = traffic_ledger(problem="matching", method="crunch", rounds=10)
>>> ledger.per_round["uplink_bytes"] * 10 == ledger.total["uplink_bytes"]
True
>>> sorted(ledger.to_dict())
['centralized_total', 'per_round', 'ratio_to_centralized', 'total']
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

__all__ = ["traffic_ledger", "Ledger", "NoAllocation", "add_arguments", "run_command"]


class NoAllocation(ValueError):
    """The method found no allocation (the instance is infeasible): there is no traffic to count.
    ``lola ledger`` exits 1 on it, as ``lola solve`` does on an infeasible instance."""


@dataclass
class Ledger:
    """One allocation's traffic: ``per_round`` and ``total`` (R rounds) in bytes, and the same
    for ``centralized`` (None when the scenario cannot run it)."""

    scenario: str
    problem: str
    method: str
    rounds: int
    per_round: dict
    total: dict
    centralized_total: dict | None
    ratio_to_centralized: float | None
    message: str = ""

    def to_dict(self) -> dict:
        return {"per_round": self.per_round, "total": self.total,
                "centralized_total": self.centralized_total,
                "ratio_to_centralized": self.ratio_to_centralized}


def _round_traffic(result, scenario) -> dict:
    blocks = {b.name: b for b in scenario.blocks}
    adapters = sum(b.payload_bits for b in scenario.blocks) / 8
    devices = {}
    for device in result.devices:
        if not device.blocks:
            continue
        up = sum(blocks[name].payload_bits for name in device.blocks) / 8
        cut = blocks[device.blocks[0]].cut_bytes if device.mode == "split" else 0.0
        devices[device.name] = {"gradients_up": up, "cut_activations_up": cut,
                                "cut_gradients_down": cut, "adapters_down": adapters,
                                "uplink_bytes": up + cut, "downlink_bytes": adapters + cut}
    uplink = sum(d["uplink_bytes"] for d in devices.values())
    downlink = sum(d["downlink_bytes"] for d in devices.values())
    return {"devices": devices, "uplink_bytes": uplink, "downlink_bytes": downlink,
            "total_bytes": uplink + downlink, "broadcast_bytes": adapters if devices else 0.0}


def _times(traffic: dict, rounds: int) -> dict:
    scaled = {key: value * rounds for key, value in traffic.items() if key != "devices"}
    scaled["devices"] = {name: {key: value * rounds for key, value in entry.items()}
                         for name, entry in traffic["devices"].items()}
    return scaled


def _centralized_round(scenario) -> dict | None:
    from ..api import solve

    if scenario.model.batch_bytes is None or scenario.server is None:
        return None
    result = solve(scenario, problem="jbba", method="centralized")
    if result.round_latency_s is None:
        return None
    uploaders = [d.name for d in result.devices if d.bandwidth_hz > 0]
    batch = float(scenario.model.batch_bytes)
    devices = {name: {"minibatch_up": batch, "uplink_bytes": batch, "downlink_bytes": 0.0}
               for name in uploaders}
    uplink = batch * len(uploaders)
    return {"devices": devices, "uplink_bytes": uplink, "downlink_bytes": 0.0,
            "total_bytes": uplink}


def traffic_ledger(scenario=None, *, problem: str = "jbba", method: str | None = None,
                   rounds: int = 1, seed: int = 0, max_blocks: int = 1,
                   modes=("local",)) -> Ledger:
    """The bytes on each link for the allocation ``method`` returns, per round and over
    ``rounds`` rounds, against the ``centralized`` reference (module docstring)."""
    from ..api import default_scenario_path, solve
    from ..scenario import load_scenario

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"--rounds: must be a positive integer, got {rounds!r}")
    scenario = load_scenario(scenario if scenario is not None else str(default_scenario_path()))
    result = solve(scenario, problem=problem, method=method, seed=seed, max_blocks=max_blocks,
                   modes=modes)
    if result.round_latency_s is None:
        raise NoAllocation(f"method {result.method!r} found no allocation: {result.message}")
    if result.method == "centralized":
        raise ValueError("the ledger compares a DEFT allocation with the centralized "
                         "reference; give a DEFT method")
    per_round = _round_traffic(result, scenario)
    total = _times(per_round, rounds)
    central = _centralized_round(scenario)
    central_total = None if central is None else _times(central, rounds)
    ratio = None
    if central_total is not None and central_total["total_bytes"] > 0:
        ratio = total["total_bytes"] / central_total["total_bytes"]
    notes = [result.message] if "no pair can run split" in result.message else []
    if central is None:
        notes.append("centralized needs model.batch_bytes and server.flops_per_s; its totals "
                     "are null")
    message = "; ".join(notes)
    return Ledger(scenario.name, problem, result.method, rounds, per_round, total,
                  central_total, ratio, message)


def add_arguments(parser) -> None:
    """The options of ``lola ledger``."""
    import solvers

    from .._args import seed

    parser.add_argument("scenario", nargs="?", help="scenario file (YAML or JSON); the "
                        "bundled default when omitted")
    parser.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                        help="matching (P1) or jbba (P2)")
    parser.add_argument("--method", help="method whose allocation is counted (default: the "
                        "problem's default method)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds R to total over")
    parser.add_argument("--seed", type=seed, default=0, help="seed for randomised methods")
    parser.add_argument("--max-blocks", type=int, default=1, metavar="M",
                        help="most blocks a device trains in one round (see 'Several blocks "
                        "per device' in the documentation, docs/several-blocks.md)")
    parser.add_argument("--modes", default="local", metavar="MODES",
                        help="execution modes: local, split or local,split (see 'Split mode' "
                        "in the documentation, docs/split-mode.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _size(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.4g} {unit}"
    return f"{count:.4g} B"


def run_command(args) -> int:
    """``lola ledger``: a table, or the JSON of the contract. Returns 1 (one line on stderr,
    nothing on stdout) when the method finds no allocation: the instance is infeasible."""
    import sys

    try:
        ledger = traffic_ledger(args.scenario, problem=args.problem, method=args.method,
                                rounds=args.rounds, seed=args.seed, max_blocks=args.max_blocks,
                                modes=args.modes)
    except NoAllocation as err:
        print(f"lola ledger: nothing to count: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ledger.to_dict(), indent=2))
        return 0
    from ..report import format_table

    rows = [[name, _size(entry["uplink_bytes"]), _size(entry["downlink_bytes"])]
            for name, entry in ledger.total["devices"].items()]
    lines = [f"scenario {ledger.scenario}  problem {ledger.problem}  method {ledger.method}  "
             f"{ledger.rounds} round(s)", "",
             format_table(["device", "up", "down"], rows, "lrr"), "",
             f"total: up {_size(ledger.total['uplink_bytes'])}, down "
             f"{_size(ledger.total['downlink_bytes'])}; per round "
             f"{_size(ledger.per_round['total_bytes'])}"]
    if ledger.centralized_total is not None:
        lines.append(f"centralized: up {_size(ledger.centralized_total['uplink_bytes'])} "
                     f"(mini-batches); DEFT / centralized = {ledger.ratio_to_centralized:.4g}")
    if ledger.message:
        lines.append(ledger.message)
    print("\n".join(lines))
    return 0 if math.isfinite(ledger.total["total_bytes"]) else 1
