"""Pure allocation algorithms on numpy arrays. This package never imports ``lola``."""
from .model import Instance, pair_latency, rate_bps
from .registry import (METHODS, PROBLEMS, Method, check_capabilities, check_options, get_method,
                       methods_for, run_method)
from .result import SolverFailure, SolverInputError, SolverResult, Status

__all__ = ["Instance", "pair_latency", "rate_bps", "METHODS", "PROBLEMS", "Method", "get_method",
           "methods_for", "run_method", "check_capabilities", "check_options", "SolverFailure", "SolverInputError",
           "SolverResult", "Status"]
