"""Turning an assignment into a :class:`SolverResult` the same way for every method."""
from __future__ import annotations

import numpy as np

from .model import Instance
from .result import SolverResult, Status

__all__ = ["assignment_result", "device_bandwidth"]


def device_bandwidth(instance: Instance, assignment, per_device_hz) -> np.ndarray:
    """Bandwidth of every device: ``per_device_hz`` for devices with a block, zero otherwise."""
    bandwidth = np.zeros(instance.n_devices)
    assignment = np.asarray(assignment, dtype=np.int64)
    bandwidth[assignment] = np.broadcast_to(per_device_hz, (instance.n_devices,))[assignment]
    return bandwidth


def assignment_result(instance: Instance, assignment, bandwidth_hz, status: Status, *,
                      lower_bound_s=None, message="", **extras) -> SolverResult:
    """A result whose round latency is recomputed from the assignment and the bandwidths."""
    assignment = np.asarray(assignment, dtype=np.int64)
    with np.errstate(over="ignore", divide="ignore"):
        latency = float(instance.device_latency(assignment, bandwidth_hz).max())
    if not np.isfinite(latency):  # an allocation that never finishes is no allocation
        return SolverResult.infeasible("no allocation has a finite round latency in floating "
                                       "point (costs or rates out of range)")
    if status is Status.OPTIMAL and lower_bound_s is None:
        lower_bound_s = latency
    return SolverResult(status, assignment, np.asarray(bandwidth_hz, dtype=float), latency,
                        lower_bound_s, message, dict(extras))
