"""The command line's contract across every command, as a person sees it: output paths checked
before any work, one ``--seed`` rule, one exit-code rule (1 infeasible, 2 bad input), a
scenario only for the figures that draw one, help texts that cite nothing a user cannot read,
``lola methods`` capabilities, uniform device keys in the JSON, usage errors that point at the
sub-command's own help, and ``deft-run``'s two kinds of time labelled."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import solvers
from lola import cli
from lola.cli import main

ROOT = Path(__file__).resolve().parents[1]

# The README's five-phones scenario (roberta-base's 12 blocks, 5 devices): infeasible with one
# block per device; the powers let 'plot energy' reach it too.
FIVE_PHONES = """\
name: five-phones
model: {profile: roberta-base}
devices:
  - {name: phone-1, flops_per_s: 1.2e12, memory_bytes: 6.0e9, spectral_efficiency: 6.5, compute_power_w: 5, tx_power_w: 0.2}
  - {name: phone-2, flops_per_s: 1.0e12, memory_bytes: 6.0e9, spectral_efficiency: 5.0, compute_power_w: 5, tx_power_w: 0.2}
  - {name: phone-3, flops_per_s: 1.5e12, memory_bytes: 8.0e9, spectral_efficiency: 4.0, compute_power_w: 5, tx_power_w: 0.2}
  - {name: phone-4, flops_per_s: 0.8e12, memory_bytes: 4.0e9, spectral_efficiency: 7.0, compute_power_w: 5, tx_power_w: 0.2}
  - {name: phone-5, flops_per_s: 1.1e12, memory_bytes: 6.0e9, spectral_efficiency: 3.0, compute_power_w: 5, tx_power_w: 0.2}
