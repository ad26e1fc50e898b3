"""The server side of a DEFT run: LoLa's allocation as Flower's round strategy.

Each round r = 1..R on a Flower :class:`~flwr.serverapp.Grid`:

1. **Query.** Every node gets a ``query`` message; its reply carries the device's properties (the
   device keys of section 5) and the fingerprint of its frozen weights, which must be the
   server's.
2. **Allocate.** The round's scenario is the scenario file's channel and server, the devices as
   they reported themselves, and the blocks of the run's model as measured on this host
   (:mod:`lola.flower.host`). ``lola.solve(scenario, problem, method)`` allocates it; the
   allocation's blocks must be a partition of all blocks (every block trained by exactly one
   device), which the server checks before sending anything.
3. **Train.** Each device with a non-empty block set A_k gets a ``train`` message with the global
   adapters and the names of its blocks; it replies with the adapters of exactly A_k, its loss
   and the wall-clock time of its step. Any error reply, missing reply, or reply with other
   adapters fails the run, naming the device (:class:`ClientFailure`).
4. **Aggregate.** Each block's adapters are written into the global adapters (every block has one
   writer, so the write is the aggregation), and the global adapters are evaluated on the
   held-out split.

Per client and round the report holds the measured step time, the cost model's prediction at the
host's throughput C(A_k) / f_host, their ratio and the bytes uploaded (section 15).
"""
from __future__ import annotations

import math
import re
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..scenario import ScenarioError, load_scenario
from .data import device_seed
from .prepare import Prepared, prepare
from .settings import DEVICE_KEYS, RunSettings

__all__ = ["DeftServer", "DeftReport", "ClientFailure", "RunFailure", "summarise_ratios"]


class RunFailure(RuntimeError):
    """The run could not go on (an infeasible round, a broken invariant); exit code 1."""


class ClientFailure(RunFailure):
    """A device's ClientApp failed (an error reply, no reply, or a wrong reply)."""

    def __init__(self, device: str, round_number: int, reason: str):
        self.device, self.round, self.reason = device, round_number, reason
        super().__init__(f"device {device!r} failed in round {round_number}: {reason}")


_REASON = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>:<'(.*)'>$", re.DOTALL)


def _error_text(error) -> str:
    """Flower's error reason, ``<class 'ZeroDivisionError'>:<'division by zero'>``, as
    ``ZeroDivisionError: division by zero`` on one line."""
    reason = str(getattr(error, "reason", "") or "")
    match = _REASON.match(reason.strip())
    if match:
        name, text = match.groups()
        # Flower's simulation engine wraps the client's exception in a ClientAppException whose
        # message carries the original one.
        inner = re.search(r"Message: (.*)$", text, re.DOTALL)
        if name == "ClientAppException" and inner:
            text = inner.group(1)
        reason = f"{name}: {text}" if text else name
    reason = " ".join(reason.split())
    return reason or f"error code {getattr(error, 'code', '?')}"


def summarise_ratios(ratios) -> dict:
    """Median, quartiles, extremes and count of measured / predicted."""
    values = sorted(r for r in ratios if r is not None and math.isfinite(r))
    if not values:
        return {"median": None, "q1": None, "q3": None, "min": None, "max": None, "count": 0}
    q1, q3 = np.percentile(values, [25, 75])
    return {"median": float(statistics.median(values)), "q1": float(q1), "q3": float(q3),
            "min": values[0], "max": values[-1], "count": len(values)}


