"""The "did you mean" hint of LoLa's messages: :mod:`solvers.hints`, the one implementation."""
from __future__ import annotations

from solvers.hints import closest, did_you_mean

__all__ = ["closest", "did_you_mean"]
