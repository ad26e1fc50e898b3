"""Method name -> solver, as data, in preference order (the first that applies is the default).

Each :class:`Method` carries its capabilities as flags: which problems it solves, whether it is
exact, its role, and the optional modules it requires. Which methods are available is derived
from those flags, never listed by hand.

>>> [m.name for m in methods_for("matching")][:2]
['crunch', 'bottleneck']
>>> [m.name for m in methods_for("jbba")][:2]
['exact', 'dual-ascent']
>>> get_method("dual-ascent", "jbba").options
('max_iterations', 'gap_tolerance', 'patience', 'min_theta', 'stall_iterations', 'repair', 'time_limit_s')
>>> get_method("exact", "jbba").takes_time_limit, get_method("crunch", "matching").takes_time_limit
(True, False)
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Callable

from . import exact, jbba, matching, sets
from .scip import solve_scip
from .hints import did_you_mean
from .model import Instance
from .result import SolverInputError, SolverResult

__all__ = ["Method", "METHODS", "PROBLEMS", "methods_for", "get_method", "run_method",
           "check_capabilities", "check_options"]

PROBLEMS = ("matching", "jbba")
BOTH_MODES = ("local", "split")


@dataclass(frozen=True)
class Method:
    """A registered method.

    ``solvers`` maps each problem the method solves to a callable
    ``(instance, **options) -> SolverResult``. ``role`` is one of ``"lola"`` (LoLa's own fast
    methods), ``"exact"`` (exact references), ``"baseline"`` or ``"reference"``. ``energy``
    says that every allocation the method returns keeps each device within its energy budget
    (an exact method then stays exact under the budgets); a method without it is refused an
    instance with budgets. ``several`` maps each problem the method solves with several blocks
    per device (section 8) to its solver for such instances; a method without an entry for a
    problem is refused an instance with some c_k > 1. ``modes`` are the execution modes of
    section 9 the method chooses among exactly (or, for a heuristic, at all), and
    ``several_modes`` those its several-blocks solver handles (split with several blocks per
    device: a device in split mode trains one block, the others may train several).
    """

    name: str
    solvers: dict
    role: str
    exact: bool
    description: str
    requires: tuple = field(default=())
    energy: bool = False
    several: dict = field(default_factory=dict)
    modes: tuple = ("local",)
    several_modes: tuple = ("local",)
    # Imported before a solve is timed (the solvers import them lazily, so that the command
    # line starts fast): a reported solve time never includes a library's import.
    imports: tuple = field(default=("scipy.optimize", "scipy.sparse.csgraph", "scipy.special"))

    @property
    def problems(self) -> tuple:
        return tuple(self.solvers)

    @property
    def several_blocks(self) -> tuple:
        """The problems the method solves with several blocks per device."""
        return tuple(self.several)

    def solver_for(self, problem: str, instance: Instance) -> Callable:
        """The callable that solves ``problem`` on ``instance`` (the several-blocks solver when
        some device may train more than one block)."""
        if instance.several_blocks:
            return self.several[problem]
        return self.solvers[problem]

    @property
    def available(self) -> bool:
        return all(_installed(module) for module in self.requires)

    @property
    def options(self) -> tuple:
        """The keyword options the method takes, read from its solvers' signatures (in order)."""
        names = []
        for solve in (*self.solvers.values(), *self.several.values()):
            names += [name for name in _keyword_options(solve) if name not in names]
        return tuple(names)

    def load(self) -> None:
        """Import the libraries the method uses, so that timing it times the method alone."""
        for module in self.imports + self.requires:
            importlib.import_module(module)

    @property
    def takes_time_limit(self) -> bool:
        return "time_limit_s" in self.options

    @property
    def takes_seed(self) -> bool:
        return "seed" in self.options


_NOT_OPTIONS = {"instance", "bandwidth_hz", "latency"}  # the data a solver is called with


