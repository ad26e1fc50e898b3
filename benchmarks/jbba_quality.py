"""How close is LoLa's dual ascent to the exact JBBA optimum, and what does the allocation buy?

Over ``--instances`` random default-like instances (20 devices, the 12 RoBERTa-base blocks, half
``fixed`` and half ``shannon`` rate model, see ``lola.generate.scaled_instance``), in one run:

* the dual-ascent gap to ``exact`` (target: median < 1 %, 95th percentile < 3 %), with its
  primal repair (the default) and without it (the plain dual ascent), and iterations used;
* the latency reduction of the exact optimum and of dual ascent versus ``random``, ``greedy``,
  ``min-sum``, CRUNCH at the equal share B / N, and ``centralized``: mean, median, 95th pct.

Instances run in parallel over the machine's cores, or on any executor (``python -m benchmarks
--executor dask``). Writes ``results/jbba_quality.csv`` (one row per instance) and
``results/jbba_quality_summary.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lola._io import atomic_write_text
from lola.generate import scaled_instance
from lola.studies import run_tasks
from solvers import run_method

from .common import RESULTS, write_csv

BASELINES = ["random", "greedy", "min-sum", "crunch-equal", "centralized"]


def one_instance(seed: int) -> dict:
    rate_model = "fixed" if seed % 2 == 0 else "shannon"
    instance = scaled_instance(20, 12, seed=1000 + seed, rate_model=rate_model)
    exact = run_method("exact", "jbba", instance)
    lola = run_method("dual-ascent", "jbba", instance)
    plain = run_method("dual-ascent", "jbba", instance, repair=False)
    row = {"seed": seed, "rate_model": rate_model, "exact_s": exact.round_latency_s,
           "dual_ascent_s": lola.round_latency_s, "dual_ascent_plain_s": plain.round_latency_s,
           "dual_bound_s": lola.lower_bound_s,
           "iterations": lola.extras["iterations"], "iterations_plain": plain.extras["iterations"]}
    for name in BASELINES:
        if name == "crunch-equal":
            result = run_method("crunch", "matching", dataclasses.replace(
                instance, device_bandwidth_hz=instance.equal_bandwidth()))
        else:
            result = run_method(name, "jbba", instance)
        row[f"{name}_s"] = result.round_latency_s
    return row


def _stats(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def summarise(rows) -> dict:
    feasible = [r for r in rows if r["exact_s"] is not None]
    exact = np.array([r["exact_s"] for r in feasible])
    summary = {"instances": len(rows), "feasible": len(feasible),
               "dual_ascent_gap": _stats([r["dual_ascent_s"] for r in feasible] / exact - 1),
               "dual_ascent_plain_gap": _stats([r["dual_ascent_plain_s"] for r in feasible]
                                               / exact - 1),
               "dual_bound_ratio": _stats([r["dual_bound_s"] for r in feasible] / exact),
               "iterations": _stats([r["iterations"] for r in feasible]),
               "iterations_plain": _stats([r["iterations_plain"] for r in feasible]),
               "reduction": {}}
    for name in BASELINES:
        base = np.array([r[f"{name}_s"] for r in feasible], dtype=float)
        summary["reduction"][name] = {
            "exact": _stats(1 - exact / base),
            "dual_ascent": _stats(1 - np.array([r["dual_ascent_s"] for r in feasible]) / base)}
    return summary


def run(out_dir=None, quick=False, instances=200, jobs=None, executor=None) -> dict:
    """Measure, write the CSV and summary JSON into ``out_dir``, return the summary.

    The instances run on ``executor`` (any ``concurrent.futures.Executor``, e.g. a Dask
    cluster's), else on a pool of ``jobs`` processes (default: the number of cores).
    """
    count = 40 if quick else instances
    if executor is not None:
        rows = run_tasks(one_instance, range(count), executor=executor)
    else:
        with ProcessPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
            rows = run_tasks(one_instance, range(count), executor=pool)
    out_dir = Path(out_dir or RESULTS)
    write_csv("jbba_quality.csv", rows, out_dir)
    summary = summarise(rows)
    atomic_write_text(out_dir / "jbba_quality_summary.json", json.dumps(summary, indent=2), parents=True)
    return summary


def _percent(value) -> str:
    """A relative gap in percent; the exact solver's 1e-9 tolerance can leave it at -1e-10."""
    return f"{100 * value:.3f}" if abs(value) >= 5e-6 else "0.000"


def headline(summary) -> list:
    gap, plain = summary["dual_ascent_gap"], summary["dual_ascent_plain_gap"]
    lines = [f"{summary['feasible']} of {summary['instances']} instances feasible",
             f"dual-ascent gap to exact: median {_percent(gap['median'])} %, 95th pct "
             f"{_percent(gap['p95'])} %, max {_percent(gap['max'])} % (target < 1 %, < 3 %)",
             f"without primal repair: median {_percent(plain['median'])} %, 95th pct "
             f"{_percent(plain['p95'])} %, max {_percent(plain['max'])} %",
             f"dual bound / optimum: median {summary['dual_bound_ratio']['median']:.3f}; "
             f"iterations median {summary['iterations']['median']:.0f} "
             f"(plain {summary['iterations_plain']['median']:.0f})"]
    for name, reduction in summary["reduction"].items():
        ex, da = reduction["exact"], reduction["dual_ascent"]
        lines.append(f"latency reduction vs {name}: exact mean {100 * ex['mean']:.1f} %, median "
                     f"{100 * ex['median']:.1f} %, p95 {100 * ex['p95']:.1f} %; dual ascent "
                     f"mean {100 * da['mean']:.1f} %")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 instances")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    summary = run(quick=args.quick, instances=args.instances, jobs=args.jobs)
    print("\n".join(headline(summary)))
    return summary


if __name__ == "__main__":
    main()
