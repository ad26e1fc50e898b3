"""Sweeps (specification, section 14): a grid of generated scenarios x methods, one CSV row each.

The sweep file (YAML or JSON)::

    name: devices-sweep            # optional; default: the file's name
    problem: jbba                  # optional; matching | jbba, default jbba
    methods: [exact, greedy]       # required
    seeds: [0, 1, 2]               # optional; default [0]
    time_limit_s: 60               # optional; given to the methods that take a time limit
    generate: {devices: [10, 20, 40], rate_model: fixed, profile: roberta-base}

Every key of ``generate`` is an argument of :func:`lola.generate.generate_scenario`, and a list
is one axis of the grid: ``devices`` (or ``n_devices``: K), ``profile`` (a bundled name, or a
profile file, relative to the sweep file), ``rate_model``, ``bandwidth`` (or
``total_bandwidth_hz``: B in Hz), ``noise_figure_db`` and ``max_spectral_efficiency`` (0 or null
switches either off), and any other argument the generator takes (read from its signature, each
value checked by the generator itself). The generator's ``seed`` comes from ``seeds``; the
scenario's ``name`` is not a sweep key.

One task per (instance, method), in grid order: the ``generate`` axes in the order of the file,
then the seeds, then the methods. A task is plain data; the worker that runs it generates the
scenario and solves it, so nothing but a few numbers and strings crosses between processes or
machines. Its row carries the task's ``key`` (a hash of everything that defines it), the
sweep's ``name``, ``problem``, ``method``, ``seed`` (the generator's, so that
``lola scenario generate --seed`` gives the same instance), every generator argument (its
defaults filled in), ``time_limit_s``, ``solver_seed``, ``status``, ``round_latency_s``,
``lower_bound_s``, ``solve_time_s`` and ``message``. ``solver_seed`` is the seed the method is
given (it matters to ``random``): drawn by ``numpy.random.SeedSequence`` from the instance's
seed and the method's name, so that it depends on neither the executor, nor the number of
workers, nor the order. Same sweep, same rows, but for ``solve_time_s``.

The CSV is written one whole row at a time as tasks finish (so in the order they finish, not
in grid order) and read back on the next run: a task whose ``key`` is in the file is not run
again, so an interrupted or killed sweep resumes where it stopped (:class:`~lola.studies.RowLog`).
On a terminal a one-line progress bar is drawn on standard error; ``lola sweep`` always ends
with a one-line summary.

``status`` is the result's (``optimal``, ``feasible``, ``infeasible``), or ``failed`` when the
method found nothing trustworthy (``lola.SolverFailure``, e.g. a time limit with no incumbent),
or ``refused`` when the method does not take the instance (e.g. ``brute`` on a large one); the
``message`` says why.

Examples
--------
>>> import tempfile, pathlib
>>> output = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
>>> spec = {"problem": "matching", "methods": ["crunch", "greedy"], "seeds": [0, 1],
...         "generate": {"devices": [12, 14]}}
>>> outcome = sweep(spec, output=output)
>>> len(outcome.rows), outcome.ran, outcome.rows[0]["devices"], outcome.rows[0]["method"]
(8, 8, 12, 'crunch')
>>> sweep(spec, output=output).ran  # everything is in the file already
0
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import solvers

from .._hints import did_you_mean
from ..scenario import RATE_MODELS, ScenarioError, _Checker, _kind, _show, read_document
from .rows import RowLog, format_value
from .runner import ExecutorUnavailable, check_executor, open_executor, run_tasks

__all__ = ["sweep", "load_sweep", "Sweep", "SweepOutcome", "solve_task", "COLUMNS",
           "GENERATOR_ARGUMENTS", "GENERATE_ALIASES"]

def _generator_arguments() -> dict:
    """The generator's arguments a sweep may set, with their defaults, read from its signature
    (so that an argument it gains is a sweep key and a column at once); ``seed`` comes from
    ``seeds`` and the scenario's ``name`` is not needed."""
    from ..generate import generate_scenario

    parameters = inspect.signature(generate_scenario).parameters
    # class_mix is a mapping, not a value a CSV column holds
    return {name: parameter.default for name, parameter in parameters.items()
            if name not in ("seed", "name", "class_mix")}


