"""The model a race fine-tunes: a pretrained encoder, LoRA on every layer, a trainable head.

``minilm`` (:mod:`lola.pretrained`) is loaded as transformers'
``BertForSequenceClassification`` with the task's labels; every pretrained weight is frozen; peft
puts LoRA adapters (rank 8, alpha 16, no dropout) on the attention query and value projections of
every layer, and keeps the classification head trainable (``modules_to_save``). The blocks are
those of section 16 of the specification and of the bundled profile ``minilm-l6``: the head is
block ``classifier`` at depth 1; layer l's adapters are block ``layer.l`` at depth L - l + 1.

A step on the block set A (:meth:`RaceModel.train`) is the step of section 8: every adapter is
active in the forward pass, only A's parameters are trainable, so back-propagation stops at the
deepest block of A, and the client optimizer (SGD or AdamW, created afresh for the round's local
steps: clients keep no state between rounds, in every strategy alike) updates A alone.
:meth:`RaceModel.server_step` is the server's optimizer (Adam, with its state kept across rounds)
applied to the round's pseudo-gradients. Training
batches have the profile's shape: ``batch_size`` sentences padded and cut to the sequence length
L. Evaluation (:meth:`RaceModel.evaluate`) runs batches of sentences of similar length with their
common trailing padding cut off: padded positions are masked out of attention, so this changes
no prediction (up to float rounding) and costs a fraction of full-length batches.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import re
import statistics
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RaceModel", "Tokenised", "build_model", "tokenise", "OPTIMIZERS", "block_depths",
           "RaceModelError", "quiet_transformers"]

OPTIMIZERS = ("adamw", "sgd")
HEAD = "classifier"
_LORA = re.compile(r"(?:^|\.)layer\.(\d+)\.(.*\.lora_[AB])\.default\.weight$")
_HEAD = re.compile(r"(?:^|\.)classifier\.modules_to_save\.default\.(weight|bias)$")


class RaceModelError(ValueError):
    """A model that cannot be built or a block it does not have."""


@dataclass
class Tokenised:
    """Token ids, attention masks and labels of a split, padded and cut to one length."""

    input_ids: np.ndarray        # (n, L) int64
    attention_mask: np.ndarray   # (n, L) int64
    labels: np.ndarray           # (n,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "Tokenised":
        indices = np.asarray(indices, dtype=np.int64)
        return Tokenised(self.input_ids[indices], self.attention_mask[indices],
                         self.labels[indices])


def block_depths(layers: int) -> dict:
    """``{block: depth}`` of an L-layer model: the head at depth 1, layer l at L - l + 1."""
    depths = {HEAD: 1}
    depths.update({f"layer.{layer}": layers - layer + 1 for layer in range(layers)})
    return depths


@contextlib.contextmanager
def quiet_transformers():
    """transformers' load report and notices are not the race's output (``--json`` stays one
    document): its logging is set to errors, its prints go nowhere, its warnings are muted."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def tokenise(tokenizer, sentences, labels, sequence_length: int) -> Tokenised:
    """The model's tokenizer over ``sentences``, padded and cut to ``sequence_length`` tokens."""
    encoded = tokenizer(list(sentences), padding="max_length", truncation=True,
                        max_length=sequence_length, return_attention_mask=True,
                        return_token_type_ids=False)
    return Tokenised(np.asarray(encoded["input_ids"], dtype=np.int64),
                     np.asarray(encoded["attention_mask"], dtype=np.int64),
                     np.asarray(labels, dtype=np.int64))


@dataclass
class StepResult:
    """One client's local steps: the loss of each, their wall-clock times, the examples seen."""

    losses: list
    step_times_s: list
    examples: int
    frozen_unchanged: bool

    @property
    def loss(self) -> float:
        return float(np.mean(self.losses))

    @property
    def step_s(self) -> float:
        return float(statistics.median(self.step_times_s))


