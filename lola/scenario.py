"""Scenarios: blocks, devices, channel and server, loaded from YAML or JSON and validated.

The file format is the one of the specification (section 5). Every problem is reported as a
:class:`ScenarioError` that names the file and the key path, e.g.::

    lab.yaml: devices[3].memory_bytes: must be a positive finite number, got -5

Examples
--------
>>> scenario = load_scenario({
...     "model": {"blocks": [{"name": "b1", "flops": 1e9, "memory_bytes": 1e9, "params": 100}]},
...     "devices": [{"name": "d1", "flops_per_s": 1e9, "memory_bytes": 2e9,
...                  "spectral_efficiency": 4.0}],
...     "channel": {"total_bandwidth_hz": 1e6}})
>>> scenario.devices[0].name, scenario.model.blocks[0].payload_bits
('d1', 3200.0)
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import yaml

from ._hints import closest

__all__ = ["ScenarioError", "Block", "Device", "Channel", "Server", "Model", "Scenario",
           "load_scenario", "read_document", "DEFAULT_NOISE_PSD_W_PER_HZ", "RATE_MODELS"]

# Thermal noise at 290 K: -174 dBm/Hz (kT with Boltzmann's constant), in W/Hz.
DEFAULT_NOISE_PSD_W_PER_HZ = 10 ** (-174 / 10) * 1e-3
RATE_MODELS = ("fixed", "shannon")


class ScenarioError(ValueError):
    """A scenario (or profile) that cannot be used, with the file and the key path at fault."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.reason, self.key, self.source = message, key, source
        super().__init__(message)

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.key) if p]
        text = ": ".join(parts + [self.reason])
        # One line, whatever the file name or the keys contain.
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Block:
    """One block of trainable parameters; ``depth`` 1 is the block nearest the output."""

    name: str
    flops: float
    memory_bytes: float
    params: float
    depth: int
    bits_per_param: float = 32
    # Section 8: what the block adds to a step that already reaches a deeper block (0 when a
    # scenario's inline blocks do not say; measured profiles always do).
    extra_flops: float = 0.0
    extra_memory_bytes: float = 0.0
    # Section 9: split mode (all four or none).
    split_device_flops: float | None = None
    split_server_flops: float | None = None
    split_memory_bytes: float | None = None
    cut_bytes: float | None = None

    @property
    def payload_bits(self) -> float:
        """S_n = q D_n."""
        return self.bits_per_param * self.params

    @property
    def splittable(self) -> bool:
        """Whether the block carries the split-mode costs of section 9."""
        return self.split_device_flops is not None


@dataclass(frozen=True)
class Device:
    """One device. ``compute_power_w`` (W while training) and ``energy_budget_j`` (J per round)
    are optional (section 10); a budget needs ``compute_power_w`` and ``tx_power_w``, which any
    rate model accepts (``shannon`` also requires it for the rate)."""

    name: str
    flops_per_s: float
    memory_bytes: float
    spectral_efficiency: float | None = None
    tx_power_w: float | None = None
    channel_gain: float | None = None
    bandwidth_hz: float | None = None
    compute_power_w: float | None = None
    energy_budget_j: float | None = None
    max_blocks: int | None = None  # c_k (section 8); None: the solve's default (1)
    downlink_bps: float | None = None  # R^down_k (section 9)


@dataclass(frozen=True)
class Channel:
    total_bandwidth_hz: float
    rate_model: str = "fixed"
    noise_psd_w_per_hz: float = DEFAULT_NOISE_PSD_W_PER_HZ


@dataclass(frozen=True)
class Server:
    flops_per_s: float


@dataclass(frozen=True)
class Model:
    blocks: tuple
    bits_per_param: float = 32
    batch_bytes: float | None = None
    profile: str | None = None
    profile_info: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    model: Model
    devices: tuple
    channel: Channel
    server: Server | None = None
    source: str | None = None

    @property
    def blocks(self) -> tuple:
        return self.model.blocks