#: The generator's arguments (:func:`lola.generate.generate_scenario`), with its defaults.
GENERATOR_ARGUMENTS = _generator_arguments()
#: Short names accepted in ``generate``, as on the command line of ``lola scenario generate``.
GENERATE_ALIASES = {"devices": "n_devices", "bandwidth": "total_bandwidth_hz"}

#: A row names the number of devices as the sweep file and the contract do (``devices``); the
#: other generator arguments keep the generator's names, units included.
_COLUMN_OF = {"n_devices": "devices"}
_ARGUMENT_OF = {column: argument for argument, column in _COLUMN_OF.items()}


def _column(argument: str) -> str:
    return _COLUMN_OF.get(argument, argument)


COLUMNS = ("key", "name", "problem", "method", "seed",
           *(_column(name) for name in GENERATOR_ARGUMENTS), "time_limit_s",
           "solver_seed", "status", "round_latency_s", "lower_bound_s", "solve_time_s",
           "message")
_INTEGER_COLUMNS = ("seed", "solver_seed", *(_column(name) for name, default
                                             in GENERATOR_ARGUMENTS.items()
                                             if type(default) is int))
_BOOLEAN_COLUMNS = tuple(_column(name) for name, default in GENERATOR_ARGUMENTS.items()
                         if type(default) is bool)
_FLOAT_COLUMNS = ("time_limit_s", "round_latency_s", "lower_bound_s", "solve_time_s",
                  *(_column(name) for name, default in GENERATOR_ARGUMENTS.items()
                    if default is None or type(default) is float))
_TOP_KEYS = ("name", "problem", "methods", "seeds", "time_limit_s", "generate")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: the grid's axes and what each task needs."""

    name: str
    problem: str
    methods: tuple
    seeds: tuple
    axes: dict            # generator argument -> tuple of values, in the file's order
    time_limit_s: float | None = None
    source: str | None = None

    def tasks(self) -> list:
        """One task (a plain dict) per (instance, method), in grid order."""
        fixed = dict(GENERATOR_ARGUMENTS)
        tasks = []
        for values in itertools.product(*self.axes.values()):
            arguments = {**fixed, **dict(zip(self.axes, values))}
            for seed in self.seeds:
                for method in self.methods:
                    takes_limit = solvers.METHODS[method].takes_time_limit
                    task = {"name": self.name, "problem": self.problem, "method": method,
                            "seed": seed, **arguments,
                            "time_limit_s": self.time_limit_s if takes_limit else None,
                            "solver_seed": _solver_seed(seed, method)}
                    task["key"] = _task_key(task)
                    tasks.append(task)
        return tasks


@dataclass
class SweepOutcome:
    """What :func:`sweep` did: the grid's rows (in grid order) and how many tasks it ran."""

    rows: list
    ran: int
    skipped: int
    output: Path
    repaired_bytes: int = 0
    counts: dict = field(default_factory=dict)

    def summary(self) -> str:
        statuses = ", ".join(f"{count} {status}" for status, count in self.counts.items())
        repaired = (f"; cut a torn last line ({self.repaired_bytes} bytes)"
                    if self.repaired_bytes else "")
        return (f"{len(self.rows)} rows in {self.output} ({statuses or 'none'}): {self.ran} "
                f"solved now, {self.skipped} found in the file{repaired}")


def _solver_seed(seed: int, method: str) -> int:
    """The method's seed: independent of the generator's stream, fixed by (seed, method)."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(method.encode()),))
    return int(sequence.generate_state(1)[0])


def _task_key(task: dict) -> str:
    """A hash of everything that defines the task's row, but the sweep's name."""
    defining = {k: v for k, v in task.items() if k not in ("key", "name")}
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The sweep file


def _integer(check, value, key, *, least):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        shown = _show(value) if isinstance(value, (int, float, str)) else _kind(value)
        check.fail(key, f"must be an integer of at least {least}, got {shown}")
    return int(value)


def _switchable(check, value, key):
    """A number >= 0, or null: 0 and null switch the generator's option off (stored as 0)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        shown = _show(value) if isinstance(value, (int, float, str)) else _kind(value)
        check.fail(key, "must be a finite number of at least 0, or null (0 and null switch it "
                        f"off), got {shown}")
    return float(value)


