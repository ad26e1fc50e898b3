"""LoLa's Flower apps: the ServerApp that allocates and aggregates, the ClientApp of a device.

``server_app`` and ``client_app`` are the objects a Flower deployment loads
(``[tool.flwr.app.components]`` of an app's ``pyproject.toml``: ``serverapp =
"lola.flower.apps:server_app"``, ``clientapp = "lola.flower.apps:client_app"``); they read the
run's settings from Flower's run config (:class:`lola.flower.settings.RunSettings`) and the
device's properties from its node config (``device.<key>``). :func:`make_server_app` and
:func:`make_client_app` build the same apps around settings given in Python, as
:func:`lola.flower.deft_run` and Flower's simulation engine use them.

The ClientApp answers two message types:

* ``query`` (ConfigRecord ``config``: ``round``, ``num-labels``): it replies with a ``properties``
  ConfigRecord, the device keys of section 5 and the fingerprint of its frozen weights;
* ``train``: with the global adapters (ArrayRecord ``adapters``) and its blocks (ConfigRecord
  ``config``: ``blocks``, ``lr``, ``local-steps``, ``seed``, ``audit``, ``num-labels``), it loads
  the adapters, trains the adapters of its blocks A only
  (:meth:`lola.flower.training.DeftModel.train_step`) and replies with those adapters alone (the
  payload S(A) = q sum_{n in A} D_n, q = 32) and a MetricRecord ``step``: ``measured-compute-s``
  (the median wall-clock time of its local steps), ``train-loss``, ``examples``,
  ``frozen-unchanged`` (1 when every other adapter is bit-for-bit the one received).
"""
from __future__ import annotations

from .settings import DEVICE_KEYS, NODE_DATA_KEY, NODE_PREFIX, PARTITION_KEY, RunSettings

__all__ = ["make_server_app", "make_client_app", "server_app", "client_app",
           "client_properties", "client_spec"]


def _settings(given, context) -> RunSettings:
    return given if given is not None else RunSettings.from_user_config(context.run_config)


def client_properties(settings, node_config) -> tuple:
    """The device this node is: ``(properties, partition or None)``.

    Properties come from the node config's ``device.<key>`` entries when it has any, else from
    device ``partition-id`` of the run's scenario file (which only then needs to be readable on
    the node).
    """
    given = {key[len(NODE_PREFIX):]: value for key, value in dict(node_config).items()
             if str(key).startswith(NODE_PREFIX)}
    partition = node_config.get(PARTITION_KEY)
    if given:
        unknown = sorted(set(given) - set(DEVICE_KEYS))
        if unknown:
            raise ValueError(f"node config {NODE_PREFIX}{unknown[0]}: not a device key; the keys "
                             f"are {', '.join(NODE_PREFIX + k for k in DEVICE_KEYS)}")
        if "name" not in given:
            raise ValueError(f"node config: {NODE_PREFIX}name is missing")
        return given, (int(partition) if partition is not None else None)
    if partition is None:
        raise ValueError(f"node config: neither {NODE_PREFIX}<key> properties nor "
                         f"{PARTITION_KEY}: the node cannot tell which device it is")
    from .prepare import prepare
    from .settings import device_properties

    devices = prepare(settings).scenario.devices
    if not 0 <= int(partition) < len(devices):
        raise ValueError(f"node config {PARTITION_KEY}={partition}: the scenario has "
                         f"{len(devices)} devices")
    return device_properties(devices[int(partition)]), int(partition)


def _client_data(settings, model, node_config, partition):
    """The node's own file (node config ``data``), else its shard of the run's data."""
    from .data import DataError
    from .prepare import device_data, prepare

    own = node_config.get(NODE_DATA_KEY)
    if own:
        data = device_data(str(own), model.vocab_size, model.spec.sequence_length)
        if int(data.labels.max()) >= model.spec.num_labels:
            raise DataError(f"{own}: label {int(data.labels.max())} is outside the run's "
                            f"{model.spec.num_labels} classes")
        return data
    if partition is None:
        raise ValueError(f"node config: no {NODE_DATA_KEY}=FILE and no {PARTITION_KEY}: the "
                         "node has no data to train on")
    return prepare(settings).shards[partition]


