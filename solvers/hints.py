"""The "did you mean" hint of every message about an unknown name (a key, a method, an option,
a choice), for the solvers and for LoLa (``lola._hints`` re-exports it).

>>> did_you_mean("exactt", ["exact", "crunch"])
" (did you mean 'exact'?)"
>>> did_you_mean("EXACT", ["exact", "crunch"]), did_you_mean("zzz", ["exact"])
(" (did you mean 'exact'?)", '')
"""
from __future__ import annotations

import difflib

__all__ = ["closest", "did_you_mean"]


def closest(value, choices):
    """The choice closest to ``value`` (difflib's ratio >= 0.6, else one equal but for case),
    or None. Values and choices are compared as text."""
    text = str(value)
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    if not close:
        close = [name for name in names if name.lower() == text.lower()]
    return close[0] if close else None


def did_you_mean(value, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    match = closest(value, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""