def _profile(check, value, key, base_dir):
    from ..profiles import PROFILE_DIR, _resolve, load_profile

    name = check.text(value, key)
    try:
        load_profile(name, base_dir=base_dir)
    except ScenarioError as err:
        check.fail(key, err.reason if err.source is None else f"profile {err}")
    path = _resolve(name, base_dir)
    if path.parent == PROFILE_DIR and path.stem == name:
        return name
    # A profile file is named by its absolute path, so that a worker started elsewhere (on a
    # shared file system) finds it too.
    return str(path.resolve())


def _rate_model(check, value, key):
    if value not in RATE_MODELS:
        check.fail(key, f"must be one of {', '.join(RATE_MODELS)}, got {_show(value)}")
    return value


def _plain(check, value, key, default):
    """An argument LoLa knows only from the generator's signature: the type of its default."""
    if type(default) is bool:
        if not isinstance(value, bool):
            check.fail(key, f"must be true or false, got {_kind(value)}")
    elif type(default) is str:
        check.text(value, key)
    elif value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            check.fail(key, f"must be a finite number{' or null' if default is None else ''}, "
                            f"got {_kind(value)}")
        value = float(value) if default is None or type(default) is float else value
    return value


def _generator_accepts(check, argument, value, key):
    """The generator's own checks of one value (a tiny scenario with it, the rest default)."""
    from ..generate import generate_scenario

    try:
        generate_scenario(1, **{argument: value})
    except ValueError as err:  # ScenarioError included
        check.fail(key, getattr(err, "reason", None) or str(err))
    return value


def _axis(check, raw, key, parse):
    """A scalar or a non-empty list of distinct values, each parsed; always a tuple."""
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        check.fail(key, "must not be an empty list")
    parsed, seen = [], {}
    for i, value in enumerate(values):
        here = f"{key}[{i}]" if isinstance(raw, list) else key
        item = parse(value, here)
        if item in seen:
            check.fail(here, f"duplicate value {_show(value)} (also {key}[{seen[item]}])")
        seen[item] = i
        parsed.append(item)
    return tuple(parsed)


