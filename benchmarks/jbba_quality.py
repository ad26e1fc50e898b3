"""How close is LoLa's dual ascent to the exact JBBA optimum, and what does the allocation buy?

Over ``--instances`` random default-like instances (20 devices, the 12 RoBERTa-base blocks, half
``fixed`` and half ``shannon`` rate model, see ``lola.generate.scaled_instance``), in one run:

* the dual-ascent gap to ``exact`` (target: median < 1 %, 95th percentile < 3 %), with its
  primal repair (the default) and without it (the plain dual ascent), and iterations used;
* the latency reduction of the exact optimum and of dual ascent versus ``random``, ``greedy``,
  ``min-sum``, CRUNCH at the equal share B / N, and ``centralized``: mean, median, 95th pct.

Instances run in parallel over the machine's cores. Writes ``results/jbba_quality.csv`` (one row
per instance) and ``results/jbba_quality_summary.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from lola._io import atomic_write_text
from solvers import run_method

from .common import RESULTS, scaled_instance, write_csv

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 instances")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    count = 40 if args.quick else args.instances
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one_instance, range(count), chunksize=4))
    write_csv("jbba_quality.csv", rows)
    summary = summarise(rows)
    atomic_write_text(RESULTS / "jbba_quality_summary.json", json.dumps(summary, indent=2))
    gap, plain = summary["dual_ascent_gap"], summary["dual_ascent_plain_gap"]
    print(f"{summary['feasible']} of {summary['instances']} instances feasible")
    print(f"dual-ascent gap to exact: median {100 * gap['median']:.3f} %, 95th pct "
          f"{100 * gap['p95']:.3f} %, max {100 * gap['max']:.3f} % (target < 1 %, < 3 %)")
    print(f"  without primal repair:  median {100 * plain['median']:.3f} %, 95th pct "
          f"{100 * plain['p95']:.3f} %, max {100 * plain['max']:.3f} %")
    print(f"  dual bound / optimum: median {summary['dual_bound_ratio']['median']:.3f}; "
          f"iterations median {summary['iterations']['median']:.0f} "
          f"(plain {summary['iterations_plain']['median']:.0f})")
    for name, reduction in summary["reduction"].items():
        ex, da = reduction["exact"], reduction["dual_ascent"]
        print(f"  vs {name:<13} exact: mean {100 * ex['mean']:6.1f} %  median "
              f"{100 * ex['median']:6.1f} %  p95 {100 * ex['p95']:6.1f} %   dual ascent: mean "
              f"{100 * da['mean']:6.1f} %")
    return summary


if __name__ == "__main__":
    main()
