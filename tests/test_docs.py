"""The documentation site builds without a warning, and its references are complete.

``make docs`` builds docs/ with Sphinx, warnings as errors. This test runs the same build into a
temporary folder, then checks that the API page documents every name in ``lola.__all__`` and
``solvers.__all__`` and that the command-line page documents every sub-command of the parser
``lola`` runs (the nested ones, such as ``lola scenario generate``, included). Without the
``docs`` extra installed, it skips.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import lola
import solvers
from lola.cli import _build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS_PACKAGES = ("sphinx", "numpydoc", "myst_parser", "sphinxarg")


def _sub_commands(parser, prefix=("lola",)):
    """Every sub-command path of ``parser``: ('lola', 'solve'), ('lola', 'scenario', 'generate')."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _sub_commands(sub, prefix + (name,))


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    missing = [name for name in DOCS_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed (no {', '.join(missing)}): "
                    "pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    return out / "html"


def test_the_site_builds_without_warnings(html):
    for page in ("index", "getting-started", "user-guide", "api", "cli", "flower"):
        assert (html / f"{page}.html").is_file(), page


def test_the_api_page_documents_every_public_name(html):
    page = (html / "api.html").read_text(encoding="utf-8")
    for module in (lola, solvers):
        missing = [name for name in module.__all__ if f'id="{module.__name__}.{name}"' not in page]
        assert not missing, f"{module.__name__}: {missing} not on the API page"


def test_the_cli_page_documents_every_sub_command(html):
    page = (html / "cli.html").read_text(encoding="utf-8")
    commands = list(_sub_commands(_build_parser()))
    assert len(commands) >= 10
    missing = [" ".join(path) for path in commands if f'id="{"-".join(path)}"' not in page]
    assert not missing, f"{missing} not on the command-line page"
