"""The data of a DEFT run: a seeded synthetic task, or the user's JSON-lines file, split between
the devices and a held-out evaluation set.

Every example is a sequence of token ids and a class label. Sequences are padded (with the
model's padding id) or cut to the run's fixed sequence length, so that every training step has
the shape the profile measured, and the step's FLOPs are the profile's C_n.

The synthetic task (``synthetic_task``): label y is uniform over the classes; every position of
the sequence between ``<s>`` and ``</s>`` holds, with probability 1/2, a token of class y's own set
of ``TOPIC_TOKENS`` ids, else a token uniform over the vocabulary. Telling the classes apart means
noticing which set of tokens recurs, a signal a frozen random encoder passes on and its LoRA
adapters learn to amplify within a few rounds.

A file (``read_jsonl``) holds one JSON object per line, ``{"input_ids": [...], "label": k}``;
blank lines are skipped. Bad data is a :class:`DataError` (a ``ValueError``) whose one-line
message names the file and, where one line is at fault, the line:

>>> import json, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
>>> _ = open(path, "w").write(json.dumps({"input_ids": [5, 7], "label": 0}) + "\\nnot json\\n")
>>> try:
...     read_jsonl(path, vocab_size=1000, sequence_length=8)
... except DataError as err:
...     print(str(err).replace(path, "d.jsonl"))
d.jsonl:2: not a JSON object (Expecting value at column 1)
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Dataset", "synthetic_task", "read_jsonl", "split", "device_seed",
           "TOPIC_TOKENS", "BOS_ID", "PAD_ID", "EOS_ID", "FIRST_TOKEN_ID"]

# RoBERTa's special tokens: <s> = 0, <pad> = 1, </s> = 2; ordinary tokens start at 3.
BOS_ID, PAD_ID, EOS_ID, FIRST_TOKEN_ID = 0, 1, 2, 3
TOPIC_TOKENS = 16


class DataError(ValueError):
    """Data that cannot be used; the message names the file and, where it can, the line."""


@dataclass(frozen=True)
class Dataset:
    """Examples padded to one length: ``input_ids`` and ``attention_mask`` of shape (n, L)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray
    num_labels: int
    source: str = "synthetic"
    truncated: int = 0  # examples cut to the sequence length

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices) -> "Dataset":
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(self.input_ids[indices], self.attention_mask[indices],
                       self.labels[indices], self.num_labels, self.source)


def device_seed(seed: int, *parts) -> int:
    """A seed of its own for each (run seed, part, ...): stable across processes and machines
    (crc32 of the text, unlike Python's salted ``hash``)."""
    text = "/".join(str(part) for part in (seed, *parts))
    return zlib.crc32(text.encode())


def synthetic_task(n_examples: int, *, vocab_size: int, sequence_length: int,
                   num_labels: int = 2, seed: int = 0) -> Dataset:
    """``n_examples`` seeded examples of the synthetic task (module docstring).

    >>> data = synthetic_task(6, vocab_size=1000, sequence_length=8, seed=1)
    >>> data.input_ids.shape, int(data.input_ids[0, 0]), int(data.input_ids[0, -1])
    ((6, 8), 0, 2)
    """
    if sequence_length < 3:
        raise DataError(f"synthetic task: sequence length {sequence_length} leaves no room "
                        "between <s> and </s>")
    ordinary = vocab_size - FIRST_TOKEN_ID
    if ordinary < num_labels * TOPIC_TOKENS:
        raise DataError(f"synthetic task: a vocabulary of {vocab_size} has too few tokens for "
                        f"{num_labels} classes of {TOPIC_TOKENS} topic tokens each")
    rng = np.random.default_rng(device_seed(seed, "synthetic-task"))
    # Each class's topic tokens: disjoint sets drawn once from the ordinary ids.
    topics = rng.permutation(ordinary)[:num_labels * TOPIC_TOKENS].reshape(
        num_labels, TOPIC_TOKENS) + FIRST_TOKEN_ID
    labels = rng.integers(0, num_labels, size=n_examples)
    body = sequence_length - 2
    uniform = rng.integers(FIRST_TOKEN_ID, vocab_size, size=(n_examples, body))
    topical = topics[labels[:, None], rng.integers(0, TOPIC_TOKENS, size=(n_examples, body))]
    ids = np.where(rng.random((n_examples, body)) < 0.5, topical, uniform)
    input_ids = np.concatenate([np.full((n_examples, 1), BOS_ID), ids,
                                np.full((n_examples, 1), EOS_ID)], axis=1).astype(np.int64)
    return Dataset(input_ids, np.ones_like(input_ids), labels.astype(np.int64), num_labels)