def load_sweep(path_or_dict, *, base_dir=None) -> Sweep:
    """Read and validate a sweep file (or an already-parsed mapping).

    Raises
    ------
    ScenarioError
        Naming the file and the key at fault: an unknown key (at the top or in ``generate``), an
        unknown or unavailable method (naming the available ones), a bad value.
    """
    if isinstance(path_or_dict, dict):
        document, source = path_or_dict, "<sweep>"
    else:
        source = os.fspath(path_or_dict)
        document = read_document(source)
        base_dir = base_dir or Path(source).resolve().parent
    check = _Checker(source)
    check.mapping(document, "", required=("methods", "generate"), optional=_TOP_KEYS)
    name = document.get("name")
    if name is None:
        name = Path(source).stem if not source.startswith("<") else "sweep"
    name = check.text(name, "name")
    problem = document.get("problem", "jbba")
    if problem not in solvers.PROBLEMS:
        check.fail("problem", f"must be one of {', '.join(solvers.PROBLEMS)}, got "
                              f"{_show(problem)}")

    def method(value, key):
        check.text(value, key)
        try:
            solvers.get_method(value, problem)
        except solvers.SolverInputError as err:
            known = [m.name for m in solvers.methods_for(problem, available_only=False)]
            hint = did_you_mean(value, known) if value not in solvers.METHODS else ""
            check.fail(key, f"{err}{hint}")
        return value

    methods = _axis(check, check.items(document["methods"], "methods"), "methods", method)
    seeds = document.get("seeds", [0])
    if not isinstance(seeds, list):
        shown = _show(seeds) if isinstance(seeds, (int, float, str)) else _kind(seeds)
        check.fail("seeds", f"must be a list of seeds, e.g. [0, 1, 2], got {shown}")
    seeds = _axis(check, seeds, "seeds",
                  lambda value, key: _integer(check, value, key, least=0))
    time_limit = document.get("time_limit_s")
    if time_limit is not None:
        time_limit = check.positive(time_limit, "time_limit_s")
        if not any(solvers.METHODS[m].takes_time_limit for m in methods):
            takers = [m.name for m in solvers.methods_for(problem) if m.takes_time_limit]
            check.fail("time_limit_s", f"none of the methods takes a time limit; those that "
                                       f"do: {', '.join(takers)}")
    generate = document["generate"]
    if isinstance(generate, dict) and "seed" in generate:
        check.fail("generate.seed", "the generator's seeds are the top-level key 'seeds'")
    check.mapping(generate, "generate", required=(),
                  optional=(*GENERATOR_ARGUMENTS, *GENERATE_ALIASES))
    parsers = {
        "n_devices": lambda value, key: _integer(check, value, key, least=1),
        "profile": lambda value, key: _profile(check, value, key, base_dir),
        "rate_model": lambda value, key: _rate_model(check, value, key),
        "total_bandwidth_hz": check.positive,
        "noise_figure_db": lambda value, key: _switchable(check, value, key),
        "max_spectral_efficiency": lambda value, key: _switchable(check, value, key),
    }

    def checked_by_the_generator(argument, default):
        def parse(value, key):
            return _generator_accepts(check, argument, _plain(check, value, key, default), key)
        return parse

    for argument, default in GENERATOR_ARGUMENTS.items():
        parsers.setdefault(argument, checked_by_the_generator(argument, default))
    axes, spelled = {}, {}
    for key, raw in generate.items():
        argument = GENERATE_ALIASES.get(key, key)
        if argument in axes:
            check.fail(f"generate.{key}", f"the same generator argument as "
                                          f"generate.{spelled[argument]}; give one of them")
        spelled[argument] = key
        axes[argument] = _axis(check, raw, f"generate.{key}", parsers[argument])
    return Sweep(name=name, problem=problem, methods=methods, seeds=seeds, axes=axes,
                 time_limit_s=time_limit, source=source)


# ---------------------------------------------------------------------------------------------
# One task, on whichever worker runs it


def solve_task(task: dict) -> dict:
    """Generate the task's scenario, solve it, and return its row.

    A module-level function of plain data in and out, so that any executor can ship it. A
    method that finds nothing trustworthy (:class:`solvers.SolverFailure`) or refuses the
    instance (:class:`solvers.SolverInputError`) gives a row saying so, not an exception.
    """
    from ..api import solve
    from ..generate import generate_scenario
    from ..scenario import load_scenario

    document = generate_scenario(seed=task["seed"],
                                 **{name: task[name] for name in GENERATOR_ARGUMENTS})
    scenario = load_scenario(document)
    row = {column: task.get(_ARGUMENT_OF.get(column, column)) for column in COLUMNS}
    started = time.perf_counter()
    try:
        result = solve(scenario, problem=task["problem"], method=task["method"],
                       seed=task["solver_seed"], time_limit_s=task["time_limit_s"])
    except solvers.SolverFailure as err:
        row.update(status="failed", message=str(err),
                   solve_time_s=time.perf_counter() - started)
    except solvers.SolverInputError as err:
        row.update(status="refused", message=str(err), solve_time_s=0.0)
    else:
        row.update(status=result.status, round_latency_s=result.round_latency_s,
                   lower_bound_s=result.lower_bound_s, solve_time_s=result.solve_time_s,
                   message=result.message)
    return row


def _typed(row: dict) -> dict:
    """A row read back from the CSV with its numbers as numbers (empty: None)."""
    typed = dict(row)
    for column in _INTEGER_COLUMNS:
        typed[column] = int(row[column]) if row.get(column) else None
    for column in _FLOAT_COLUMNS:
        typed[column] = float(row[column]) if row.get(column) else None
    for column in _BOOLEAN_COLUMNS:
        typed[column] = row.get(column) == "true"
    return typed


