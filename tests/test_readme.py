"""The examples of the README and of the documentation pages run as written: their scenario
files, their Python and their commands.

The fenced blocks are taken from README.md and from every Markdown page of docs/ (``PAGES``): a
``yaml`` block whose first line is ``# NAME.yaml`` is written to NAME.yaml in a fresh folder,
every ``python`` block runs there, and every ``lola ...`` line of the ``sh`` blocks runs there
too, except the few listed in ``NOT_RUN`` with the reason, and those that need an optional extra
that is not installed (``EXTRAS_NEEDED``). A command or example a page gains is run by this test
without editing it.
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

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The README first, then the documentation's own pages (docs/_generated holds what the build
# makes, docs/_build what it wrote: neither is a page of examples).
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)

# Commands shown but not run here, and why. Set-up lines (make, pip, the benchmark suite) are
# not LoLa commands and are not run either, nor are the commands of other programs a page
# shows (a Flower deployment's server and devices).
NOT_RUN = {
    "lola profile roberta-base -o my-roberta.json": "profiles the full model: minutes to hours",
    "lola profile qwen2.5-0.5b --targets all --rank 16 --alpha 32 --batch-size 4 "
    "--sequence-length 512 --dtype bfloat16 --measure-layers 3 --threads 1 -o qwen.json":
        "profiles a 0.5 B-parameter decoder: about ten minutes (the tiny decoder beside it runs)",
    "lola deft-run lab.yaml --model roberta-base --weights ./roberta-base --data train.jsonl":
        "needs RoBERTa-base's weights in ./roberta-base and a data file of one's own",
    "lola race --glue-dir GLUE --strategies deft,fedavg-lora,depth-hetero,centralized --rounds 120 --seeds 0,1,2 --target 0.8 --eval-every 10 --lr 3e-3 --clients-per-round 7 -o race.csv --figure race.png --save adapters": "fine-tunes MiniLM for hours, on a GLUE folder of one's own (tests/test_race.py "
    "runs small races)",
}
SET_UP = ("make ", "pip install", "python -m benchmarks")
OTHER_PROGRAMS = ("flower-superlink ", "flower-supernode ")


def _page_text(page):
    return page.read_text(encoding="utf-8")


def _text():
    """Every page's text, one after the other (what a reader finds in the documentation)."""
    return "\n".join(_page_text(page) for page in PAGES)


def _page_blocks(page, kind):
    return [body for language, body in FENCE.findall(_page_text(page)) if language == kind]


def _blocks(kind):
    """The fenced blocks of language ``kind`` of every page, in page order."""
    return [body for page in PAGES for body in _page_blocks(page, kind)]


def _commands(body=None):
    """The command lines of one sh block (or of all), continuations joined, comments dropped."""
    commands = []
    for text in [body] if body is not None else _blocks("sh"):
        pending = ""
        for line in text.replace("\\\n", " ").splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # a quoted argument that goes on over the next line
                continue
            pending = ""
            if words:
                commands.append(" ".join(words))
        assert not pending, f"an unclosed quotation in {pending!r}"
    return commands


# One sh block is one session: its commands run in order in one folder (a later one may read
# what an earlier one wrote).
SESSIONS = [(page, body) for page in PAGES for body in _page_blocks(page, "sh")
            if any(c.startswith("lola ") for c in _commands(body))]


def _session_id(page, body):
    first = next(c for c in _commands(body) if c.startswith("lola "))
    return f"{page.stem}:{first.split(' -')[0][:40]}"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for body in _blocks("yaml"):
        first = body.splitlines()[0]
        if re.fullmatch(r"# [\w.-]+\.ya?ml", first):
            (tmp_path / first[2:]).write_text(body)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_examples_of_every_kind():
    readme_commands = [c for body in _page_blocks(README, "sh") for c in _commands(body)]
    assert "make demo" in readme_commands and "make test" in readme_commands
    assert any(c.startswith("lola ") for c in readme_commands)
    assert _page_blocks(README, "python")
    assert len(_blocks("python")) >= 2 and len(_blocks("yaml")) >= 1
    assert sum(c.startswith("lola ") for c in _commands()) >= 5


