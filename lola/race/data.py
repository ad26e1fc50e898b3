"""The data of a race: the task's splits tokenised by the model's tokenizer, and each device's
shard of the training split.

Shards (section 16 of the specification): IID by default, a seeded shuffle dealt in equal shares
(``np.array_split``); with ``alpha``, label skew: for every label the examples of that label are
shuffled and cut among the devices in proportions drawn from a symmetric Dirichlet(alpha) (Hsu
et al., 2019; small alpha, few labels per device); with ``size_skew`` s > 0 (IID only) the shares
are proportional to lognormal(0, s) draws instead of equal. Every device gets at least one
example. Shards depend on the seed and the device count only, so every strategy of a race sees
the same shards for the same seed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .glue import GlueError, read_split, task_files
from .model import Tokenised, tokenise

__all__ = ["RaceData", "shard_indices", "load_data", "data_seed"]


def data_seed(seed: int, *parts) -> int:
    """A seed for one purpose of one run (stable across processes and Python versions)."""
    import hashlib

    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def shard_indices(labels, devices: int, *, seed: int, alpha: float | None = None,
                  size_skew: float = 0.0) -> list:
    """Each device's example indices into ``labels`` (module docstring).

    >>> shards = shard_indices([0, 1] * 10, 4, seed=0)
    >>> [len(s) for s in shards], sorted(np.concatenate(shards).tolist()) == list(range(20))
    ([5, 5, 5, 5], True)
    """
    labels = np.asarray(labels)
    n = len(labels)
    if devices > n:
        raise GlueError(f"{devices} devices need at least {devices} training examples; the "
                        f"split has {n}")
    rng = np.random.default_rng(data_seed(seed, "shards"))
    if alpha is None:
        order = rng.permutation(n)
        if size_skew > 0:
            weights = rng.lognormal(0.0, size_skew, devices)
            counts = 1 + np.floor(weights / weights.sum() * (n - devices)).astype(int)
            counts[: (n - counts.sum())] += 1
            cuts = np.cumsum(counts)[:-1]
            return [np.sort(part) for part in np.split(order, cuts)]
        return [np.sort(part) for part in np.array_split(order, devices)]
    shards = [[] for _ in range(devices)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        share = rng.dirichlet(np.full(devices, float(alpha)))
        cuts = (np.cumsum(share)[:-1] * len(members)).astype(int)
        for device, part in enumerate(np.split(members, cuts)):
            shards[device].extend(part.tolist())
    # a device left empty takes one example from the largest shard
    for device in range(devices):
        if not shards[device]:
            donor = max(range(devices), key=lambda k: len(shards[k]))
            shards[device].append(shards[donor].pop())
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]


@dataclass
class RaceData:
    train: Tokenised
    dev: Tokenised
    test: Tokenised | None
    files: dict


def _stamp(path) -> tuple:
    if path is None:
        return None
    stat = Path(path).stat()
    return (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load(glue_dir: str, task: str, sequence_length: int, model: str, _stamps) -> RaceData:
    from .model import quiet_transformers
    from ..pretrained import model_dir

    files = task_files(glue_dir, task)
    splits = {name: read_split(glue_dir, task, name, path=path) if path is not None else None
              for name, path in files.items()}
    from transformers import AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir(model)))
    tokenised = {name: None if split is None else
                 tokenise(tokenizer, split.sentences, split.labels, sequence_length)
                 for name, split in splits.items()}
    return RaceData(tokenised["train"], tokenised["dev"], tokenised["test"],
                    {name: str(path) if path else None for name, path in files.items()})


def load_data(glue_dir, task: str, sequence_length: int, model: str = "minilm") -> RaceData:
    """The task's splits, tokenised (cached per process while the files are unchanged)."""
    files = task_files(glue_dir, task)
    stamps = tuple(_stamp(files[name]) for name in ("train", "dev", "test"))
    return _load(str(glue_dir), task, int(sequence_length), model, stamps)
