"""The model a DEFT run fine-tunes, and one device's training step on a set of blocks.

The model is a RoBERTa encoder with a sequence-classification head, every weight frozen, and
LoRA adapters (peft, rank r on the attention query and value projections, as ``lola profile``
measures them) on every layer. Block n is the adapters of one layer; depth 1 is the last layer
(nearest the head), so the block of layer l of an L-layer model has depth L - l and is named
``layer.l``, the names of the profiler and of the bundled profiles.

A device that trains the block set A runs **one** step (section 8 of the specification): every
adapter is active in the forward pass (they are the current global adapters), only those of A
are trainable, so autograd back-propagates from the loss down to the deepest block d of A and no
further (nothing below d needs a gradient), and a plain SGD step theta <- theta - eta grad
updates A's adapters. SGD keeps no state, so a block's update does not depend on which device
trained it in an earlier round, and the uploaded adapter theta - eta grad carries exactly the
gradient of section 1 (theta and eta are known to the server).

Models are cached per process (:func:`get_model`): the clients of one process run one after the
other and each loads the global adapters it receives before its step, so they can share the
frozen weights; a device process holds one model, as a real device would.
"""
from __future__ import annotations

import hashlib
import re
import statistics
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .data import PAD_ID, Dataset, device_seed

__all__ = ["ModelSpec", "DeftModel", "StepOutcome", "get_model", "block_layer", "MODEL_NAMES",
           "TINY_CONFIG", "ModelError"]

# The tiny configuration: RoBERTa-base's architecture cut to 4 layers of width 64, with a
# vocabulary of 1000 tokens. A step takes milliseconds on one CPU core.
TINY_CONFIG = dict(num_hidden_layers=4, hidden_size=64, intermediate_size=256, initializer_range=0.125,
                   num_attention_heads=4, vocab_size=1000)
# The architectures a run can use: the tiny configuration and the RoBERTa sizes of the bundled
# profiles (their special token ids are the ones :mod:`lola.flower.data` pads with).
MODEL_NAMES = ("tiny", "roberta-base", "roberta-large")
_DEFAULT_SEQUENCE = {"tiny": 32, "roberta-base": 128, "roberta-large": 128}
_LORA_KEY = re.compile(r"(?:^|\.)(layer\.(\d+)\..*\.lora_[AB])\.[^.]+\.weight$")


class ModelError(ValueError):
    """A model setting that cannot work (unknown name, unusable weights folder, ...)."""


def block_layer(name: str) -> int:
    """The layer index of block ``name`` (``layer.l`` -> l)."""
    match = re.fullmatch(r"layer\.(\d+)", str(name))
    if not match:
        raise ModelError(f"block {name!r}: block names are layer.<index>")
    return int(match.group(1))


@dataclass(frozen=True)
class ModelSpec:
    """What every process of a run builds: the same architecture, the same seeded weights."""

    name: str = "tiny"
    weights: str | None = None
    rank: int = 8
    alpha: int = 16
    targets: tuple = ("query", "value")
    batch_size: int = 16
    sequence_length: int | None = None  # None: 32 for tiny, 128 otherwise
    num_labels: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.name not in MODEL_NAMES:
            raise ModelError(f"--model {self.name}: choose one of {', '.join(MODEL_NAMES)}")
        if self.weights is not None and self.name == "tiny":
            raise ModelError("--weights: the tiny model is randomly initialised; give a "
                             "bundled architecture (--model roberta-base) with its weights")
        if self.sequence_length is None:
            object.__setattr__(self, "sequence_length", _DEFAULT_SEQUENCE[self.name])

    @property
    def preset(self) -> str:
        """The profiler's architecture preset this model is built from."""
        return "roberta-base" if self.name == "tiny" else self.name

    @property
    def overrides(self) -> dict:
        return dict(TINY_CONFIG) if self.name == "tiny" else {}

    def profile_settings(self, *, repetitions: int = 5, warmup: int = 2):
        """The :class:`lola.profiling.ProfileSettings` that measure this model's blocks."""
        from ..profiling import ProfileSettings

        return ProfileSettings(model=self.preset, config=self.overrides, rank=self.rank,
                               alpha=self.alpha, target_modules=tuple(self.targets),
                               batch_size=self.batch_size,
                               sequence_length=self.sequence_length, repetitions=repetitions,
                               warmup=warmup, weights=self.weights, seed=self.seed,
                               num_labels=self.num_labels)


@dataclass
class StepOutcome:
    """One device's step: the loss before it, its wall-clock time, and what autograd touched."""

    loss: float
    step_s: float                     # median over the local steps
    step_times_s: list
    grad_parameters: list             # adapter keys that received a gradient
    frozen_unchanged: bool            # every adapter outside the blocks bit-for-bit as received
    reached_layers: list | None = None  # layers whose output received a gradient (audit only)
    examples: int = 0