def test_every_page_with_examples_is_read():
    # the pages the examples moved to are among those read
    names = {page.name for page in PAGES}
    assert {"README.md", "getting-started.md", "scenarios.md", "sweeps.md", "flower.md"} <= names
    assert not any("_generated" in page.parts or "_build" in page.parts for page in PAGES)


def test_a_named_scenario_is_given_once():
    named = [body.splitlines()[0] for body in _blocks("yaml")
             if re.fullmatch(r"# [\w.-]+\.ya?ml", body.splitlines()[0])]
    assert len(named) == len(set(named)), named


def test_named_scenarios_load_and_solve(folder):
    named = sorted(p.name for p in folder.glob("*.yaml"))
    assert named == ["devices-sweep.yaml", "five-phones.yaml", "lab.yaml", "split-demo.yaml"]
    scenarios = [p for p in sorted(folder.glob("*.yaml"))
                 if "model" in yaml.safe_load(p.read_text())]
    assert [p.name for p in scenarios] == ["five-phones.yaml", "lab.yaml", "split-demo.yaml"]
    # the options each scenario is shown with in the pages
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
    # the split-mode page's worked example: 5.067 s locally, 1.630 s with split mode
    assert round(lola.solve(split).round_latency_s, 3) == 5.067
    chosen = lola.solve(split, modes="local,split")
    assert round(chosen.round_latency_s, 3) == 1.630
    assert {d.name: d.mode for d in chosen.devices} == {
        "phone": "split", "laptop": "local", "jetson": "split"}


PYTHON = [(page, index, body) for page in PAGES
          for index, body in enumerate(_page_blocks(page, "python"), start=1)]


@pytest.mark.parametrize("page, index, code", PYTHON,
                         ids=[f"{page.stem}:{index}" for page, index, _ in PYTHON])
def test_python_examples_run_as_written(page, index, code, folder):
    needs = _extra_needed(code)
    if needs is not None:  # an optional extra that is not installed (make test-oldest)
        pytest.skip(f"needs {needs}, not installed")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600)
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr
    if '"->"' in code:  # an example that prints an allocation shows a solved one
        assert "infeasible" not in process.stdout and "optimal" in process.stdout
        assert "->" in process.stdout  # the assignment is printed


def test_the_readmes_python_shows_a_solved_allocation():
    assert any('"->"' in code for code in _page_blocks(README, "python"))


@pytest.mark.parametrize("page, session", SESSIONS,
                         ids=[_session_id(page, body) for page, body in SESSIONS])
def test_commands_run_as_written(page, session, folder):
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


# What a command or a Python example needs beyond the core dependencies: (its start, an option
# or an import, the module).
EXTRAS_NEEDED = (("lola profile", "torch"), ("lola deft-run", "flwr"), ("lola deft-run", "torch"),
                 ("lola race", "flwr"), ("lola race", "torch"),
                 ("--executor dask", "distributed"), ("lola.flower", "flwr"),
                 ("lola.flower", "torch"), ("flwr.simulation", "ray"))


def _extra_needed(text):
    """The missing module that ``text`` (a command or a Python example) needs, or None when it
    can run here."""
    for marker, module in EXTRAS_NEEDED:
        if marker in text and importlib.util.find_spec(module) is None:
            return module
    return None


def test_every_other_command_is_set_up():
    others = [c for c in _commands() if not c.startswith("lola ")]
    assert all(c.startswith(SET_UP + OTHER_PROGRAMS) for c in others), others


def test_every_command_not_run_is_still_shown():
    commands = _commands()
    assert all(command in commands for command in NOT_RUN), NOT_RUN
