"""The documentation site builds without a warning, and its references are complete.

``make docs`` builds docs/ with Sphinx, warnings as errors. This test runs the same build into a
temporary folder, then checks that the API page documents every name in ``lola.__all__`` and
``solvers.__all__``, that the command-line page documents every sub-command of the parser
``lola`` runs (the nested ones, such as ``lola scenario generate``, included), that every page
(the notebooks included) is built and can be reached from the front page, and that the gallery
and the notebooks show their figures. Without the ``docs`` extra installed, those tests skip.

The gallery script (``docs/make_gallery.py``) needs no more than LoLa itself: its test draws the
gallery on its own and checks a figure of every kind ``lola plot`` lists, so that a new kind
without a gallery entry fails here.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag

import pytest

import lola
import solvers
from lola import cli
from lola.cli import _build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCS_PACKAGES = ("sphinx", "numpydoc", "myst_parser", "myst_nb", "sphinxarg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The pages of the site: every source page of docs/, and every notebook.
PAGES = sorted(path.stem for pattern in ("*.md", "*.rst") for path in DOCS.glob(pattern))
NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOK_PAGE = "_generated/notebooks/{}"


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
        capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    return out / "html"


def test_the_site_builds_without_warnings(html):
    assert {"index", "getting-started", "user-guide", "gallery", "notebooks", "benchmarks",
            "api", "cli", "flower"} <= set(PAGES)
    for page in PAGES + [NOTEBOOK_PAGE.format(stem) for stem in NOTEBOOKS]:
        assert (html / f"{page}.html").is_file(), page


def _links(page: Path) -> set:
    """The pages of the site that ``page`` links to (local .html targets, anchors dropped)."""
    targets = set()
    for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
        target = urldefrag(href).url
        if target and "://" not in target and target.endswith(".html"):
            targets.add((page.parent / target).resolve())
    return targets


def test_every_page_can_be_reached_from_the_front_page(html):
    reached, pending = set(), [(html / "index.html").resolve()]
    while pending:
        page = pending.pop()
        if page in reached or not page.is_file():
            continue
        reached.add(page)
        pending.extend(_links(page) - reached)
    pages = PAGES + [NOTEBOOK_PAGE.format(stem) for stem in NOTEBOOKS]
    unreached = [page for page in pages if (html / f"{page}.html").resolve() not in reached]
    assert not unreached, f"{unreached} cannot be reached from index.html"


def test_every_topic_page_is_in_the_user_guide_or_on_the_front_page():
    # the toctrees (Sphinx warns about a page in none of them, and -W fails the build) and the
    # lists a reader sees name the same pages
    listed = set()
    for hub in ("index", "user-guide"):
        text = (DOCS / f"{hub}.md").read_text(encoding="utf-8")
        listed |= set(re.findall(r"\]\(([\w-]+)\.(?:md|rst)\)", text))
    assert set(PAGES) - {"index"} <= listed, set(PAGES) - {"index"} - listed


def _not_executed_patterns() -> list:
    """``nb_execution_excludepatterns`` of docs/conf.py: the notebooks shown without outputs."""
    for node in ast.parse((DOCS / "conf.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == \
                "nb_execution_excludepatterns":
            return ast.literal_eval(node.value)
    return []


def test_the_notebooks_are_shown_executed_with_their_figures(html):
    patterns = _not_executed_patterns()
    assert patterns  # the Flower notebook, whose extras and training the site does not run
    for stem in NOTEBOOKS:
        page = (html / f"{NOTEBOOK_PAGE.format(stem)}.html").read_text(encoding="utf-8")
        images = page.count("<img")
        source = str(DOCS / f"{NOTEBOOK_PAGE.format(stem)}.ipynb")
        if any(fnmatch.fnmatch(source, pattern) for pattern in patterns):
            assert images == 0, stem  # shown as stored: without outputs
        else:
            assert images >= 1, f"{stem}: no figure shown"


def test_the_gallery_page_shows_every_figure(html):
    gallery = _gallery_script()
    page = (html / "gallery.html").read_text(encoding="utf-8")
    figures = [figure for entry in gallery.ENTRIES for figure in entry.figures
               if all(importlib.util.find_spec(module) is not None for module, _ in entry.needs)]
    assert len(figures) >= len(cli.FIGURE_KINDS)
    for figure in figures:
        stem = figure.rsplit(".", 1)[0]
        assert re.search(rf'<img[^>]+src="[^"]*{re.escape(stem)}[^"]*\.png"', page), figure


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


def _gallery_script():
    """``docs/make_gallery.py`` as a module (it is a script, not part of the package)."""
    if "make_gallery" not in sys.modules:
        spec = importlib.util.spec_from_file_location("make_gallery", DOCS / "make_gallery.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_gallery"] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    return sys.modules["make_gallery"]


def test_the_gallery_has_an_entry_for_every_plot_kind():
    gallery = _gallery_script()
    assert gallery.missing_kinds() == []
    # a kind without an entry is refused, naming the kind
    entries = tuple(entry for entry in gallery.ENTRIES if "ledger" not in entry.kinds)
    assert gallery.missing_kinds(entries) == ["ledger"]


@pytest.fixture(scope="module")
def gallery_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery")
    run = subprocess.run([sys.executable, str(DOCS / "make_gallery.py"), str(folder)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return folder


@pytest.mark.parametrize("kind", cli.FIGURE_KINDS)
def test_the_gallery_script_draws_every_plot_kind(kind, gallery_folder):
    gallery = _gallery_script()
    entry = next(entry for entry in gallery.ENTRIES if kind in entry.kinds)
    for figure in entry.figures:
        data = (gallery_folder / figure).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, figure
    body = (gallery_folder / "gallery.md").read_text(encoding="utf-8")
    assert f"lola plot {kind}" in body  # under the command that drew it


def test_the_gallery_draws_the_studies_or_says_what_they_need(gallery_folder):
    gallery = _gallery_script()
    body = (gallery_folder / "gallery.md").read_text(encoding="utf-8")
    for entry in gallery.ENTRIES:
        missing = [extra for module, extra in entry.needs
                   if importlib.util.find_spec(module) is None]
        for figure in entry.figures:
            if missing:
                assert not (gallery_folder / figure).exists()
                assert "Not drawn in this build" in body
            else:
                assert (gallery_folder / figure).read_bytes().startswith(PNG_SIGNATURE), figure
                assert f"]({figure})" in body
