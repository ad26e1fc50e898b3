"""Many rounds (specification, section 11): a fresh channel and fresh availability every round.

Round r (1-based) of a simulation draws, for every device k of the scenario, from the round's
own random stream (``numpy.random.SeedSequence(seed).spawn(R)[r - 1]``, which does not depend
on R), in this order:

* a small-scale fading power gain h_k: ``rayleigh`` (the default), |h|^2 ~ Exp(1), mean 1, as
  :mod:`lola.generate` draws it; ``none``: h_k = 1;
* a log-normal shadowing factor 10^(X_k / 10) with X_k ~ Normal(0, sigma) dB, when
  ``shadowing_db`` = sigma is given (zero-mean in dB: the median gain is kept, not the mean);
* a uniform number U_k in [0, 1) for its availability.

Each array is drawn whether or not it is used, so switching shadowing on does not change the
fading, and round r's draw depends neither on the number of rounds nor on the methods listed.
The product d_k = h_k 10^(X_k/10) (floored at 1e-12, i.e. -120 dB, so that every gain stays
positive) scales the device's **mean** channel, which is the one in the scenario file:

* ``shannon`` rate model: the round's ``channel_gain`` is g_k d_k;
* ``fixed`` rate model: the file's spectral efficiency rho_k is read as the Shannon efficiency of
  a mean SNR, SNR_k = 2^rho_k - 1 (the generator's convention, :mod:`lola.generate`: rho_k =
  log2(1 + P g_k / (N0 F B / N)) at an equal share of the bandwidth), and the round's efficiency
  is min(log2(1 + SNR_k d_k), rho_max) with the generator's 256-QAM cap rho_max =
  :data:`lola.generate.MAX_SPECTRAL_EFFICIENCY` = 7.4063 bit/s/Hz (``max_spectral_efficiency``;
  0 or None switches the cap off). A device already at the cap in the file has a mean SNR of
  at least 2^rho_max - 1; it is taken at exactly that, which understates its good rounds.

With ``fading="none"`` and no shadowing the channel is static: every device keeps the values of
the file. Availability: device k takes part in round r when U_k < p_k, with ``availability``
p_k (one probability for all devices, or a mapping from device names to probabilities; default
1), or, for the devices named in an ``availability_trace``, when the trace says so (see
:func:`load_availability_trace`). Unavailable devices are removed from that round's scenario
(:func:`round_scenario`), which is then solved like any other.

Every method listed solves every round. The ``static`` variant (method ``static-M``, M the first
method listed) keeps round 1's allocation of M for all rounds: in round r the same blocks go to
the same devices, and its latency is recomputed on round r's channel, with the same bandwidths
for ``matching`` and the optimal split of that assignment for ``jbba``
(:func:`solvers.bandwidth.optimal_split`). A round where one of its devices is unavailable, or
its latency is not finite, or a device's energy exceeds its ``energy_budget_j``, counts as
infeasible for it. Its solve time is M's in round 1 and 0 afterwards (it never solves again).

Same seed, same rounds; the solve times alone differ between runs.

>>> simulation = simulate(problem="matching", methods=["crunch", "greedy"], rounds=3, seed=1)
>>> [row["method"] for row in simulation.per_round[:3]]
['crunch', 'greedy', 'static-crunch']
>>> sorted(simulation.to_dict())[:4]
['availability', 'fading', 'max_spectral_efficiency', 'per_round']
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import solvers

from .. import costs
from .._hints import did_you_mean
from .._io import atomic_write_text
from ..generate import MAX_SPECTRAL_EFFICIENCY, dump_yaml
from ..scenario import Scenario, ScenarioError, load_scenario, read_document
from .rows import format_value
from .runner import run_tasks

__all__ = ["simulate", "round_scenario", "round_document", "export_round", "Simulation",
           "load_availability_trace", "plot_cumulative_time", "plot_latency_distribution",
           "add_arguments", "run_command", "format_summary", "FADING_MODELS", "ROW_COLUMNS",
           "STATIC_PREFIX", "MIN_POWER_DRAW"]

FADING_MODELS = ("rayleigh", "none")
STATIC_PREFIX = "static-"
#: Floor of a round's power draw d_k (-120 dB): keeps every gain and efficiency positive.
MIN_POWER_DRAW = 1e-12
#: The columns of a per-round row (``--csv``), in order: the specification's, then
#: ``available_devices``.
ROW_COLUMNS = ("round", "method", "status", "round_latency_s", "solve_time_s", "energy_j",
               "available_devices")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


# ---------------------------------------------------------------------------------------------
# Options


def _option(name: str, cli: bool) -> str:
    return "--" + name.replace("_", "-") if cli else name


def _check_options(*, problem, methods, rounds, seed, fading, shadowing_db, availability,
                   max_spectral_efficiency, cli=False):
    """The methods to run (validated), or a one-line ``ValueError`` naming the option."""
    if problem not in solvers.PROBLEMS:
        raise ValueError(f"{_option('problem', cli)}: unknown problem {problem!r}"
                         f"{did_you_mean(problem, solvers.PROBLEMS)}; choose one of "
                         f"{', '.join(solvers.PROBLEMS)}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"{_option('rounds', cli)}: must be a positive integer, got {rounds!r}")
    _check_draw(seed=seed, fading=fading, shadowing_db=shadowing_db, availability=availability,
                max_spectral_efficiency=max_spectral_efficiency, cli=cli)
    return _check_methods(problem, methods, cli)


def _check_draw(*, seed, fading, shadowing_db, availability, max_spectral_efficiency,
                cli=False) -> None:
    """The options of a round's draw, or a one-line ``ValueError`` naming the option."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{_option('seed', cli)}: must be a non-negative integer, got {seed!r}")
    if fading not in FADING_MODELS:
        raise ValueError(f"{_option('fading', cli)}: unknown fading model {fading!r}"
                         f"{did_you_mean(fading, FADING_MODELS)}; choose one of "
                         f"{', '.join(FADING_MODELS)}")
    if shadowing_db is not None and not (_is_number(shadowing_db) and shadowing_db >= 0):
        raise ValueError(f"{_option('shadowing_db', cli)}: must be a finite standard deviation "
                         f"in dB, at least 0, got {shadowing_db!r}")
    if max_spectral_efficiency not in (None, 0) and not (
            _is_number(max_spectral_efficiency) and max_spectral_efficiency > 0):
        raise ValueError(f"{_option('max_spectral_efficiency', cli)}: must be a positive finite "
                         "number of bit/s/Hz (0 or None switches the cap off), got "
                         f"{max_spectral_efficiency!r}")
    probabilities = availability.values() if isinstance(availability, dict) else [availability]
    for probability in probabilities:
        if probability is not None and not (_is_number(probability) and 0 <= probability <= 1):
            raise ValueError(f"{_option('availability', cli)}: must be a probability in "
                             f"[0, 1], got {probability!r}")


