"""``argparse`` types shared by every ``lola`` command, so that one option is checked one way.

Each raises ``argparse.ArgumentTypeError`` with a message that argparse prefixes with the
option's name (``argument --seed: must be a non-negative integer, got '-1'``).
"""
from __future__ import annotations

import argparse

__all__ = ["seed"]


def seed(text: str) -> int:
    """The type of every ``--seed``: an integer >= 0 (numpy's generators take no other)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value