# ---------------------------------------------------------------------------------------------
# Reading documents


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e9`` as a string; scenario files are full of such numbers, so floats
    follow YAML 1.2 (a dot is optional). Duplicate mapping keys are errors, not overwrites."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if getattr(yaml, "__with_libyaml__", False) and hasattr(yaml, "CSafeLoader"):
    class _CLoader(yaml.CSafeLoader):
        """:class:`_Loader`'s rules (YAML 1.2 floats, duplicate keys refused) on libyaml's C
        parser, several times faster."""

    _CLoader.yaml_implicit_resolvers = {first: list(resolvers) for first, resolvers
                                        in _Loader.yaml_implicit_resolvers.items()}
    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    YAML_LOADER = _CLoader
else:  # PyYAML without libyaml: the pure-Python loader, same documents
    YAML_LOADER = _Loader

# ---------------------------------------------------------------------------------------------
# Fast YAML path for long device lists. Even with libyaml, PyYAML builds a Python node for every
# scalar: 10^6 devices take minutes. A device list written as ``lola scenario generate`` (and
# PyYAML) writes it, one flat flow mapping a line of plain names and numbers, is read here line
# by line instead; the rest of the file goes through the loader. Anything else in the list (a
# quoted or reserved word, a comment, a blank line, a tab, an anchor, a duplicate key, a number
# the simple patterns below do not cover) sends the whole file to the loader, so the document
# is always the one the loader gives, and so are its errors.