@dataclass
class DeftReport:
    """The outcome of a run; :meth:`to_dict` is the JSON object of section 15."""

    scenario: str
    problem: str
    method: str
    rounds: int
    seed: int
    model: str
    per_round: list
    host: dict
    initial_eval: dict
    settings: dict = field(default_factory=dict)

    @property
    def ratios(self) -> list:
        return [client["compute_ratio"] for row in self.per_round for client in row["clients"]]

    def ratio_summary(self, blocks: int | None = None) -> dict:
        """measured / predicted over every client and round (of clients with ``blocks``
        blocks, when given)."""
        return summarise_ratios([client["compute_ratio"] for row in self.per_round
                                 for client in row["clients"]
                                 if blocks is None or len(client["blocks"]) == blocks])

    def to_dict(self) -> dict:
        summary = self.ratio_summary()
        sizes = sorted({len(c["blocks"]) for row in self.per_round for c in row["clients"]})
        return {"scenario": self.scenario, "method": self.method, "rounds": self.rounds,
                "seed": self.seed, "model": self.model, "problem": self.problem,
                "per_round": self.per_round,
                "host_flops_per_s": self.host["host_flops_per_s"],
                "compute_ratio_median": summary["median"],
                "compute_ratio_spread": {key: summary[key] for key in
                                         ("q1", "q3", "min", "max", "count")},
                "compute_ratio_by_block_count": {str(size): self.ratio_summary(size)
                                                 for size in sizes},
                "initial_eval_loss": self.initial_eval["loss"],
                "initial_eval_accuracy": self.initial_eval["accuracy"],
                "host_profile": self.host, "settings": self.settings}


