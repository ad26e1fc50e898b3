"""Measure the cost of every block of a real LoRA fine-tuning step (``lola profile``).

For a Hugging Face encoder built from its configuration (no download; ``weights`` loads local
weights when a user has them), LoRA adapters are attached once to every layer (peft
``LoraConfig`` on the query and value projections by default) and everything else is frozen.
The block of layer l is trained by enabling only layer l's adapters (the others are switched off,
so they neither compute nor need a gradient) and running a real training step on a synthetic
mini-batch: forward over the whole model, cross-entropy loss, backward (which autograd stops at
layer l, since nothing below it needs a gradient) and an AdamW step on that adapter. This is the
same step, with the same FLOPs, as a model that carries an adapter on layer l only. Per block it
records:

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
* ``params``: the adapter's trainable parameters.

Blocks are listed with ``depth`` 1 at the output side (the last layer). The document also records
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .profiles.analytic import ROBERTA_CONFIGS

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
}

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
    sequence_length: int = 128
    dtype: str = "float32"
    device: str = "cpu"
    repetitions: int = 5
    warmup: int = 2
    weights: str | None = None
    threads: int | None = None
    seed: int = 0
    num_labels: int = 2


@dataclass(frozen=True)
class _Plan:
    """Checked settings: the architecture and its full configuration (native keys)."""

    model_type: str
    config: dict      # preset + overrides, or the weights' config.json
    targets: tuple


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
    for value, option, minimum in ((settings.rank, "--rank", 1), (settings.alpha, "--alpha", 1),
                                   (settings.batch_size, "--batch-size", 1),
                                   (settings.sequence_length, "--sequence-length", 1),
                                   (settings.repetitions, "--repetitions", 1),
                                   (settings.warmup, "--warmup", 0),
                                   (settings.num_labels, "num_labels", 2),
                                   (settings.seed, "seed", 0)):
        _whole(value, option, minimum=minimum)
    if settings.threads is not None:
        _whole(settings.threads, "--threads")
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
    if settings.sequence_length > positions - offset:
        note = (f" (max_position_embeddings {positions} minus the padding offset {offset})"
                if offset else f" (max_position_embeddings {positions})")
        raise ProfileSettingsError(f"--sequence-length {settings.sequence_length}: "
                                   f"{settings.model} takes at most {positions - offset} "
                                   f"tokens{note}")
    if torch is not None:
        _check_device(settings.device, torch)
    return _Plan(model_type, config, targets)


def _option_of(model_type, key):
    role = next((role for role, native in _SIZE_KEYS[model_type].items() if native == key), None)
    return _SIZE_OPTIONS[role] if role else key


def _size_phrase(model_type, key, value, overrides, model):
    if key in overrides:
        return f"{_option_of(model_type, key)} {value}"
    return f"{key} {value} (the {model} preset)"


def _layer_count(config) -> int:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers")


def _build_model(torch, settings: ProfileSettings, plan: _Plan):
    """The frozen model with LoRA adapters on every layer, and those adapters by layer."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import AutoConfig, AutoModelForSequenceClassification

    with warnings.catch_warnings():  # transformers' deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        if settings.weights:
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
    return model, adapters


def _select_layer(adapters, layer) -> list:
    """Enable layer ``layer``'s adapters only; return their (trainable) parameters."""
    for index, modules in adapters.items():
        for module in modules:
            module.enable_adapters(index == layer)  # also sets requires_grad accordingly
    return [parameter for module in adapters[layer] for parameter in module.parameters()
            if parameter.requires_grad]


