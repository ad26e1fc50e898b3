"""What a new user meets first: commands that end, one-line errors, certified defaults, and
the small things (signs, help, file modes, start-up imports). Each test is named after what it
pins."""
import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import lola
import solvers
from lola import api
from lola.cli import FIGURE_KINDS, _build_parser, main

from .instances import random_instance

LOLA = [sys.executable, "-m", "lola.cli"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def large_scenario(tmp_path_factory):
    """200 generated devices: large enough that SCIP runs for many minutes without a limit."""
    path = tmp_path_factory.mktemp("large") / "s200.yaml"
    assert main(["scenario", "generate", "--devices", "200", "--seed", "3", "-o",
                 str(path)]) == 0
    return path


# --- 1. compare always ends ------------------------------------------------------------------

def test_compare_gives_the_outside_engines_a_default_time_limit(monkeypatch, large_scenario):
    monkeypatch.setattr(api, "COMPARE_TIME_LIMIT_S", 0.5)
    seen = []
    started = time.perf_counter()
    comparison = lola.compare(large_scenario, problem="jbba",
                              progress=lambda m, limit: seen.append((m, limit)))
    elapsed = time.perf_counter() - started
    limits = dict(seen)
    engines = [m.name for m in solvers.methods_for("jbba") if m.requires]
    assert engines and all(limits[name] == 0.5 for name in engines)
    assert limits["exact"] is None and limits["dual-ascent"] is None and limits["greedy"] is None
    for result in comparison.results:
        if result.method in engines:
            assert comparison.time_limits[result.method] == 0.5
            assert result.status in ("optimal", "feasible")
            assert result.lower_bound_s <= result.round_latency_s
    assert elapsed < 60  # without the limit scip alone ran for 21 minutes


def test_compare_time_limit_applies_to_every_method_that_takes_one(good_scenario):
    comparison = lola.compare(good_scenario, problem="jbba", time_limit_s=30)
    takers = {m.name for m in solvers.methods_for("jbba") if m.takes_time_limit}
    assert {"exact", "dual-ascent", "milp"} <= takers
    for result in comparison.results:
        expected = 30 if result.method in takers else None
        assert comparison.time_limits[result.method] == expected
    rows = comparison.to_dict()["results"]
    assert {r["method"]: r["time_limit_s"] for r in rows}["exact"] == 30


def test_compare_help_and_table_state_the_default_time_limit(capsys, good_scenario,
                                                              write_json):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"{api.COMPARE_TIME_LIMIT_S:g} s for the outside engines" in help_text
    code, out, _ = run(["compare", write_json(good_scenario), "--methods", "milp,exact"], capsys)
    assert code == 0
    header, _, milp_row, exact_row = out.splitlines()[2:6]
    assert "time limit" in header
    assert milp_row.split()[0] == "milp" and f"{api.COMPARE_TIME_LIMIT_S:g} s" in milp_row
    assert exact_row.split()[0] == "exact" and exact_row.split()[5] == "-"


def test_compare_says_what_runs_when_stderr_is_a_terminal(capsys, monkeypatch, good_scenario,
                                                           write_json):
    path = write_json(good_scenario)
    code, _, err = run(["compare", path, "--methods", "exact,greedy"], capsys)
    assert code == 0 and err == ""  # not a terminal: quiet
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(["compare", path, "--methods", "exact,milp"], capsys)
    assert code == 0
    assert err.splitlines() == ["lola: running exact",
                                f"lola: running milp (time limit {api.COMPARE_TIME_LIMIT_S:g} s)"]


@pytest.mark.parametrize("seed", range(12))
def test_time_limited_exact_methods_keep_their_bounds_honest(seed):
    """Whatever the limit, lower bound <= optimum <= reported latency, status by proof."""
    instance = random_instance(np.random.default_rng(seed), n_devices=7, n_blocks=5)
    optimum = solvers.run_method("exact", "jbba", instance)
    if optimum.status is solvers.Status.INFEASIBLE:
        return
    tolerance = 1e-9 * optimum.round_latency_s
    for method in ("exact", "dual-ascent", "milp"):
        for limit in (1e-9, 1e-3, 10.0):
            result = solvers.run_method(method, "jbba", instance, time_limit_s=limit)
            assert result.lower_bound_s <= optimum.round_latency_s + tolerance
            assert result.round_latency_s >= optimum.round_latency_s - tolerance
            if result.status is solvers.Status.OPTIMAL:
                assert result.round_latency_s <= optimum.round_latency_s * (1 + 1e-6)
            if limit == 1e-9 and method == "exact":
                assert result.status is solvers.Status.FEASIBLE
                assert "time limit" in result.message


# --- 2. Ctrl-C -------------------------------------------------------------------------------

@pytest.mark.skipif(not solvers.METHODS["scip"].available, reason="pyscipopt not installed")
@pytest.mark.parametrize("command", ["solve", "compare"])
def test_ctrl_c_during_scip_exits_130_with_nothing_on_stdout(command, large_scenario):
    method = ["--method", "scip"] if command == "solve" else ["--methods", "scip"]
    process = subprocess.Popen(LOLA + [command, str(large_scenario), *method],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)  # start-up, model building, then SCIP's search (minutes on this instance)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert out == ""  # neither a partial table nor SCIP's "pressed CTRL-C" line
    assert err.strip().splitlines() == ["lola: interrupted"]


# --- 3. one-line errors ----------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["solve", "--method", "milp", "--time-limit", "-1"], "--time-limit"),
    (["solve", "--time-limit", "nan"], "--time-limit"),
    (["solve", "--time-limit", "inf"], "--time-limit"),
    (["compare", "--time-limit", "0"], "--time-limit"),
    (["solve", "--problem", "matching", "--method", "crunch", "--time-limit", "5"],
     "takes no time limit"),
    (["plot", "convergence", "--method", "exact", "-o", "x.png"], "only dual-ascent"),
    (["scenario", "generate", "--devices", "0"], "devices"),
    (["plot", "devices", "--values", "0", "-o", "x.png"], "--values"),
    (["plot", "bandwidth", "--values", "-5", "-o", "x.png"], "--values"),
    (["plot", "solver-time", "--values", "0", "-o", "x.png"], "--values"),
    (["plot", "devices", "--seeds", "0", "-o", "x.png"], "--seeds"),
])
def test_bad_usage_is_one_line_and_exit_2(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    process = subprocess.run(LOLA + args, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr
    assert process.stdout == ""
    assert "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1 and words in process.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args", [["solve", "--json"], ["methods", "--json"], ["solve"],
                                  ["compare", "--methods", "exact,greedy"]])
def test_a_closed_pipe_ends_quietly(args):
    """``lola ... | head -1``: the reader is gone before the write; no BrokenPipeError."""
    process = subprocess.Popen(LOLA + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the child can write a byte
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert err == ""
    assert process.returncode == 141  # 128 + SIGPIPE, as a Unix tool killed by it


# --- 4. the Python API -----------------------------------------------------------------------

def test_unknown_problem_is_a_value_error_naming_the_choices():
    scenario = lola.default_scenario()
    with pytest.raises(ValueError, match=r"unknown problem 'JBBA' \(did you mean 'jbba'\?\); "
                                         r"choose one of matching, jbba"):
        lola.solve(scenario, problem="JBBA")
    with pytest.raises(ValueError, match="unknown problem 'p2'"):
        lola.compare(scenario, problem="p2")


def test_a_method_rejects_options_it_does_not_take():
    scenario = lola.default_scenario()
    with pytest.raises(ValueError, match=r"no option 'repiar' \(did you mean 'repair'\?\); "
                                         r"its options are .*repair"):
        lola.solve(scenario, method="dual-ascent", repiar=False)
    with pytest.raises(ValueError, match="'greedy' has no option 'repair'; it takes no options"):
        lola.solve(scenario, method="greedy", repair=False)
    with pytest.raises(ValueError, match="time limit must be a positive finite"):
        lola.solve(scenario, time_limit_s=float("nan"))
    result = lola.solve(scenario, method="dual-ascent", repair=False, max_iterations=3)
    assert result.extras["iterations"] <= 3


def test_method_options_are_read_from_the_solvers_signatures():
    assert solvers.METHODS["brute"].options == ("max_assignments",)
    assert solvers.METHODS["random"].options == ("seed",)
    assert solvers.METHODS["greedy"].options == ()
    assert "repair" in solvers.METHODS["dual-ascent"].options


# --- 7. the default answer is certified ------------------------------------------------------

@pytest.mark.parametrize("problem", solvers.PROBLEMS)
def test_the_default_method_proves_optimality(problem, capsys):
    method = lola.default_method(problem)
    assert solvers.METHODS[method].exact
    result = lola.solve(lola.default_scenario(), problem=problem)
    assert result.method == method and result.status == "optimal"
    assert result.lower_bound_s == pytest.approx(result.round_latency_s, rel=1e-6)
    code, out, _ = run(["solve", "--problem", problem, "--json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "optimal"


# --- 8. the small things ---------------------------------------------------------------------

def test_table_and_json_give_reductions_with_one_sign(capsys, good_scenario, write_json):
    path = write_json(good_scenario)
    code, table, _ = run(["compare", path, "--methods", "exact,greedy,random"], capsys)
    code, out, _ = run(["compare", path, "--methods", "exact,greedy,random", "--json"], capsys)
    document = json.loads(out)
    header = table.splitlines()[2].split("  ")
    header = [h.strip() for h in header if h.strip()]
    exact_row = table.splitlines()[4].split()
    column = header.index("vs random")
    shown = float(exact_row[column].rstrip("%")) / 100
    reduction = document["results"][0]["reduction_vs"]["random"]
    assert reduction > 0 and shown == pytest.approx(reduction, abs=5e-4)
    assert "positive is faster" in table


def test_centralized_table_shows_the_server_and_its_marked_row(capsys):
    code, out, _ = run(["solve", "--method", "centralized"], capsys)
    assert code == 0
    result = lola.solve(lola.default_scenario(), method="centralized")
    server_s = result.extras["server_compute_s"]
    assert f"server trains all 12 blocks: {server_s:.4f} s" in out
    assert sum(line.split()[0].endswith("*") for line in out.splitlines()[5:17]) >= 1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(umask, mode, tmp_path):
    path = tmp_path / "lab.yaml"
    previous = os.umask(umask)
    try:
        assert main(["scenario", "generate", "--devices", "12", "-o", str(path)]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_command_line_starts_without_heavy_imports():
    code = ("import sys, contextlib, io\n"
            "import lola.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert lola.cli.main(['solve', '--problem', 'matching', '--method', 'crunch']) == 0\n"
            "heavy = [m for m in ('matplotlib', 'cvxpy', 'scipy.optimize', 'torch', 'pyscipopt')\n"
            "         if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == ""


def test_every_option_has_help_and_shows_its_default():
    parser = _build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, type(parser._subparsers._actions[-1]))]
    pending = list(subparsers[0].choices.values())
    checked = 0
    while pending:
        command = pending.pop()
        for action in command._actions:
            if action.choices and isinstance(action.choices, dict):  # nested sub-commands
                pending.extend(action.choices.values())
                continue
            if action.dest == "help":
                continue
            assert action.help, f"{command.prog} {action.dest} has no help text"
            if action.default is not None and action.default is not False \
                    and action.option_strings:
                text = command.format_help()
                assert f"(default: {action.default})" in " ".join(text.split()), \
                    f"{command.prog} {action.option_strings[0]} does not show its default"
            checked += 1
    assert checked > 40


def test_the_parser_lists_the_figure_kinds_of_the_plots_module():
    from lola import plots
    assert FIGURE_KINDS == plots.FIGURE_KINDS


def test_every_folder_of_the_packages_is_declared():
    """A folder setuptools sees as a package but the configuration leaves out is a warning at
    every install (it was ``lola.data``)."""
    from setuptools import find_namespace_packages, find_packages
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    include = ["lola", "lola.*", "solvers", "solvers.*"]
    declared = set(find_packages(root, include=include))
    present = {p for p in find_namespace_packages(root, include=include)
               if "__pycache__" not in p}
    assert present == declared and "lola.data" in declared


def test_unknown_key_lists_each_allowed_key_once_and_suggests(good_scenario):
    good_scenario["devices"][0]["spectral_eficiency"] = 4.0
    with pytest.raises(lola.ScenarioError) as caught:
        lola.load_scenario(good_scenario)
    message = str(caught.value)
    assert "devices[0].spectral_eficiency: unknown key (did you mean 'spectral_efficiency'?" \
        in message
    allowed = message.split("allowed here: ")[1].rstrip(")").split(", ")
    assert len(allowed) == len(set(allowed)) and "spectral_efficiency" in allowed


def test_missing_profile_file_names_the_scenario_and_the_key(tmp_path, capsys):
    scenario = tmp_path / "lab.yaml"
    scenario.write_text("model: {profile: nothere.json}\n"
                        "devices: [{name: a, flops_per_s: 1e12, memory_bytes: 1e10, "
                        "spectral_efficiency: 5}]\n"
                        "channel: {total_bandwidth_hz: 1e7}\n")
    code, out, err = run(["solve", scenario], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"lola: {scenario}: model.profile: profile ")
    assert "nothere.json: cannot read the file" in err


def test_generating_an_unsolvable_scenario_says_so(capsys, tmp_path):
    code, out, err = run(["scenario", "generate", "--devices", "3"], capsys)
    assert code == 0 and out.startswith("# Generated")
    assert err.strip() == ("lola scenario generate: warning: this scenario has no solution: 3 "
                           "devices for 12 blocks: a device trains at most one block, so at "
                           "least 12 devices are needed")
    code, _, err = run(["scenario", "generate", "--devices", "12"], capsys)
    assert code == 0 and err == ""


def test_a_memory_warning_with_a_downlink_points_to_split_mode(capsys, tmp_path):
    """Llama-3-8B on 32 large devices: too little memory in local mode, solved in split mode."""
    path = tmp_path / "llm.yaml"
    code, _, err = run(["scenario", "generate", "--devices", "32", "--profile", "llama-3-8b",
                        "--class-mix", "large-models", "--downlink", "-o", str(path)], capsys)
    assert code == 0 and err.startswith(
        "lola scenario generate: warning: this scenario has no solution in local mode: ")
    assert err.rstrip().endswith("split mode may solve it (lola solve --modes local,split)")
    assert run(["solve", str(path)], capsys)[0] == 1
    code, out, _ = run(["solve", str(path), "--modes", "local,split", "--json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "optimal"


def test_generator_errors_name_the_option(capsys):
    code, out, err = run(["scenario", "generate", "--noise-figure", "-3"], capsys)
    assert code == 2 and out == "" and err.startswith("lola scenario generate: --noise-figure ")


def test_the_parser_defaults_are_the_generator_constants():
    from lola import cli, generate
    assert cli.GENERATOR_NOISE_FIGURE_DB == generate.NOISE_FIGURE_DB
    assert cli.GENERATOR_MAX_SPECTRAL_EFFICIENCY == generate.MAX_SPECTRAL_EFFICIENCY
