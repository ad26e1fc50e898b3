"""Sphinx configuration of LoLa's documentation site (``make docs``).

Sphinx, because it is what scipy, networkx, scikit-learn and cvxpy (the libraries LoLa is built
on) use for theirs, and numpydoc reads the numpy-style docstrings LoLa's code is written in.
The API reference lists exactly the names in ``lola.__all__`` and ``solvers.__all__``: the page
is filled in from them at build time, so a new public name is documented as soon as it exists,
and a private one never appears. The command-line reference is generated from the ``argparse``
parser that ``lola`` itself runs.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    "myst_parser",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

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


def _link_to_user_guide(app, relative_path, parent_docname, content):
    """The getting-started page includes only README.md's opening sections: its links to the
    README's other sections (``#scenarios``) go to the user guide, which includes all of it."""
    if parent_docname == "getting-started" and relative_path.name == "README.md":
        content[0] = re.sub(r"\]\(#([\w-]+)\)", r"](user-guide.md#\1)", content[0])


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
    app.connect("source-read", _fill_api)
    app.connect("include-read", _link_to_user_guide)