def _check_methods(problem, methods, cli=False) -> list:
    if methods is None:
        methods = [_default_method(problem), "greedy", "min-sum"]
    if isinstance(methods, str):
        methods = [name.strip() for name in methods.split(",") if name.strip()]
    methods = list(methods)
    if not methods:
        raise ValueError(f"{_option('methods', cli)}: name at least one method")
    for name in methods:
        if methods.count(name) > 1:
            raise ValueError(f"{_option('methods', cli)}: {name!r} is listed twice")
        if isinstance(name, str) and name.startswith(STATIC_PREFIX):
            raise ValueError(f"{_option('methods', cli)}: {name!r}: the static variant is "
                             "added by itself (of the first method listed); list the method")
        try:
            solvers.get_method(name, problem)
        except solvers.SolverInputError as err:
            raise ValueError(f"{_option('methods', cli)}: {err}") from None
    return methods


def _is_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                               np.floating))
            and math.isfinite(value))


def _default_method(problem: str) -> str:
    from ..api import default_method

    return default_method(problem)


# ---------------------------------------------------------------------------------------------
# Availability traces


def load_availability_trace(path) -> dict:
    """Per-round availability of named devices, from a CSV or a JSON file.

    CSV: a header ``round,<device>,<device>,...`` and one line per round, rounds 1, 2, ... in
    order, each cell 1/0 (or true/false, yes/no)::

        round,phone-01,laptop-02
        1,1,0
        2,1,1

    JSON: a mapping from device names to one value per round, ``{"phone-01": [1, 1],
    "laptop-02": [0, 1]}`` (1/0 or true/false), every list as long as the others.

    Returns
    -------
    dict
        Device name -> tuple of booleans, round 1 first.

    Raises
    ------
    ScenarioError
        A ``ValueError`` naming the file and the offending column or key (and round).
    """
    source = os.fspath(path)
    if source.lower().endswith(".json"):
        document = read_document(source)  # a mapping, or an error naming the file
        return _trace_from_mapping(document, source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"cannot read the file: {err.strerror or err}", source=source) from None
    except UnicodeDecodeError as err:
        raise ScenarioError(f"not UTF-8 text (byte {err.start})", source=source) from None
    lines = [line for line in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in line)]
    if not lines:
        raise ScenarioError("empty availability trace; the first line must be "
                            "'round,<device>,...'", source=source)
    header = [cell.strip() for cell in lines[0]]
    if header[0] != "round" or len(header) < 2:
        raise ScenarioError("the first line must be 'round,<device>,<device>,...', got "
                            f"{','.join(header)[:40]!r}", key="header", source=source)
    names = header[1:]
    for i, name in enumerate(names):
        if not name:
            raise ScenarioError(f"column {i + 2} has no device name", key="header", source=source)
        if names.index(name) != i:
            raise ScenarioError(f"device {name!r} has two columns", key=name, source=source)
    columns = {name: [] for name in names}
    for number, line in enumerate(lines[1:], start=1):
        cells = [cell.strip() for cell in line]
        if len(cells) != len(header):
            raise ScenarioError(f"round {number}: {len(cells)} cells, the header has "
                                f"{len(header)}", key=f"line {number + 1}", source=source)
        if cells[0] != str(number):
            raise ScenarioError(f"rounds must be 1, 2, 3, ... in order; expected {number}, got "
                                f"{cells[0]!r}", key=f"round (line {number + 1})", source=source)
        for name, cell in zip(names, cells[1:]):
            columns[name].append(_flag(cell.lower(), f"{name} (round {number})", source))
    if not lines[1:]:
        raise ScenarioError("the trace has no rounds, only a header", source=source)
    return {name: tuple(values) for name, values in columns.items()}


def _trace_from_mapping(document, source: str) -> dict:
    if not isinstance(document, dict) or not document:
        raise ScenarioError("the trace must be a non-empty mapping from device names to lists "
                            "of 1/0 per round", source=source)
    trace, length = {}, None
    for name, values in document.items():
        if not isinstance(values, list) or not values:
            raise ScenarioError("must be a non-empty list of 1/0 per round", key=str(name),
                                source=source)
        if length is not None and len(values) != length:
            raise ScenarioError(f"{len(values)} rounds, but {next(iter(trace))} has {length}",
                                key=str(name), source=source)
        length = len(values)
        trace[str(name)] = tuple(_flag(value, f"{name}[{i}]", source)
                                 for i, value in enumerate(values))
    return trace