def client_spec(settings: RunSettings, num_labels: int):
    """The model every process of the run builds (the server says how many classes)."""
    from .training import ModelSpec

    return ModelSpec(name=settings.model, weights=settings.weights,
                     batch_size=settings.batch_size, sequence_length=settings.sequence_length,
                     num_labels=int(num_labels), seed=settings.seed)


def make_client_app(settings: RunSettings | None = None, *, mods=None):
    """The ClientApp of a device (module docstring); ``mods`` are Flower mods wrapped around
    both handlers."""
    import torch
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from .training import get_model

    app = ClientApp(mods=list(mods or []))

    def _setup(message, context):
        run_settings = _settings(settings, context).resolved()
        torch.set_num_threads(run_settings.threads)
        config = message.content.config_records["config"]
        return run_settings, get_model(client_spec(run_settings, config["num-labels"]))

    @app.query()
    def query(message: Message, context) -> Message:
        run_settings, model = _setup(message, context)
        properties, partition = client_properties(run_settings, context.node_config)
        record = ConfigRecord({**properties, "fingerprint": _fingerprint(model)})
        if partition is not None:
            record["partition-id"] = partition
        return Message(RecordDict({"properties": record}), reply_to=message)

    @app.train()
    def train(message: Message, context) -> Message:
        run_settings, model = _setup(message, context)
        _, partition = client_properties(run_settings, context.node_config)
        data = _client_data(run_settings, model, context.node_config, partition)
        config = message.content.config_records["config"]
        blocks = [str(b) for b in config["blocks"]]
        received = {key: array.numpy()
                    for key, array in message.content.array_records["adapters"].items()}
        model.load_adapters(received)
        outcome = model.train_step(blocks, data, lr=float(config["lr"]),
                                   seed=int(config["seed"]),
                                   local_steps=int(config["local-steps"]),
                                   audit=bool(config["audit"]))
        mine = model.adapter_arrays(blocks)
        # Every adapter outside the blocks must still be exactly the one received.
        unchanged = outcome.frozen_unchanged and all(
            (model.adapters[key].detach().numpy() == value).all()
            for key, value in received.items() if key not in mine)
        content = RecordDict({
            "adapters": ArrayRecord({key: Array(value) for key, value in mine.items()}),
            "step": MetricRecord({"measured-compute-s": outcome.step_s,
                                  "step-times-s": list(outcome.step_times_s),
                                  "train-loss": outcome.loss, "examples": outcome.examples,
                                  "frozen-unchanged": int(unchanged)})})
        if outcome.reached_layers is not None:
            content["audit"] = ConfigRecord({"reached-layers": list(outcome.reached_layers),
                                             "grad-parameters": list(outcome.grad_parameters)})
        return Message(content, reply_to=message)

    return app


def _fingerprint(model) -> str:
    value = getattr(model, "_fingerprint", None)
    if value is None:
        value = model._fingerprint = model.fingerprint()
    return value


def make_server_app(settings: RunSettings | None = None, *, sink=None, progress=None,
                    host=None):
    """The ServerApp: runs :class:`lola.flower.server.DeftServer` on the grid it is given.

    ``sink(report)`` receives the :class:`~lola.flower.server.DeftReport`; without one, the
    report's JSON goes to the run config's ``report`` file when it names one.
    """
    from flwr.serverapp import Grid, ServerApp

    from .server import DeftServer

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context) -> None:
        run_settings = _settings(settings, context)
        report = DeftServer(run_settings, progress=progress, host=host).run(grid)
        if sink is not None:
            sink(report)
        elif run_settings.report:
            import json

            from .._io import atomic_write_text
            atomic_write_text(run_settings.report, json.dumps(report.to_dict(), indent=2) + "\n")

    return app


def __getattr__(name):
    # Built on first access, so that importing this module does not import torch and Flower's
    # apps until a deployment loads them.
    if name == "server_app":
        value = make_server_app()
    elif name == "client_app":
        value = make_client_app()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
