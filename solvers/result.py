"""What every solver returns, and the errors it may raise."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Status", "SolverResult", "SolverInputError", "SolverFailure", "NO_ASSIGNMENT"]

NO_ASSIGNMENT = "no one-to-one assignment of blocks to devices that can hold them"


class Status(str, enum.Enum):
    """Outcome of a solve. ``OPTIMAL`` only when the method proves optimality."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"

    def __str__(self) -> str:
        return self.value


class SolverInputError(ValueError):
    """The method does not take this instance (too large to enumerate, wrong problem, ...)."""


class SolverFailure(RuntimeError):
    """The method ran but produced no trustworthy answer (e.g. a time limit with no incumbent)."""


@dataclass
class SolverResult:
    """A solver's answer in index form.

    Attributes
    ----------
    status : Status
    assignment : (N,) int array or None
        Device index of each block (depth order); None when infeasible.
    bandwidth_hz : (K,) float array or None
        Bandwidth of every device (zero for devices without a block).
    round_latency_s : float or None
        max over blocks of T_{a(n), n}(b_{a(n)}), recomputed from the assignment.
    lower_bound_s : float or None
        A proven lower bound on the optimum, or None.
    message : str
    extras : dict
        Method-specific data (``history`` of an iterative method, ``uploaders`` of
        ``centralized``, ``iterations``, ...).
    """

    status: Status
    assignment: np.ndarray | None = None
    bandwidth_hz: np.ndarray | None = None
    round_latency_s: float | None = None
    lower_bound_s: float | None = None
    message: str = ""
    extras: dict = field(default_factory=dict)

    @classmethod
    def infeasible(cls, message: str = NO_ASSIGNMENT, **extras) -> "SolverResult":
        return cls(Status.INFEASIBLE, message=message, extras=extras)
