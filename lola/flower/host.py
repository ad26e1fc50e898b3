"""The cost model's side of a DEFT run: the model's blocks measured on this host.

The run's model is profiled on this host with :func:`lola.profiling.profile_model` (the same
settings: architecture, LoRA rank and targets, batch size, sequence length, threads), or read
from a profile file of that model made on this host (``--host-profile``). The profile gives, per
block n (depth 1 first), the FLOPs C_n of a step that trains block n, its measured median time
t_n, and, when the profiler measures them, the FLOPs delta_n that block n adds to a step that
already reaches a deeper block (section 8).

**The host's throughput.** The cost model says a step takes C / f on a device of throughput f
(section 2). The host's f is read off the profile the same way:

    f_host = sum_n C_n / sum_n t_n

the throughput at which C / f reproduces the profile's total measured time over all depths.
(``host_profile.latency_fit`` keeps the profiler's straight-line fit t = a + C / f as well, for
comparison; C / f has no intercept a, so the shallow blocks, where a weighs most, are the ones
the model is expected to under-predict.)

**The prediction for a block set.** A client that trains the set A with deepest block d runs one
step of

    C(A) = C_d + sum_{n in A, n != d} delta_n,     predicted_compute_s_host = C(A) / f_host.

A profile without ``extra_flops`` gives delta_n = 0 (``extra_flops_source`` says so): the
prediction is then C_d / f_host whatever else A holds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HostCosts", "measure_host", "load_host_profile", "HostProfileError"]


class HostProfileError(ValueError):
    """A host profile that does not describe the run's model."""


@dataclass
class HostCosts:
    """Per-block costs of the run's model on this host (module docstring)."""

    blocks: list          # depth order: dicts with name, flops, memory_bytes, params, latency_s
    host_flops_per_s: float
    extra_flops_source: str   # "profile" or why every delta_n is taken as 0
    source: str               # "measured on this host" or the profile file
    document: dict = field(repr=False, default_factory=dict)

    def __post_init__(self):
        self._by_name = {block["name"]: block for block in self.blocks}

    @property
    def names(self) -> list:
        return [block["name"] for block in self.blocks]

    def depth(self, name: str) -> int:
        return self._by_name[name]["depth"]

    def flops(self, names) -> float:
        """C(A) = C_d + sum_{n in A, n != d} delta_n, d the deepest block of A."""
        names = list(names)
        if not names:
            return 0.0
        deepest = max(names, key=self.depth)
        return float(self._by_name[deepest]["flops"] + sum(
            self._by_name[n].get("extra_flops", 0.0) for n in names if n != deepest))

    def predicted_s(self, names) -> float:
        """C(A) / f_host."""
        return self.flops(names) / self.host_flops_per_s

    def scenario_blocks(self) -> list:
        """The blocks for a scenario (section 5 keys, and section 8's where measured)."""
        keys = ("name", "flops", "memory_bytes", "params", "extra_flops", "extra_memory_bytes")
        return [{key: block[key] for key in keys if key in block} for block in self.blocks]

    def summary(self) -> dict:
        """What the run's JSON says about the host side."""
        checks = self.document.get("checks", {})
        host = self.document.get("measurement", {}).get("host", {})
        return {"source": self.source,
                "host_flops_per_s": self.host_flops_per_s,
                "definition": "sum of the profile's block FLOPs / sum of their median measured "
                              "step times",
                "extra_flops_source": self.extra_flops_source,
                "latency_fit": checks.get("latency_fit"),
                "cpu": host.get("cpu"), "threads": host.get("threads"),
                "blocks": [{key: block.get(key) for key in
                            ("name", "depth", "flops", "extra_flops", "latency_s")}
                           for block in self.blocks]}


def _from_document(document: dict, source: str) -> HostCosts:
    blocks = sorted(document["blocks"], key=lambda block: block["depth"])
    total_flops = sum(block["flops"] for block in blocks)
    total_s = sum(block["latency_s"] for block in blocks)
    if not (math.isfinite(total_s) and total_s > 0 and total_flops > 0):
        raise HostProfileError(f"{source}: the profile has no usable step times")
    if all("extra_flops" in block for block in blocks):
        extra = "profile"
    else:
        extra = ("absent from the profile: every delta_n taken as 0, so C(A) = C_d for a "
                 "client with several blocks")
        blocks = [{k: v for k, v in block.items() if k != "extra_flops"} for block in blocks]
    return HostCosts(blocks=blocks, host_flops_per_s=total_flops / total_s,
                     extra_flops_source=extra, source=source, document=document)


def measure_host(spec, *, repetitions: int = 5, warmup: int = 2, threads: int = 1,
                 progress: bool = False) -> HostCosts:
    """Profile the run's model (a :class:`lola.flower.training.ModelSpec`) on this host."""
    from dataclasses import replace

    from ..profiling import profile_model

    settings = replace(spec.profile_settings(repetitions=repetitions, warmup=warmup),
                       threads=threads)
    document = profile_model(settings, progress=progress)
    return _from_document(document, "measured on this host")


# The profile's configuration entries that must match the run's model, and the run option that
# sets each.
_MATCH = (("batch_size", "--batch-size"), ("sequence_length", "--sequence-length"),
          ("rank", "rank"), ("lora_alpha", "alpha"), ("target_modules", "target modules"),
          ("num_hidden_layers", "--model"), ("hidden_size", "--model"),
          ("intermediate_size", "--model"), ("num_attention_heads", "--model"))


def load_host_profile(path, spec) -> HostCosts:
    """A profile file (``lola profile`` output) of the run's model made on this host.

    Its configuration must be the run's (batch size, sequence length, LoRA rank, alpha and
    targets, layer sizes): a mismatch is a :class:`HostProfileError` naming the entry.
    """
    from ..profiling import MODELS

    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise HostProfileError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise HostProfileError(f"{path}: not a readable profile ({err})") from None
    if not isinstance(document, dict) or not isinstance(document.get("blocks"), list) \
            or not isinstance(document.get("config"), dict):
        raise HostProfileError(f"{path}: not a profile written by 'lola profile' (no config "
                               "and blocks)")
    config = document["config"]
    expected = {**MODELS[spec.preset][1], **spec.overrides, "batch_size": spec.batch_size,
                "sequence_length": spec.sequence_length, "rank": spec.rank,
                "lora_alpha": spec.alpha, "target_modules": list(spec.targets)}
    for key, option in _MATCH:
        if key in config and key in expected and config[key] != expected[key]:
            raise HostProfileError(f"{path}: config.{key} is {config[key]!r}, the run's model "
                                   f"has {expected[key]!r} ({option})")
    for i, block in enumerate(document["blocks"]):
        for key in ("name", "depth", "flops", "latency_s", "memory_bytes", "params"):
            if key not in block:
                raise HostProfileError(f"{path}: blocks[{i}].{key}: missing")
    return _from_document(document, str(path))