class DeftServer:
    """Runs the rounds of :mod:`this module <lola.flower.server>` on a Flower Grid."""

    def __init__(self, settings: RunSettings, *, progress=None, host=None):
        self.prepared: Prepared = prepare(settings)
        self.settings = self.prepared.settings
        self.progress = progress
        self._host = host

    # -- Flower messages ----------------------------------------------------------------------
    def _exchange(self, grid, messages: dict, round_number: int) -> dict:
        """Send ``{device or node: message}`` and return ``{same key: reply}``; an error or a
        missing reply fails the run naming the device."""
        replies = {}
        by_id = {}
        sent = list(grid.send_and_receive(list(messages.values())))
        for key, message in messages.items():
            by_id[message.metadata.message_id] = key
        for reply in sent:
            key = by_id.get(reply.metadata.reply_to_message_id)
            if key is not None:
                replies[key] = reply
        for key in messages:
            name = self._names.get(key, f"node {key}") if isinstance(key, int) else key
            reply = replies.get(key)
            if reply is None:
                raise ClientFailure(str(name), round_number, "no reply (the node is unreachable "
                                    "or its ClientApp did not answer)")
            if reply.has_error():
                raise ClientFailure(str(name), round_number, _error_text(reply.error))
        return replies

    def _query(self, grid, nodes, round_number: int) -> dict:
        from flwr.app import ConfigRecord, Message, RecordDict

        config = {"round": round_number, "num-labels": self.prepared.spec.num_labels}
        messages = {node: Message(RecordDict({"config": ConfigRecord(config)}), node, "query",
                                  group_id=f"query-{round_number}")
                    for node in nodes}
        replies = self._exchange(grid, messages, round_number)
        devices, self._nodes = {}, {}  # a device may come back as another node next round
        for node, reply in replies.items():
            record = reply.content.config_records.get("properties")
            if record is None:
                raise ClientFailure(f"node {node}", round_number,
                                    "its query reply carries no properties")
            properties = {key: record[key] for key in DEVICE_KEYS if key in record}
            name = str(properties.get("name", f"node {node}"))
            if "name" not in properties:
                raise ClientFailure(name, round_number, "its properties carry no name")
            if record.get("fingerprint") != self.fingerprint:
                raise ClientFailure(name, round_number, "its frozen weights differ from the "
                                    "server's (fingerprint "
                                    f"{record.get('fingerprint')} != {self.fingerprint}): "
                                    "every process of a run needs the same model, seed and "
                                    "library versions, or the same --weights")
            if name in self._nodes:
                raise RunFailure(f"round {round_number}: two nodes report the device name "
                                 f"{name!r}")
            order = record.get("partition-id", math.inf)
            devices[node] = (order, name, properties)
            self._names[node] = name
            self._nodes[name] = node
        return devices

    def _wait_for_nodes(self, grid, round_number: int) -> list:
        """The nodes connected now, once there are ``min_nodes`` of them (SuperNodes of a
        deployment connect in their own time; a round takes the devices present)."""
        deadline = time.monotonic() + self.settings.node_wait_s
        while True:
            nodes = sorted(grid.get_node_ids())
            if len(nodes) >= self.settings.min_nodes:
                return nodes
            if time.monotonic() > deadline:
                raise RunFailure(f"round {round_number}: {len(nodes)} Flower node(s) connected "
                                 f"after {self.settings.node_wait_s:g} s, fewer than min-nodes "
                                 f"{self.settings.min_nodes}: start one SuperNode per device")
            time.sleep(0.5)

    # -- the scenario of a round --------------------------------------------------------------
    def round_scenario(self, devices, round_number: int):
        template = self.prepared.scenario
        ordered = [properties for _, _, properties in sorted(
            devices.values(), key=lambda item: (item[0], item[1]))]
        model = {"blocks": self.host.scenario_blocks(),
                 "bits_per_param": template.model.bits_per_param}
        if template.model.batch_bytes is not None:
            model["batch_bytes"] = template.model.batch_bytes
        channel = template.channel
        document = {"name": f"{template.name}", "model": model, "devices": ordered,
                    "channel": {"total_bandwidth_hz": channel.total_bandwidth_hz,
                                "rate_model": channel.rate_model,
                                "noise_psd_w_per_hz": channel.noise_psd_w_per_hz}}
        if template.server is not None:
            document["server"] = {"flops_per_s": template.server.flops_per_s}
        try:
            return load_scenario(document)
        except ScenarioError as err:
            err.source = f"round {round_number}: the devices' reported properties"
            raise

    def _solve(self, scenario):
        from .. import api

        options = {}
        if self.settings.max_blocks is not None:
            options["max_blocks"] = self.settings.max_blocks
        return api.solve(scenario, problem=self.settings.problem, method=self.settings.method,
                         seed=self.settings.seed, **options)

    def _check_partition(self, plan: dict, round_number: int) -> None:
        assigned = [block for blocks in plan.values() for block in blocks]
        everything = self.host.names
        if sorted(assigned) != sorted(everything):
            missing = sorted(set(everything) - set(assigned))
            twice = sorted({b for b in assigned if assigned.count(b) > 1})
            raise RunFailure(f"round {round_number}: the allocation of {self.settings.method} is "
                             f"not a partition of the blocks (missing {missing}, more than once "
                             f"{twice})")

    # -- the run ------------------------------------------------------------------------------
    def run(self, grid) -> DeftReport:
        import torch
        from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

        from .host import load_host_profile, measure_host
        from .training import get_model

        settings, prepared = self.settings, self.prepared
        torch.set_num_threads(settings.threads)
        model = get_model(prepared.spec)
        self.fingerprint = model.fingerprint()
        if self._host is not None:
            self.host = self._host
        elif settings.host_profile:
            self.host = load_host_profile(settings.host_profile, prepared.spec)
        else:
            self.host = measure_host(prepared.spec, repetitions=settings.profile_repetitions,
                                     threads=settings.threads,
                                     progress=self.progress is not None and sys.stderr.isatty())
        if self.host.names != model.block_names:
            raise RunFailure(f"the host profile's blocks {self.host.names} are not the model's "
                             f"{model.block_names}")
        torch.set_num_threads(settings.threads)  # the profiler may have changed it
        self._names, self._nodes = {}, {}
        global_adapters = dict(model.initial_adapters)
        model.load_adapters(global_adapters)
        initial = model.evaluate(prepared.held_out)
        per_round = []
        for round_number in range(1, settings.rounds + 1):
            devices = self._query(grid, self._wait_for_nodes(grid, round_number), round_number)
            scenario = self.round_scenario(devices, round_number)
            result = self._solve(scenario)
            if result.round_latency_s is None:
                raise RunFailure(f"round {round_number}: {settings.method} found no allocation: "
                                 f"{result.message}")
            plan = {device.name: list(device.blocks) for device in result.devices
                    if device.blocks}
            self._check_partition(plan, round_number)
            record = ArrayRecord({key: Array(value) for key, value in global_adapters.items()})
            messages = {}
            for name, blocks in plan.items():
                config = ConfigRecord({"round": round_number, "blocks": blocks,
                                       "lr": float(settings.lr),
                                       "local-steps": settings.local_steps,
                                       "seed": device_seed(settings.seed, "step", name,
                                                           round_number),
                                       "audit": bool(settings.audit),
                                       "num-labels": prepared.spec.num_labels})
                messages[name] = Message(RecordDict({"adapters": record, "config": config}),
                                         self._nodes[name], "train",
                                         group_id=f"train-{round_number}")
            replies = self._exchange(grid, messages, round_number)
            clients, losses = [], []
            for name, blocks in plan.items():
                clients.append(self._absorb(name, blocks, replies[name], model,
                                            global_adapters, round_number))
                losses.append((clients[-1]["train_loss"], clients[-1]["examples"]))
            model.load_adapters(global_adapters)
            evaluation = model.evaluate(prepared.held_out)
            weight = sum(n for _, n in losses)
            per_round.append({
                "round": round_number, "status": result.status,
                "predicted_round_latency_s": result.round_latency_s,
                "train_loss": sum(loss * n for loss, n in losses) / weight,
                "eval_loss": evaluation["loss"], "eval_accuracy": evaluation["accuracy"],
                "solve_time_s": result.solve_time_s, "clients": clients})
            if self.progress is not None:
                self.progress(round_number, settings.rounds, per_round[-1])
        scenario_name = prepared.scenario.name
        return DeftReport(scenario=scenario_name, problem=settings.problem,
                          method=settings.method, rounds=settings.rounds, seed=settings.seed,
                          model=settings.model, per_round=per_round, host=self.host.summary(),
                          initial_eval=initial,
                          settings={key: value for key, value in
                                    settings.to_user_config().items()})

    def _absorb(self, name, blocks, reply, model, global_adapters, round_number) -> dict:
        """Check one train reply, write its blocks into the global adapters, report it."""
        content = reply.content
        arrays = content.array_records.get("adapters")
        metrics = content.metric_records.get("step")
        if arrays is None or metrics is None:
            raise ClientFailure(name, round_number, "its train reply lacks the adapters or the "
                                "step metrics")
        expected = set(model.keys_of(blocks))
        if set(arrays) != expected:
            extra = sorted(set(arrays) - expected)
            missing = sorted(expected - set(arrays))
            raise ClientFailure(name, round_number, f"it returned other adapters than those of "
                                f"its blocks {blocks} (extra {extra[:3]}, missing {missing[:3]})")
        if not metrics.get("frozen-unchanged", 0):
            raise RunFailure(f"round {round_number}: device {name!r} changed adapters outside "
                             f"its blocks {blocks}")
        uploaded = arrays.count_bytes()
        for key in expected:
            value = arrays[key].numpy()
            if value.shape != global_adapters[key].shape or not np.all(np.isfinite(value)):
                raise ClientFailure(name, round_number, f"adapter {key} has shape "
                                    f"{value.shape} or non-finite values")
            global_adapters[key] = value
        measured = float(metrics["measured-compute-s"])
        predicted = self.host.predicted_s(blocks)
        client = {"device": name, "blocks": list(blocks), "measured_compute_s": measured,
                  "predicted_compute_s_host": predicted,
                  "compute_ratio": measured / predicted if predicted > 0 else None,
                  "uploaded_bytes": int(uploaded),
                  "payload_bytes": int(sum(arrays[key].numpy().nbytes for key in expected)),
                  "predicted_flops": self.host.flops(blocks),
                  "train_loss": float(metrics["train-loss"]),
                  "examples": int(metrics["examples"])}
        if self.settings.local_steps > 1:
            client["step_times_s"] = [float(t) for t in metrics["step-times-s"]]
        audit = content.config_records.get("audit")
        if audit is not None:
            client["reached_layers"] = [int(v) for v in audit.get("reached-layers", [])]
            client["grad_parameters"] = [str(v) for v in audit.get("grad-parameters", [])]
        return client
