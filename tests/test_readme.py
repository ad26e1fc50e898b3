"""The README's examples run as written: its scenario files, its Python and its commands.

The fenced blocks are taken from README.md itself: a ``yaml`` block whose first line is
``# NAME.yaml`` is written to NAME.yaml in a fresh folder, every ``python`` block runs there, and
every ``lola ...`` line of the ``sh`` blocks runs there too, except the few listed in
``NOT_RUN`` with the reason. A command the README gains is run by this test without editing it.
"""
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lola

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)

# Commands shown but not run here, and why. Set-up lines (make, pip, the benchmark suite) are
# not LoLa commands and are not run either.
NOT_RUN = {
    "lola profile roberta-base -o my-roberta.json": "profiles the full model: minutes to hours",
}
SET_UP = ("make ", "pip install", "python -m benchmarks")


def _blocks(kind):
    return [body for language, body in FENCE.findall(README.read_text()) if language == kind]


def _commands(body=None):
    """The command lines of one sh block (or of all), continuations joined, comments dropped."""
    commands = []
    for text in [body] if body is not None else _blocks("sh"):
        for line in text.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(" ".join(words))
    return commands


# One sh block is one session: its commands run in order in one folder (a later one may read
# what an earlier one wrote).
SESSIONS = [body for body in _blocks("sh") if any(c.startswith("lola ")
                                                  for c in _commands(body))]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for body in _blocks("yaml"):
        first = body.splitlines()[0]
        if re.fullmatch(r"# [\w.-]+\.ya?ml", first):
            (tmp_path / first[2:]).write_text(body)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_examples_of_every_kind():
    assert len(_blocks("python")) >= 1 and len(_blocks("yaml")) >= 1
    assert sum(c.startswith("lola ") for c in _commands()) >= 5


def test_named_scenarios_load_and_solve(folder):
    named = sorted(p.name for p in folder.glob("*.yaml"))
    assert named == ["devices-sweep.yaml", "five-phones.yaml", "lab.yaml", "split-demo.yaml"]
    scenarios = [p for p in sorted(folder.glob("*.yaml"))
                 if "model" in yaml.safe_load(p.read_text())]
    assert [p.name for p in scenarios] == ["five-phones.yaml", "lab.yaml", "split-demo.yaml"]
    # the options each scenario is shown with in the README
    settings = {"five-phones.yaml": {"max_blocks": 4},
                "split-demo.yaml": {"modes": ("local", "split")}}
    for path in scenarios:
        scenario = lola.load_scenario(path)
        for problem in ("jbba", "matching"):
            result = lola.solve(scenario, problem=problem, **settings.get(path.name, {}))
            assert result.status == "optimal", result.message
    five = lola.load_scenario(folder / "five-phones.yaml")
    assert lola.solve(five).status == "infeasible"  # 12 blocks, 5 devices, one block each
    split = lola.load_scenario(folder / "split-demo.yaml")
    # the README's worked example: 5.067 s locally, 1.630 s with split mode
    assert round(lola.solve(split).round_latency_s, 3) == 5.067
    chosen = lola.solve(split, modes="local,split")
    assert round(chosen.round_latency_s, 3) == 1.630
    assert {d.name: d.mode for d in chosen.devices} == {
        "phone": "split", "laptop": "local", "jetson": "split"}


def test_python_examples_run_and_show_solved_allocations(folder):
    for code in _blocks("python"):
        process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=300)
        assert process.returncode == 0, process.stderr
        assert "infeasible" not in process.stdout and "optimal" in process.stdout
        assert "->" in process.stdout  # the assignment is printed


@pytest.mark.parametrize("session", SESSIONS,
                         ids=[_commands(b)[0].split(" -")[0][:40] for b in SESSIONS])
def test_commands_run_as_written(session, folder):
    ran, missing = 0, set()
    for command in _commands(session):
        if not command.startswith("lola ") or command in NOT_RUN:
            continue
        needs = _extra_needed(command)
        if needs is not None:  # an optional extra that is not installed (make test-oldest)
            missing.add(needs)
            continue
        process = subprocess.run([sys.executable, "-m", "lola.cli", *shlex.split(command)[1:]],
                                 capture_output=True, text=True, timeout=600)
        # exit 0: solved (1 would be an infeasible example, 2 a usage error)
        assert process.returncode == 0, (command, process.stderr)
        assert "Traceback" not in process.stderr
        ran += 1
    if ran == 0 and missing:
        pytest.skip(f"needs {', '.join(sorted(missing))}, not installed")
    assert ran >= 1


# What a command needs beyond the core dependencies: (its start or an option, the module).
EXTRAS_NEEDED = (("lola profile", "torch"), ("lola deft-run", "flwr"),
                 ("--executor dask", "distributed"))


def _extra_needed(command):
    """The missing module that ``command`` needs, or None when it can run here."""
    for marker, module in EXTRAS_NEEDED:
        if marker in command and importlib.util.find_spec(module) is None:
            return module
    return None


def test_every_other_command_is_set_up():
    others = [c for c in _commands() if not c.startswith("lola ")]
    assert all(c.startswith(SET_UP) for c in others), others