FAST_YAML_MIN_DEVICES = 256  # shorter lists: the loader is quick enough
_FAST_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_FAST_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)")
_FAST_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FAST_FLOATS = re.compile(rf"(?:(?:{_FAST_FLOAT.pattern})\n)*(?:{_FAST_FLOAT.pattern})")
_FAST_NAMES = re.compile(rf"(?:(?:{_FAST_NAME.pattern})\n)*(?:{_FAST_NAME.pattern})")
# Plain words YAML 1.1 reads as booleans or null (PyYAML's lists are case-sensitive; refusing
# any case only sends more files to the loader).
_FAST_RESERVED = {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
_DEVICES_LINE = "devices:\n"
_LIST_END = re.compile(r"\n(?!- |  )")  # the end of the line before one that is no item
_SENTINEL = "lola-fast-devices-7f3c1e"


def _fast_scalar(text, cache):
    """The value of one plain scalar of a device line, or raise KeyError when it is not simple."""
    value = cache.get(text)
    if value is None:
        if _FAST_FLOAT.fullmatch(text):
            value = float(text)
        elif _FAST_INT.fullmatch(text):
            value = int(text)
        elif _FAST_NAME.fullmatch(text) and text.lower() not in _FAST_RESERVED:
            value = text
        else:
            raise KeyError(text)
        if type(value) is not str:  # names are unique: caching them only costs memory
            cache[text] = value
    return value


def _fast_device_block(text: str, progress=None):
    """(the text with the device list blanked out, the devices) or None (use the loader)."""
    if "\r" in text or "\t" in text or _SENTINEL in text:
        return None
    if text.startswith(_DEVICES_LINE):
        start = 0
    else:
        start = text.find("\n" + _DEVICES_LINE) + 1
        if start == 0 or text.find("\n" + _DEVICES_LINE, start) != -1:
            return None
    body_start = start + len(_DEVICES_LINE)
    # The list runs while lines start with "- " (an item) or "  " (a wrapped item); the next
    # line must start a top-level key (or the file ends).
    length = len(text)
    after = _LIST_END.search(text, body_start - 1)
    end = after.start() + 1 if after else length
    if end < length and not (text[end].isalpha() or text[end] in "_\"'"):
        return None
    body = text[body_start:end]
    if body.count("\n- ") + body.startswith("- ") < FAST_YAML_MIN_DEVICES:
        return None
    joined = body.replace("\n  ", " ")
    if progress is not None:
        progress.total = max(joined.count("\n"), 1)
        progress.update(progress.total // 10)
    devices = _fast_uniform_devices(joined)
    if devices is None:
        devices = _fast_devices_one_by_one(joined, progress)
    if devices is None:
        return None
    rest = (text[:start] + f"devices: {_SENTINEL}\n" + "\n" * body.count("\n")
            + text[end:])
    return rest, devices


_FAST_FIELD = r"([^,{}\n]*)"


def _fast_uniform_devices(joined: str):
    """The devices when every line has the keys of the first, in its order (a generated file):
    one regular expression over the whole list, each distinct value parsed once; else None."""
    first = joined[:joined.find("\n")]
    if not (first.startswith("- {") and first.endswith("}")):
        return None
    keys = [pair.partition(": ")[0] for pair in first[3:-1].split(", ")]
    if len(set(keys)) != len(keys) or not all(
            _FAST_NAME.fullmatch(key) and key.lower() not in _FAST_RESERVED for key in keys):
        return None
    pattern = re.compile("^- {" + ", ".join(f"{re.escape(key)}: {_FAST_FIELD}" for key in keys)
                         + "}$", re.M)
    rows = pattern.findall(joined)
    if len(rows) != joined.count("\n") + (not joined.endswith("\n")):
        return None
    if len(keys) == 1:
        rows = [(row,) for row in rows]
    columns = []
    cache = {}
    try:
        for column in zip(*rows):
            distinct = set(column)
            lines = "\n".join(distinct)
            if _FAST_FLOATS.fullmatch(lines):  # all floats: parse each distinct text once
                values = dict(zip(distinct, map(float, distinct)))
                values = list(map(values.__getitem__, column))
            elif _FAST_NAMES.fullmatch(lines) and _FAST_RESERVED.isdisjoint(
                    map(str.lower, distinct)):
                values = list(column)
            else:
                values = {text: _fast_scalar(text, cache) for text in distinct}
                values = list(map(values.__getitem__, column))
            columns.append(values)
    except KeyError:
        return None
    return [dict(zip(keys, row)) for row in zip(*columns)]


def _fast_devices_one_by_one(joined: str, progress=None):
    """The devices, line by line (any keys in any order); None when one is not simple."""
    items = joined.split("\n")
    if items and items[-1] == "":
        items.pop()
    devices = []
    cache = {}
    keys_seen = set()
    step = 65536
    try:
        for first in range(0, len(items), step):
            for item in items[first:first + step]:
                if not (item.startswith("- {") and item.endswith("}")):
                    return None
                pairs = item[3:-1].split(", ")
                device = {}
                for pair in pairs:
                    key, separator, value = pair.partition(": ")
                    if key not in keys_seen:
                        if not (_FAST_NAME.fullmatch(key) and key.lower() not in _FAST_RESERVED):
                            return None
                        keys_seen.add(key)
                    device[key] = _fast_scalar(value, cache)
                    if not separator:
                        return None
                if len(device) != len(pairs):
                    return None  # a duplicate key: the loader says where
                devices.append(device)
            if progress is not None:
                progress.update(first + step)
    except KeyError:
        return None
    return devices


def _load_yaml(text: str, progress=None):
    """The document of a YAML text: its device list by :func:`_fast_device_block` where it can,
    the rest (or all) by :data:`YAML_LOADER`."""
    fast = _fast_device_block(text, progress)
    if fast is None:
        return yaml.load(text, Loader=YAML_LOADER)
    rest, devices = fast
    document = yaml.load(rest, Loader=YAML_LOADER)
    if not (isinstance(document, dict) and document.get("devices") == _SENTINEL):
        return yaml.load(text, Loader=YAML_LOADER)  # not the list it looked like
    document["devices"] = devices
    return document


def _reject_duplicate_json_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def read_document(path, *, progress=None) -> dict:
    """Read a YAML or JSON file into a mapping, raising :class:`ScenarioError` naming the file.

    JSON for a name ending in .json, YAML otherwise (libyaml's C parser where PyYAML has it,
    long device lists line by line). ``progress`` (a :class:`lola._progress.Progress`) hears
    how many devices of a long YAML list are read."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as err:
        raise ScenarioError(f"cannot read the file: {err.strerror or err}", source=source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(f"not UTF-8 text (byte {err.start})", source=source) from None
    try:
        if source.lower().endswith(".json"):
            document = json.loads(text, object_pairs_hook=_reject_duplicate_json_keys,
                                  parse_constant=lambda name: float(name))
        else:
            document = _load_yaml(text, progress)
    except json.JSONDecodeError as err:
        raise ScenarioError(f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}",
                            source=source) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ScenarioError(f"malformed YAML{where}: {problem}", source=source) from None
    except (ValueError, RecursionError) as err:
        raise ScenarioError(f"malformed document: {err}", source=source) from None
    if not isinstance(document, dict):
        raise ScenarioError(f"the top level must be a mapping, got {_kind(document)}",
                            source=source)
    return document


# ---------------------------------------------------------------------------------------------
# Validation helpers: each raises ScenarioError with the key path.


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Checker:
    def __init__(self, source):
        self.source = source

    def fail(self, key, message):
        raise ScenarioError(message, key=key, source=self.source)

    def mapping(self, value, key, *, required, optional=()):
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                self.fail(key, f"keys must be strings, got {_show(name)}")
        unknown = [name for name in value if name not in required and name not in optional]
        if unknown:
            known = sorted({*required, *optional})
            match = closest(unknown[0], known)
            hint = f"did you mean {match!r}? " if match is not None else ""
            name = unknown[0] if unknown[0].isidentifier() else repr(unknown[0])
            self.fail(f"{key}.{name}" if key else name,
                      f"unknown key ({hint}allowed here: {', '.join(known)})")
        for name in required:
            if name not in value:
                self.fail(f"{key}.{name}" if key else name, "missing required key")
        return value

    def positive(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be a positive finite number, got {_kind(value)} {_show(value)}"
                      if isinstance(value, str) else
                      f"must be a positive finite number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:
            self.fail(key, f"must be a positive finite number, got {_show(value)} (too large)")
        if not math.isfinite(number) or number <= 0:
            self.fail(key, f"must be a positive finite number, got {_show(value)}")
        return number

    def non_negative(self, value, key):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            return 0.0
        try:
            return self.positive(value, key)
        except ScenarioError:
            self.fail(key, f"must be a finite number >= 0, got {_show(value)}"
                      if isinstance(value, (int, float)) and not isinstance(value, bool) else
                      f"must be a finite number >= 0, got {_kind(value)}")

    def whole(self, value, key, *, minimum=1):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            shown = _show(value) if isinstance(value, (int, float)) else _kind(value)
            self.fail(key, f"must be an integer >= {minimum}, got {shown}")
        return int(value)

    def text(self, value, key):
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {_kind(value)}")
        if not value.strip():
            self.fail(key, "must not be empty")
        return value

    def items(self, value, key):
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {_kind(value)}")
        if not value:
            self.fail(key, "must not be empty")
        return value

    def unique_names(self, items, key):
        seen = {}
        for i, item in enumerate(items):
            if item.name in seen:
                self.fail(f"{key}[{i}].name",
                          f"duplicate name {item.name!r} (also {key}[{seen[item.name]}])")
            seen[item.name] = i


_BLOCK_KEYS = ("name", "flops", "memory_bytes", "params")
EXTRA_KEYS = ("extra_flops", "extra_memory_bytes")  # section 8, each >= 0, default 0
SPLIT_KEYS = ("split_device_flops", "split_server_flops", "split_memory_bytes",
              "cut_bytes")  # section 9, all or none
_DEVICE_REQUIRED = ("name", "flops_per_s", "memory_bytes")
_DEVICE_OPTIONAL = ("spectral_efficiency", "tx_power_w", "channel_gain", "bandwidth_hz",
                    "compute_power_w", "energy_budget_j", "downlink_bps")
_RATE_KEYS = {"fixed": ("spectral_efficiency",), "shannon": ("tx_power_w", "channel_gain")}


def _parse_blocks(check, entries, key, bits_per_param):
    blocks = []
    for i, entry in enumerate(check.items(entries, key)):
        here = f"{key}[{i}]"
        check.mapping(entry, here, required=_BLOCK_KEYS, optional=EXTRA_KEYS + SPLIT_KEYS)
        blocks.append(Block(name=check.text(entry["name"], f"{here}.name"),
                            flops=check.positive(entry["flops"], f"{here}.flops"),
                            memory_bytes=check.positive(entry["memory_bytes"],
                                                        f"{here}.memory_bytes"),
                            params=check.positive(entry["params"], f"{here}.params"),
                            depth=i + 1, bits_per_param=bits_per_param,
                            **block_model_keys(check, entry, here)))
    check.unique_names(blocks, key)
    return tuple(blocks)


def block_model_keys(check, entry, here) -> dict:
    """The optional cost keys of sections 8 and 9 of one block entry, validated.

    ``extra_flops`` and ``extra_memory_bytes`` must be >= 0 (absent: 0); the four split keys
    are positive and come all together or not at all.
    """
    values = {name: check.non_negative(entry[name], f"{here}.{name}")
              for name in EXTRA_KEYS if name in entry}
    given = [name for name in SPLIT_KEYS if name in entry]
    if given and len(given) < len(SPLIT_KEYS):
        missing = next(name for name in SPLIT_KEYS if name not in entry)
        check.fail(f"{here}.{missing}", f"missing: the split-mode keys {', '.join(SPLIT_KEYS)} "
                                        f"come together or not at all ({given[0]} is given)")
    values.update({name: check.positive(entry[name], f"{here}.{name}") for name in given})
    return values


def _parse_model(check, raw, base_dir):
    check.mapping(raw, "model", required=(),
                  optional=("profile", "blocks", "bits_per_param", "batch_bytes"))
    bits = check.positive(raw.get("bits_per_param", 32), "model.bits_per_param")
    batch = raw.get("batch_bytes")
    batch = None if batch is None else check.positive(batch, "model.batch_bytes")
    if ("profile" in raw) == ("blocks" in raw):
        check.fail("model", "give exactly one of 'profile' (a bundled name or a file) and "
                            "'blocks' (the blocks inline)")
    if "blocks" in raw:
        return Model(_parse_blocks(check, raw["blocks"], "model.blocks", bits), bits, batch)
    from .profiles import load_profile  # late: profiles use this module's checker

    name = check.text(raw["profile"], "model.profile")
    try:
        profile = load_profile(name, base_dir=base_dir)
    except ScenarioError as err:
        if err.source is None:
            err.source, err.key = check.source, "model.profile"
            raise
        # The profile file itself is at fault: name it, and the scenario key that points to it.
        where = ": ".join(part for part in (err.source, err.key) if part)
        raise ScenarioError(f"profile {where}: {err.reason}", key="model.profile",
                            source=check.source) from None
    blocks = tuple(replace(b, bits_per_param=bits) for b in profile.blocks)
    return Model(blocks, bits, batch, profile=name, profile_info=profile.info)


def _parse_device(check, entry, here, rate_model):
    check.mapping(entry, here, required=_DEVICE_REQUIRED + _RATE_KEYS[rate_model],
                  optional=_DEVICE_OPTIONAL + ("max_blocks",))
    values = {name: check.positive(entry[name], f"{here}.{name}")
              for name in _DEVICE_REQUIRED[1:] + _DEVICE_OPTIONAL if name in entry}
    if "max_blocks" in entry:
        values["max_blocks"] = check.whole(entry["max_blocks"], f"{here}.max_blocks")
    if "energy_budget_j" in values:
        # E_k = compute_power_w compute_s + tx_power_w upload_s: a budget needs both powers.
        for power in ("compute_power_w", "tx_power_w"):
            if power not in values:
                check.fail(f"{here}.{power}", "required when energy_budget_j is given")
    return Device(name=check.text(entry["name"], f"{here}.name"), **values)


# Every field of a Device, in order, with its default (None for the required ones).
_DEVICE_TEMPLATE = {f.name: None if f.default is MISSING else f.default for f in fields(Device)}


def _checked_device(entry: dict) -> Device:
    """``Device(**entry)`` for an entry already checked, without the frozen dataclass's
    ``__init__`` (a third of the time: it sets each field through ``object.__setattr__``). The
    object is the same: every field set, in order; equal, hashable and printable alike."""
    device = object.__new__(Device)
    values = device.__dict__
    values.update(_DEVICE_TEMPLATE)
    values.update(entry)
    return device


FAST_MIN_DEVICES = 256  # shorter device lists are checked one by one, as they always were
_NUMBER_TYPES = {int, float}


def _parse_devices_at_once(entries: list, rate_model: str, progress=None):
    """The devices of a long, valid list, checked column by column (numpy) instead of device by
    device; None when the list is short or anything in it is amiss, so that the per-device check
    finds the first problem and names it exactly as it always has."""
    count = len(entries)
    if count < FAST_MIN_DEVICES or set(map(type, entries)) != {dict}:
        return None
    required = set(_DEVICE_REQUIRED + _RATE_KEYS[rate_model])
    allowed = required | set(_DEVICE_OPTIONAL) | {"max_blocks"}
    present = set()
    for keys in set(map(tuple, entries)):  # the distinct key sequences: one in a generated list
        names = set(keys)
        if not (required <= names <= allowed):
            return None
        if "energy_budget_j" in names and not {"compute_power_w", "tx_power_w"} <= names:
            return None
        present |= names
    names = [entry["name"] for entry in entries]
    if set(map(type, names)) != {str} or not all(map(str.strip, names)) or \
            len(set(names)) != count:
        return None
    if progress is not None:
        progress.update(count // 4)
    convert = []  # keys whose values include ints, which the Device gets as floats
    for key in sorted(present - {"name"}):
        values = [entry[key] for entry in entries if key in entry]
        types = set(map(type, values))
        if key == "max_blocks":
            if types != {int} or min(values) < 1:
                return None
            continue
        if not types <= _NUMBER_TYPES:
            return None
        try:
            column = np.array(values, dtype=float)
        except (OverflowError, ValueError, TypeError):
            return None
        with np.errstate(invalid="ignore"):
            if not (np.isfinite(column).all() and (column > 0).all()):
                return None
        if int in types:
            convert.append(key)
    if progress is not None:
        progress.update(count // 2)
    if convert:
        keep = {"name", "max_blocks"}
        entries = [{key: value if key in keep else float(value) for key, value in entry.items()}
                   for entry in entries]
    devices = tuple(map(_checked_device, entries))
    if progress is not None:
        progress.update(count)
    return devices


def _parse(document: dict, source: str, base_dir: Path, progress=None) -> Scenario:
    check = _Checker(source)
    check.mapping(document, "", required=("model", "devices", "channel"),
                  optional=("name", "server"))
    name = document.get("name")
    if name is None:
        name = Path(source).stem if source and not source.startswith("<") else "scenario"
    else:
        name = check.text(name, "name")
    channel_raw = check.mapping(document["channel"], "channel", required=("total_bandwidth_hz",),
                                optional=("rate_model", "noise_psd_w_per_hz"))
    rate_model = channel_raw.get("rate_model", "fixed")
    if rate_model not in RATE_MODELS:
        check.fail("channel.rate_model", f"must be 'fixed' or 'shannon', got {_show(rate_model)}")
    channel = Channel(check.positive(channel_raw["total_bandwidth_hz"],
                                     "channel.total_bandwidth_hz"), rate_model,
                      check.positive(channel_raw.get("noise_psd_w_per_hz",
                                                     DEFAULT_NOISE_PSD_W_PER_HZ),
                                     "channel.noise_psd_w_per_hz"))
    model = _parse_model(check, document["model"], base_dir)
    entries = check.items(document["devices"], "devices")
    devices = _parse_devices_at_once(entries, rate_model, progress)
    if devices is None:  # something is wrong (or the list is short): find it, device by device
        devices = tuple(_parse_device(check, entry, f"devices[{i}]", rate_model)
                        for i, entry in enumerate(entries))
        check.unique_names(devices, "devices")
    server = None
    if document.get("server") is not None:
        raw = check.mapping(document["server"], "server", required=("flops_per_s",))
        server = Server(check.positive(raw["flops_per_s"], "server.flops_per_s"))
    return Scenario(name, model, devices, channel, server, source)


def load_scenario(path_or_dict) -> Scenario:
    """Load and validate a scenario from a YAML/JSON file path or an already-parsed mapping.

    Raises
    ------
    ScenarioError
        A ``ValueError`` whose message names the file and the offending key.
    """
    if isinstance(path_or_dict, Scenario):
        return path_or_dict
    from ._progress import Progress, paused_gc

    if isinstance(path_or_dict, dict):
        with paused_gc():
            return _parse(path_or_dict, "<dict>", Path.cwd())
    if isinstance(path_or_dict, (str, os.PathLike)):
        source = os.fspath(path_or_dict)
        with paused_gc(), Progress(f"reading {source}", 1) as progress:
            document = read_document(source, progress=progress)
            devices = document.get("devices")
            progress.total = max(len(devices) if isinstance(devices, list) else 1, 1)
            progress.label = f"checking {source}"
            return _parse(document, source, Path(source).resolve().parent, progress)
    raise TypeError(f"load_scenario takes a path or a mapping, got {type(path_or_dict).__name__}")