@dataclass
class RaceModel:
    """The frozen pretrained encoder with LoRA adapters and a trainable head (module docstring)."""

    model: object = field(repr=False)
    tokenizer: object = field(repr=False)
    layers: int
    num_labels: int
    batch_size: int
    sequence_length: int
    parameters: dict = field(repr=False)   # key -> torch parameter (adapters and head)
    blocks: dict = field(repr=False)       # block name -> its keys
    initial: dict = field(repr=False)      # key -> array, as built

    @property
    def block_names(self) -> list:
        """The block names in depth order (the head first)."""
        depths = block_depths(self.layers)
        return sorted(self.blocks, key=depths.get)

    def keys_of(self, blocks) -> list:
        keys = []
        for block in blocks:
            if block not in self.blocks:
                raise RaceModelError(f"block {block!r} is not a block of this model "
                                     f"({', '.join(self.block_names)})")
            keys.extend(self.blocks[block])
        return keys

    def arrays(self, blocks=None) -> dict:
        """Copies of the trainable parameters (of ``blocks`` only, when given)."""
        keys = self.keys_of(blocks) if blocks is not None else list(self.parameters)
        return {key: self.parameters[key].detach().cpu().numpy().copy() for key in keys}

    def load(self, arrays) -> None:
        """Write ``arrays`` (key -> array of the right shape) into the parameters."""
        import torch

        with torch.no_grad():
            for key, value in arrays.items():
                parameter = self.parameters.get(key)
                if parameter is None:
                    raise RaceModelError(f"parameter {key!r} is not part of this model")
                value = np.asarray(value, dtype=np.float32)
                if tuple(value.shape) != tuple(parameter.shape):
                    raise RaceModelError(f"parameter {key!r} has shape {tuple(value.shape)}, "
                                         f"the model's is {tuple(parameter.shape)}")
                parameter.copy_(torch.from_numpy(value))

    def fingerprint(self) -> str:
        """sha256 of the frozen weights (16 hex digits)."""
        digest = hashlib.sha256()
        mine = {id(p) for p in self.parameters.values()}
        for name, parameter in self.model.named_parameters():
            if id(parameter) not in mine:
                digest.update(name.encode())
                digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _inputs(self, data: Tokenised, indices, *, trim: bool = False) -> dict:
        import torch

        ids = data.input_ids[indices]
        mask = data.attention_mask[indices]
        if trim:
            width = max(1, int(mask.sum(axis=1).max()))
            ids, mask = ids[:, :width], mask[:, :width]
        return {"input_ids": torch.from_numpy(np.ascontiguousarray(ids)),
                "attention_mask": torch.from_numpy(np.ascontiguousarray(mask)),
                "labels": torch.from_numpy(data.labels[indices])}

    def train(self, blocks, batches, *, lr: float, optimizer="sgd",
              dropout_seed: int = 0) -> StepResult:
        """One local step per mini-batch in ``batches`` (a list of (data, indices)), training the
        parameters of ``blocks`` only, with a fresh client optimizer (``"sgd"`` or ``"adamw"``
        at ``lr``), or with ``optimizer`` itself when it is a torch optimizer over these
        parameters (it keeps its state)."""
        import torch

        keys = set(self.keys_of(blocks))
        if not keys:
            raise RaceModelError("a training step needs at least one block")
        for key, parameter in self.parameters.items():
            parameter.requires_grad_(key in keys)
        trainable = [self.parameters[key] for key in self.parameters if key in keys]
        before = {key: p.detach().clone() for key, p in self.parameters.items()
                  if key not in keys}
        if not isinstance(optimizer, str):
            step = optimizer  # the caller's, with its state (the server's, in centralized)
        elif optimizer == "adamw":
            step = torch.optim.AdamW(trainable, lr=lr)
        elif optimizer == "sgd":
            step = torch.optim.SGD(trainable, lr=lr)
        else:
            raise RaceModelError(f"--optimizer {optimizer}: choose one of {', '.join(OPTIMIZERS)}")
        self.model.train()
        losses, times, examples = [], [], 0
        try:
            for number, (data, indices) in enumerate(batches):
                inputs = self._inputs(data, indices)
                torch.manual_seed(dropout_seed + number)
                started = time.perf_counter()
                step.zero_grad(set_to_none=True)
                loss = self.model(**inputs).loss
                loss.backward()
                step.step()
                times.append(time.perf_counter() - started)
                losses.append(float(loss.detach()))
                examples += len(indices)
        finally:
            for parameter in trainable:
                parameter.grad = None
                parameter.requires_grad_(False)
        unchanged = all(torch.equal(value, self.parameters[key].detach())
                        for key, value in before.items())
        return StepResult(losses, times, examples, unchanged)

    def server_optimizer(self, lr: float):
        """The server's Adam over every trainable parameter (FedAdam's server optimizer, Reddi et
        al., "Adaptive Federated Optimization", ICLR 2021); its state lives as long as it does."""
        import torch

        return torch.optim.Adam(list(self.parameters.values()), lr=lr)

    def server_step(self, optimizer, current: dict, updated: dict) -> dict:
        """One step of the server's ``optimizer`` from ``current`` (key -> array, every
        parameter) with the pseudo-gradient current - updated of the keys in ``updated``; the
        other parameters keep their values and moments. Returns the new arrays (every key)."""
        import torch

        self.load(current)
        for key, parameter in self.parameters.items():
            if key in updated:
                delta = np.asarray(current[key], np.float32) - np.asarray(updated[key], np.float32)
                parameter.grad = torch.from_numpy(delta)
            else:
                parameter.grad = None
        optimizer.step()
        for parameter in self.parameters.values():
            parameter.grad = None
        return self.arrays()

    def evaluate(self, data: Tokenised, *, batch_size: int = 64) -> dict:
        """Accuracy and mean cross-entropy over ``data`` (no dropout; module docstring)."""
        import torch

        lengths = data.attention_mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        total, correct = 0.0, 0
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(order), batch_size):
                    indices = order[start:start + batch_size]
                    inputs = self._inputs(data, indices, trim=True)
                    labels = inputs.pop("labels")
                    logits = self.model(**inputs).logits
                    total += float(torch.nn.functional.cross_entropy(
                        logits, labels, reduction="sum"))
                    correct += int((logits.argmax(-1) == labels).sum())
        finally:
            self.model.train()
        return {"loss": total / len(data), "accuracy": correct / len(data)}

    def save(self, path) -> None:
        """The adapters and the head in peft's ``save_pretrained`` format."""
        with quiet_transformers():
            self.model.save_pretrained(str(path))


