"""The ``lola`` command: parses arguments, calls :mod:`lola.api`, prints. Nothing else.

Exit codes: 0 solved, 1 the instance is infeasible (the result is still printed), 2 bad input or
usage (one line on stderr naming the file and the key; never a traceback).
"""
from __future__ import annotations

import argparse
import json
import sys

import solvers

from . import __version__, api
from .report import format_comparison, format_result
from .scenario import ScenarioError

EXIT_OK, EXIT_INFEASIBLE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage otherwise)
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


class _UsageError(Exception):
    pass


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lola", description="Low-latency device-edge cooperative fine-tuning: "
                     "block-device matching and joint bandwidth-and-block allocation.")
    parser.add_argument("--version", action="version", version=f"lola {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    solve = commands.add_parser("solve", help="solve a scenario with one method",
                                description="Solve a scenario (the bundled default when none is "
                                "given) and print the allocation.")
    solve.add_argument("scenario", nargs="?", help="scenario file (YAML or JSON)")
    solve.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba",
                       help="matching (P1, fixed bandwidth) or jbba (P2, joint bandwidth and "
                       "blocks); default: jbba")
    solve.add_argument("--method", help="method name (see 'lola methods'); default: the "
                       "preferred method for the problem")
    solve.add_argument("--json", action="store_true", help="print one JSON object")
    solve.add_argument("--seed", type=int, default=0, help="seed for randomised methods")
    solve.add_argument("--time-limit", type=float, metavar="SECONDS",
                       help="time limit for methods that honour one (milp)")

    compare = commands.add_parser("compare", help="run every applicable method and compare",
                                  description="Run every method that applies to the problem on "
                                  "a scenario and print one table: status, round latency, gap to "
                                  "the best proven lower bound, change versus each baseline, "
                                  "solve time.")
    compare.add_argument("scenario", nargs="?", help="scenario file (YAML or JSON)")
    compare.add_argument("--problem", choices=solvers.PROBLEMS, default="jbba")
    compare.add_argument("--methods", help="comma-separated subset of methods")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--time-limit", type=float, metavar="SECONDS")

    methods = commands.add_parser("methods", help="list the methods and what they solve")
    methods.add_argument("--json", action="store_true")
    return parser


def _print_methods(as_json: bool) -> None:
    rows = [{"name": m.name, "problems": list(m.problems), "role": m.role, "exact": m.exact,
             "available": m.available, "description": m.description}
            for m in solvers.METHODS.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        flags = ("exact" if row["exact"] else row["role"]) + ("" if row["available"] else
                                                              ", not installed")
        print(f"{row['name']:<12} {'/'.join(row['problems']):<15} {flags:<10} {row['description']}")


def _solve(args) -> int:
    scenario = args.scenario or str(api.default_scenario_path())
    result = api.solve(scenario, problem=args.problem, method=args.method, seed=args.seed,
                       time_limit_s=args.time_limit)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result))
    return EXIT_INFEASIBLE if result.status == "infeasible" else EXIT_OK


def _compare(args) -> int:
    scenario = args.scenario or str(api.default_scenario_path())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    comparison = api.compare(scenario, problem=args.problem, methods=methods, seed=args.seed,
                             time_limit_s=args.time_limit)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison))
    return EXIT_INFEASIBLE if comparison.status == "infeasible" else EXIT_OK


def main(argv=None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if args.command == "methods":
            _print_methods(args.json)
            return EXIT_OK
        if args.command == "compare":
            return _compare(args)
        return _solve(args)
    except _UsageError as err:
        print(err, file=sys.stderr)
    except ScenarioError as err:
        print(f"lola: {err}", file=sys.stderr)
    except (solvers.SolverInputError, solvers.SolverFailure) as err:
        print(f"lola: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("lola: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