@dataclass
class DeftModel:
    """The frozen encoder with LoRA adapters on every layer (module docstring)."""

    spec: ModelSpec
    model: object = field(repr=False)
    layers: int
    vocab_size: int
    pad_token_id: int
    adapters: dict = field(repr=False)          # key -> parameter, keys "layer.l....lora_A"
    initial_adapters: dict = field(repr=False)  # key -> array, as built (seeded)

    @property
    def block_names(self) -> list:
        """Block names in depth order (depth 1, the last layer, first)."""
        return [f"layer.{layer}" for layer in range(self.layers - 1, -1, -1)]

    def keys_of(self, blocks) -> list:
        layers = {block_layer(b) for b in blocks}
        return [key for key in self.adapters if int(key.split(".")[1]) in layers]

    def adapter_arrays(self, blocks=None) -> dict:
        """Copies of the adapters (of ``blocks`` only, when given), as float32 arrays."""
        keys = self.keys_of(blocks) if blocks is not None else list(self.adapters)
        return {key: self.adapters[key].detach().cpu().numpy().copy() for key in keys}

    def load_adapters(self, arrays) -> None:
        """Write ``arrays`` (key -> array) into the adapters; every key must be known and every
        shape must match."""
        import torch

        with torch.no_grad():
            for key, value in arrays.items():
                if key not in self.adapters:
                    raise ModelError(f"adapter {key!r} is not part of this model")
                parameter = self.adapters[key]
                value = np.asarray(value)
                if tuple(value.shape) != tuple(parameter.shape):
                    raise ModelError(f"adapter {key!r} has shape {tuple(value.shape)}, the "
                                     f"model's is {tuple(parameter.shape)}")
                parameter.copy_(torch.from_numpy(value.astype(np.float32, copy=False)))

    def fingerprint(self) -> str:
        """sha256 of the frozen weights: every process of a run must hold the same ones."""
        digest = hashlib.sha256()
        lora = {id(p) for p in self.adapters.values()}
        for name, parameter in self.model.named_parameters():
            if id(parameter) in lora:
                continue
            digest.update(name.encode())
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def batch(self, data: Dataset, indices) -> dict:
        import torch

        indices = np.asarray(indices, dtype=np.int64)
        return {"input_ids": torch.from_numpy(data.input_ids[indices]),
                "attention_mask": torch.from_numpy(data.attention_mask[indices]),
                "labels": torch.from_numpy(data.labels[indices])}

    def train_step(self, blocks, data: Dataset, *, lr: float, seed: int, local_steps: int = 1,
                   audit: bool = False) -> StepOutcome:
        """Train the adapters of ``blocks`` for ``local_steps`` SGD steps on mini-batches of
        ``data`` (drawn with ``seed``); every other adapter is frozen.

        The timed region of each step is what the profiler times: clearing the gradients, the
        forward pass and loss, the backward pass, the optimizer step. ``audit`` hooks every
        layer's output to record which layers back-propagation reached (outside the timed
        region nothing changes; inside, the hooks add a few microseconds).
        """
        import torch

        layers = {block_layer(b) for b in blocks}
        if not layers:
            raise ModelError("a training step needs at least one block")
        unknown = sorted(layers - set(range(self.layers)))
        if unknown:
            raise ModelError(f"block layer.{unknown[0]} is not a layer of this "
                             f"{self.layers}-layer model")
        mine = set(self.keys_of(blocks))
        for key, parameter in self.adapters.items():
            parameter.requires_grad_(key in mine)
        trainable = [self.adapters[key] for key in self.adapters if key in mine]
        frozen_before = {key: p.detach().clone() for key, p in self.adapters.items()
                         if key not in mine}
        optimizer = torch.optim.SGD(trainable, lr=lr)
        rng = np.random.default_rng(device_seed(seed, "batches"))
        n = len(data)
        draws = [rng.choice(n, size=self.spec.batch_size, replace=n < self.spec.batch_size)
                 for _ in range(local_steps)]
        reached, handles = set(), []
        if audit:
            for index, module in enumerate(self._layer_modules()):
                handles.append(module.register_forward_hook(_reach_hook(index, reached)))
        times, losses = [], []
        self.model.train()
        try:
            for step, indices in enumerate(draws):
                inputs = self.batch(data, indices)
                torch.manual_seed(device_seed(seed, "dropout", step))
                started = time.perf_counter()
                for parameter in trainable:
                    parameter.grad = None
                loss = self.model(**inputs).loss
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - started)
                losses.append(float(loss.detach()))
        finally:
            for handle in handles:
                handle.remove()
        grads = sorted(key for key, p in self.adapters.items() if p.grad is not None)
        adapter_ids = {id(p) for p in self.adapters.values()}
        others = [name for name, p in self.model.named_parameters()
                  if p.grad is not None and id(p) not in adapter_ids]
        unchanged = all(torch.equal(before, self.adapters[key].detach())
                        for key, before in frozen_before.items())
        for parameter in trainable:
            parameter.grad = None
            parameter.requires_grad_(False)
        return StepOutcome(loss=losses[0], step_s=statistics.median(times), step_times_s=times,
                           grad_parameters=grads + others, frozen_unchanged=unchanged,
                           reached_layers=sorted(reached) if audit else None,
                           examples=int(sum(len(d) for d in draws)))

    def evaluate(self, data: Dataset) -> dict:
        """Mean cross-entropy and accuracy over ``data`` with the current adapters (no dropout)."""
        import torch

        self.model.eval()
        total, correct = 0.0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(data), self.spec.batch_size):
                    indices = np.arange(start, min(start + self.spec.batch_size, len(data)))
                    inputs = self.batch(data, indices)
                    logits = self.model(input_ids=inputs["input_ids"],
                                        attention_mask=inputs["attention_mask"]).logits
                    total += float(torch.nn.functional.cross_entropy(
                        logits, inputs["labels"], reduction="sum"))
                    correct += int((logits.argmax(-1) == inputs["labels"]).sum())
        finally:
            self.model.train()
        return {"loss": total / len(data), "accuracy": correct / len(data)}

    def _layer_modules(self) -> list:
        return list(self.model.get_base_model().roberta.encoder.layer)

    def warm_up(self) -> None:
        """One untimed forward and backward through every layer, so that no measured step pays
        for the first allocations of the process."""
        import torch

        data = Dataset(np.full((self.spec.batch_size, self.spec.sequence_length), 5),
                       np.ones((self.spec.batch_size, self.spec.sequence_length), np.int64),
                       np.zeros(self.spec.batch_size, np.int64), self.spec.num_labels)
        for parameter in self.adapters.values():
            parameter.requires_grad_(True)
        torch.manual_seed(0)
        self.model(**self.batch(data, np.arange(self.spec.batch_size))).loss.backward()
        for parameter in self.adapters.values():
            parameter.grad = None
            parameter.requires_grad_(False)


