"""The architecture, checked by tools: import-linter's contracts (``.importlinter``: the layers,
``solvers`` never importing ``lola``, no cycles between sibling modules) and no module importing
another module's underscore names, but for the exceptions listed here with their reasons."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (importing file, imported module, name): why the crossing is still there. Remove an entry when
# the crossing goes; a new crossing fails the test below.
KNOWN_CROSSINGS = {
    ("lola/profiles/__init__.py", "scenario", "_Checker"):
        "the profile reader checks its documents with the scenario's key checker; both should "
        "use one document module",
    ("lola/studies/grid.py", "scenario", "_Checker"): "the sweep file reader, likewise",
    ("lola/studies/grid.py", "scenario", "_kind"): "the sweep file reader's messages",
    ("lola/studies/grid.py", "scenario", "_show"): "the sweep file reader's messages",
    ("lola/studies/grid.py", "profiles", "_resolve"): "a sweep resolves profile paths as "
                                                      "scenarios do",
    **{("solvers/runs.py", "sets", name): "the path MILP borrows the run tables and result "
       "helpers of the several-blocks dispatcher (the cycle .importlinter lists)"
       for name in ("_assignment_to_runs", "_energy_ok", "_result", "_run_costs", "_run_needs",
                    "_run_table", "_runs_to_assignment")},
}


def _crossings():
    found = set()
    for package in ("lola", "solvers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.add((path.relative_to(ROOT).as_posix(),
                                       node.module.split(".")[-1], alias.name))
    return found


def test_no_module_imports_another_modules_underscore_names_but_the_listed_ones():
    found = _crossings()
    new = sorted(found - set(KNOWN_CROSSINGS))
    assert not new, f"private names imported across modules: {new}"
    gone = sorted(set(KNOWN_CROSSINGS) - found)
    assert not gone, f"crossings listed as known that are gone (remove them): {gone}"


def test_the_import_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter is in the test extra")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or \
        shutil.which("lint-imports")
    assert command, "lint-imports is not installed"
    done = subprocess.run([command, "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