def build_model(name: str = "minilm", *, num_labels: int = 2, batch_size: int = 16,
                sequence_length: int = 64, rank: int = 8, alpha: int = 16,
                seed: int = 0) -> RaceModel:
    """The race's model (module docstring); the head is initialised from ``seed``."""
    try:
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as err:
        raise RaceModelError(f"lola race needs torch, transformers and peft ({err.name} is "
                             "missing): pip install torch==2.13.0 && "
                             "pip install 'lola-deft[profile,flower]'") from None
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, BertForSequenceClassification

    from ..pretrained import model_dir

    folder = model_dir(name)
    torch.manual_seed(seed)
    with quiet_transformers():
        base = BertForSequenceClassification.from_pretrained(str(folder), num_labels=num_labels)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        base.requires_grad_(False)
        model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                                                target_modules=["query", "value"],
                                                modules_to_save=["classifier"]))
    parameters, blocks = {}, {}
    for pname, parameter in model.named_parameters():
        match = _LORA.search(pname)
        if match:
            key = f"layer.{match.group(1)}.{match.group(2)}"
            blocks.setdefault(f"layer.{match.group(1)}", []).append(key)
        else:
            match = _HEAD.search(pname)
            if not match:
                continue
            key = f"{HEAD}.{match.group(1)}"
            blocks.setdefault(HEAD, []).append(key)
        parameter.requires_grad_(False)
        parameters[key] = parameter
    layers = model.get_base_model().config.num_hidden_layers
    if set(blocks) != set(block_depths(layers)):
        raise RaceModelError(f"the model's trainable parameters form the blocks "
                             f"{sorted(blocks)}, not the {layers + 1} expected")
    race = RaceModel(model=model, tokenizer=tokenizer, layers=layers, num_labels=num_labels,
                     batch_size=batch_size, sequence_length=sequence_length,
                     parameters=parameters, blocks=blocks, initial={})
    race.initial = race.arrays()
    model.train()
    return race
