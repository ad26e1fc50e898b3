"""``lola deft-run``: DEFT rounds in Flower, from the command line.

:func:`add_arguments` puts the options on an ``argparse`` parser and :func:`run` runs the
command: it returns 0 when every round ran, 1 when the run failed (a device's ClientApp failed,
or a round had no allocation; one line on stderr names the device and its error), 130 when
interrupted, and raises a ``ValueError`` subclass with a one-line message naming the option,
file or line for bad input (the ``lola`` command turns it into exit code 2). :func:`main` is the
same command on its own (``python -m lola.flower.cli``), with those exit codes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import solvers

__all__ = ["add_arguments", "run", "main", "format_report"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def add_arguments(parser) -> None:
    """The options of ``lola deft-run`` (the caller's formatter shows the defaults)."""
    from .._args import seed

    parser.add_argument("scenario", nargs="?", help="scenario file (YAML or JSON): its devices "
                        "become Flower clients, its channel and server are the rounds'; the "
                        "bundled default when omitted")
    parser.add_argument("--method", help="allocation method of every round (see 'lola "
                        "methods'); default: the problem's default exact method")
    parser.add_argument("--problem", choices=solvers.PROBLEMS,
                        help="matching (P1) or jbba (P2); default: the one problem the method "
                        "solves, else jbba")
    parser.add_argument("--rounds", type=_positive_int, default=3, help="number of rounds R")
    parser.add_argument("--model", default="tiny", help="tiny (4 layers of width 64, vocabulary "
                        "1000, random weights), roberta-base or roberta-large")
    parser.add_argument("--weights", metavar="DIR", help="local folder of pretrained weights "
                        "(save_pretrained output) for --model roberta-base/-large; no download")
    parser.add_argument("--data", metavar="FILE", help='JSON-lines file of {"input_ids": [...], '
                        '"label": k}, split between the devices and a held-out part; default: '
                        "a seeded synthetic task")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the weights, the data, "
                        "the mini-batches and the methods; same seed, same losses")
    parser.add_argument("--max-blocks", type=_positive_int, metavar="M",
                        help="blocks a device may train in one round (see 'Several blocks "
                        "per device', docs/several-blocks.md), for every "
                        "device that does not report its own max_blocks (default: 1)")
    parser.add_argument("--batch-size", type=_positive_int, default=16,
                        help="sequences per mini-batch")
    parser.add_argument("--sequence-length", type=_positive_int,
                        help="tokens per sequence (default: 32 for tiny, 128 otherwise)")
    parser.add_argument("--lr", type=_positive_float, default=0.2,
                        help="SGD learning rate of the devices' steps")
    parser.add_argument("--local-steps", type=_positive_int, default=1,
                        help="SGD steps a device takes per round (its measured time is their "
                        "median)")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch CPU threads, for the profile and the steps alike")
    parser.add_argument("--host-profile", metavar="FILE", help="profile of this model on this "
                        "host ('lola profile' output with the run's batch size and sequence "
                        "length); default: profile it now")
    parser.add_argument("--profile-repetitions", type=_positive_int, default=5,
                        help="timed steps per block when profiling now")
    parser.add_argument("--audit", action="store_true", help="have every client record which "
                        "layers back-propagation reached (reached_layers in the JSON)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--figure", metavar="FILE", help="save the figure of measured against "
                        "predicted step times and of the loss against centralized fine-tuning "
                        "(png, pdf or svg; runs the centralized reference too)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


class _Progress:
    """``round r/R`` with the last losses on one line of standard error, redrawn in place."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()

    def __call__(self, done, total, row):
        width = 30
        filled = int(width * done / total)
        self.stream.write(f"\rlola deft-run: [{'#' * filled}{'.' * (width - filled)}] round "
                          f"{done}/{total}, eval loss {row['eval_loss']:.4f}, "
                          f"{time.monotonic() - self.started:.0f} s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _settings(args):
    from .settings import RunSettings

    return RunSettings(scenario=args.scenario, method=args.method, problem=args.problem,
                       rounds=args.rounds, model=args.model, weights=args.weights,
                       data=args.data, seed=args.seed, max_blocks=args.max_blocks,
                       batch_size=args.batch_size, sequence_length=args.sequence_length,
                       lr=args.lr, local_steps=args.local_steps, threads=args.threads,
                       host_profile=args.host_profile,
                       profile_repetitions=args.profile_repetitions, audit=args.audit)


def run(args) -> int:
    """Run ``lola deft-run`` (module docstring)."""
    from pathlib import Path

    from . import FlowerUnavailable, require_flower
    from .prepare import prepare
    from .server import ClientFailure, RunFailure
    from .settings import SettingsError

    from .._io import check_output_path

    if args.figure and Path(args.figure).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ValueError(f"--figure {args.figure}: the figure format must be png, pdf or svg")
    if args.figure:  # before any training: never a run lost to a path that cannot be written
        check_output_path(args.figure, option="--figure")
    settings = _settings(args)
    prepare(settings)  # every input checked before Flower, torch or the profiler start
    try:
        require_flower()
    except FlowerUnavailable as err:  # a usage error, as 'lola profile' without torch
        raise SettingsError(str(err)) from None
    from .run import centralized_run, run_settings

    progress = _Progress() if sys.stderr.isatty() and not args.quiet else None
    try:
        report = run_settings(settings, progress=progress)
        reference = centralized_run(settings) if args.figure else None
    except KeyboardInterrupt:
        print("lola deft-run: interrupted", file=sys.stderr)
        return 130
    except (ClientFailure, RunFailure) as err:
        print(f"lola deft-run: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    if args.figure:
        from ..plots import save
        from .plots import plot_deft

        save(plot_deft(report, reference), args.figure)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(report) -> str:
    """The human summary: one line per round and client, then the ratio summary.

    Two kinds of time, labelled as such: a round's predicted latency is the cost model's on the
    scenario's devices and channel; a client's step times (measured, and predicted at the host's
    measured throughput) are this host's, where the clients actually ran.
    """
    data = report.to_dict()
    lines = [f"{data['scenario']}: {data['method']} ({data['problem']}), {data['rounds']} rounds "
             f"of the {data['model']} model, seed {data['seed']}; initial eval loss "
             f"{data['initial_eval_loss']:.4f}",
             "(round latency: predicted for the scenario's devices and channel; client step "
             "times: measured on this host, and predicted for this host's throughput)"]
    for row in data["per_round"]:
        lines.append(f"round {row['round']}: {row['status']}, predicted round latency on the "
                     f"scenario's devices {row['predicted_round_latency_s']:.4g} s, train loss "
                     f"{row['train_loss']:.4f}, eval loss {row['eval_loss']:.4f} (accuracy "
                     f"{row['eval_accuracy']:.3f})")
        for client in row["clients"]:
            lines.append(f"  {client['device']:<14} {','.join(client['blocks']):<28} step on "
                         f"this host: measured {1e3 * client['measured_compute_s']:8.2f} ms, "
                         "predicted "
                         f"{1e3 * client['predicted_compute_s_host']:8.2f} ms, ratio "
                         f"{client['compute_ratio']:.3f}, uploaded {client['uploaded_bytes']} B")
    spread = data["compute_ratio_spread"]
    lines.append(f"host throughput {data['host_flops_per_s']:.4g} FLOP/s; measured / predicted "
                 f"step time: median {data['compute_ratio_median']:.3f} (quartiles "
                 f"{spread['q1']:.3f} to {spread['q3']:.3f}, range {spread['min']:.3f} to "
                 f"{spread['max']:.3f}, {spread['count']} steps)")
    source = data["host_profile"]["extra_flops_source"]
    if source != "profile":
        lines.append(f"extra_flops: {source}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m lola.flower.cli``: the command on its own, with the ``lola`` exit codes."""
    from ..scenario import ScenarioError

    parser = argparse.ArgumentParser(prog="lola deft-run",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        return run(args)
    except ScenarioError as err:
        print(f"lola: {err}", file=sys.stderr)
    except ValueError as err:
        print(f"lola deft-run: {' '.join(str(err).split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
