"""``lola.race``: strategies x seeds, each a real fine-tuning run in Flower, on one clock.

Each (strategy, seed) run is one task of the runner every LoLa study uses
(:func:`lola.studies.runner.run_tasks`): in this process, on a local process pool, or on a Dask
cluster, with the same rows. With an output CSV the race is resumable: rows are appended one
whole line at a time as each run finishes (:class:`lola.studies.RowLog`), and a race started
again with the same settings runs only the (strategy, seed) runs whose rows are not all there.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .glue import GlueError, task_files
from .settings import DEFAULT_SEQUENCE_LENGTH, RaceSettings, RaceSettingsError
from .strategies import STRATEGIES, RaceCosts, StrategyError

__all__ = ["race", "RaceReport", "ROW_COLUMNS", "CSV_COLUMNS", "summarise", "run_one",
           "race_scenario", "RaceError"]

ROW_COLUMNS = ["strategy", "seed", "round", "round_latency_s", "modeled_time_s", "devices",
               "examples", "train_loss", "dev_loss", "dev_accuracy"]
CSV_COLUMNS = ["key", *ROW_COLUMNS, "test_loss", "test_accuracy", "wall_s", "train_s",
               "eval_s", "config"]
PROFILE = "minilm-l6"


class RaceError(ValueError):
    """Bad input to a race (one line naming the option, file or key)."""


@dataclass
class RaceReport:
    """What a race found: every round's row and each run's summary (section 16)."""

    scenario: str
    task: str
    model: str
    sequence_length: int
    target: float
    strategies: list
    seeds: list
    rows: list
    summary: list
    saved: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0

    def strategy_summary(self) -> list:
        """Per strategy over its seeds: mean and spread of the time to target, the number of
        seeds that reached it, and the mean final dev and test accuracy."""
        out = []
        for strategy in self.strategies:
            runs = [s for s in self.summary if s["strategy"] == strategy]
            times = [s["time_to_target_s"] for s in runs if s["time_to_target_s"] is not None]
            finals = [s["final_dev_accuracy"] for s in runs if s["final_dev_accuracy"] is not None]
            tests = [s["test_accuracy"] for s in runs if s["test_accuracy"] is not None]
            out.append({
                "strategy": strategy, "seeds": len(runs), "reached": len(times),
                "time_to_target_s_mean": float(np.mean(times)) if len(times) == len(runs)
                and times else None,
                "time_to_target_s_min": min(times) if times else None,
                "time_to_target_s_max": max(times) if times else None,
                "final_dev_accuracy_mean": float(np.mean(finals)) if finals else None,
                "test_accuracy_mean": float(np.mean(tests)) if tests else None,
                "round_latency_s_mean": float(np.mean([s["round_latency_s_mean"]
                                                       for s in runs])) if runs else None})
        return out

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "task": self.task, "model": self.model,
                "sequence_length": self.sequence_length, "target": self.target,
                "strategies": list(self.strategies), "seeds": list(self.seeds),
                "rows": [{k: row[k] for k in ROW_COLUMNS} for row in self.rows],
                "summary": self.summary, "saved": self.saved,
                "strategy_summary": self.strategy_summary(), "settings": self.settings,
                "ran": self.ran, "skipped": self.skipped}


def race_scenario(scenario=None):
    """The race's scenario: the one given (whose blocks must be the model's: a scenario with
    ``model: {profile: minilm-l6}``), or the bundled default scenario's devices, channel and
    server with the ``minilm-l6`` profile. Returns (Scenario, its document digest)."""
    from ..scenario import ScenarioError, load_scenario, read_document

    if scenario is None:
        from ..api import default_scenario_path

        path = str(default_scenario_path())
        document = dict(read_document(path))
        document["model"] = {"profile": PROFILE, "bits_per_param": 32}
        document["name"] = f"{document.get('name', 'default')}-{PROFILE}"
        source = document
    elif isinstance(scenario, dict):
        source = document = scenario
    else:
        path = os.fspath(scenario)
        if not os.path.isfile(path):
            raise RaceError(f"SCENARIO {path}: no such file")
        document = read_document(path)
        source = path
    loaded = load_scenario(source)
    depths = {b.name: b.depth for b in loaded.blocks}
    from .model import block_depths

    expected = block_depths(6)
    if depths != expected:
        where = source if isinstance(source, str) else "the scenario"
        raise ScenarioError(f"its blocks ({', '.join(sorted(depths)[:4])}, ...) are not the "
                            f"race model's ({', '.join(sorted(expected))} at depths "
                            f"classifier 1 ... layer.0 7): give it model: {{profile: {PROFILE}}}",
                            key="model", source=str(where))
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str)
                            .encode()).hexdigest()[:16]
    return loaded, digest


def _with_batch_bytes(scenario, settings: RaceSettings):
    """The scenario with ``model.batch_bytes``, when it has none, set to what a device uploads
    for one mini-batch in ``centralized``: int32 token ids and labels."""
    if scenario.model.batch_bytes is not None:
        return scenario
    size = settings.batch_size * settings.sequence_length * 4 + settings.batch_size * 4
    return dataclasses.replace(scenario, model=dataclasses.replace(scenario.model,
                                                                  batch_bytes=float(size)))


def run_one(task: dict) -> dict:
    """One (strategy, seed) run, from plain data (a task of the runner): its rows, test
    evaluation, timing and, when asked, its saved adapters."""
    from ..flower.inprocess import run_in_process
    from .apps import RaceServer, get_race_model, make_client_app

    settings = RaceSettings(**task["settings"])
    scenario, _ = race_scenario(task["scenario"])
    scenario = _with_batch_bytes(scenario, settings)
    costs = RaceCosts(scenario, local_steps=settings.local_steps,
                      clients_per_round=settings.clients_per_round,
                      max_blocks=settings.max_blocks)
    started = time.perf_counter()
    server = RaceServer(settings, costs, progress=None)
    outcome = {}

    def server_app(grid, context):
        outcome["run"] = server.run(grid)

    client_app = make_client_app(settings, scenario.devices)
    node_configs = [{"device": d.name} for d in scenario.devices]
    run_in_process(server_app, client_app, node_configs)
    run = outcome["run"]
    saved = None
    if task.get("save"):
        model = get_race_model(settings)
        model.load(run.final_arrays)
        path = Path(task["save"]) / f"{settings.strategy}-seed{settings.seed}"
        model.save(path)
        saved = str(path)
    total = time.perf_counter() - started
    # wall_s: the rounds (training, evaluation, planning, messages, aggregation); setup_s: what
    # comes before the first round and after the last (model, data, saving)
    return {"rows": run.rows, "test": run.test, "initial": run.initial, "saved": saved,
            "timing": {**run.timing, "setup_s": total - run.timing["wall_s"]}}


def summarise(rows, strategy: str, seed: int, target: float, test=None, timing=None) -> dict:
    """One run's summary (section 16): the first evaluated round at or above ``target``."""
    mine = sorted((r for r in rows if r["strategy"] == strategy and r["seed"] == seed),
                  key=lambda r: r["round"])
    reached = next((r for r in mine if r["dev_accuracy"] is not None
                    and r["dev_accuracy"] >= target), None)
    evaluated = [r for r in mine if r["dev_accuracy"] is not None]
    summary = {"strategy": strategy, "seed": seed,
               "rounds_to_target": reached["round"] if reached else None,
               "time_to_target_s": reached["modeled_time_s"] if reached else None,
               "final_dev_accuracy": evaluated[-1]["dev_accuracy"] if evaluated else None,
               "best_dev_accuracy": max(r["dev_accuracy"] for r in evaluated) if evaluated
               else None,
               "test_accuracy": (test or {}).get("accuracy"),
               "rounds": len(mine),
               "modeled_time_s": mine[-1]["modeled_time_s"] if mine else None,
               "round_latency_s_mean": float(np.mean([r["round_latency_s"] for r in mine]))
               if mine else None}
    if timing:
        summary.update({key: timing.get(key) for key in ("wall_s", "train_s", "eval_s")})
        if timing.get("wall_s") is not None:
            summary["overhead_s"] = timing["wall_s"] - timing["train_s"] - timing["eval_s"]
    return summary


