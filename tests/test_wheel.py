"""The built distributions work away from the checkout.

``python -m build`` makes the sdist, then the wheel from that sdist (so the sdist alone is enough
to build LoLa). The wheel goes into one fresh virtual environment in a temporary folder, not
editable, with its dependencies at the versions in ``constraints.txt``; every command then runs
from a temporary working directory with no path back to the checkout, so the bundled default
scenario and profiles are proven to be inside the wheel. ``twine check`` reads both files as a
package index would.

One build and one environment serve every test here (a module fixture); the whole module takes a
minute or two, most of it pip installing the core dependencies.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import lola

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.packaging

BUILD_TIMEOUT_S = 600
INSTALL_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 300
# What a clean clone does not have (.gitignore), left out of the copy the build starts from.
NOT_SOURCE = (".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
              ".hypothesis", "results", "*.pyc")


def _environment():
    """The caller's environment without anything that points back to the checkout or its venv."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def _run(command, *, cwd, timeout=COMMAND_TIMEOUT_S, check=True):
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=_environment(),
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, (command, done.returncode, done.stdout[-4000:],
                                      done.stderr[-4000:])
    return done


class Installed:
    """The built sdist and wheel, and a fresh environment with the wheel installed."""

    def __init__(self, dist: Path, venv: Path, work: Path):
        self.sdist = next(dist.glob("*.tar.gz"))
        self.wheel = next(dist.glob("*.whl"))
        self.dist = dist
        self.venv = venv
        self.work = work  # an empty working directory outside the checkout
        self.bin = venv / ("Scripts" if os.name == "nt" else "bin")

    def lola(self, *args, check=True):
        return _run([self.bin / "lola", *args], cwd=self.work, check=check)

    def python(self, *args, check=True):
        return _run([self.bin / "python", *args], cwd=self.work, check=check)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents, "the temporary folder must lie outside the checkout"
    source, dist, venv, work = base / "source", base / "dist", base / "venv", base / "work"
    work.mkdir()
    # a copy of the checkout, so that the build writes nothing into the checkout itself
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    # --no-isolation: the running environment's setuptools and wheel build it, nothing fetched
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, source],
         cwd=base, timeout=BUILD_TIMEOUT_S)
    _run([sys.executable, "-m", "venv", venv], cwd=base)
    package = Installed(dist, venv, work)
    _run([package.bin / "python", "-m", "pip", "install", "--quiet",
          "-c", ROOT / "constraints.txt", package.wheel], cwd=work, timeout=INSTALL_TIMEOUT_S)
    return package


def test_build_makes_one_sdist_and_one_wheel_of_this_version(installed):
    names = sorted(path.name for path in installed.dist.iterdir())
    assert names == [f"lola_deft-{lola.__version__}-py3-none-any.whl",
                     f"lola_deft-{lola.__version__}.tar.gz"], names


def test_the_sdist_carries_the_license_citation_and_changelog(installed):
    with tarfile.open(installed.sdist) as archive:
        top = f"lola_deft-{lola.__version__}/"
        names = {name.removeprefix(top) for name in archive.getnames()}
    for required in ("LICENSE", "CITATION.cff", "CHANGELOG.md", "README.md", "setup.cfg",
                     "pyproject.toml", "lola/data/default.yaml",
                     "lola/profiles/roberta-base.json", "lola/profiles/roberta-large.json"):
        assert required in names, f"sdist lacks {required}"


def test_the_wheel_carries_the_data_and_the_license(installed):
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    for required in ("lola/data/default.yaml", "lola/profiles/roberta-base.json",
                     "lola/profiles/roberta-large.json", "solvers/__init__.py"):
        assert required in names, f"wheel lacks {required}"
    licenses = [name for name in names if name.endswith("/LICENSE") and ".dist-info/" in name]
    assert licenses, f"no LICENSE in the wheel's metadata: {sorted(names)[:5]}..."
    assert not any(name.startswith("tests/") for name in names), "tests shipped in the wheel"


def test_twine_check_passes_on_both_distributions(installed):
    done = _run([sys.executable, "-m", "twine", "check", "--strict", installed.wheel,
                 installed.sdist], cwd=installed.work)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    done = installed.python("-c", "import lola, solvers; print(lola.__file__); "
                                  "print(solvers.__file__); print(lola.__version__)")
    lola_file, solvers_file, version = done.stdout.split()
    for path in (lola_file, solvers_file):
        assert Path(path).resolve().is_relative_to(installed.venv.resolve()), path
    assert version == lola.__version__
    installed.python("-m", "pip", "check")
    done = installed.python("-m", "pip", "show", "lola-deft")
    assert "Editable project location" not in done.stdout, done.stdout


def test_lola_solve_on_the_bundled_default_scenario(installed):
    done = installed.lola("solve")
    assert "status optimal" in done.stdout, done.stdout
    document = json.loads(installed.lola("solve", "--json").stdout)
    assert document["status"] == "optimal" and document["method"] == "exact"
    assert document["scenario"] == "roberta-base-20-devices-seed0"
    assert len(document["assignment"]) == 12  # roberta-base: 12 blocks
    assert document["round_latency_s"] > 0


def test_lola_methods_lists_the_registry(installed):
    done = installed.lola("methods")
    for name in ("crunch", "bottleneck", "exact", "dual-ascent", "milp", "brute"):
        assert name in done.stdout, done.stdout


def test_a_generated_roberta_large_scenario_solves(installed):
    path = installed.work / "large.yaml"
    installed.lola("scenario", "generate", "--devices", "8", "--profile", "roberta-large",
                   "--output", path)
    # 24 blocks over 8 devices: three blocks each at most, fixed bandwidths (CRUNCH, exact)
    document = json.loads(installed.lola("solve", path, "--problem", "matching",
                                         "--max-blocks", "3", "--json").stdout)
    assert document["status"] == "optimal", document["message"]
    assert len(document["assignment"]) == 24  # roberta-large: 24 blocks
    assert len(document["devices"]) == 8
    assert all(len(device["blocks"]) <= 3 for device in document["devices"])


def test_the_python_api_and_networkx_graph_in_the_installed_package(installed):
    done = installed.python("-c", "import lola; "
                                  "r = lola.solve(lola.default_scenario(), problem='matching'); "
                                  "g = r.to_networkx(); "
                                  "print(r.status, g.number_of_edges())")
    assert done.stdout.split() == ["optimal", "12"], done.stdout