# ---------------------------------------------------------------------------------------------
# The sweep


class _Progress:
    """``done/total`` on one line of standard error, redrawn in place; only on a terminal."""

    def __init__(self, name, total, stream=None):
        self.stream = stream or sys.stderr
        self.name, self.total, self.done = name, total, 0
        self.started = time.monotonic()
        self.live = total > 0 and getattr(self.stream, "isatty", lambda: False)()

    def step(self, *_):
        self.done += 1
        if self.live:
            elapsed = time.monotonic() - self.started
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r{self.name}: [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total} tasks, {elapsed:.0f} s")
            self.stream.flush()

    def close(self):
        if self.live and self.done:
            self.stream.write("\n")
            self.stream.flush()


def sweep(sweep_file_or_dict, *, output, executor=None, workers: int | None = None,
          scheduler: str | None = None, progress: bool = False) -> SweepOutcome:
    """Run a sweep into the CSV ``output``, resuming from the rows already there.

    Parameters
    ----------
    sweep_file_or_dict : path or mapping
        A sweep file (see the module's documentation) or the same keys as a mapping.
    output : path
        The CSV. Rows are appended one whole line at a time as tasks finish; a task whose key
        is already in the file is not run again, and a torn last line (the writer was killed
        mid-row) is cut off first. A file with other columns is an error, left untouched.
    executor : None, "local", "dask" or concurrent.futures.Executor
        None runs the tasks one after the other in this process. ``"local"``: a process pool of
        ``workers`` processes. ``"dask"``: a Dask cluster, the one at ``scheduler``
        (``tcp://host:8786``) or a local one of ``workers`` processes. Any
        ``concurrent.futures.Executor`` is used as it is and left open, e.g. mpi4py's
        ``MPIPoolExecutor()``, ``distributed.Client(address).get_executor()``, or
        ``lola.studies.PoolExecutor(ray.util.multiprocessing.Pool())`` for a Ray cluster.
    progress : bool
        Draw a one-line progress bar on standard error, when it is a terminal.

    Returns
    -------
    SweepOutcome
        ``rows``: every task's row (numbers as numbers), in grid order; ``ran`` and ``skipped``.

    Raises
    ------
    ScenarioError
        The sweep file is invalid (naming the file and the key), or ``output`` has other columns.
    lola.studies.ExecutorUnavailable
        ``executor="dask"`` without Dask installed, or a bad ``workers``/``scheduler``.
    Exception
        Whatever stopped the run (e.g. ``BrokenProcessPool`` when a worker process died);
        every row finished before stays in ``output`` and the next call resumes from it.
    """
    spec = sweep_file_or_dict if isinstance(sweep_file_or_dict, Sweep) else \
        load_sweep(sweep_file_or_dict)
    tasks = spec.tasks()
    if isinstance(executor, str):
        check_executor(executor, workers=workers, scheduler=scheduler)
    with RowLog(output, COLUMNS) as log:
        todo = [task for task in tasks if task["key"] not in log.keys]
        found = {row["key"]: _typed(row) for row in log.rows}
        bar = _Progress(spec.name, len(todo)) if progress else None

        def record(index, task, row):
            log.append(row)
            # As it reads back from the file, so that a resumed sweep returns the same rows.
            found[task["key"]] = _typed({c: format_value(row.get(c)) for c in COLUMNS})
            if bar:
                bar.step()

        try:
            if not todo or not isinstance(executor, str):
                run_tasks(solve_task, todo, executor=executor, on_result=record)
            else:
                with open_executor(executor, workers=workers, scheduler=scheduler) as pool:
                    run_tasks(solve_task, todo, executor=pool, on_result=record)
        except ExecutorUnavailable:
            if log.created and len(found) == len(log.rows):  # no row written: leave no file
                Path(output).unlink(missing_ok=True)
            raise
        finally:
            if bar:
                bar.close()
        rows = [found[task["key"]] for task in tasks]
        counts = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return SweepOutcome(rows=rows, ran=len(todo), skipped=len(tasks) - len(todo),
                            output=Path(output), repaired_bytes=log.repaired_bytes,
                            counts=counts)