def _number(text):
    if text in ("", None):
        return None
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text
    return value


def _check_inputs(glue_dir, task, model, save, output, figure):
    from .._io import check_output_path
    from ..pretrained import zip_path

    if glue_dir is None:
        raise RaceError("--glue-dir: give the folder that holds the GLUE tasks")
    from .glue import read_split

    for split, path in task_files(glue_dir, task).items():
        if path is not None:
            read_split(glue_dir, task, split, path=path)  # a bad line is named before any run
    zip_path(model)
    if output is not None:
        check_output_path(output, option="-o")
    if figure is not None:
        check_output_path(figure, option="--figure")
    if save is not None:
        save = Path(save)
        if save.exists() and not save.is_dir():
            raise RaceError(f"--save {save}: is a file, not a folder")
        parent = save if save.exists() else save.parent
        if not parent.is_dir():
            raise RaceError(f"--save {save}: the folder {parent} does not exist (create it first)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RaceError(f"--save {save}: cannot write in {parent} (permission denied)")


def race(scenario=None, *, glue_dir, task: str = "sst2", model: str = "minilm",
         strategies=("deft", "fedavg-lora"), rounds: int = 10, seeds=(0,),
         target: float = 0.8, sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
         alpha: float | None = None, size_skew: float = 0.0, lr: float = 1e-3,
         client_lr: float = 0.1, optimizer: str = "sgd", local_steps: int = 1, batch_size: int = 16,
         clients_per_round: int | None = None, max_blocks: int = 1, eval_every: int = 1,
         threads: int = 1, save=None, output=None, figure=None, executor=None,
         workers: int | None = None, scheduler: str | None = None,
         progress: bool = False) -> RaceReport:
    """Race ``strategies`` x ``seeds`` on a GLUE task (section 16 of the specification).

    Parameters
    ----------
    scenario : path, mapping or None
        The devices, channel and server; its model must be the ``minilm-l6`` profile's blocks.
        None: the bundled default scenario with ``model: {profile: minilm-l6}``.
    glue_dir : path
        The folder that holds the GLUE tasks (``glue_dir/SST-2/train.tsv``, ...).
    strategies : iterable of str
        Among ``deft``, ``fedavg-lora``, ``depth-hetero``, ``centralized``.
    rounds, seeds, target
        Rounds per run, the seeds (each a run per strategy), the dev accuracy to reach.
    lr : float
        The learning rate of the server's optimizer (Adam, its state kept across rounds), which
        applies each round's aggregated update (:mod:`lola.race.apps`); in ``centralized`` it
        trains on the uploaded mini-batches.
    client_lr, optimizer, local_steps, batch_size
        The client optimizer (``sgd`` or ``adamw``, created afresh for each round's local
        steps), its learning rate, the local steps E per round and the mini-batch size. Every
        one of these is the same for every strategy.
    clients_per_round : int, optional
        M participants per round for ``fedavg-lora`` and ``depth-hetero`` (default: every
        eligible device).
    eval_every : int
        Evaluate on the dev split after every k-th round (and the last); the rows of the other
        rounds have no dev figures, and a target is reached at the first evaluated round at or
        above it. 1 (the default) evaluates every round, as section 16 says.
    save : path, optional
        A folder: each run's final adapters and head in peft's format, ``save/<strategy>-seed<s>``.
    output : path, optional
        The rows as CSV; an existing file with rows of the same race is resumed.
    executor, workers, scheduler
        As :func:`lola.sweep`: None (this process), ``"local"``, ``"dask"`` or an Executor.

    Raises
    ------
    RaceError, RaceSettingsError, GlueError, lola.pretrained.ModelPackageMissing, ScenarioError
        Bad input, before any run starts (each a ``ValueError`` with one line).
    """
    from ..studies.rows import RowLog, format_value
    from ..studies.runner import check_executor, open_executor, run_tasks

    strategies = [str(s) for s in strategies]
    seeds = [int(s) if not isinstance(s, bool) and isinstance(s, (int, np.integer)) else s
             for s in seeds]
    if not strategies:
        raise RaceError("--strategies: give at least one strategy")
    if len(set(strategies)) != len(strategies):
        raise RaceError("--strategies: a strategy is named twice")
    if not seeds or len(set(map(str, seeds))) != len(seeds):
        raise RaceError("--seeds: give one or more different seeds")
    if isinstance(target, bool) or not isinstance(target, (int, float)) \
            or not math.isfinite(target) or not 0 < target <= 1:
        raise RaceError(f"--target {target!r}: a dev accuracy in (0, 1]")
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise RaceError(f"--strategies {strategy}: unknown strategy; choose from "
                            f"{', '.join(STRATEGIES)}")
    base = dict(glue_dir=str(glue_dir) if glue_dir is not None else "", task=task, model=model,
                rounds=rounds, sequence_length=sequence_length, alpha=alpha,
                size_skew=size_skew, lr=lr, client_lr=client_lr, optimizer=optimizer, local_steps=local_steps,
                batch_size=batch_size, clients_per_round=clients_per_round,
                max_blocks=max_blocks, eval_every=eval_every, threads=threads)
    settings = {(s, seed): RaceSettings(strategy=s, seed=seed, **base)
                for s in strategies for seed in seeds}
    _check_inputs(glue_dir, task, model, save, output, figure)
    scenario_value = os.fspath(scenario) if isinstance(scenario, os.PathLike) else scenario
    loaded, digest = race_scenario(scenario_value)
    if isinstance(executor, str):
        check_executor(executor, workers=workers, scheduler=scheduler)
    # every strategy can run on these devices: checked on the first round's plan, before training
    probe = _with_batch_bytes(loaded, next(iter(settings.values())))
    for strategy in strategies:
        from .strategies import plan_round

        plan_round(strategy, RaceCosts(probe, local_steps=local_steps,
                                       clients_per_round=clients_per_round,
                                       max_blocks=max_blocks), np.random.default_rng(0))
    config = next(iter(settings.values())).fingerprint(digest)
    if save is not None:
        Path(save).mkdir(exist_ok=True)
    tasks = [{"settings": s.to_dict(), "scenario": scenario_value, "key": f"{k[0]}/{k[1]}",
              "save": str(save) if save is not None else None}
             for k, s in settings.items()]
    found, timings, tests, saved = {}, {}, {}, {}
    log = RowLog(output, CSV_COLUMNS) if output is not None else None
    try:
        if log is not None:
            foreign = [row for row in log.rows if row.get("config") != config]
            if foreign:
                raise RaceError(f"-o {output}: the file holds rows of a race with other "
                                "settings; write to a new file")
            for row in log.rows:
                typed = {key: _number(row[key]) for key in CSV_COLUMNS if key != "key"}
                typed["strategy"] = row["strategy"]
                found.setdefault((row["strategy"], int(row["seed"])), {})[int(row["round"])] = \
                    typed
        done = {key for key, rows in found.items() if sorted(rows) == list(range(1, rounds + 1))}
        todo = [t for t, key in zip(tasks, settings) if key not in done]
        for key in done:
            last = found[key][rounds]
            tests[key] = {"accuracy": last["test_accuracy"], "loss": last["test_loss"]}
            timings[key] = {"wall_s": last["wall_s"], "train_s": last["train_s"],
                            "eval_s": last["eval_s"]}
            path = Path(save) / f"{key[0]}-seed{key[1]}" if save is not None else None
            if path is not None and path.is_dir():
                saved[f"{key[0]}/{key[1]}"] = str(path)
        bar = _Bar(len(todo)) if progress and sys.stderr.isatty() else None

        def record(index, task_, result):
            strategy, seed = task_["settings"]["strategy"], task_["settings"]["seed"]
            found[(strategy, seed)] = {row["round"]: dict(row) for row in result["rows"]}
            tests[(strategy, seed)] = result["test"]
            timings[(strategy, seed)] = result["timing"]
            if result["saved"]:
                saved[f"{strategy}/{seed}"] = result["saved"]
            if log is not None:
                for row in result["rows"]:
                    last = row["round"] == rounds
                    log.append({**row, "key": f"{config}/{strategy}/{seed}/{row['round']}",
                                "config": config,
                                "test_loss": (result["test"] or {}).get("loss") if last else None,
                                "test_accuracy": (result["test"] or {}).get("accuracy")
                                if last else None,
                                **({key: result["timing"][key] for key in
                                    ("wall_s", "train_s", "eval_s")} if last else {})})
            if bar:
                bar.step(f"{strategy} seed {seed}")

        try:
            if not todo or not isinstance(executor, str):
                run_tasks(run_one, todo, executor=executor, on_result=record)
            else:
                with open_executor(executor, workers=workers, scheduler=scheduler) as pool:
                    run_tasks(run_one, todo, executor=pool, on_result=record)
        finally:
            if bar:
                bar.close()
    finally:
        if log is not None:
            log.close()
    rows, summary = [], []
    for strategy in strategies:
        for seed in seeds:
            mine = [found[(strategy, seed)][r] for r in sorted(found[(strategy, seed)])]
            rows.extend({key: row.get(key) for key in ROW_COLUMNS} for row in mine)
            summary.append(summarise(mine, strategy, seed, target, tests.get((strategy, seed)),
                                     timings.get((strategy, seed))))
    report = RaceReport(scenario=loaded.name, task=task, model=model,
                        sequence_length=sequence_length, target=float(target),
                        strategies=strategies, seeds=seeds, rows=rows, summary=summary,
                        saved=saved, settings={**base, "config": config}, ran=len(todo),
                        skipped=len(tasks) - len(todo))
    if figure is not None:
        from ..plots import save as save_figure
        from .plots import plot_race

        save_figure(plot_race(report), figure)
    return report


class _Bar:
    def __init__(self, total, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.started = time.monotonic()

    def step(self, label):
        self.done += 1
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\rrace: {self.done}/{self.total} runs ({label}) "
                          f"{elapsed:.0f} s")
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()
