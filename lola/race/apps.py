"""One race run in Flower: the ServerApp's rounds for any strategy, the ClientApp of a device.

Every device of the scenario is a Flower ClientApp (here on :class:`lola.flower.inprocess.
InProcessGrid`, which delivers each message as a SuperNode would, deflated to bytes and inflated
again). The ClientApp answers two message types:

* ``train``: with the global trainable parameters (ArrayRecord ``arrays``) and a ConfigRecord
  ``config`` (``round``, ``blocks``, ``client-lr``, ``optimizer``), it loads them, runs
  the local steps on mini-batches of its shard that train those blocks only, and replies with
  the parameters of its blocks (ArrayRecord ``arrays``) and a MetricRecord ``metrics``
  (``num-examples``, ``train-loss``, ``step-s``, ``frozen-unchanged``);
* ``batches`` (``centralized``): it replies with ``local-steps`` mini-batches of its shard
  (ArrayRecord ``batches``: token ids and labels) for the server to train on.

The server side (:class:`RaceServer`) plans each round with :func:`lola.race.strategies.plan_round`,
sends the messages, aggregates each block's returned parameters into that round's new value, and
applies them through the server's optimizer: the pseudo-gradient of a block is its current value
minus the aggregate, and one step of Adam (its state kept across rounds, the same optimizer and
learning rate for every strategy: FedAdam's server side, Reddi et al., ICLR 2021) gives the
block's next value; with one local step of plain SGD on the clients, the pseudo-gradient is the
client learning rate times the gradient of section 1. Then it evaluates the global model on the
dev split. Aggregation:

* ``deft``: each block's parameters are those of the one device that trained it;
* ``fedavg-lora``: Flower's own FedAvg aggregation (``aggregate_arrayrecords`` of
  :mod:`flwr.serverapp.strategy`, what ``FedAvg.aggregate_train`` computes): every parameter is
  the average of the participants', weighted by their examples;
* ``depth-hetero``: each block is averaged, weighted by examples, over the participants that
  trained it (the same FedAvg aggregation over those replies); a block nobody trained keeps its
  value;
* ``centralized``: the server trains every block on the uploaded mini-batches with its own
  optimizer, one step per mini-batch, in the uploaders' order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .data import data_seed, load_data, shard_indices

__all__ = ["RaceServer", "make_client_app", "RunOutcome", "get_race_model"]

_MODELS: dict = {}


def get_race_model(settings):
    """The process's model for this run's model, labels, batch, sequence length and seed."""
    from .glue import TASKS
    from .model import build_model

    key = (settings.model, len(TASKS[settings.task].labels), settings.batch_size,
           settings.sequence_length, settings.seed)
    model = _MODELS.get(key)
    if model is None:
        _MODELS.clear()  # one model per process at a time: a device holds one
        model = _MODELS[key] = build_model(settings.model, num_labels=key[1],
                                           batch_size=settings.batch_size,
                                           sequence_length=settings.sequence_length,
                                           seed=settings.seed)
    else:
        model.load(model.initial)
    return model


def _batches(settings, shard, device: str, round_number: int, data) -> list:
    rng = np.random.default_rng(data_seed(settings.seed, "batches", device, round_number))
    replace = len(shard) < settings.batch_size
    return [(data, rng.choice(shard, size=settings.batch_size, replace=replace))
            for _ in range(settings.local_steps)]


class _Shards:
    """Each device's shard, from the settings and the device count alone (as every process
    derives it)."""

    def __init__(self, settings, devices):
        data = load_data(settings.glue_dir, settings.task, settings.sequence_length,
                         settings.model)
        self.data = data
        self.names = [d.name for d in devices]
        self.shards = dict(zip(self.names, shard_indices(
            data.train.labels, len(devices), seed=settings.seed, alpha=settings.alpha,
            size_skew=settings.size_skew)))


def make_client_app(settings, devices):
    """The ClientApp of every device of ``devices`` (its node config names it: ``device``)."""
    import torch
    from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()
    shards = _Shards(settings, devices)

    @app.train()
    def train(message: Message, context) -> Message:
        torch.set_num_threads(settings.threads)
        device = str(context.node_config["device"])
        config = message.content.config_records["config"]
        model = get_race_model(settings)
        received = {key: array.numpy()
                    for key, array in message.content.array_records["arrays"].items()}
        model.load(received)
        blocks = [str(b) for b in config["blocks"]]
        batches = _batches(settings, shards.shards[device], device, int(config["round"]),
                           shards.data.train)
        step = model.train(blocks, batches, lr=float(config["client-lr"]),
                           optimizer=str(config["optimizer"]),
                           dropout_seed=data_seed(settings.seed, "dropout", device,
                                                  int(config["round"])) % 2**31)
        mine = model.arrays(blocks)
        unchanged = step.frozen_unchanged and all(
            np.array_equal(model.parameters[key].detach().numpy(), value)
            for key, value in received.items() if key not in mine)
        content = RecordDict({
            "arrays": ArrayRecord({key: Array(value) for key, value in mine.items()}),
            "metrics": MetricRecord({"num-examples": step.examples, "train-loss": step.loss,
                                     "step-s": step.step_s,
                                     "frozen-unchanged": int(unchanged)})})
        return Message(content, reply_to=message)

    @app.query()
    def batches(message: Message, context) -> Message:
        device = str(context.node_config["device"])
        config = message.content.config_records["config"]
        drawn = _batches(settings, shards.shards[device], device, int(config["round"]),
                         shards.data.train)
        indices = np.concatenate([i for _, i in drawn])
        train = shards.data.train
        content = RecordDict({
            "batches": ArrayRecord({
                "input_ids": Array(train.input_ids[indices].astype(np.int32)),
                "labels": Array(train.labels[indices].astype(np.int32))}),
            "metrics": MetricRecord({"num-examples": int(len(indices))})})
        return Message(content, reply_to=message)

    return app


@dataclass
class RunOutcome:
    rows: list
    test: dict | None
    initial: dict
    final_arrays: dict = field(repr=False)
    timing: dict = field(default_factory=dict)


class RunFailed(RuntimeError):
    """A device's ClientApp failed, or a reply was not what the round asked for."""