def _flag(value, key: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in _TRUE + _FALSE:
        return value in _TRUE
    raise ScenarioError(f"must be 1 or 0 (or true/false), got {value!r}", key=key, source=source)


def _check_trace(trace, base: Scenario, rounds: int, source: str | None) -> dict:
    names = [device.name for device in base.devices]
    for name, values in trace.items():
        if name not in names:
            raise ScenarioError(f"no device of that name in scenario {base.name!r}"
                                f"{did_you_mean(name, names)}", key=name, source=source)
        if len(values) < rounds:
            raise ScenarioError(f"the trace has {len(values)} rounds, fewer than the {rounds} "
                                "asked for", key=name, source=source)
    return trace


# ---------------------------------------------------------------------------------------------
# One round's scenario


@dataclass(frozen=True)
class _Draws:
    """What one round's random stream gives (see the module docstring)."""

    power: np.ndarray           # d_k, fading times shadowing, floored at MIN_POWER_DRAW
    available: np.ndarray       # bool per device of the base scenario


def _draw(base: Scenario, round_index: int, *, seed, fading, shadowing_db, availability, trace):
    count = len(base.devices)
    # The r-th child of SeedSequence(seed).spawn(R), whatever R is.
    rng = np.random.default_rng(np.random.SeedSequence(int(seed),
                                                       spawn_key=(int(round_index) - 1,)))
    fades = rng.exponential(1.0, count)
    shadows = rng.normal(0.0, 1.0, count)
    uniforms = rng.random(count)
    power = np.ones(count)
    if fading == "rayleigh":
        power = power * fades
    if shadowing_db:
        power = power * 10 ** (shadowing_db * shadows / 10)
    power = np.maximum(power, MIN_POWER_DRAW)
    probability = np.array([_probability(availability, device.name) for device in base.devices])
    available = uniforms < probability
    for k, device in enumerate(base.devices):
        if trace and device.name in trace:
            available[k] = trace[device.name][round_index - 1]
    return _Draws(power, available)


def _probability(availability, name: str) -> float:
    if availability is None:
        return 1.0
    if isinstance(availability, dict):
        return float(availability.get(name, 1.0))
    return float(availability)


def _faded_device(device, channel, power: float, cap):
    """The device on the round's channel: the mean channel of the file times the draw."""
    if channel.rate_model == "shannon":
        return dataclasses.replace(device, channel_gain=float(device.channel_gain * power))
    mean_snr = np.expm1(device.spectral_efficiency * math.log(2.0))  # 2^rho - 1
    efficiency = float(np.log1p(mean_snr * power) / math.log(2.0))
    if cap is not None:
        efficiency = min(efficiency, float(cap))
    return dataclasses.replace(device, spectral_efficiency=efficiency)


def _base(scenario) -> Scenario:
    if scenario is None:
        from ..api import default_scenario_path

        scenario = str(default_scenario_path())
    return load_scenario(scenario)


def round_scenario(scenario, round_index: int, *, seed: int = 0, fading: str = "rayleigh",
                   shadowing_db: float | None = None, availability=None, availability_trace=None,
                   max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY) -> Scenario:
    """Round ``round_index``'s scenario (1-based): the round's channel, its available devices.

    The arguments are those of :func:`simulate`; the same ones give the scenario that round of
    the simulation solved, so ``lola.solve(round_scenario(...))`` reproduces its numbers. Its
    name is the scenario's with ``-round{I}`` appended.

    >>> import lola
    >>> first = round_scenario(None, 1, seed=3)
    >>> first.name, len(first.devices)
    ('roberta-base-20-devices-seed0-round1', 20)
    >>> first == round_scenario(None, 1, seed=3), first == round_scenario(None, 2, seed=3)
    (True, False)
    """
    base = _base(scenario)
    _check_draw(seed=seed, fading=fading, shadowing_db=shadowing_db, availability=availability,
                max_spectral_efficiency=max_spectral_efficiency)
    if isinstance(round_index, bool) or not isinstance(round_index, (int, np.integer)) \
            or round_index < 1:
        raise ValueError(f"round_index: must be a positive integer, got {round_index!r}")
    trace = _trace(availability_trace, base, round_index, availability)
    return _round_scenario(base, int(round_index), seed=seed, fading=fading,
                           shadowing_db=shadowing_db, availability=availability, trace=trace,
                           cap=max_spectral_efficiency or None)


def _trace(availability_trace, base, rounds, availability=None):
    """The trace, checked against the scenario's devices (and so are ``availability``'s names)."""
    if isinstance(availability, dict):
        names = [device.name for device in base.devices]
        for name in availability:
            if name not in names:
                raise ValueError(f"availability: no device {name!r} in scenario {base.name!r}"
                                 f"{did_you_mean(name, names)}")
    if availability_trace is None:
        return None
    if isinstance(availability_trace, dict):
        trace = _trace_from_mapping(availability_trace, "<availability trace>")
        return _check_trace(trace, base, rounds, "<availability trace>")
    trace = load_availability_trace(availability_trace)
    return _check_trace(trace, base, rounds, os.fspath(availability_trace))


def _round_scenario(base: Scenario, round_index: int, *, seed, fading, shadowing_db,
                    availability, trace, cap) -> Scenario:
    draws = _draw(base, round_index, seed=seed, fading=fading, shadowing_db=shadowing_db,
                  availability=availability, trace=trace)
    static_channel = fading == "none" and not shadowing_db
    devices = tuple(device if static_channel else
                    _faded_device(device, base.channel, float(draws.power[k]), cap)
                    for k, device in enumerate(base.devices) if draws.available[k])
    return dataclasses.replace(base, name=f"{base.name}-round{round_index}", devices=devices)


# ---------------------------------------------------------------------------------------------
# Writing a round's scenario


def round_document(scenario, round_index: int, **options) -> dict:
    """Round ``round_index``'s scenario as a document (the YAML/JSON format of section 5).

    The scenario's own document (file or mapping) with the round's name, without the devices
    that are unavailable, and with each remaining device's ``channel_gain`` (``shannon``) or
    ``spectral_efficiency`` (``fixed``) replaced by the round's value; every other key is kept.
    A relative profile path is made absolute, so the document loads from anywhere. ``options``
    are those of :func:`round_scenario`.
    """
    base = _base(scenario)
    source = scenario if scenario is not None else base.source
    if isinstance(source, Scenario):
        source = source.source
        if isinstance(source, str) and Path(source).is_file():
            stored = load_scenario(source)
            if (stored.devices, stored.blocks, stored.channel) != (base.devices, base.blocks,
                                                                    base.channel):
                raise ValueError(f"the scenario differs from its file {source}; export from "
                                 "the file or a mapping")
    if isinstance(source, dict):
        document = json.loads(json.dumps(source))
        base_dir = Path.cwd()
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        document = read_document(source)
        base_dir = Path(source).resolve().parent
    else:
        raise ValueError("exporting a round needs the scenario as a file or a mapping, not a "
                         "Scenario object built in memory")
    played = round_scenario(base, round_index, **options)
    by_name = {device.name: device for device in played.devices}
    key = "channel_gain" if base.channel.rate_model == "shannon" else "spectral_efficiency"
    devices = []
    for entry in document["devices"]:
        if entry["name"] in by_name:
            devices.append(dict(entry, **{key: getattr(by_name[entry["name"]], key)}))
    document["name"] = played.name
    document["devices"] = devices
    profile = document.get("model", {}).get("profile")
    if isinstance(profile, str) and ("/" in profile or "\\" in profile
                                     or profile.endswith((".json", ".yaml", ".yml"))):
        if not Path(profile).is_absolute():
            document["model"]["profile"] = str((base_dir / profile).resolve())
    return document


def export_round(scenario, round_index: int, path, **options) -> Path:
    """Write round ``round_index``'s scenario (:func:`round_document`) to ``path``, atomically:
    JSON when the name ends in ``.json``, else YAML with a header saying how it was made."""
    document = round_document(scenario, round_index, **options)
    path = Path(path)
    if path.suffix.lower() == ".json":
        return atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    said = ", ".join(f"{name}={value!r}" for name, value in
                     sorted({"seed": 0, **options}.items()) if value is not None)
    header = [f"# Round {round_index} of a LoLa simulation (lola.studies.rounds), {said}:",
              "# the devices available that round, on that round's channel."]
    return atomic_write_text(path, "\n".join(header) + "\n" + dump_yaml(document,
                                                                       exact_floats=True))


# ---------------------------------------------------------------------------------------------
# The simulation


@dataclass
class Simulation:
    """R rounds of every method; :meth:`to_dict` is the JSON of section 11.

    Attributes
    ----------
    scenario, problem, rounds, seed
        As in the JSON.
    methods : list of str
        The methods in row order, the static variant (``static-M``) last when there is one.
    per_round : list of dict
        One row per (round, method), rounds in order: ``round``, ``method``, ``status``,
        ``round_latency_s`` (None when infeasible), ``solve_time_s``, ``energy_j`` (the total
        energy of the devices that train, J; None when infeasible or when a device's powers
        are unknown), and ``available_devices`` (how many devices took part that round).
    summary : list of dict
        One per method: ``total_latency_s`` (over its feasible rounds), ``total_solve_time_s``,
        ``infeasible_rounds``, and ``total_time_s`` (the two totals added, where
        :func:`plot_cumulative_time` ends); these add up different rounds for methods that fail
        different rounds, so they compare only when no method failed one. Then
        ``completed_rounds`` (rounds with a round latency), ``common_rounds`` (how many rounds
        every method completed) and, over those common rounds, ``total_latency_common_s`` and
        ``total_time_common_s`` (latency plus solve time), which compare across methods.
    fading, shadowing_db, max_spectral_efficiency, availability
        The channel and availability model the rounds were drawn with (``availability``:
        ``None`` for all devices always available, a probability, a mapping from device
        names to probabilities, or ``"trace"``).
    static_of : str or None
        The method whose round-1 allocation the static variant keeps.
    """

    scenario: str
    problem: str
    rounds: int
    seed: int
    methods: list
    per_round: list
    summary: list
    fading: str = "rayleigh"
    shadowing_db: float | None = None
    max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY
    availability: object = None
    static_of: str | None = None

    def to_dict(self) -> dict:
        """The JSON object: the specification's keys, then the channel model (``fading``,
        ``shadowing_db``, ``max_spectral_efficiency``), ``availability`` and ``static_of``;
        rows also carry ``available_devices`` and summaries ``total_time_s``,
        ``completed_rounds``, ``common_rounds``, ``total_latency_common_s`` and
        ``total_time_common_s``."""
        return {"scenario": self.scenario, "problem": self.problem, "rounds": self.rounds,
                "seed": self.seed, "per_round": [dict(row) for row in self.per_round],
                "summary": [dict(row) for row in self.summary],
                "fading": self.fading, "shadowing_db": self.shadowing_db,
                "max_spectral_efficiency": self.max_spectral_efficiency,
                "availability": self.availability, "static_of": self.static_of}

    def rows(self, method: str) -> list:
        """The rows of ``method``, round 1 first."""
        return [row for row in self.per_round if row["method"] == method]

    def latencies(self, method: str) -> np.ndarray:
        """Round latency of ``method`` per round (s), NaN where it was infeasible."""
        return np.array([np.nan if row["round_latency_s"] is None else row["round_latency_s"]
                         for row in self.rows(method)])

    @property
    def status(self) -> str:
        """``infeasible`` when every round of every method is, else ``solved``."""
        return ("infeasible" if all(row["status"] == "infeasible" for row in self.per_round)
                else "solved")

    def to_csv(self) -> str:
        """The per-round rows as CSV text (:data:`ROW_COLUMNS`; empty cells for None)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(ROW_COLUMNS)
        for row in self.per_round:
            writer.writerow([format_value(row[column]) for column in ROW_COLUMNS])
        return buffer.getvalue()


@dataclass(frozen=True)
class _RoundTask:
    """One round, as plain data: the base scenario, the draw's options and the methods."""

    base: Scenario
    problem: str
    methods: tuple
    round_index: int
    seed: int
    fading: str
    shadowing_db: float | None
    availability: object
    trace: dict | None
    cap: float | None
    static: dict | None = None  # the allocation the static variant keeps, once known


def _play_round(task: _RoundTask) -> dict:
    """Every method on the round's scenario: rows, and the first method's allocation."""
    from ..api import solve

    played = _round_scenario(task.base, task.round_index, seed=task.seed, fading=task.fading,
                             shadowing_db=task.shadowing_db, availability=task.availability,
                             trace=task.trace, cap=task.cap)
    count = len(played.devices)
    rows, allocation = [], None
    for position, method in enumerate(task.methods):
        if count == 0:  # nobody to train: no method can run, and none is asked
            rows.append(_row(task.round_index, method, "infeasible", None, 0.0, None, 0))
            continue
        try:
            result = solve(played, task.problem, method,
                           seed=_method_seed(task.seed, task.round_index, method))
        except solvers.SolverFailure:
            # a heuristic that found nothing this round (it proves no infeasibility): a round
            # without its allocation, counted with the infeasible ones
            rows.append(_row(task.round_index, method, "infeasible", None, 0.0, None, count))
            continue
        rows.append(_row(task.round_index, method, result.status, result.round_latency_s,
                         result.solve_time_s, _energy_of(result.devices), count))
        if position == 0 and task.round_index == 1 and result.status != "infeasible":
            allocation = _allocation_of(result)
    static = None
    if task.static is not None:
        static = _static_row(played, task, task.static, count)
    return {"rows": rows, "allocation": allocation, "static": static}


def _method_seed(seed: int, round_index: int, method: str) -> int:
    """The seed a randomised method gets in a round: from the simulation's seed, the round and
    the method's name, so that it does not depend on which other methods are listed."""
    sequence = np.random.SeedSequence(int(seed), spawn_key=(round_index - 1,
                                                            zlib.crc32(method.encode())))
    return int(sequence.generate_state(1)[0])


def _row(round_index, method, status, latency, solve_time, energy, available) -> dict:
    return {"round": round_index, "method": method, "status": status,
            "round_latency_s": latency, "solve_time_s": solve_time, "energy_j": energy,
            "available_devices": available}


def _energy_of(reports) -> float | None:
    energies = [getattr(report, "energy_j", None) for report in reports if report.blocks]
    if not energies or any(energy is None for energy in energies):
        return None
    return float(sum(energies))


def _allocation_of(result) -> dict:
    """What the static variant keeps of a result; ``reason`` says why it cannot keep it."""
    for report in result.devices:
        mode = getattr(report, "mode", None) or "local"
        if report.blocks and (len(report.blocks) > 1 or mode != "local"):
            return {"reason": f"static: the static variant keeps allocations of one block per "
                              f"device in local mode, but {result.method} gave {report.name} "
                              f"{len(report.blocks)} block(s) in {mode} mode in round 1; use "
                              "static=False (--no-static)"}
    return {"method": result.method, "solve_time_s": result.solve_time_s,
            "devices": [pair["device"] for pair in result.assignment],
            "bandwidth_hz": {report.name: report.bandwidth_hz for report in result.devices}}


def _static_row(played: Scenario, task: _RoundTask, allocation: dict, count: int) -> dict:
    """The kept allocation on this round's channel (module docstring)."""
    method = STATIC_PREFIX + allocation["method"]
    solve_time = allocation["solve_time_s"] if task.round_index == 1 else 0.0
    infeasible = _row(task.round_index, method, "infeasible", None, solve_time, None, count)
    if allocation.get("devices") is None:
        return infeasible
    index = {device.name: k for k, device in enumerate(played.devices)}
    if any(name not in index for name in allocation["devices"]):
        return infeasible
    instance = costs.to_instance(played)
    assignment = np.array([index[name] for name in allocation["devices"]], dtype=np.int64)
    with np.errstate(all="ignore"):
        if task.problem == "jbba":
            from solvers.bandwidth import optimal_split

            latency, split = optimal_split(instance, assignment[None, :])
            block_bandwidth = split[0]
        else:
            block_bandwidth = np.array([allocation["bandwidth_hz"][name]
                                        for name in allocation["devices"]])
        device_bandwidth = np.zeros(instance.n_devices)
        device_bandwidth[assignment] = block_bandwidth
        per_block = instance.assignment_latency(assignment, device_bandwidth)
    memory_ok = instance.memory_feasible()[assignment, np.arange(instance.n_blocks)].all()
    latency = float(per_block.max())
    if not (memory_ok and math.isfinite(latency)):
        return infeasible
    energy = _static_energy(played, instance, assignment, device_bandwidth)
    if energy is False:
        return infeasible
    return _row(task.round_index, method, "feasible", latency, solve_time, energy, count)


def _static_energy(played, instance, assignment, device_bandwidth):
    """Total energy (J) of the kept allocation, None when a power is unknown, False when a
    device's energy exceeds its budget (section 10)."""
    compute = instance.block_flops / instance.device_flops_per_s[assignment]
    with np.errstate(divide="ignore"):
        upload = instance.block_bits / instance.rate(device_bandwidth)[assignment]
    total, known = 0.0, True
    for n, k in enumerate(assignment):
        device = played.devices[int(k)]
        compute_power = getattr(device, "compute_power_w", None)
        tx_power = getattr(device, "tx_power_w", None)
        if compute_power is None or tx_power is None:
            known = False
            if getattr(device, "energy_budget_j", None) is not None:
                return False  # a budget that cannot be checked is not kept
            continue
        energy = compute_power * compute[n] + tx_power * upload[n]
        budget = getattr(device, "energy_budget_j", None)
        if budget is not None and energy > budget * (1 + 1e-9):
            return False
        total += energy
    return float(total) if known else None


class _Progress:
    """``round r/R`` on one line of standard error, redrawn in place."""

    def __init__(self, total, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.started = total, time.monotonic()

    def __call__(self, done, total):
        width = 30
        filled = int(width * done / total)
        self.stream.write(f"\rlola simulate: [{'#' * filled}{'.' * (width - filled)}] "
                          f"round {done}/{total}, {time.monotonic() - self.started:.0f} s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def simulate(scenario=None, *, problem: str = "jbba", methods=None, rounds: int = 20,
             seed: int = 0, fading: str = "rayleigh", shadowing_db: float | None = None,
             availability=None, availability_trace=None, static: bool = True,
             max_spectral_efficiency: float | None = MAX_SPECTRAL_EFFICIENCY,
             progress=None, executor=None) -> Simulation:
    """Run ``rounds`` rounds of every method on fresh channels (module docstring).

    Parameters
    ----------
    scenario : Scenario, path or mapping, optional
        The mean channel and the devices; the bundled default scenario when None.
    problem : {"jbba", "matching"}
    methods : list of str or "a,b" text, optional
        Default: the problem's default exact method (:func:`lola.default_method`), ``greedy``
        and ``min-sum``.
    rounds : int
        R, at least 1.
    seed : int
        Seed of every draw (and of the randomised methods); same seed, same rounds.
    fading : {"rayleigh", "none"}
        Small-scale fading of the power gain: Exp(1), or none.
    shadowing_db : float, optional
        Standard deviation sigma (dB) of zero-mean log-normal shadowing; None or 0: none.
    availability : float or dict, optional
        Probability that a device takes part in a round, for all devices or per device name
        (missing names: 1). Default: always.
    availability_trace : path or dict, optional
        Per-round availability of named devices (:func:`load_availability_trace`), which
        overrides ``availability`` for them; it must cover the R rounds.
    static : bool
        Add the ``static-M`` variant that keeps round 1's allocation of the first method.
    max_spectral_efficiency : float or None
        rho_max of the ``fixed`` rate model in bit/s/Hz; 0 or None: no cap.
    progress : callable, optional
        ``progress(rounds_done, rounds)``, called in this process as each round finishes.
    executor : concurrent.futures.Executor, optional
        Runs the rounds (:func:`lola.studies.run_tasks`); the answer does not depend on it,
        but for the solve times.

    Raises
    ------
    ValueError
        A bad option (the message names it), a scenario error
        (:class:`lola.ScenarioError`), a bad trace (naming the file and the column or key).
    """
    methods = _check_options(problem=problem, methods=methods, rounds=rounds, seed=seed,
                             fading=fading, shadowing_db=shadowing_db, availability=availability,
                             max_spectral_efficiency=max_spectral_efficiency)
    if static and solvers.METHODS[methods[0]].role == "reference":
        raise ValueError(f"static: {methods[0]} is a reference, not an allocation of blocks to "
                         "devices; list an allocation method first, or use static=False "
                         "(--no-static)")
    base = _base(scenario)
    trace = _trace(availability_trace, base, rounds, availability)
    task = functools.partial(_RoundTask, base, problem, tuple(methods), seed=int(seed),
                             fading=fading, shadowing_db=shadowing_db or None,
                             availability=availability, trace=trace,
                             cap=max_spectral_efficiency or None)
    # Round 1 first: the static variant keeps its allocation in every later round.
    first = _play_round(task(round_index=1))
    kept = None
    if static:
        kept = first["allocation"] or {"method": methods[0], "devices": None,
                                       "solve_time_s": first["rows"][0]["solve_time_s"]}
        if "reason" in kept:
            raise ValueError(kept["reason"])
        played = _round_scenario(base, 1, seed=seed, fading=fading, shadowing_db=shadowing_db,
                                 availability=availability, trace=trace,
                                 cap=max_spectral_efficiency or None)
        first["static"] = _static_row(played, task(round_index=1), kept,
                                      len(played.devices))
    outcomes = [first]
    if progress is not None:
        progress(1, rounds)
    done = [1]

    def report(*_):
        done[0] += 1
        if progress is not None:
            progress(done[0], rounds)

    outcomes += run_tasks(_play_round, [task(round_index=r, static=kept)
                                        for r in range(2, rounds + 1)],
                          executor=executor, on_result=report)
    per_round = []
    for outcome in outcomes:
        per_round += outcome["rows"]
        if outcome["static"] is not None:
            per_round.append(outcome["static"])
    names = list(methods) + ([STATIC_PREFIX + methods[0]] if static else [])
    common = _common_rounds(per_round, names)
    summary = [_summary(name, [row for row in per_round if row["method"] == name], common)
               for name in names]
    return Simulation(base.name, problem, int(rounds), int(seed), names, per_round, summary,
                      fading=fading, shadowing_db=shadowing_db,
                      max_spectral_efficiency=max_spectral_efficiency or None,
                      availability="trace" if trace else availability,
                      static_of=methods[0] if static else None)


def _common_rounds(per_round: list, methods: list) -> set:
    """The rounds that every method completed (a round latency in each of its rows)."""
    rounds = {row["round"] for row in per_round}
    for row in per_round:
        if row["method"] in methods and row["round_latency_s"] is None:
            rounds.discard(row["round"])
    return rounds


def _summary(method: str, rows: list, common: set) -> dict:
    """Totals of one method: over its own feasible rounds (the specification's keys, which
    differ in how many rounds they add up when methods fail different rounds), and over the
    ``common`` rounds that every method completed, which compare."""
    latency = sum(row["round_latency_s"] for row in rows if row["round_latency_s"] is not None)
    solve_time = sum(row["solve_time_s"] for row in rows)
    shared = [row for row in rows if row["round"] in common]
    common_latency = sum(row["round_latency_s"] for row in shared)
    infeasible = sum(row["status"] == "infeasible" for row in rows)
    return {"method": method, "total_latency_s": float(latency),
            "total_solve_time_s": float(solve_time),
            "infeasible_rounds": infeasible,
            "total_time_s": float(latency + solve_time),
            "completed_rounds": sum(row["round_latency_s"] is not None for row in rows),
            "common_rounds": len(shared),
            "total_latency_common_s": float(common_latency),
            "total_time_common_s": float(common_latency
                                         + sum(row["solve_time_s"] for row in shared))}


# ---------------------------------------------------------------------------------------------
# Figures


def _style(method: str) -> dict:
    """The house colour and marker of a method; its static variant dashed, in the same colour."""
    from ..plots import method_colour, method_marker

    base = method[len(STATIC_PREFIX):] if method.startswith(STATIC_PREFIX) else method
    return {"color": method_colour(base), "marker": method_marker(base),
            "linestyle": "--" if base != method else "-"}


def _label(simulation: Simulation, method: str) -> str:
    infeasible = sum(row["status"] == "infeasible" for row in simulation.rows(method))
    if method.startswith(STATIC_PREFIX):
        label = f"{method[len(STATIC_PREFIX):]}, static (round 1's allocation)"
    else:
        label = f"{method}, re-allocated every round"
    if infeasible:
        label += f"; {infeasible} infeasible round{'s' if infeasible > 1 else ''}"
    return label


def plot_cumulative_time(simulation: Simulation):
    """Cumulative wall-clock time per method (round latency plus solve time) against the rounds
    it completed.

    A round where a method is infeasible is not completed: its curve does not advance (the time
    spent solving it still counts), so a method that fails rounds ends short of R, and the
    curves compare the time that each method needs for the same number of training rounds.
    """
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    figure = plt.figure(figsize=(8, 5.4), layout="constrained")
    ax = figure.add_subplot()
    for method in simulation.methods:
        rows = simulation.rows(method)
        spent = np.cumsum([row["solve_time_s"] + (row["round_latency_s"] or 0.0)
                           for row in rows])
        completed = np.array([row["round_latency_s"] is not None for row in rows])
        total = spent[completed]
        count = np.arange(1, len(total) + 1)
        style = _style(method)
        ax.plot(count, total, color=style["color"], linestyle=style["linestyle"],
                marker=style["marker"], markevery=max(1, len(count) // 10), markersize=6,
                linewidth=1.6, label=_label(simulation, method))
        if 0 < len(total) < simulation.rounds:  # where a curve stops short, say why there
            ax.annotate(f"{len(total)} of {simulation.rounds} rounds completed",
                        (count[-1], total[-1]), textcoords="offset points", xytext=(-20, 45),
                        ha="right", va="bottom", fontsize=9, color=style["color"],
                        arrowprops={"arrowstyle": "->", "color": style["color"], "lw": 1.0})
    ax.set_xlabel("rounds completed")
    ax.set_ylabel("cumulative time: round latency + solve time (s)")
    ax.set_xlim(0, simulation.rounds + 1)
    # whole rounds only, at 1-2-5 steps
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{simulation.problem}, {simulation.rounds} rounds of {simulation.scenario}",
                 fontsize=10)
    figure.legend(loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    return figure


def plot_latency_distribution(simulation: Simulation):
    """The distribution of the per-round latency of each method (box: quartiles, whiskers: 1.5
    IQR, points: every round beyond them), over its feasible rounds; on a log scale when the
    slowest round is more than ten times the fastest."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker
    from matplotlib.patches import Patch

    figure = plt.figure(figsize=(8, 5.4), layout="constrained")
    ax = figure.add_subplot()
    data, labels, colours, hatches = [], [], [], []
    for method in simulation.methods:
        values = simulation.latencies(method)
        data.append(values[np.isfinite(values)])
        style = _style(method)
        labels.append(_label(simulation, method))
        colours.append(style["color"])
        hatches.append("//" if style["linestyle"] == "--" else "")
    positions = np.arange(1, len(data) + 1)
    shown = [values if len(values) else [np.nan] for values in data]
    boxes = ax.boxplot(shown, positions=positions, widths=0.6, patch_artist=True,
                       medianprops={"color": "black"},
                       flierprops={"marker": ".", "markersize": 4})
    for patch, colour, hatch in zip(boxes["boxes"], colours, hatches):
        patch.set_facecolor(colour)
        patch.set_alpha(0.55)
        patch.set_hatch(hatch)
    finite = np.concatenate([values for values in data if len(values)] or [np.ones(1)])
    if finite.max() > 10 * finite.min():  # a deep fade's round would flatten every box
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xticks(positions, [method for method in simulation.methods], fontsize=9)
    ax.set_xlabel("method")
    ax.set_ylabel("round latency (s)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"per-round latency, {simulation.rounds} rounds of {simulation.scenario}",
                 fontsize=10)
    handles = [Patch(facecolor=c, alpha=0.55, hatch=h, label=label)
               for c, h, label in zip(colours, hatches, labels)]
    figure.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9,
                  frameon=False)
    return figure


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser) -> None:
    """The options of ``lola simulate`` on an ``argparse`` parser (the caller's formatter shows
    the defaults)."""
    parser.add_argument("scenario", nargs="?",
                        help="scenario file (YAML or JSON), the mean channel; the bundled default "
                        "when omitted")
    parser.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                        help="matching (P1, fixed bandwidth) or jbba (P2, joint bandwidth and "
                        "blocks)")
    parser.add_argument("--methods", metavar="A,B", help="comma-separated methods, each solving "
                        "every round (default: the problem's default exact method, greedy and "
                        "min-sum)")
    parser.add_argument("--rounds", type=int, default=20, help="number of rounds R")
    from .._args import seed

    parser.add_argument("--seed", type=seed, default=0, help="seed of every round's draw; same "
                        "seed, same rounds")
    parser.add_argument("--fading", choices=FADING_MODELS, default="rayleigh",
                        help="small-scale fading of each device's power gain around its mean: "
                        "rayleigh (|h|^2 ~ Exp(1)) or none")
    parser.add_argument("--shadowing-db", type=float, metavar="SIGMA",
                        help="standard deviation in dB of zero-mean log-normal shadowing "
                        "(default: none)")
    parser.add_argument("--max-spectral-efficiency", type=float,
                        default=MAX_SPECTRAL_EFFICIENCY, metavar="BIT_S_HZ",
                        help="fixed rate model: cap of a round's spectral efficiency (256-QAM); "
                        "0 switches it off")
    parser.add_argument("--availability", type=float, metavar="P",
                        help="probability that a device takes part in a round, the same for all "
                        "devices (default: 1)")
    parser.add_argument("--availability-trace", metavar="FILE",
                        help="CSV (round,<device>,...) or JSON ({device: [1, 0, ...]}) of "
                        "per-round availability of named devices; overrides --availability "
                        "for them")
    # default None rather than True: the variant is on unless asked off, and a formatter that
    # shows defaults has no "(default: True)" to print for an option that switches it off
    parser.add_argument("--no-static", dest="static", action="store_false", default=None,
                        help="leave out the static variant (round 1's allocation of the first "
                        "method, kept for every round)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--csv", metavar="FILE", help="write the per-round rows as CSV")
    parser.add_argument("--figure", metavar="FILE", help="save the cumulative-time figure "
                        "(png, pdf or svg)")
    parser.add_argument("--latency-figure", metavar="FILE", help="save the figure of the "
                        "per-round latency distribution (png, pdf or svg)")
    parser.add_argument("--export-round", type=int, metavar="I", help="write round I's scenario "
                        "to the file of -o (YAML, or JSON by suffix) and stop, so that it can "
                        "be solved on its own with 'lola solve'")
    parser.add_argument("-o", "--output", metavar="FILE", help="file that --export-round writes")


def _options(args) -> dict:
    return {"seed": args.seed, "fading": args.fading, "shadowing_db": args.shadowing_db,
            "availability": args.availability, "availability_trace": args.availability_trace,
            "max_spectral_efficiency": args.max_spectral_efficiency}


def run_command(args) -> int:
    """``lola simulate``: print the summary table (or the JSON), write the files asked for.

    Returns 0, or 1 when every round of every method is infeasible. Raises ``ValueError`` with
    a one-line message naming the option or the file for bad input.
    """
    methods = _check_options(problem=args.problem, methods=args.methods, rounds=args.rounds,
                             seed=args.seed, fading=args.fading, shadowing_db=args.shadowing_db,
                             availability=args.availability,
                             max_spectral_efficiency=args.max_spectral_efficiency, cli=True)
    for name in ("figure", "latency_figure"):
        path = getattr(args, name)
        if path and Path(path).suffix.lower() not in (".png", ".pdf", ".svg"):
            raise ValueError(f"{_option(name, True)}: the figure format must be png, pdf or "
                             f"svg, got {Path(path).suffix or 'no suffix'!r}")
    if args.output and args.export_round is None:
        raise ValueError("-o/--output: names the file of --export-round I; give --export-round")
    from .._io import check_output_path

    for name in ("csv", "figure", "latency_figure"):  # before any round: no work lost to a path
        if getattr(args, name) and args.export_round is None:
            check_output_path(getattr(args, name), option=_option(name, True))
    if args.export_round is not None:
        if not args.output:
            raise ValueError("--export-round: give the file to write with -o FILE")
        if args.export_round < 1:
            raise ValueError(f"--export-round: rounds count from 1, got {args.export_round}")
        check_output_path(args.output, option="-o")
        path = export_round(args.scenario, args.export_round, args.output, **_options(args))
        print(f"lola simulate: wrote round {args.export_round} to {path}", file=sys.stderr)
        return 0
    progress = _Progress(args.rounds) if sys.stderr.isatty() else None
    simulation = simulate(args.scenario, problem=args.problem, methods=methods,
                          rounds=args.rounds, static=args.static is not False,
                          progress=progress,
                          **_options(args))
    if args.csv:
        atomic_write_text(args.csv, simulation.to_csv())
    if args.figure or args.latency_figure:
        from ..plots import save

        if args.figure:
            save(plot_cumulative_time(simulation), args.figure)
        if args.latency_figure:
            save(plot_latency_distribution(simulation), args.latency_figure)
    if args.json:
        print(json.dumps(simulation.to_dict(), indent=2))
    else:
        print(format_summary(simulation))
    return 1 if simulation.status == "infeasible" else 0


def format_summary(simulation: Simulation) -> str:
    """The summary as a table: totals per method over the rounds.

    A method's totals add up the rounds it completed; where one failed rounds that the others
    completed, its totals cover fewer rounds and do not compare, so its cells say over how many
    rounds they are, and two more columns give every method's latency and total time over the
    rounds that every method completed (``total_latency_common_s``, ``total_time_common_s``).
    """
    from ..report import format_table, seconds_text

    incomplete = any(entry["infeasible_rounds"] for entry in simulation.summary)
    common = min((entry["common_rounds"] for entry in simulation.summary), default=0)
    headers = ["method", "total latency", "mean latency", "solve time", "total time",
               "infeasible rounds"]
    if incomplete:
        headers += [f"latency, {common} common", f"time, {common} common"]
    rows = []
    for entry in simulation.summary:
        feasible = entry.get("completed_rounds",
                             simulation.rounds - entry["infeasible_rounds"])
        mean = entry["total_latency_s"] / feasible if feasible else None
        total = seconds_text(entry["total_latency_s"] if feasible else None)
        spent = seconds_text(entry["total_time_s"] if feasible else None)
        if feasible and feasible < simulation.rounds:  # a total over fewer rounds: say so
            over = f" ({feasible} round{'' if feasible == 1 else 's'})"
            total, spent = total + over, spent + over
        row = [entry["method"], total, seconds_text(mean),
               seconds_text(entry["total_solve_time_s"]), spent,
               f"{entry['infeasible_rounds']}/{simulation.rounds}"]
        if incomplete:
            row += [seconds_text(entry["total_latency_common_s"] if common else None),
                    seconds_text(entry["total_time_common_s"] if common else None)]
        rows.append(row)
    channel = simulation.fading + (f", shadowing {simulation.shadowing_db:g} dB"
                                   if simulation.shadowing_db else "")
    head = (f"scenario {simulation.scenario}  problem {simulation.problem}  "
            f"{simulation.rounds} rounds  seed {simulation.seed}  fading {channel}")
    text = head + "\n" + format_table(headers, rows)
    if incomplete:
        text += (f"\nA total over (n rounds) adds up only the rounds its method completed and "
                 f"does not compare with the others; compare the {common} common round"
                 f"{'' if common == 1 else 's'}, those that every method completed"
                 + (" (none here)." if not common else "."))
    return text
