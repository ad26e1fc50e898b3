"""Seeded parameter sweeps over generated scenarios, the data behind the trade-off figures.

A sweep varies one quantity — the number of devices K, the total bandwidth B, or a scale on every
device's memory budget — over generated scenarios (:mod:`lola.generate`), solves each with the
chosen methods, and returns one row per (value, seed, method).

>>> rows = sweep("devices", [12, 14], methods=["crunch"], problem="matching", seeds=1)
>>> sorted({row["value"] for row in rows}), rows[0]["method"]
([12, 14], 'crunch')
"""
from __future__ import annotations

import copy

from .api import solve
from .generate import generate_scenario
from .report import summarise  # noqa: F401  (lola.sweeps.summarise, as before)
from .scenario import load_scenario
from .studies import run_tasks

__all__ = ["sweep", "summarise", "timing", "PARAMETERS"]

PARAMETERS = {
    "devices": "number of devices K",
    "bandwidth": "total bandwidth B (Hz)",
    "memory": "memory budget scale (x generated budgets)",
}


def _scenario(parameter, value, seed, *, devices, bandwidth_hz, profile, rate_model):
    if parameter == "devices":
        devices = int(value)
    elif parameter == "bandwidth":
        bandwidth_hz = float(value)
    document = generate_scenario(devices, profile=profile, rate_model=rate_model,
                                 total_bandwidth_hz=bandwidth_hz, seed=seed)
    if parameter == "memory":
        document = copy.deepcopy(document)
        for device in document["devices"]:
            device["memory_bytes"] *= float(value)
    return load_scenario(document)


def _solve_point(task) -> list:
    """The rows of one (value, seed) point: its scenario solved by every method (a task)."""
    parameter, value, seed, methods, problem, generator = task
    scenario = _scenario(parameter, value, seed, **generator)
    rows = []
    for method in methods:
        result = solve(scenario, problem=problem, method=method, seed=seed)
        rows.append({"parameter": parameter, "value": value, "seed": seed,
                     "method": method, "status": result.status,
                     "round_latency_s": result.round_latency_s,
                     "solve_time_s": result.solve_time_s})
    return rows


def _run_points(function, tasks, executor, progress) -> list:
    """Every task's rows, in task order, through the studies' runner."""
    done = []

    def report(*_):
        done.append(1)
        if progress:
            progress(len(done), len(tasks))

    results = run_tasks(function, tasks, executor=executor, on_result=report)
    return [row for rows in results for row in rows]


def sweep(parameter: str, values, *, methods, problem="jbba", seeds=5, devices=20,
          bandwidth_hz=20e6, profile="roberta-base", rate_model="fixed", progress=None,
          executor=None) -> list:
    """Solve generated scenarios for every value of ``parameter`` and every seed 0..seeds-1.

    Returns rows ``{parameter, value, seed, method, status, round_latency_s, solve_time_s}``;
    ``round_latency_s`` is None where the scenario is infeasible (e.g. blocks stop fitting).
    ``progress`` is called with (done, total) after each scenario. ``executor`` (any
    ``concurrent.futures.Executor``) solves the (value, seed) points in parallel; None, the
    default, solves them one after the other here. The rows are the same either way (but for
    the solve times), in the same order.
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"unknown sweep parameter {parameter!r}; choose from "
                         f"{', '.join(PARAMETERS)}")
    generator = {"devices": devices, "bandwidth_hz": bandwidth_hz, "profile": profile,
                 "rate_model": rate_model}
    tasks = [(parameter, value, seed, list(methods), problem, generator)
             for value in values for seed in range(seeds)]
    return _run_points(_solve_point, tasks, executor, progress)


def _time_point(task) -> list:
    """The timing rows of one (size, seed) instance (a task)."""
    import time

    import solvers

    from .generate import scaled_instance

    size, seed, methods, problem, rate_model = task
    instance = scaled_instance(size, size, seed=seed, rate_model=rate_model)
    rows = []
    for method in methods:
        started = time.perf_counter()
        try:
            spec = solvers.METHODS.get(method)
            seeded = {"seed": seed} if spec is not None and spec.takes_seed else {}
            result = solvers.run_method(method, problem, instance, **seeded)
        except solvers.SolverInputError:
            continue
        rows.append({"size": size, "seed": seed, "method": method,
                     "solve_time_s": time.perf_counter() - started,
                     "round_latency_s": result.round_latency_s})
    return rows


def timing(sizes, *, methods, problem="jbba", seeds=1, rate_model="fixed", progress=None,
           executor=None) -> list:
    """Solve time of each method on K = N instances (:func:`lola.generate.scaled_instance`).

    Returns rows ``{size, seed, method, solve_time_s, round_latency_s}``. Methods that refuse
    a size (``brute``) are left out of that size. ``executor`` as in :func:`sweep`; timings
    taken side by side disturb each other, so the default (None) times one at a time.
    """
    tasks = [(size, seed, list(methods), problem, rate_model)
             for size in sizes for seed in range(seeds)]
    return _run_points(_time_point, tasks, executor, progress)