def read_jsonl(path, *, vocab_size: int, sequence_length: int) -> Dataset:
    """Read ``{"input_ids": [...], "label": k}`` lines; pad or cut each to ``sequence_length``.

    Token ids must lie in [0, vocab_size); labels are integers >= 0, and at least two classes
    must occur (``num_labels`` is the largest label + 1). A sequence longer than
    ``sequence_length`` is cut to it (``Dataset.truncated`` counts them), as a tokenizer with
    ``truncation=True`` would.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DataError(f"{where}: no such file")
    if not path.is_file():
        raise DataError(f"{where}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: cannot be read ({' '.join(str(err).split())})") from None
    rows, labels, truncated = [], [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        here = f"{where}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as err:
            reason = getattr(err, "msg", str(err))
            column = getattr(err, "colno", None)
            raise DataError(f"{here}: not a JSON object ({reason}"
                            f"{f' at column {column}' if column else ''})") from None
        if not isinstance(entry, dict):
            raise DataError(f"{here}: not a JSON object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - {"input_ids", "label"})
        missing = [key for key in ("input_ids", "label") if key not in entry]
        if missing:
            raise DataError(f"{here}: missing key {missing[0]!r} (each line is "
                            '{"input_ids": [...], "label": k})')
        if unknown:
            raise DataError(f"{here}: unknown key {unknown[0]!r} (each line is "
                            '{"input_ids": [...], "label": k})')
        ids, label = entry["input_ids"], entry["label"]
        if not isinstance(ids, list) or not ids:
            raise DataError(f"{here}: input_ids must be a non-empty list of token ids")
        for position, token in enumerate(ids):
            if isinstance(token, bool) or not isinstance(token, int):
                raise DataError(f"{here}: input_ids[{position}] is {token!r}, not an integer "
                                "token id")
            if not 0 <= token < vocab_size:
                raise DataError(f"{here}: input_ids[{position}] = {token} is outside the "
                                f"model's vocabulary [0, {vocab_size})")
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DataError(f"{here}: label must be an integer >= 0, got {label!r}")
        if len(ids) > sequence_length:
            ids, truncated = ids[:sequence_length], truncated + 1
        rows.append(ids)
        labels.append(label)
    if not rows:
        raise DataError(f"{where}: no examples (one JSON object per line)")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"{where}: every example has label {classes[0]}; a classification "
                        "task needs at least two classes")
    input_ids = np.full((len(rows), sequence_length), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(rows), sequence_length), dtype=np.int64)
    for i, ids in enumerate(rows):
        input_ids[i, :len(ids)] = ids
        mask[i, :len(ids)] = 1
    return Dataset(input_ids, mask, np.asarray(labels, dtype=np.int64), max(classes) + 1,
                   source=where, truncated=truncated)


def split(data: Dataset, n_devices: int, *, held_out: int, seed: int):
    """A seeded shuffle, then the first ``held_out`` examples kept for evaluation and the rest
    dealt round-robin to the ``n_devices`` devices. Returns ``(held_out, [shard of device k])``.

    Every device needs at least one example, and the held-out set at least one.
    """
    n = len(data)
    held = max(1, int(held_out))
    if n - held < n_devices:
        raise DataError(f"{data.source}: {n} examples: {held} held out for evaluation leave "
                        f"{max(0, n - held)} for {n_devices} devices; every device needs at "
                        "least one")
    order = np.random.default_rng(device_seed(seed, "split")).permutation(n)
    train = order[held:]
    return data.subset(order[:held]), [data.subset(train[k::n_devices])
                                       for k in range(n_devices)]
