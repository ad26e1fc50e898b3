"""The benchmark suite: ``python -m benchmarks [--quick] [--out DIR] [--force]
[--executor local|dask] [--scheduler ADDRESS]`` (``make bench``).

Runs every stage — CRUNCH scaling, JBBA scaling, exact JBBA at scale, JBBA quality, many rounds,
the Pareto front of configurations, several blocks per device, the same at LLM scale, split
mode, and the figures — writes CSV/JSON
results and PNG figures into one folder, then ``report.md`` with the headline ratios. Each stage
ends by writing ``stage-NAME.json`` (atomically, like every file here), so an interrupted run
leaves no half-written file and a rerun resumes after the last finished stage (``--force``
reruns everything). Timing stages run one measurement at a time on purpose (parallel timings
would disturb each other); the quality stage and the seeded sweeps spread over the cores, or
over a Dask cluster with ``--executor dask [--scheduler tcp://host:8786]`` (the same runner as
``lola sweep``, :mod:`lola.studies`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lola._io import atomic_write_text
from lola.studies import EXECUTORS, ExecutorUnavailable, check_executor, open_executor

from . import (crunch_scaling, exact_scaling, jbba_quality, jbba_scaling, llm_scale,
               pareto_grid, rounds, several_blocks, split_mode)
from .common import RESULTS

STAGES = ("crunch_scaling", "jbba_scaling", "exact_scaling", "jbba_quality", "rounds",
          "pareto_grid", "several_blocks", "llm_scale", "split_mode", "figures")


def figures_stage(out_dir: Path, quick: bool, jobs: int, executor=None) -> dict:
    """All seven figures, drawn from fresh seeded sweeps and from the scaling stage's rows.

    The sweeps' (value, seed) points run on ``executor``, else on a pool of ``jobs`` processes.
    """
    import lola
    from lola import plots, sweeps

    seeds = 3 if quick else 10
    methods = ["dual-ascent", "exact", "greedy", "min-sum", "random"]
    sweeps_to_run = [("devices", [12, 16, 20, 30, 40] if quick else [12, 14, 16, 20, 25, 30,
                                                                     40, 60], methods, seeds),
                     ("bandwidth", [2e6, 5e6, 1e7, 2e7, 5e7, 1e8], methods, seeds),
                     ("memory", [0.3, 0.4, 0.6, 0.8, 1.0, 1.5], methods, seeds)]
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(ProcessPoolExecutor(max_workers=jobs))
        results = [sweeps.sweep(parameter, values, methods=methods, seeds=seeds,
                                executor=executor)
                   for parameter, values, methods, seeds in sweeps_to_run]
    written = []
    for (parameter, *_), rows in zip(sweeps_to_run, results):
        written.append(plots.save(plots.plot_sweep(rows), out_dir / f"latency-vs-{parameter}.png"))
        atomic_write_text(out_dir / f"sweep-{parameter}.json", json.dumps(rows, indent=1))
    written.append(plots.save(plots.plot_profile(["roberta-base", "roberta-large"]),
                              out_dir / "profiles.png"))
    scenario = lola.default_scenario()
    result = lola.solve(scenario, problem="jbba", method="dual-ascent")
    written.append(plots.save(plots.plot_convergence(result), out_dir / "convergence.png"))
    written.append(plots.save(plots.plot_allocation(result), out_dir / "allocation.png"))
    timing = json.loads((out_dir / "stage-jbba_scaling.json").read_text())["rows"]
    timing = [{"size": r["K"], "method": r["method"], "solve_time_s": r["median_s"]}
              for r in timing]
    written.append(plots.save(plots.plot_solver_time(timing), out_dir / "solver-time.png"))
    reduction = {}
    for rows in results[:1]:
        by_method = {}
        for row in rows:
            if row["value"] == 20 and row["round_latency_s"] is not None:
                by_method.setdefault(row["method"], []).append(row["round_latency_s"])
        lola_mean = sum(by_method["dual-ascent"]) / len(by_method["dual-ascent"])
        for method, values in by_method.items():
            if method != "dual-ascent":
                reduction[method] = 1 - lola_mean / (sum(values) / len(values))
    return {"figures": [p.name for p in written], "seeds": seeds,
            "dual_ascent_reduction_K20": reduction}


def figures_headline(summary) -> list:
    lines = [f"figures: {', '.join(summary['figures'])}"]
    for method, value in summary["dual_ascent_reduction_K20"].items():
        lines.append(f"default family (K = 20, {summary['seeds']} seeds): dual ascent's mean "
                     f"round latency is {100 * value:.1f} % below {method}'s")
    return lines


def _report(out_dir: Path, summaries: dict, quick: bool) -> Path:
    lines = ["# LoLa benchmark report", "",
             f"Run {'(quick) ' if quick else ''}on {platform.node() or 'this machine'}: "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    headlines = {"crunch_scaling": crunch_scaling.headline, "jbba_scaling": jbba_scaling.headline,
                 "exact_scaling": exact_scaling.headline, "jbba_quality": jbba_quality.headline,
                 "rounds": rounds.headline, "pareto_grid": pareto_grid.headline,
                 "several_blocks": several_blocks.headline, "llm_scale": llm_scale.headline,
                 "split_mode": split_mode.headline,
                 "figures": figures_headline}
    titles = {"crunch_scaling": "CRUNCH scaling (problem P1)",
              "jbba_scaling": "JBBA scaling (problem P2)",
              "exact_scaling": "Exact JBBA at scale (10^4 to 10^6 devices)",
              "rounds": "Many rounds: re-allocation against a static allocation",
              "pareto_grid": "The Pareto front of fine-tuning configurations",
              "jbba_quality": "JBBA quality: dual ascent against the exact optimum",
              "several_blocks": "Several blocks per device: exact methods, MILP and packing",
              "llm_scale": "Several blocks per device at LLM scale (Llama-3-8B shape, 224 "
                           "blocks)",
              "split_mode": "Split mode: how often it wins, and exact P2 with both modes",
              "figures": "Figures"}
    for stage in STAGES:
        lines += [f"## {titles[stage]}", ""]
        lines += [f"- {line}" for line in headlines[stage](summaries[stage])]
        lines.append("")
    lines += ["![round latency versus K](latency-vs-devices.png)",
              "![round latency versus bandwidth](latency-vs-bandwidth.png)",
              "![round latency versus memory](latency-vs-memory.png)",
              "![solver time](solver-time.png)", ""]
    return atomic_write_text(out_dir / "report.md", "\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run LoLa's benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--out", default=str(RESULTS), help="output folder")
    parser.add_argument("--force", action="store_true", help="rerun finished stages too")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(),
                        help="worker processes on this machine (default: the number of cores)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where the quality stage and the sweeps run: local processes, or "
                        "a Dask cluster (the one at --scheduler, else a local one of --jobs "
                        "workers); the timing stages always run here, one at a time")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running Dask scheduler (tcp://host:8786)")
    args = parser.parse_args(argv)
    if args.scheduler and args.executor != "dask":
        parser.error("--scheduler needs --executor dask")
    try:
        check_executor(args.executor, workers=args.jobs, scheduler=args.scheduler)
    except ExecutorUnavailable as err:
        parser.error(str(err))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        opened = []

        def executor():
            """The executor, started on first use (a finished stage needs none)."""
            if not opened:
                opened.append(stack.enter_context(open_executor(
                    args.executor, workers=None if args.scheduler else args.jobs,
                    scheduler=args.scheduler)))
            return opened[0]

        _run_stages(out_dir, args, executor)


def _run_stages(out_dir: Path, args, executor) -> None:
    runners = {"crunch_scaling": lambda: crunch_scaling.run(out_dir, args.quick),
               "jbba_scaling": lambda: jbba_scaling.run(out_dir, args.quick),
               "exact_scaling": lambda: exact_scaling.run(out_dir, args.quick),
               "rounds": lambda: rounds.run(out_dir, args.quick),
               "pareto_grid": lambda: pareto_grid.run(out_dir, args.quick),
               "several_blocks": lambda: several_blocks.run(out_dir, args.quick),
               "llm_scale": lambda: llm_scale.run(out_dir, args.quick),
               "split_mode": lambda: split_mode.run(out_dir, args.quick),
               "jbba_quality": lambda: jbba_quality.run(out_dir, args.quick, jobs=args.jobs,
                                                        executor=executor()),
               "figures": lambda: figures_stage(out_dir, args.quick, args.jobs,
                                                executor=executor())}
    try:
        from tqdm import tqdm
        bar = tqdm(total=len(STAGES), desc="benchmarks", unit="stage", file=sys.stderr)
    except ImportError:
        bar = None
    summaries = {}
    for stage in STAGES:
        marker = out_dir / f"stage-{stage}.json"
        if marker.exists() and not args.force:
            summaries[stage] = json.loads(marker.read_text())
            print(f"[{stage}] finished earlier; reusing {marker.name} (--force to rerun)")
        else:
            print(f"[{stage}] running")
            summaries[stage] = runners[stage]()
            atomic_write_text(marker, json.dumps(summaries[stage], indent=1, default=float))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    report = _report(out_dir, summaries, args.quick)
    print(report.read_text())
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
