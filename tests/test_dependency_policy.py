"""The dependency policy stays true to its files.

``make test`` installs from ``constraints.txt`` (versions known to pass), ``make test-latest`` from
the newest releases, ``make test-oldest`` from ``constraints-oldest.txt`` (the oldest versions
``setup.cfg`` allows). These tests keep the three files consistent with ``setup.cfg``: a lower
bound raised in one place and not the other, or a pin that the declared ranges exclude, fails
here instead of in a user's ``pip install``.
"""
from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _setup_requirements():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    core = [Requirement(line) for line in config["options"]["install_requires"].split("\n")
            if line.strip()]
    extras = {name: [Requirement(line) for line in text.split("\n")
                     if line.strip() and not line.strip().startswith("#")]
              for name, text in config["options.extras_require"].items()}
    return core, extras


def _pins(path):
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert match, f"{path}: {line!r} is not NAME==VERSION"
        name = canonicalize_name(match.group(1).split("[")[0])
        assert name not in pins, f"{path}: {name} pinned twice"
        pins[name] = match.group(2)
    return pins


def test_the_oldest_constraints_are_exactly_setup_cfgs_lower_bounds():
    core, _ = _setup_requirements()
    oldest = _pins("constraints-oldest.txt")
    bounds = {}
    for requirement in core:
        lower = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lower) == 1, f"setup.cfg: {requirement} needs exactly one lower bound"
        bounds[canonicalize_name(requirement.name)] = Version(lower[0])
    assert {name: Version(v) for name, v in oldest.items()} == bounds


def test_every_declared_dependency_is_pinned_within_its_declared_range():
    core, extras = _setup_requirements()
    pins = _pins("constraints.txt")
    for requirement in core + [r for group in extras.values() for r in group]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside setup.cfg's {requirement}")


def test_make_test_installs_with_the_constraints_and_the_other_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    stamp = makefile[makefile.index("$(STAMP):"):makefile.index("demo:")]
    installs = [line for line in stamp.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert "constraints.txt" in stamp.splitlines()[0]  # a new pin reinstalls
    latest = makefile[makefile.index("test-latest:"):makefile.index("test-oldest:")]
    assert "constraints" not in latest.replace("constraints.txt.new", "")
    assert "-c constraints-oldest.txt" in makefile[makefile.index("test-oldest:"):]