channel: {total_bandwidth_hz: 2.0e7, rate_model: fixed}
"""

TINY_SWEEP = {"name": "tiny", "problem": "jbba", "methods": ["greedy"], "seeds": [0],
              "generate": {"devices": [12], "profile": "roberta-base", "rate_model": "fixed"}}


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err


@pytest.fixture
def five_phones(tmp_path):
    path = tmp_path / "five-phones.yaml"
    path.write_text(FIVE_PHONES)
    return path


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_SWEEP))
    return path


# -- 3. output paths: checked before any work, exit 2, one line naming the path; no folder made

def _writers(target, sweep_file):
    """Every command that writes a file, with ``target`` as that file (same name each time)."""
    return {
        "plot": ["plot", "allocation", "-o", target("figure.png")],
        "pareto": ["pareto", "--layers", "1", "--ranks", "8", "-o", target("front.png")],
        "simulate --csv": ["simulate", "--rounds", "2", "--csv", target("rounds.csv")],
        "simulate --figure": ["simulate", "--rounds", "2", "--figure", target("cumul.png")],
        "simulate --export-round": ["simulate", "--export-round", "1", "-o",
                                    target("round.yaml")],
        "profile": ["profile", "roberta-base", "--layers", "1", "--repetitions", "1",
                    "--warmup", "0", "--batch-size", "1", "--sequence-length", "8", "--quiet",
                    "-o", target("profile.json")],
        "sweep": ["sweep", sweep_file, "--workers", "1", "--quiet", "-o", target("rows.csv")],
        "deft-run": ["deft-run", "--rounds", "1", "--quiet", "--figure", target("deft.png")],
    }


WRITERS = ["plot", "pareto", "simulate --csv", "simulate --figure", "simulate --export-round",
           "profile", "sweep", "deft-run"]


@pytest.mark.parametrize("writer", WRITERS)
def test_output_in_a_missing_folder_is_bad_input_and_creates_nothing(writer, tmp_path,
                                                                     sweep_file, capsys):
    missing = tmp_path / "no" / "such"
    args = _writers(lambda name: missing / name, sweep_file)[writer]
    code, out, err = run(args, capsys)
    assert code == 2 and out == "" and one_line(err), (code, err)
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "no").exists()  # no folder created unasked


@pytest.mark.parametrize("writer", WRITERS)
def test_output_that_names_a_folder_is_bad_input(writer, tmp_path, sweep_file, capsys):
    def folder(name):
        path = tmp_path / name
        path.mkdir()
        return path

    args = _writers(folder, sweep_file)[writer]
    code, out, err = run(args, capsys)
    assert code == 2 and out == "" and one_line(err), (code, err)
    assert str(tmp_path) in err and "is a folder" in err
    assert "resume" not in err  # no rerun can help


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
@pytest.mark.parametrize("writer", WRITERS)
def test_output_in_a_read_only_folder_is_bad_input(writer, tmp_path, sweep_file, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args = _writers(lambda name: locked / name, sweep_file)[writer]
        code, out, err = run(args, capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and out == "" and one_line(err), (code, err)
    assert str(locked) in err and "permission denied" in err and "resume" not in err


def test_analytic_profile_output_is_checked(tmp_path):
    missing = tmp_path / "no" / "x.json"
    done = subprocess.run([sys.executable, "-m", "lola.profiles.analytic", "roberta-base", "-o",
                           str(missing)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == "" and one_line(done.stderr), done.stderr
    assert str(missing) in done.stderr and not missing.parent.exists()


# -- 4. one --seed rule: a non-negative integer, checked by argparse for every command

SEEDED = [["solve", "--method", "random"], ["compare"], ["ledger"], ["simulate"],
          ["scenario", "generate"], ["deft-run"]]


def test_every_seed_option_is_covered():
    """Every --seed of every command is in SEEDED (a new command with a seed joins the test)."""
    parser = cli._build_parser()
    seeded = set()

    def walk(parser, words):
        for action in parser._actions:
            if "--seed" in action.option_strings:
                seeded.add(" ".join(words))
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])

    walk(parser, [])
    assert seeded == {args[0] if args[0] != "scenario" else "scenario generate"
                      for args in SEEDED}


@pytest.mark.parametrize("args", SEEDED, ids=lambda a: a[0])
@pytest.mark.parametrize("value", ["-1", "x"])
def test_seed_must_be_a_non_negative_integer(args, value, capsys):
    command = "lola " + " ".join(args[:2] if args[0] == "scenario" else args[:1])
    code, out, err = run(args + ["--seed", value], capsys)
    assert code == 2 and out == ""
    assert err == (f"{command}: argument --seed: must be a non-negative integer, got "
                   f"'{value}' (see '{command} --help')\n")


def test_negative_seed_is_one_line_in_a_process():
    done = subprocess.run([sys.executable, "-m", "lola.cli", "solve", "--method", "random",
                           "--seed", "-1"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and one_line(done.stderr) and "--seed" in done.stderr


# -- 5. exit codes: 1 infeasible, 2 bad input, for every command

INFEASIBLE = {
    "solve": ["solve", "{s}"],
    "solve --json": ["solve", "{s}", "--json"],
    "compare": ["compare", "{s}", "--methods", "exact,greedy"],
    "ledger": ["ledger", "{s}"],
    "ledger --json": ["ledger", "{s}", "--json"],
    "pareto": ["pareto", "{s}", "--layers", "12", "--ranks", "8"],
    "simulate": ["simulate", "{s}", "--rounds", "2"],
    "plot allocation": ["plot", "allocation", "{s}", "-o", "{d}/a.png"],
    "plot ledger": ["plot", "ledger", "{s}", "-o", "{d}/l.png"],
    "plot energy": ["plot", "energy", "{s}", "-o", "{d}/e.png"],
    "plot convergence": ["plot", "convergence", "{s}", "-o", "{d}/c.png"],
}


@pytest.mark.parametrize("name", list(INFEASIBLE))
def test_an_infeasible_scenario_exits_1_everywhere(name, five_phones, tmp_path, capsys):
    args = [a.format(s=five_phones, d=tmp_path) for a in INFEASIBLE[name]]
    code, out, err = run(args, capsys)
    assert code == 1, (name, err)
    assert "Traceback" not in err and err.count("\n") <= 1, err
    if name.startswith(("ledger", "plot")):
        assert out == "" and one_line(err) and "12 blocks need 12 distinct devices" in err
    assert not list(tmp_path.glob("*.png"))  # nothing drawn


def test_an_infeasible_scenario_exits_1_in_deft_run(tmp_path, capsys):
    if importlib.util.find_spec("flwr") is None:
        pytest.skip("needs the flower extra")
    path = tmp_path / "two.yaml"
    path.write_text("name: two\nmodel: {profile: roberta-base}\ndevices:\n"
                    "  - {name: a, flops_per_s: 1.2e12, memory_bytes: 6.0e9, "
                    "spectral_efficiency: 6.5}\n"
                    "  - {name: b, flops_per_s: 1.0e12, memory_bytes: 6.0e9, "
                    "spectral_efficiency: 5.0}\n"
                    "channel: {total_bandwidth_hz: 2.0e7, rate_model: fixed}\n")
    code, out, err = run(["deft-run", path, "--rounds", "1", "--profile-repetitions", "1",
                          "--quiet"], capsys)
    assert code == 1 and one_line(err) and "found no allocation" in err


def test_the_exit_code_rule_is_written_down():
    readme = " ".join((ROOT / "README.md").read_text().replace("`", "").split())
    doc = " ".join(cli.__doc__.split())
    assert "one rule for every command: 0 solved, 1 infeasible" in readme
    assert "2 bad input or usage" in readme
    assert "Exit codes, the same for every command: 0 done; 1 the instance is infeasible" in doc
    assert "2 bad input or usage" in doc


# -- 8. a scenario only for the figures that draw one

# the figures drawn from a scenario (lola.cli.SCENARIO_FIGURE_KINDS)
SCENARIO_KINDS = ("allocation", "convergence", "energy", "ledger")


def test_scenario_kinds_are_figure_kinds():
    assert cli.SCENARIO_FIGURE_KINDS == SCENARIO_KINDS
    assert set(SCENARIO_KINDS) < set(cli.FIGURE_KINDS)


@pytest.mark.parametrize("kind", [k for k in cli.FIGURE_KINDS if k not in SCENARIO_KINDS])
def test_a_figure_that_draws_no_scenario_refuses_one(kind, tmp_path, capsys):
    from lola import api

    code, out, err = run(["plot", kind, api.default_scenario_path(), "-o", tmp_path / "f.png"],
                         capsys)
    assert code == 2 and out == "" and one_line(err), err
    assert ", ".join(SCENARIO_KINDS) in err
    assert not (tmp_path / "f.png").exists()


def test_plot_help_lists_exactly_the_kinds_that_take_a_scenario():
    done = subprocess.run([sys.executable, "-m", "lola.cli", "plot", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    text = " ".join(done.stdout.split())
    line = text[text.index("scenario scenario file"):]
    assert f"for {', '.join(SCENARIO_KINDS)} only" in line
    others = [k for k in cli.FIGURE_KINDS if k not in SCENARIO_KINDS]
    assert not any(k in line[:line.index("-o ")] for k in others)


# -- 9. help a user can follow, capabilities, uniform JSON, usage errors, deft-run labels

COMMANDS = [[], ["solve"], ["compare"], ["profile"], ["scenario"], ["scenario", "generate"],
            ["plot"], ["pareto"], ["ledger"], ["deft-run"], ["simulate"], ["sweep"],
            ["methods"]]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "lola")
def test_help_cites_no_invisible_section(words):
    done = subprocess.run([sys.executable, "-m", "lola.cli", *words, "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0
    assert not re.search(r"\bsections? \d|§", done.stdout), done.stdout


def test_flower_docs_cite_no_invisible_section():
    assert "§" not in (ROOT / "docs" / "flower.md").read_text()


def test_methods_show_their_capabilities_in_json_and_text(capsys):
    code, out, _ = run(["methods", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and list(rows) == list(solvers.METHODS)
    for name, method in solvers.METHODS.items():
        row = rows[name]
        assert {"name", "problems", "role", "exact", "available", "default_for", "options",
                "description"} <= set(row)
        assert row["several_blocks"] == list(method.several_blocks)
        assert row["modes"] == list(method.modes)
        assert row["energy"] is method.energy
    code, out, _ = run(["methods"], capsys)
    header = out.splitlines()[0]
    assert code == 0 and "several blocks" in header and "modes" in header and "energy" in header
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name, method in solvers.METHODS.items():
        assert ",".join(method.modes) in lines[name]
        assert ("/".join(method.several_blocks) or "-") in lines[name].split()


@pytest.mark.parametrize("extra", [[], ["--modes", "local,split"]])
def test_every_device_in_the_json_has_the_same_keys(extra, write_json, good_scenario, capsys):
    code, out, _ = run(["solve", write_json(good_scenario), "--json"] + extra, capsys)
    devices = json.loads(out)["devices"]
    assert code == 0 and any(not d["blocks"] for d in devices)  # an idle device
    keys = {frozenset(d) for d in devices}
    assert len(keys) == 1 and "mode" in next(iter(keys)), keys
    idle = next(d for d in devices if not d["blocks"])
    assert idle["mode"] is None


@pytest.mark.parametrize("words", [w for w in COMMANDS if w not in ([], ["scenario"])],
                         ids=lambda w: " ".join(w))
def test_a_usage_error_points_at_the_commands_own_help(words, capsys):
    # the required positional given, so that the error is the unknown option
    positional = {"profile": ["roberta-base"], "plot": ["profile"], "sweep": ["x.yaml"]}
    code, out, err = run(words + positional.get(words[0], []) + ["--no-such-option"], capsys)
    command = " ".join(["lola"] + words)
    assert code == 2 and out == "" and one_line(err)
    assert err.startswith(f"{command}: ") and err.endswith(f"(see '{command} --help')\n"), err


def test_pareto_seed_points_at_pareto_help(capsys):
    code, _, err = run(["pareto", "--seed", "1"], capsys)
    assert code == 2 and "(see 'lola pareto --help')" in err


def test_deft_run_labels_the_scenarios_time_and_this_hosts():
    from lola.flower.cli import format_report

    client = {"device": "phone-1", "blocks": ["layer.0"], "measured_compute_s": 0.012,
              "predicted_compute_s_host": 0.02, "compute_ratio": 0.6, "uploaded_bytes": 10}
    data = {"scenario": "s", "method": "crunch", "problem": "matching", "rounds": 1,
            "model": "tiny", "seed": 0, "initial_eval_loss": 0.7,
            "per_round": [{"round": 1, "status": "optimal",
                           "predicted_round_latency_s": 0.002271, "train_loss": 0.7,
                           "eval_loss": 0.7, "eval_accuracy": 0.5, "clients": [client]}],
            "compute_ratio_spread": {"q1": 0.6, "q3": 0.6, "min": 0.6, "max": 0.6, "count": 1},
            "host_flops_per_s": 1e10, "compute_ratio_median": 0.6,
            "host_profile": {"extra_flops_source": "profile"}}
    report = type("Report", (), {"to_dict": lambda self: data})()
    lines = format_report(report).splitlines()
    round_line = next(line for line in lines if line.startswith("round 1"))
    client_line = next(line for line in lines if "phone-1" in line)
    assert "scenario's devices" in round_line and "0.002271 s" in round_line
    assert "this host" in client_line and "12.00 ms" in client_line


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_the_python_api_refuses_a_bad_seed_naming_it(seed):
    import lola

    for call in (lambda: lola.solve(lola.default_scenario(), method="random", seed=seed),
                 lambda: lola.compare(lola.default_scenario(), methods=["random"], seed=seed)):
        with pytest.raises(solvers.SolverInputError, match="seed must be a non-negative integer"):
            call()