class RaceServer:
    """The rounds of one (strategy, seed) run on a Flower Grid (module docstring)."""

    def __init__(self, settings, costs, *, progress=None):
        self.settings = settings
        self.costs = costs
        self.progress = progress
        self.nodes = {}

    def _exchange(self, grid, messages: dict, round_number: int) -> dict:
        sent = list(grid.send_and_receive(list(messages.values())))
        by_id = {m.metadata.message_id: key for key, m in messages.items()}
        replies = {by_id.get(r.metadata.reply_to_message_id): r for r in sent}
        for key in messages:
            reply = replies.get(key)
            if reply is None:
                raise RunFailed(f"round {round_number}: device {key}: no reply")
            if reply.has_error():
                raise RunFailed(f"round {round_number}: device {key}: {reply.error.reason}")
        return replies

    def run(self, grid) -> RunOutcome:
        import torch
        from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
        from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

        from .strategies import plan_round

        settings = self.settings
        torch.set_num_threads(settings.threads)
        model = get_race_model(settings)
        data = load_data(settings.glue_dir, settings.task, settings.sequence_length,
                         settings.model)
        self.nodes = {str(config["device"]): node
                      for node, config in grid.node_configs.items()}
        global_arrays = model.arrays()
        self.optimizer = model.server_optimizer(settings.lr)
        timing = {"train_s": 0.0, "eval_s": 0.0, "plan_s": 0.0}
        began = started = time.perf_counter()
        initial = model.evaluate(data.dev)
        timing["eval_s"] += time.perf_counter() - started
        rng = np.random.default_rng(data_seed(settings.seed, "participants"))
        rows, modeled = [], 0.0
        for round_number in range(1, settings.rounds + 1):
            started = time.perf_counter()
            plan = plan_round(settings.strategy, self.costs, rng)
            timing["plan_s"] += time.perf_counter() - started
            record = ArrayRecord({key: Array(value) for key, value in global_arrays.items()})
            if settings.strategy == "centralized":
                losses, examples, devices, step_s = self._centralized(
                    grid, plan, model, global_arrays, round_number)
            else:
                messages = {}
                for name, blocks in plan.assignment.items():
                    config = ConfigRecord({"round": round_number, "blocks": list(blocks),
                                           "client-lr": float(settings.client_lr),
                                           "optimizer": settings.optimizer})
                    messages[name] = Message(RecordDict({"arrays": record, "config": config}),
                                             self.nodes[name], "train",
                                             group_id=f"train-{round_number}")
                replies = self._exchange(grid, messages, round_number)
                updated = self._aggregate(plan, replies, model, global_arrays,
                                          aggregate_arrayrecords, round_number)
                global_arrays = model.server_step(self.optimizer, global_arrays, updated)
                metrics = [replies[name].content.metric_records["metrics"] for name in messages]
                examples = int(sum(m["num-examples"] for m in metrics))
                losses = float(sum(m["train-loss"] * m["num-examples"] for m in metrics)
                               / examples)
                devices = len(messages)
                step_s = float(sum(m["step-s"] for m in metrics)) * settings.local_steps
            timing["train_s"] += step_s
            modeled += plan.round_latency_s
            row = {"strategy": settings.strategy, "seed": settings.seed, "round": round_number,
                   "round_latency_s": plan.round_latency_s, "modeled_time_s": modeled,
                   "devices": devices, "examples": examples, "train_loss": losses,
                   "dev_loss": None, "dev_accuracy": None}
            if round_number % settings.eval_every == 0 or round_number == settings.rounds:
                model.load(global_arrays)
                started = time.perf_counter()
                evaluation = model.evaluate(data.dev)
                timing["eval_s"] += time.perf_counter() - started
                row["dev_loss"], row["dev_accuracy"] = evaluation["loss"], evaluation["accuracy"]
            rows.append(row)
            if self.progress is not None:
                self.progress(row)
        model.load(global_arrays)
        test = None
        if data.test is not None:
            started = time.perf_counter()
            test = model.evaluate(data.test)
            timing["eval_s"] += time.perf_counter() - started
        timing["wall_s"] = time.perf_counter() - began
        return RunOutcome(rows, test, initial, global_arrays, timing)

    def _aggregate(self, plan, replies, model, global_arrays, aggregate_arrayrecords,
                   round_number) -> None:
        for name, blocks in plan.assignment.items():
            content = replies[name].content
            arrays = content.array_records.get("arrays")
            metrics = content.metric_records.get("metrics")
            expected = set(model.keys_of(blocks))
            if arrays is None or metrics is None or set(arrays) != expected:
                raise RunFailed(f"round {round_number}: device {name}: its reply carries other "
                                f"parameters than those of its blocks {blocks}")
            if not metrics["frozen-unchanged"]:
                raise RunFailed(f"round {round_number}: device {name} changed parameters "
                                f"outside its blocks {blocks}")
            for key in expected:
                value = arrays[key].numpy()
                if value.shape != global_arrays[key].shape or not np.all(np.isfinite(value)):
                    raise RunFailed(f"round {round_number}: device {name}: parameter {key} has "
                                    "the wrong shape or non-finite values")
        strategy = self.settings.strategy
        updated = {}
        if strategy == "deft":
            for name, blocks in plan.assignment.items():
                arrays = replies[name].content.array_records["arrays"]
                for key in model.keys_of(blocks):
                    updated[key] = arrays[key].numpy()
            return updated
        # fedavg-lora and depth-hetero: Flower's FedAvg over the replies that hold each block
        by_block = {}
        for name, blocks in plan.assignment.items():
            for block in blocks:
                by_block.setdefault(block, []).append(name)
        groups = {}
        for block, names in by_block.items():
            groups.setdefault(tuple(names), []).append(block)
        for names, blocks in groups.items():
            keys = set(model.keys_of(blocks))
            subset = [_restricted(replies[name], keys) for name in names]
            arrays = aggregate_arrayrecords(subset, "num-examples")
            for key in keys:
                updated[key] = arrays[key].numpy()
        return updated

    def _centralized(self, grid, plan, model, global_arrays, round_number):
        from flwr.app import ConfigRecord, Message, RecordDict

        from .model import Tokenised

        messages = {name: Message(RecordDict({"config": ConfigRecord({"round": round_number})}),
                                  self.nodes[name], "query", group_id=f"batches-{round_number}")
                    for name in plan.uploaders}
        replies = self._exchange(grid, messages, round_number)
        batches = []
        pad = 0
        for name in plan.uploaders:
            record = replies[name].content.array_records["batches"]
            ids = record["input_ids"].numpy().astype(np.int64)
            labels = record["labels"].numpy().astype(np.int64)
            uploaded = Tokenised(ids, (ids != pad).astype(np.int64), labels)
            size = self.settings.batch_size
            batches.extend((uploaded, np.arange(start, start + size))
                           for start in range(0, len(labels), size))
        model.load(global_arrays)
        step = model.train(model.block_names, batches, lr=float(self.settings.lr),
                           optimizer=self.optimizer,
                           dropout_seed=data_seed(self.settings.seed, "dropout", "server",
                                                  round_number) % 2**31)
        global_arrays.update(model.arrays())
        return step.loss, step.examples, len(plan.uploaders), float(sum(step.step_times_s))


def _restricted(reply, keys):
    """The content of a train reply holding only the parameters ``keys`` (and its metrics)."""
    from flwr.app import Array, ArrayRecord, RecordDict

    arrays = reply.content.array_records["arrays"]
    return RecordDict({"arrays": ArrayRecord({k: Array(arrays[k].numpy()) for k in keys}),
                       "metrics": reply.content.metric_records["metrics"]})