def _keyword_options(solve: Callable) -> list:
    """Parameters with a default (following ``__wrapped__``), less the data it is called with."""
    parameters = inspect.signature(solve, follow_wrapped=True).parameters.values()
    return [p.name for p in parameters
            if p.default is not inspect.Parameter.empty and p.name not in _NOT_OPTIONS
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


@functools.lru_cache(maxsize=None)
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _at_fixed(solve: Callable) -> Callable:
    """P1: the bandwidths are the fixed ones of the instance."""
    @functools.wraps(solve)
    def at_fixed(instance, **options):
        return solve(instance, instance.matching_bandwidth(), **options)
    return at_fixed


def _at_equal_share(solve: Callable) -> Callable:
    """P2 baselines: every involved device gets B / N."""
    @functools.wraps(solve)
    def at_equal_share(instance, **options):
        return solve(instance, instance.equal_bandwidth(), **options)
    return at_equal_share


# In preference order: for each problem the first available exact method is the default (the
# fastest one that proves optimality), so the order below is part of the behaviour.
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


register(Method("crunch", {"matching": _at_fixed(matching.solve_crunch)}, "lola", True,
                "CRUNCH: exact threshold matching exploiting monotone depth costs", imports=(),
                energy=True, several={"matching": _at_fixed(sets.solve_sets_p1)},
                several_modes=BOTH_MODES, modes=BOTH_MODES))
register(Method("bottleneck", {"matching": _at_fixed(matching.solve_bottleneck)}, "exact", True,
                "general bottleneck assignment (threshold bisection + Hopcroft-Karp)",
                energy=True, modes=BOTH_MODES))
register(Method("exact", {"jbba": exact.solve_exact}, "exact", True,
                "exact JBBA: bisection on latency, min-total-bandwidth Hungarian test",
                energy=True, several={"jbba": sets.solve_sets_p2}, several_modes=BOTH_MODES, modes=BOTH_MODES))
register(Method("dual-ascent", {"jbba": jbba.solve_dual_ascent}, "lola", False,
                "LoLa's Lagrangian dual ascent: Hungarian block step, closed-form bandwidth step",
                energy=True, modes=BOTH_MODES))
register(Method("milp", {"matching": _at_fixed(matching.solve_milp),
                         "jbba": exact.solve_milp_jbba}, "exact", True,
                "MILP through cvxpy and HiGHS (JBBA: bisection of MILP feasibility tests)",
                requires=("cvxpy", "highspy"), energy=True,
                several={"matching": _at_fixed(sets.solve_milp_sets),
                         "jbba": sets.solve_milp_sets}, modes=BOTH_MODES))
register(Method("scip", {"jbba": solve_scip}, "exact", True,
                "second opinion: P2 as one MISOCP in SCIP (fixed rate model)",
                requires=("pyscipopt",), energy=True))
register(Method("brute", {"matching": _at_fixed(matching.solve_brute),
                          "jbba": exact.solve_brute_jbba}, "exact", True,
                "enumeration of all assignments (tiny instances only)", energy=True,
                several={"matching": _at_fixed(sets.solve_brute_sets),
                         "jbba": sets.solve_brute_sets}, several_modes=BOTH_MODES, modes=BOTH_MODES))
register(Method("packing", {"matching": _at_fixed(sets.solve_packing),
                            "jbba": sets.solve_packing}, "lola", False,
                "packing by depth: contiguous runs from the deepest block, with a proven lower "
                "bound (fast; for several blocks per device)", energy=True,
                several={"matching": _at_fixed(sets.solve_packing), "jbba": sets.solve_packing}))
register(Method("random", {"matching": _at_fixed(matching.solve_random),
                           "jbba": _at_equal_share(matching.solve_random)}, "baseline", False,
                "random feasible matching, equal bandwidth", energy=True, modes=BOTH_MODES))
register(Method("greedy", {"matching": _at_fixed(matching.solve_greedy),
                           "jbba": _at_equal_share(matching.solve_greedy)}, "baseline", False,
                "depth-aware greedy matching (deepest block first), equal bandwidth",
                energy=True, several={"matching": _at_fixed(sets.solve_greedy_sets),
                                      "jbba": _at_equal_share(sets.solve_greedy_sets)}, modes=BOTH_MODES))
register(Method("min-sum", {"matching": _at_fixed(matching.solve_min_sum),
                            "jbba": _at_equal_share(matching.solve_min_sum)}, "baseline", False,
                "Hungarian min-total-latency matching, equal bandwidth", energy=True, modes=BOTH_MODES))
register(Method("centralized", {"matching": matching.solve_centralized,
                                "jbba": matching.solve_centralized}, "reference", False,
                "reference, not DEFT: devices upload mini-batches, the server trains",
                energy=True, several={"matching": matching.solve_centralized,
                                      "jbba": matching.solve_centralized}, modes=BOTH_MODES))


def methods_for(problem: str, *, available_only: bool = True) -> list[Method]:
    """The registered methods that solve ``problem``, in preference order."""
    return [m for m in METHODS.values()
            if problem in m.solvers and (m.available or not available_only)]


def get_method(name: str, problem: str) -> Method:
    """Look a method up, raising :class:`SolverInputError` with the alternatives if it is wrong."""
    if problem not in PROBLEMS:
        raise SolverInputError(f"unknown problem {problem!r}{did_you_mean(problem, PROBLEMS)}; "
                               f"choose one of {', '.join(PROBLEMS)}")
    method = METHODS.get(name)
    if method is not None and problem in method.solvers and method.available:
        return method
    names = ", ".join(m.name for m in methods_for(problem, available_only=False))
    if method is None:
        raise SolverInputError(f"unknown method {name!r}{did_you_mean(name, METHODS)}; "
                               f"methods for {problem}: {names}")
    if problem not in method.solvers:
        raise SolverInputError(f"method {name!r} does not solve {problem}; methods that do: {names}")
    if not method.available:
        raise SolverInputError(f"method {name!r} needs {', '.join(method.requires)}, which is not "
                               "installed")
    return method


def check_capabilities(method: Method, problem: str, instance: Instance) -> None:
    """Refuse an instance that needs a capability ``method`` does not declare, naming the
    methods for ``problem`` that have it (read from their flags)."""
    if instance.has_energy_budgets and not method.energy:
        names = ", ".join(m.name for m in methods_for(problem, available_only=False) if m.energy)
        raise SolverInputError(
            f"method {method.name!r} does not keep per-device energy budgets "
            f"(energy_budget_j); methods for {problem} that do: {names}")
    split = "split" in instance.modes and (instance.has_split or "local" not in instance.modes)
    if split and "split" not in method.modes:
        names = ", ".join(m.name for m in methods_for(problem, available_only=False)
                          if "split" in m.modes)
        raise SolverInputError(
            f"method {method.name!r} runs every device locally; split mode is allowed here "
            f"(modes {','.join(instance.modes)}); methods for {problem} that choose modes: "
            f"{names}")
    if split and instance.several_blocks and "split" not in method.several_modes:
        names = ", ".join(m.name for m in methods_for(problem, available_only=False)
                          if problem in m.several and "split" in m.several_modes)
        raise SolverInputError(
            f"method {method.name!r} does not combine split mode with several blocks per "
            f"device (max_blocks > 1); methods for {problem} that do: {names}; or use modes "
            "local with max_blocks, or split mode with max_blocks 1")
    if instance.several_blocks and problem not in method.several:
        names = ", ".join(m.name for m in methods_for(problem, available_only=False)
                          if problem in m.several)
        raise SolverInputError(
            f"method {method.name!r} trains one block per device; this instance lets some "
            f"device train several (max_blocks > 1); methods for {problem} that handle it: "
            f"{names}")


def check_options(method: Method, options) -> None:
    """Refuse an option ``method`` does not take (its solvers would ignore it silently), naming
    the options it takes."""
    accepted = method.options
    for name in options:
        if name not in accepted:
            takes = (f"its options are {', '.join(accepted)}" if accepted
                     else "it takes no options")
            raise SolverInputError(f"method {method.name!r} has no option {name!r}"
                                   f"{did_you_mean(name, accepted)}; {takes}")


def run_method(name: str, problem: str, instance: Instance, **options) -> SolverResult:
    """Solve ``problem`` on ``instance`` with the method ``name`` and its keyword ``options``
    (:attr:`Method.options`; any other raises :class:`SolverInputError`)."""
    method = get_method(name, problem)
    check_options(method, options)
    check_capabilities(method, problem, instance)
    return method.solver_for(problem, instance)(instance, **options)
