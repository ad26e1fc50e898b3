"""Measure the cost of every block of a real LoRA fine-tuning step (``lola profile``).

For a Hugging Face encoder built from its configuration (no download; ``weights`` loads local
weights when a user has them), and for each layer l, LoRA adapters are attached to that layer
only (peft ``LoraConfig(layers_to_transform=[l])`` on the query and value projections by default),
everything else is frozen, and real training steps run on a synthetic mini-batch: forward over the
whole model, cross-entropy loss, backward (which autograd stops at layer l, since nothing below it
needs a gradient) and an AdamW step on the adapter. Per block it records:

* ``flops``: the FLOPs of forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode``;
* ``latency_s``: the median wall-clock time of ``repetitions`` full steps after ``warmup`` ones,
  with ``latency_spread_s`` (max - min);
* ``memory_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` over a step after
  ``reset_peak_memory_stats``; on CPU, the bytes of the tensors autograd saves for backward
  (``torch.autograd.graph.saved_tensors_hooks``, each storage counted once, parameters excluded)
  plus the weights, the adapter's gradients and its two AdamW moments — the file names the method;
* ``params``: the adapter's trainable parameters.

Blocks are listed with ``depth`` 1 at the output side (the last layer). The document also records
the configuration, the host (CPU, threads, library versions), and the checks: whether FLOPs,
memory and latency are non-decreasing in depth (a noisy latency that breaks monotonicity is
reported, never smoothed), and the least-squares fit latency = a + FLOPs / throughput (fitted
host FLOP/s and R^2).

torch, transformers and peft are the ``profile`` extra: ``pip install 'lola-deft[profile]'``.
"""
from __future__ import annotations

import copy
import json
import math
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .profiles.analytic import ROBERTA_CONFIGS

__all__ = ["ProfileSettings", "MODELS", "profile_model", "write_profile", "fit_latency",
           "monotonicity_report", "ProfilingUnavailable"]


class ProfilingUnavailable(RuntimeError):
    """torch, transformers or peft is missing."""


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


def _build_model(settings: ProfileSettings):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if settings.model not in MODELS:
        raise ValueError(f"unknown model {settings.model!r}; known: {', '.join(MODELS)}")
    model_type, preset, targets = MODELS[settings.model]
    if settings.weights:
        model = AutoModelForSequenceClassification.from_pretrained(
            settings.weights, num_labels=settings.num_labels, local_files_only=True)
    else:
        config = AutoConfig.for_model(model_type, **{**preset, **settings.config},
                                      num_labels=settings.num_labels)
        model = AutoModelForSequenceClassification.from_config(config)
    return model, tuple(settings.target_modules or targets)


def _layer_count(config) -> int:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers")


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


def _saved_tensor_bytes(torch, run_step, parameter_storages):
    """Bytes of the tensors autograd saves for backward during ``run_step``, each storage once."""
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in parameter_storages:
            seen[pointer] = max(seen.get(pointer, 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run_step()
    return sum(seen.values())


def _profile_layer(torch, base_model, targets, layer, settings, inputs):
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings():  # transformers' deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(copy.deepcopy(base_model),
                               LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                                          target_modules=list(targets),
                                          layers_to_transform=[layer], lora_dropout=0.0))
    model.to(device=settings.device, dtype=getattr(torch, settings.dtype))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    cuda = settings.device.startswith("cuda")

    def forward_backward():
        optimizer.zero_grad(set_to_none=True)
        output = model(**inputs)
        output.loss.backward()

    def step():
        forward_backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        forward_backward()
    flops = counter.get_total_flops()
    for _ in range(settings.warmup):
        step()
    times = []
    for _ in range(settings.repetitions):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        step()
        memory = int(torch.cuda.max_memory_allocated())
    else:
        parameters = list(model.parameters())
        storages = {p.untyped_storage().data_ptr() for p in parameters}
        saved = _saved_tensor_bytes(torch, forward_backward, storages)
        weights = sum(p.numel() * p.element_size() for p in parameters)
        adapter = sum(p.numel() * p.element_size() for p in trainable)
        memory = int(saved + weights + 3 * adapter)  # + gradients + two AdamW moments
    params = sum(p.numel() for p in trainable)
    return {"flops": float(flops), "latency_s": statistics.median(times),
            "latency_spread_s": max(times) - min(times), "memory_bytes": float(memory),
            "params": int(params)}


def fit_latency(flops, latency_s) -> dict:
    """Least-squares latency = intercept + FLOPs / throughput, with R^2."""
    flops, latency_s = np.asarray(flops, float), np.asarray(latency_s, float)
    if len(flops) < 2 or np.ptp(flops) == 0:
        return {"throughput_flops_per_s": None, "intercept_s": None, "r_squared": None}
    slope, intercept = np.polyfit(flops, latency_s, 1)
    predicted = intercept + slope * flops
    residual = float(np.sum((latency_s - predicted) ** 2))
    total = float(np.sum((latency_s - latency_s.mean()) ** 2))
    return {"throughput_flops_per_s": float(1 / slope) if slope > 0 else None,
            "intercept_s": float(intercept),
            "r_squared": 1 - residual / total if total > 0 else 1.0}


