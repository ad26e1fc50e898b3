"""Sphinx configuration of LoLa's documentation site (``make docs``).

Sphinx, because it is what scipy, networkx, scikit-learn and cvxpy (the libraries LoLa is built
on) use for theirs, and numpydoc reads the numpy-style docstrings LoLa's code is written in.
The API reference lists exactly the names in ``lola.__all__`` and ``solvers.__all__``: the page
is filled in from them at build time, so a new public name is documented as soon as it exists,
and a private one never appears. The command-line reference is generated from the ``argparse``
parser that ``lola`` itself runs.

What the pages show is made from the code while the site builds, into ``docs/_generated/`` (not
under version control): the figure gallery (``docs/make_gallery.py``) and the notebooks of
``notebooks/``, copied here and executed by myst-nb (the repository stores them without outputs).
"""
from __future__ import annotations

import argparse
import inspect
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
sys.path.insert(0, str(ROOT))

import lola  # noqa: E402
import solvers  # noqa: E402
from lola.cli import _build_parser  # noqa: E402

project = "LoLa"
author = "LoLa authors"
copyright = "LoLa authors, MIT license"
release = version = lola.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",  # MyST Markdown pages, and the notebooks executed
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
# the gallery's generated body is included by gallery.md, not a page of its own
exclude_patterns = ["_build", "_generated/gallery", "**/.ipynb_checkpoints"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Every notebook is executed at each build (the copies carry no outputs), but the one that runs
# DEFT rounds in Flower: it needs the flower and profile extras and real training steps (the
# test suite executes it). An error in a cell fails the build.
nb_execution_mode = "force"
nb_execution_excludepatterns = ["*07-deft-in-flower*", "*08-time-to-accuracy*"]
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# The notebooks' small settings (fewer seeds, values, rounds), unless the caller chose:
# LOLA_QUICK=0 make docs runs them in full. The kernel inherits this process's environment;
# without MPLBACKEND it picks the inline backend and shows figures as a user's kernel would.
os.environ.setdefault("LOLA_QUICK", "1")
os.environ.pop("MPLBACKEND", None)

autosummary_generate = False
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "alabaster"
html_title = f"LoLa {release}"


# The public names that are values, not functions or classes: (description, show the value).
DATA = {
    "lola.__version__": ("LoLa's version, the newest released entry of ``CHANGELOG.md``.", True),
    "solvers.METHODS": ("Every registered method by name, a :class:`solvers.Method` each, in "
                        "preference order (``lola methods`` lists them).", False),
    "solvers.PROBLEMS": ("The problems: ``matching`` (P1, bandwidths fixed) and ``jbba`` (P2, "
                         "assignment and bandwidths chosen together).", True),
}


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def _api_section(module) -> str:
    """An autosummary table of ``module.__all__``, then each name in full."""
    names = list(module.__all__)
    lines = [".. currentmodule:: " + module.__name__, "", ".. autosummary::", ""]
    lines += [f"   {name}" for name in names]
    lines.append("")
    for name in names:
        obj = getattr(module, name)
        kind = _kind(obj)
        home = _reexported_from(module, name, obj)
        if home is not None:  # documented in full once, under the package that defines it
            role = "exc" if kind == "exception" else "class"
            lines += [f".. py:{kind}:: {name}", "",
                      f"   The same object as :py:{role}:`{home}.{name}`.", ""]
            continue
        if kind == "data":  # autodoc would show the docstring of the value's type
            if f"{module.__name__}.{name}" not in DATA:
                raise ValueError(f"docs/conf.py: describe {module.__name__}.{name} in DATA")
            description, show_value = DATA[f"{module.__name__}.{name}"]
            lines.append(f".. py:data:: {name}")
            if show_value:
                lines.append(f"   :value: {obj!r}")
            lines += ["", f"   {description}", ""]
            continue
        lines.append(f".. auto{kind}:: {name}")
        if kind in ("class", "exception"):
            lines.append("   :members:")
        lines.append("")
    return "\n".join(lines)


def _reexported_from(module, name, obj):
    """The other documented package that defines ``obj`` under ``name``, if any."""
    for other in (solvers,):
        if other is not module and name in other.__all__ and getattr(other, name) is obj \
                and not obj.__module__.startswith(module.__name__ + "."):
            return other.__name__
    return None


API_SECTIONS = {"@LOLA_API@": lola, "@SOLVERS_API@": solvers}


def _fill_api(app, docname, source):
    if docname != "api":
        return
    for marker, module in API_SECTIONS.items():
        source[0] = source[0].replace(marker, _api_section(module))


def _generate(app):
    """The gallery's figures and body, and the notebooks to execute, into ``_generated/``."""
    gallery = subprocess.run([sys.executable, str(DOCS / "make_gallery.py"),
                              str(GENERATED / "gallery")], capture_output=True, text=True)
    if gallery.returncode != 0:
        raise RuntimeError(f"docs/make_gallery.py failed:\n{gallery.stdout}{gallery.stderr}")
    notebooks = GENERATED / "notebooks"
    shutil.rmtree(notebooks, ignore_errors=True)  # a notebook removed from notebooks/ goes too
    notebooks.mkdir(parents=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copyfile(path, notebooks / path.name)


def _cli_parser() -> argparse.ArgumentParser:
    """``lola``'s own parser, its help texts escaped for reStructuredText (a ``|`` is markup)."""
    parser = _build_parser()
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action.help, str):
                action.help = action.help.replace("|", "\\|")
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    return parser


# sphinx-argparse imports the parser's function by module name (docs/cli.rst).
sys.modules["lola_cli_reference"] = types.ModuleType("lola_cli_reference")
sys.modules["lola_cli_reference"].parser = _cli_parser


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("source-read", _fill_api)