def _adapter_parameters(adapters, layer) -> list:
    return [parameter for module in adapters[layer]
            for name, parameter in module.named_parameters() if "lora_" in name]


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
        storage's lifetime), and a finaliser takes it off when the storage is freed.
        """

        def __init__(self, alive):
            super().__init__()
            self.current_bytes = 0
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

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
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
    from torch.utils.flop_counter import FlopCounterMode

    optimizer = optimizers[layer]
    trainable = _select_layer(adapters, layer)
    others = [parameter for index in adapters if index != layer
              for parameter in _adapter_parameters(adapters, index)]
    other_storages = {parameter.untyped_storage().data_ptr() for parameter in others}
    weights = [parameter for parameter in model.parameters()
               if parameter.untyped_storage().data_ptr() not in other_storages]
    state = _optimizer_state([optimizer], trainable, torch)
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
        optimizer.step()
    if cuda:
        torch.cuda.synchronize(settings.device)
        memory = torch.cuda.max_memory_allocated(settings.device) - excluded
    else:
        memory = tracker.peak_bytes
    adapter_bytes = sum(p.numel() * p.element_size() for p in trainable)
    lower_bound = sum(saved.values()) + sum(weight_storages.values()) + 3 * adapter_bytes
    return {"flops": float(counter.get_total_flops()), "memory_bytes": float(memory),
            "memory_saved_tensors_bytes": float(lower_bound),
            "params": int(sum(p.numel() for p in trainable))}


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
    """Profile every layer and return the profile document (nothing is written).

    Raises :class:`ProfileSettingsError` for settings that cannot work, before building anything,
    and :class:`ProfilingUnavailable` when torch, transformers or peft is missing.
    """
    _validate_settings(settings)  # what needs no torch, before the slow imports
    torch = _import_torch()
    plan = _validate_settings(settings, torch)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    model, adapters = _build_model(torch, settings, plan)
    config = model.config
    layers = _layer_count(config)
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.batch_size, settings.sequence_length)
    inputs = {"input_ids": torch.randint(3, config.vocab_size, shape, generator=generator),
              "attention_mask": torch.ones(shape, dtype=torch.long),
              "labels": torch.randint(0, settings.num_labels, (settings.batch_size,),
                                      generator=generator)}
    inputs = {key: value.to(settings.device) for key, value in inputs.items()}
    optimizers = {layer: torch.optim.AdamW(_adapter_parameters(adapters, layer), lr=1e-4)
                  for layer in range(layers)}
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

    by_depth = list(range(layers - 1, -1, -1))  # layer of depth 1, 2, ...
    shuffler = random.Random(settings.seed)
    bar = _progress(layers * (settings.warmup + 1 + settings.repetitions), settings.model,
                    progress)
    samples = {layer: [] for layer in by_depth}
    orders = []
    started = time.perf_counter()
    try:
        for _ in range(settings.warmup):  # the timed orders depend on the seed alone
            for layer in by_depth:
                timed_step(layer)
                bar.update(1)
        measured = {}
        for layer in by_depth:
            measured[layer] = _measure_block(torch, model, adapters, layer, optimizers, inputs,
                                             settings)
            bar.update(1)
        for _ in range(settings.repetitions):
            order = shuffler.sample(by_depth, len(by_depth))
            orders.append([layers - layer for layer in order])
            for layer in order:
                samples[layer].append(timed_step(layer))
                bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    blocks = []
    for layer in by_depth:
        figures = measured[layer]
        blocks.append({"name": f"layer.{layer}", "layer": layer, "depth": layers - layer,
                       "params": figures["params"], "flops": figures["flops"],
                       **_latency_figures(samples[layer]),
                       "memory_bytes": figures["memory_bytes"],
                       "memory_saved_tensors_bytes": figures["memory_saved_tensors_bytes"]})
    if cuda:
        memory_method = "cuda-max-memory-allocated"
        memory = ("torch.cuda.max_memory_allocated over one step (forward, loss, backward, "
                  "AdamW) after reset_peak_memory_stats, less the other layers' switched-off "
                  "adapters")
    else:
        memory_method = "live-storage-peak"
        memory = ("peak bytes of live tensor storage over one step (forward, loss, backward, "
                  "AdamW), tracked per operator by a TorchDispatchMode, on top of the weights, "
                  "buffers, the block's adapter and AdamW moments and the batch alive before it")
    fit = fit_latency([b["flops"] for b in blocks], [b["latency_s"] for b in blocks])
    residuals = latency_residuals(fit, [b["flops"] for b in blocks],
                                  [b["latency_s"] for b in blocks])
    for block, residual in zip(blocks, residuals or [None] * len(blocks)):
        block["latency_fit_residual_s"] = residual
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
                   "weights": settings.weights or "random init"},
        "measurement": {
            "method": "measured", "device": settings.device,
            "flops": "torch.utils.flop_counter.FlopCounterMode, forward + backward",
            "latency": f"median of {settings.repetitions} steps (forward, backward, AdamW) per "
                       f"block, timed interleaved: each round times every block once in a "
                       f"shuffled order (seed {settings.seed}), after {settings.warmup} "
                       "warm-up rounds",
            "timing": {"design": "interleaved", "rounds": settings.repetitions,
                       "warmup_rounds": settings.warmup, "order_seed": settings.seed,
                       "orders_by_depth": orders},
            "memory": memory, "memory_method": memory_method,
            "repetitions": settings.repetitions, "warmup": settings.warmup,
            "seed": settings.seed, "host": _host(torch, settings),
            "profiling_time_s": elapsed},
        "checks": {"monotone": monotonicity_report(blocks),
                   "latency_fit": fit},
        "blocks": blocks,
    }
    return document


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
    if len(blocks) < 3:
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
    if not math.isfinite(document["measurement"]["profiling_time_s"]):
        lines.append("profiling time unknown")
    else:
        lines.append(f"profiled in {document['measurement']['profiling_time_s']:.1f} s")
    return "\n".join(lines)
