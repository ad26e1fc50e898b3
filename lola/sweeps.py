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

import numpy as np

from .api import solve
from .generate import generate_scenario
from .scenario import load_scenario

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


def sweep(parameter: str, values, *, methods, problem="jbba", seeds=5, devices=20,
          bandwidth_hz=20e6, profile="roberta-base", rate_model="fixed", progress=None) -> list:
    """Solve generated scenarios for every value of ``parameter`` and every seed 0..seeds-1.

    Returns rows ``{parameter, value, seed, method, status, round_latency_s, solve_time_s}``;
    ``round_latency_s`` is None where the scenario is infeasible (e.g. blocks stop fitting).
    ``progress`` is called with (done, total) after each scenario.
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"unknown sweep parameter {parameter!r}; choose from "
                         f"{', '.join(PARAMETERS)}")
    rows = []
    total = len(values) * seeds
    for i, value in enumerate(values):
        for seed in range(seeds):
            scenario = _scenario(parameter, value, seed, devices=devices,
                                 bandwidth_hz=bandwidth_hz, profile=profile,
                                 rate_model=rate_model)
            for method in methods:
                result = solve(scenario, problem=problem, method=method, seed=seed)
                rows.append({"parameter": parameter, "value": value, "seed": seed,
                             "method": method, "status": result.status,
                             "round_latency_s": result.round_latency_s,
                             "solve_time_s": result.solve_time_s})
            if progress:
                progress(i * seeds + seed + 1, total)
    return rows


def summarise(rows) -> dict:
    """Per method: values, mean latency, 95 % confidence half-width, feasible fraction.

    The band is mean +- 1.96 standard errors over the seeds that were feasible.
    """
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        values = sorted({r["value"] for r in rows if r["method"] == method})
        mean, half, feasible = [], [], []
        for value in values:
            latency = [r["round_latency_s"] for r in rows
                       if r["method"] == method and r["value"] == value]
            finite = np.array([x for x in latency if x is not None], dtype=float)
            feasible.append(len(finite) / len(latency))
            mean.append(finite.mean() if len(finite) else np.nan)
            half.append(1.96 * finite.std(ddof=1) / np.sqrt(len(finite))
                        if len(finite) > 1 else 0.0)
        summary[method] = {"values": np.array(values, dtype=float), "mean": np.array(mean),
                           "half_width": np.array(half), "feasible": np.array(feasible)}
    return summary


def timing(sizes, *, methods, problem="jbba", seeds=1, rate_model="fixed", progress=None) -> list:
    """Solve time of each method on K = N instances (:func:`lola.generate.scaled_instance`).

    Returns rows ``{size, seed, method, solve_time_s, round_latency_s}``. Methods that refuse
    a size (``brute``) are left out of that size.
    """
    import time

    import solvers

    from .generate import scaled_instance

    rows = []
    total = len(sizes) * seeds
    for i, size in enumerate(sizes):
        for seed in range(seeds):
            instance = scaled_instance(size, size, seed=seed, rate_model=rate_model)
            for method in methods:
                started = time.perf_counter()
                try:
                    result = solvers.run_method(method, problem, instance, seed=seed)
                except solvers.SolverInputError:
                    continue
                rows.append({"size": size, "seed": seed, "method": method,
                             "solve_time_s": time.perf_counter() - started,
                             "round_latency_s": result.round_latency_s})
            if progress:
                progress(i * seeds + seed + 1, total)
    return rows
