"""LoLa: low-latency device-edge cooperative fine-tuning of foundation models.

>>> import lola
>>> scenario = lola.default_scenario()
>>> result = lola.solve(scenario, problem="matching", method="crunch")
>>> result.to_dict()["status"]
'optimal'
"""
from solvers import SolverFailure, SolverInputError, Status

from .api import (
                  Comparison,
                  Result,
                  compare,
                  default_method,
                  default_scenario,
                  default_scenario_path,
                  solve,
)
from .race.run import race
from .scenario import Scenario, ScenarioError, load_scenario
from .studies import sweep
from .studies.pareto import pareto
from .studies.rounds import simulate

__version__ = "0.1.0"
__all__ = ["Comparison", "Result", "Scenario", "compare", "ScenarioError", "SolverFailure", "SolverInputError", "Status",
           "default_method", "default_scenario", "default_scenario_path", "load_scenario", "solve",
           "pareto", "race", "simulate", "sweep", "__version__"]