def _reach_hook(index, reached):
    """A forward hook on layer ``index`` that records when back-propagation reaches its output."""
    def hook(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.requires_grad:  # False below the deepest trainable block: autograd stops there
            hidden.register_hook(lambda grad: reached.add(index))
    return hook


_CACHE: dict = {}


def get_model(spec: ModelSpec) -> DeftModel:
    """The process's model for ``spec`` (built once, seeded with ``spec.seed``)."""
    model = _CACHE.get(spec)
    if model is None:
        model = _CACHE[spec] = _build(spec)
    return model


def _build(spec: ModelSpec) -> DeftModel:
    try:
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as err:
        raise ModelError(f"DEFT runs need torch, transformers and peft ({err.name} is missing); "
                         "pip install torch==2.13.0 && pip install -e '.[profile,flower]'") \
            from None
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ..profiling import MODELS

    model_type, preset, _ = MODELS[spec.preset]
    torch.manual_seed(spec.seed)
    with warnings.catch_warnings():  # transformers' deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        if spec.weights:
            try:
                base = AutoModelForSequenceClassification.from_pretrained(
                    spec.weights, num_labels=spec.num_labels, local_files_only=True)
            except (OSError, ValueError) as err:
                raise ModelError(f"--weights {spec.weights}: cannot load a model from this "
                                 f"folder ({' '.join(str(err).split())[:200]})") from None
        else:
            config = AutoConfig.for_model(model_type, **{**preset, **spec.overrides},
                                          num_labels=spec.num_labels)
            base = AutoModelForSequenceClassification.from_config(config)
        base.requires_grad_(False)
        model = get_peft_model(base, LoraConfig(r=spec.rank, lora_alpha=spec.alpha,
                                                target_modules=list(spec.targets),
                                                lora_dropout=0.0))
    model.train()
    adapters = {}
    for name, parameter in model.named_parameters():
        match = _LORA_KEY.search(name)
        if match:
            parameter.requires_grad_(False)
            adapters[match.group(1)] = parameter
    config = model.get_base_model().config
    deft = DeftModel(spec=spec, model=model, layers=config.num_hidden_layers,
                     vocab_size=config.vocab_size,
                     pad_token_id=getattr(config, "pad_token_id", PAD_ID),
                     adapters=adapters, initial_adapters={})
    deft.initial_adapters = deft.adapter_arrays()
    deft.warm_up()
    return deft
