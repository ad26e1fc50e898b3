"""HiGHS inside one process: nothing on standard output, and the same answer whatever ran first.

Regressions of highspy 1.16: its banner (``Running HiGHS ... Copyright ...``) is printed with C's
``printf`` on file descriptor 1 when a process builds its first ``Highs`` object, which broke
every ``--json`` command that solved with HiGHS; and setting the ``threads`` option after the
process's HiGHS scheduler exists ends the run with status *Not Set*, so the path MILP (several
blocks per device) failed once cvxpy's MILP had run in the same process. Both only show in a
fresh process, so each check here starts one.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lola.generate import generate_scenario

from .reference_model import run_lola

HAVE_SCIP = __import__("importlib").util.find_spec("pyscipopt") is not None


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Six generated devices with energy figures, as JSON: every method is fast on it."""
    path = tmp_path_factory.mktemp("highs") / "six.json"
    path.write_text(json.dumps(generate_scenario(6, seed=3, energy=True)))
    return str(path)


def _json_commands(small):
    commands = [
        ["methods", "--json"],
        ["solve", small, "--problem", "matching", "--method", "milp", "--json"],
        ["solve", small, "--method", "milp", "--json"],
        ["solve", small, "--method", "milp", "--max-blocks", "2", "--time-limit", "2", "--json"],
        ["solve", "--max-blocks", "3", "--json"],  # the default scenario: the path MILP
        ["compare", small, "--methods", "milp,exact,dual-ascent", "--json"],
        ["compare", small, "--problem", "matching", "--methods", "milp,crunch", "--json"],
        ["ledger", "--method", "milp", "--json"],  # the default scenario: 20 devices
        ["simulate", small, "--rounds", "2", "--methods", "exact,milp", "--json"],
        ["pareto", "--json"],
    ]
    if HAVE_SCIP:
        commands += [["solve", small, "--method", "scip", "--json"],
                     ["compare", small, "--methods", "scip,milp", "--json"]]
    return commands


def test_every_json_command_prints_exactly_one_json_document(small):
    for args in _json_commands(small):
        done = run_lola(args)
        assert done.returncode in (0, 1), (args, done.stderr)
        try:
            json.loads(done.stdout)  # raises on anything before or after the one document
        except json.JSONDecodeError as err:
            pytest.fail(f"lola {' '.join(args)}: standard output is not one JSON document "
                        f"({err}): {done.stdout[:200]!r}")
        assert "HiGHS" not in done.stderr, (args, done.stderr)


def _fresh(code: str, *argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *argv],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


_SEVERAL_AFTER = """
    import json, sys
    import lola

    first = sys.argv[1]
    if first == "milp":  # cvxpy's HiGHS MILP first: it sizes the process's HiGHS scheduler
        lola.solve(sys.argv[2], problem="matching", method="milp")
        lola.solve(sys.argv[2], method="milp", max_blocks=2, time_limit_s=1)
    elif first == "user-threads":  # a user's own HiGHS (it prints its banner: the last line is
        # LoLa's), with a thread count of their choosing
        import highspy
        user = highspy.Highs()
        user.setOptionValue("output_flag", False)
        user.setOptionValue("threads", 2)
        user.addVar(0.0, 1.0)
        user.run()
    result = lola.solve(lola.default_scenario(), max_blocks=3)
    print(json.dumps({"latency": result.round_latency_s, "status": result.status,
                      "blocks": {d.name: list(d.blocks) for d in result.devices}}))
"""


def test_the_path_milp_gives_the_same_answer_whatever_ran_before_it(small):
    alone = json.loads(_fresh(_SEVERAL_AFTER, "nothing", small))
    assert alone["status"] == "optimal"
    for first in ("milp", "user-threads"):
        last = _fresh(_SEVERAL_AFTER, first, small).splitlines()[-1]
        assert json.loads(last) == alone, first


def test_the_path_milp_gives_the_same_answer_after_milp_in_this_process(small):
    import lola

    before = lola.solve(lola.default_scenario(), max_blocks=3)
    lola.solve(small, problem="matching", method="milp")
    lola.solve(small, method="milp", max_blocks=2, time_limit_s=1)
    after = lola.solve(lola.default_scenario(), max_blocks=3)
    assert after.status == before.status == "optimal"
    assert after.round_latency_s == before.round_latency_s
    assert [d.blocks for d in after.devices] == [d.blocks for d in before.devices]


def test_quiet_sends_the_banner_nowhere_and_gives_standard_output_back():
    out = _fresh("""
        import sys
        print("before", flush=True)
        from solvers.highs import quiet
        with quiet():
            import highspy
            for _ in range(2):  # highspy 1.7 prints its banner once per object
                solver = highspy.Highs()
                solver.addVar(0.0, 1.0)
                solver.run()
                print("lost", flush=True)  # inside, even Python's output goes nowhere
        print("after")
        sys.stdout.flush()
        import os
        os.write(1, b"raw\\n")
    """)
    assert out == "before\nafter\nraw\n"
