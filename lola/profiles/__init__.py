"""Block cost profiles: bundled tables (JSON beside this file) and their loader.

A profile is one JSON document (specification, section 7): the model and its fine-tuning
configuration, how the figures were obtained (``measurement.method``), and per block ``name``,
``layer``, ``depth`` (1 nearest the output), ``params``, ``flops``, ``latency_s`` and
``memory_bytes``; measured tables may add the timing spread (``latency_spread_s``,
``latency_min_s``, ``latency_max_s``, ``latency_iqr_s``, ``latency_samples_s``), the residual of
the latency fit (``latency_fit_residual_s``, measured blocks only) and the saved-tensor lower
bound of the memory
(``memory_saved_tensors_bytes``). A block may also carry what it adds to a step that already
reaches a deeper block (section 8: ``extra_flops`` = delta_n and ``extra_memory_bytes`` = mu_n,
each >= 0, 0 when absent) and its split-mode costs (section 9: ``split_device_flops`` = F^dev_n,
``split_server_flops`` = F^srv_n, ``split_memory_bytes`` = m^split_n and ``cut_bytes`` = A_n,
each > 0, all four or none); the profiler measures all six.

Bundled: ``roberta-base`` and ``roberta-large`` (one block per layer) and ``minilm-l6``, the
pretrained all-MiniLM-L6-v2 that the race fine-tunes: its classification head is block
``classifier`` at depth 1 (an entry without ``layer``), then ``layer.5`` ... ``layer.0``. The
decoders, fine-tuned with LoRA of rank 16 on every linear map, batch 4 x 512 tokens, bfloat16,
one block per layer: ``gpt2``, ``qwen2.5-0.5b`` and ``llama-3-8b``. Each was measured on its first
layers and extrapolated to all of them (``measurement.method == "extrapolated"``;
``measurement.extrapolation`` says from how many layers, which figures are exact, and in
``latency_slope`` whether the timing resolved the cost of one layer).

>>> profile = load_profile("roberta-base")
>>> len(profile.blocks), profile.blocks[0].depth, profile.info["measurement"]["method"]
(12, 1, 'measured')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..scenario import EXTRA_KEYS, SPLIT_KEYS, Block, ScenarioError, _Checker, \
    block_model_keys, read_document

__all__ = ["Profile", "load_profile", "bundled_profiles", "PROFILE_DIR"]

PROFILE_DIR = Path(__file__).resolve().parent
_BLOCK_REQUIRED = ("name", "depth", "params", "flops", "memory_bytes")
_BLOCK_OPTIONAL = ("layer", "latency_s", "latency_spread_s", "latency_min_s", "latency_max_s",
                   "latency_iqr_s", "latency_samples_s", "latency_fit_residual_s",
                   "memory_saved_tensors_bytes", *EXTRA_KEYS, *SPLIT_KEYS)


@dataclass(frozen=True)
class Profile:
    blocks: tuple  # of Block, depth 1 first
    info: dict     # everything but the blocks: model, config, measurement
    source: str
    latency_s: tuple = ()         # measured median step latency per block, depth 1 first
    latency_spread_s: tuple = ()  # max - min of the timed steps, when recorded


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with LoLa."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _resolve(name: str, base_dir) -> Path:
    bundled = PROFILE_DIR / f"{name}.json"
    if "/" not in name and "\\" not in name and not name.endswith((".json", ".yaml", ".yml")):
        if bundled.is_file():
            return bundled
        raise ScenarioError(f"no bundled profile {name!r} (bundled: "
                            f"{', '.join(bundled_profiles())}); give a path to a profile file "
                            "to use your own")
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def load_profile(name: str, *, base_dir=None) -> Profile:
    """Load a bundled profile by name, or a profile file by path (relative to ``base_dir``)."""
    path = _resolve(name, base_dir)
    source = str(path)
    document = read_document(path)
    check = _Checker(source)
    if "blocks" not in document:
        check.fail("blocks", "missing required key")
    entries = check.items(document["blocks"], "blocks")
    blocks = []
    for i, entry in enumerate(entries):
        here = f"blocks[{i}]"
        check.mapping(entry, here, required=_BLOCK_REQUIRED, optional=_BLOCK_OPTIONAL)
        depth = entry["depth"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            check.fail(f"{here}.depth", f"must be a positive integer, got {depth!r}")
        latency = entry.get("latency_s")
        if latency is not None:
            check.positive(latency, f"{here}.latency_s")
        blocks.append(Block(name=check.text(entry["name"], f"{here}.name"),
                            flops=check.positive(entry["flops"], f"{here}.flops"),
                            memory_bytes=check.positive(entry["memory_bytes"],
                                                        f"{here}.memory_bytes"),
                            params=check.positive(entry["params"], f"{here}.params"),
                            depth=depth, **block_model_keys(check, entry, here)))
    depths = sorted(b.depth for b in blocks)
    if depths != list(range(1, len(blocks) + 1)):
        check.fail("blocks", f"depths must be 1..{len(blocks)} once each, got {depths}")
    check.unique_names(blocks, "blocks")
    info = {key: value for key, value in document.items() if key != "blocks"}
    by_depth = sorted(entries, key=lambda entry: entry["depth"])
    latency = tuple(entry.get("latency_s") for entry in by_depth)
    spread = tuple(entry.get("latency_spread_s") for entry in by_depth)
    return Profile(tuple(sorted(blocks, key=lambda b: b.depth)), info, source,
                   latency if None not in latency else (),
                   spread if None not in spread else ())
