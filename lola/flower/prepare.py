"""What every process of a run derives from the settings alone: the scenario, the model's
specification and the data split, each checked before any round starts.

The server and each client call :func:`prepare` with the same settings and get the same
answer (it is deterministic, and cached per process): the held-out split the server evaluates
on, and the training shard of each of the scenario's devices, in the scenario's order.

Data: without ``data``, the synthetic task of :mod:`lola.flower.data` with ``eval_examples``
held-out examples and ``examples_per_device`` for each device; with ``data``, the file's
examples, ceil(eval_fraction n) of them held out and the rest dealt round-robin to the devices
after a seeded shuffle. A device whose node config names its own file (``data=...``) trains on
that file instead of its shard.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..scenario import Scenario, load_scenario
from .data import Dataset, read_jsonl, split, synthetic_task
from .settings import RunSettings, SettingsError
from .training import TINY_CONFIG, ModelError, ModelSpec

__all__ = ["Prepared", "prepare", "device_data", "vocab_size"]


@dataclass(frozen=True)
class Prepared:
    settings: RunSettings   # resolved: problem and method filled in
    scenario: Scenario      # the scenario file: channel, server and the devices it lists
    spec: ModelSpec
    held_out: Dataset
    shards: tuple           # training data of device k of the scenario

    @property
    def data_source(self) -> str:
        return self.settings.data or "synthetic"


def _architecture(settings: RunSettings) -> dict:
    """The configuration of the run's model (the preset, or the weights' config.json)."""
    from ..profiling import MODELS

    if settings.model == "tiny":
        return {**MODELS["roberta-base"][1], **TINY_CONFIG}
    if settings.weights:
        path = Path(settings.weights) / "config.json"
        try:
            config = json.loads(path.read_text())
            int(config["vocab_size"])
            return config
        except FileNotFoundError:
            raise ModelError(f"--weights {settings.weights}: no config.json in this folder (the "
                             "folder save_pretrained writes)") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(f"--weights {settings.weights}: config.json has no usable "
                             f"vocab_size ({err})") from None
    if settings.model not in MODELS:
        raise ModelError(f"--model {settings.model}: unknown")
    return dict(MODELS[settings.model][1])


def vocab_size(settings: RunSettings) -> int:
    """The vocabulary of the run's model, without building it."""
    return int(_architecture(settings)["vocab_size"])


def _check_sequence_length(settings: RunSettings, spec: ModelSpec) -> None:
    config = _architecture(settings)
    # RoBERTa numbers positions from padding_idx + 1: two position embeddings are never used.
    longest = int(config.get("max_position_embeddings", 514)) - int(
        config.get("pad_token_id", 1)) - 1
    if spec.sequence_length > longest:
        raise SettingsError(f"--sequence-length {spec.sequence_length}: the {settings.model} "
                            f"model takes at most {longest} tokens")


def prepare(settings: RunSettings) -> Prepared:
    """Check the settings, read the scenario and the data, split it (module docstring).

    Raises ``ValueError`` subclasses naming the option, file or line at fault: a
    :class:`lola.ScenarioError`, :class:`lola.flower.data.DataError`,
    :class:`lola.flower.settings.SettingsError` or :class:`lola.flower.training.ModelError`.
    """
    # Cached per process (the server and every in-process client ask), keyed by the files'
    # modification times too, so that an edited scenario or data file is read again.
    return _prepare(settings, _stamp(settings.scenario), _stamp(settings.data))


def _stamp(path):
    try:
        return None if path is None else Path(path).stat().st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _prepare(settings: RunSettings, *_stamps) -> Prepared:
    from ..api import default_scenario_path

    settings = settings.resolved()
    ModelSpec(name=settings.model, weights=settings.weights)  # checks name and weights early
    scenario = load_scenario(settings.scenario or str(default_scenario_path()))
    vocabulary = vocab_size(settings)
    spec = ModelSpec(name=settings.model, weights=settings.weights,
                     batch_size=settings.batch_size, sequence_length=settings.sequence_length,
                     seed=settings.seed)
    _check_sequence_length(settings, spec)
    devices = len(scenario.devices)
    if settings.data is None:
        data = synthetic_task(settings.eval_examples + devices * settings.examples_per_device,
                              vocab_size=vocabulary, sequence_length=spec.sequence_length,
                              seed=settings.seed)
        held = settings.eval_examples
    else:
        data = read_jsonl(settings.data, vocab_size=vocabulary,
                          sequence_length=spec.sequence_length)
        held = math.ceil(settings.eval_fraction * len(data))
    held_out, shards = split(data, devices, held_out=held, seed=settings.seed)
    spec = ModelSpec(name=spec.name, weights=spec.weights, batch_size=spec.batch_size,
                     sequence_length=spec.sequence_length, num_labels=data.num_labels,
                     seed=spec.seed)
    if settings.host_profile is not None and not Path(settings.host_profile).is_file():
        raise SettingsError(f"--host-profile {settings.host_profile}: no such file")
    return Prepared(settings, scenario, spec, held_out, tuple(shards))


@functools.lru_cache(maxsize=16)
def device_data(path: str, vocabulary: int, sequence_length: int) -> Dataset:
    """A device's own JSON-lines file (node config ``data``), all of it for training."""
    return read_jsonl(path, vocab_size=vocabulary, sequence_length=sequence_length)