def monotonicity_report(blocks) -> dict:
    """For flops, memory and latency: the depths at which the value drops below the previous."""
    ordered = sorted(blocks, key=lambda b: b["depth"])
    report = {}
    for key in ("flops", "memory_bytes", "latency_s"):
        values = [b[key] for b in ordered]
        drops = [ordered[i]["depth"] for i in range(1, len(values)) if values[i] < values[i - 1]]
        report[key] = {"non_decreasing": not drops, "drops_at_depth": drops}
    return report


def profile_model(settings: ProfileSettings, *, progress=True) -> dict:
    """Profile every layer and return the profile document (nothing is written)."""
    torch = _import_torch()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    base_model, targets = _build_model(settings)
    for parameter in base_model.parameters():
        parameter.requires_grad_(False)
    config = base_model.config
    layers = _layer_count(config)
    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.batch_size, settings.sequence_length)
    inputs = {"input_ids": torch.randint(3, config.vocab_size, shape, generator=generator),
              "attention_mask": torch.ones(shape, dtype=torch.long),
              "labels": torch.randint(0, settings.num_labels, (settings.batch_size,),
                                      generator=generator)}
    inputs = {key: value.to(settings.device) for key, value in inputs.items()}
    bar = _progress(layers, settings.model, progress)
    blocks = []
    started = time.perf_counter()
    try:
        for layer in range(layers - 1, -1, -1):  # depth 1 first
            figures = _profile_layer(torch, base_model, targets, layer, settings, inputs)
            blocks.append({"name": f"layer.{layer}", "layer": layer, "depth": layers - layer,
                           **figures})
            bar.update(1)
    finally:
        bar.close()
    memory_method = ("torch.cuda.max_memory_allocated after reset_peak_memory_stats"
                     if settings.device.startswith("cuda") else
                     "saved_tensors_hooks bytes + weights + adapter gradients and AdamW moments")
    document = {
        "model": settings.model,
        "config": {"architecture": type(base_model).__name__,
                   **{k: getattr(config, k) for k in sorted(MODELS[settings.model][1])
                      if hasattr(config, k)},
                   **settings.config, "peft": "lora", "rank": settings.rank,
                   "lora_alpha": settings.alpha, "target_modules": list(targets),
                   "batch_size": settings.batch_size,
                   "sequence_length": settings.sequence_length, "dtype": settings.dtype,
                   "num_labels": settings.num_labels, "weights": settings.weights or "random init"},
        "measurement": {
            "method": "measured", "device": settings.device,
            "flops": "torch.utils.flop_counter.FlopCounterMode, forward + backward",
            "latency": f"median of {settings.repetitions} steps (forward, backward, AdamW) "
                       f"after {settings.warmup} warm-up steps",
            "memory": memory_method, "repetitions": settings.repetitions,
            "warmup": settings.warmup, "seed": settings.seed,
            "host": _host(torch, settings),
            "profiling_time_s": time.perf_counter() - started},
        "checks": {"monotone": monotonicity_report(blocks),
                   "latency_fit": fit_latency([b["flops"] for b in blocks],
                                              [b["latency_s"] for b in blocks])},
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
    return tqdm(total=total, desc=f"profiling {label}", unit="layer", file=sys.stderr)


def describe(document: dict) -> str:
    """A short human summary of a profile's checks."""
    lines = []
    for key, check in document["checks"]["monotone"].items():
        state = "non-decreasing in depth" if check["non_decreasing"] else (
            f"NOT monotone: drops at depth {check['drops_at_depth']}")
        lines.append(f"{key}: {state}")
    fit = document["checks"]["latency_fit"]
    if fit["throughput_flops_per_s"]:
        lines.append(f"latency ~ {fit['intercept_s']:.3g} s + FLOPs / "
                     f"{fit['throughput_flops_per_s']:.3g} FLOP/s (R^2 = {fit['r_squared']:.4f})")
    elif fit["r_squared"] is not None:
        lines.append(f"latency does not grow with FLOPs in this run (R^2 = "
                     f"{fit['r_squared']:.4f}); the timings are noise-dominated")
    blocks = sorted(document["blocks"], key=lambda b: b["depth"])
    if len(blocks) > 1:
        flops_step = np.diff([b["flops"] for b in blocks])
        memory_step = np.diff([b["memory_bytes"] for b in blocks])
        lines.append(f"per-layer increment: {np.median(flops_step):.4g} FLOPs, "
                     f"{np.median(memory_step):.4g} bytes (medians over depth)")
    if not math.isfinite(document["measurement"]["profiling_time_s"]):
        lines.append("profiling time unknown")
    else:
        lines.append(f"profiled in {document['measurement']['profiling_time_s']:.1f} s")
    return "\n".join(lines)
