"""``deft_run``: a whole DEFT run in this process, and the centralized reference beside it."""
from __future__ import annotations

from .data import device_seed
from .prepare import prepare
from .settings import NODE_PREFIX, PARTITION_KEY, RunSettings, device_properties

__all__ = ["deft_run", "run_settings", "centralized_run", "node_configs"]


def node_configs(prepared) -> list:
    """One Flower node config per device of the scenario: its properties as ``device.<key>``,
    and its ``partition-id`` (its shard of the run's data)."""
    devices = prepared.scenario.devices
    return [{PARTITION_KEY: index, "num-partitions": len(devices),
             **{NODE_PREFIX + key: value for key, value in device_properties(device).items()}}
            for index, device in enumerate(devices)]


def deft_run(scenario=None, *, method: str | None = None, problem: str | None = None,
             rounds: int = 3, model: str = "tiny", weights: str | None = None,
             data: str | None = None, seed: int = 0, max_blocks: int | None = None,
             progress=None, client_mods=None, host=None, **options):
    """Fine-tune for ``rounds`` DEFT rounds in Flower, every device of ``scenario`` a ClientApp
    in this process (:class:`lola.flower.inprocess.InProcessGrid`); return the
    :class:`~lola.flower.server.DeftReport` (``.to_dict()`` is section 15's JSON object).

    ``scenario`` is a scenario file (the bundled default when None); ``options`` are the other
    fields of :class:`lola.flower.settings.RunSettings` (``batch_size``, ``lr``, ``audit``, ...).
    ``progress(round, rounds, row)`` is called after each round; ``client_mods`` are Flower mods
    around every ClientApp handler; ``host`` a :class:`lola.flower.host.HostCosts` to use instead
    of profiling the model here.

    Raises ``ValueError`` subclasses for bad settings, scenario or data (before any round runs),
    :class:`lola.flower.server.ClientFailure` when a device fails, and
    :class:`lola.flower.server.RunFailure` when a round cannot be allocated.
    """
    settings = RunSettings(scenario=None if scenario is None else str(scenario), method=method,
                           problem=problem, rounds=rounds, model=model, weights=weights,
                           data=None if data is None else str(data), seed=seed,
                           max_blocks=max_blocks, **options)
    return run_settings(settings, progress=progress, client_mods=client_mods, host=host)


def run_settings(settings: RunSettings, *, progress=None, client_mods=None, host=None):
    """:func:`deft_run` for settings already gathered in a :class:`RunSettings`."""
    from .apps import make_client_app, make_server_app
    from .inprocess import run_in_process

    prepared = prepare(settings)
    reports = []
    server = make_server_app(settings, sink=reports.append, progress=progress, host=host)
    client = make_client_app(settings, mods=client_mods)
    run_in_process(server, client, node_configs(prepared), settings.to_user_config())
    return reports[0]


def centralized_run(settings: RunSettings) -> list:
    """Centralized fine-tuning of the same adapters on the same data, for comparison.

    From the same initial adapters, each round takes one SGD step (the run's ``lr``,
    ``local_steps`` and batch size) on every adapter at once, on a mini-batch of the devices'
    pooled training data, then evaluates on the same held-out split. Returns one row per round:
    ``{"round", "train_loss", "eval_loss", "eval_accuracy"}`` (round 0: before training).
    """
    import numpy as np
    import torch

    from .data import Dataset
    from .training import get_model

    prepared = prepare(settings)
    torch.set_num_threads(prepared.settings.threads)
    model = get_model(prepared.spec)
    shards = prepared.shards
    pooled = Dataset(np.concatenate([s.input_ids for s in shards]),
                     np.concatenate([s.attention_mask for s in shards]),
                     np.concatenate([s.labels for s in shards]), prepared.spec.num_labels)
    model.load_adapters(model.initial_adapters)
    first = model.evaluate(prepared.held_out)
    rows = [{"round": 0, "train_loss": None, "eval_loss": first["loss"],
             "eval_accuracy": first["accuracy"]}]
    for round_number in range(1, prepared.settings.rounds + 1):
        outcome = model.train_step(model.block_names, pooled, lr=prepared.settings.lr,
                                   seed=device_seed(prepared.settings.seed, "centralized",
                                                    round_number),
                                   local_steps=prepared.settings.local_steps)
        evaluation = model.evaluate(prepared.held_out)
        rows.append({"round": round_number, "train_loss": outcome.loss,
                     "eval_loss": evaluation["loss"], "eval_accuracy": evaluation["accuracy"]})
    model.load_adapters(model.initial_adapters)
    return rows
