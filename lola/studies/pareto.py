"""Which layers to fine-tune, at what rank: the exact Pareto front of fine-tuning configurations.

A *configuration* says which layers of the model carry LoRA adapters, at which rank and on which
projections. Each configuration is its own DEFT scenario (specification, section 13): one block
per adapted layer, on the same devices, channel and server. :func:`pareto` evaluates a grid of
configurations (by default the top L layers for every L, times the ranks 1, 2, 4, 8, 16, 32),
each with

* its exact optimal round latency on the scenario's devices (P2 ``jbba`` by default, solved by an
  exact method; a configuration with no feasible allocation gets ``round_latency_s`` null),
* its trainable parameters, sum_n D_n,
* its peak device memory, max_n m_n (the deepest block's step),
* optionally its quality, measured (a CSV of ``layers, rank, quality``) or, for configurations
  without a measurement, predicted by a least-squares surrogate,

and marks the exact non-dominated set (the Pareto front) in the chosen objectives, a knee point,
an epsilon-constraint choice, and the picks of a grid-representative approximation for
comparison.

Block costs of a configuration
------------------------------
Only the adapted layers are blocks; the block of the layer at depth d (1 nearest the output)
costs one step that back-propagates from the loss down to depth d, as in the bundled profiles,
whose profiler switches the other layers' adapters off (equivalently: a device merges the frozen
adapters of the other layers into their frozen weights for the step). With batch b, sequence
length s, hidden size h, rank r and target projections T (a subset of query, key, value):

* FLOPs: the exact count of :mod:`lola.profiles.analytic` (equal to the profiler's
  ``FlopCounterMode`` count) at rank r for T = {query, value}, plus, for another T, the change
  of the adapted layer's own step: 4 b s h r (|T| - 2) forward, 6 b s h r (|T| - 2) backward and
  2 b s^2 h ([q or k] + [v] + [q] + [k] - 3) for the attention gradients dP, dV, dQ, dK that T
  needs (eager attention; a matrix product of n multiply-adds counts 2n). Equal to the
  profiler's count for the target sets q, v, k, qv, qk, kv and qkv on a small RoBERTa;
* parameters: D = 2 h r |T| (each adapted h x h projection carries A (r x h) and B (h x r));
* memory: the **measured** peak of the profile's block at depth d (measured at the profile's
  rank r0 and targets T0) plus an **analytic adjustment** for the adapter:
  m(d, r, T) = m_measured(d) + 3 e (D(r, T) - D(r0, T0)) + e b s (r |T| - r0 |T0|),
  where e is the bytes per element of the profile's dtype: the adapter's weights and two AdamW
  moments (3 e D), alive throughout the step, and the rank-r activation A x of each adapted
  projection, kept for B's weight gradient (e b s r per projection). The adapter's gradients do
  not count: the peak comes while back-propagation has not yet reached the adapter, when the
  saved activations of the traversed layers are all alive. (Profiled on roberta-base at ranks
  1 and 32, all 12 layers: the measured peaks equal this model to the byte at every depth.)
  Other differences of a target set other than the profile's
  (tensors that only a key adapter makes autograd keep, say) are not modelled; the result's
  ``profile_note`` says which parts are measured and which are adjusted.

Objectives and the front
------------------------
``round_latency_s`` and ``peak_memory_bytes`` are minimised, ``trainable_params`` and
``quality`` maximised. Point p dominates q when p is at least as good as q in every objective and
strictly better in one; equal points do not dominate each other. ``on_front`` marks exactly the
feasible points that no feasible point dominates; an infeasible configuration is never on it.

The knee is the front point farthest, on the ideal side, from the line (in three objectives the
plane) through the front's extreme points, every objective scaled to [0, 1] over the front (the
normal-boundary knee of I. Das, "On characterizing the 'knee' of the Pareto curve based on
normal-boundary intersection", Structural Optimization 18, 1999). In two objectives that line is
z1 + z2 = 1, so the knee minimises the sum of the scaled objectives. Ties go to the earlier point.

Without bounds the chosen point is the knee. Bounds (``max_params``, ``max_latency_s``,
``min_quality``, ``max_memory_bytes``) first keep the feasible points within every bound. An
*epsilon bound* keeps an objective at least as good as a level (``max_latency_s`` on the latency,
``max_memory_bytes`` on the memory, ``min_quality`` on the quality, when they are objectives);
``max_params`` is a budget on a maximised objective, and a bound on a quantity that is no
objective is a filter. When exactly one objective has no epsilon bound (or ``primary`` names
one), the chosen point is the epsilon-constraint optimum: the kept point best in that objective,
ties broken by the other objectives in their order (e.g. the most trainable parameters within a
latency budget). Otherwise it is the knee of the kept points' own front.

Quality surrogate
-----------------
quality ~ a + b ln(trainable_params) + c L, by least squares (``numpy.linalg.lstsq``) over the
measured configurations (repeated rows of one configuration are averaged); it fills every
configuration without a measurement (``quality_source`` ``"surrogate"``) and its leave-one-out
RMSE is reported (null with fewer than four measured configurations).

Grid representatives (comparison)
---------------------------------
A grid decomposition, as ACME approximates its front: every objective is scaled to [0, 1] over
the feasible points and cut into ``acme_cells`` equal intervals; each occupied cell keeps one
representative, its point nearest to the cell's ideal corner. The result reports the picks, how
many of them the exact front dominates, and how many front points no pick stands for.

Examples
--------
>>> import lola
>>> from lola.studies.pareto import pareto, configure
>>> result = pareto(lola.default_scenario(), layers=[1, 2, 3], ranks=(4, 8))
>>> [(p["layers"], p["rank"]) for p in result.points][:3]
[([11], 4), ([11], 8), ([11, 10], 4)]
>>> all(p["round_latency_s"] is not None for p in result.points)
True
>>> configure(lola.default_scenario(), layers=2, rank=4).blocks[1].name
'layer.10'
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["pareto", "configure", "ParetoResult", "non_dominated", "knee_index",
           "grid_representatives", "plot_pareto", "format_pareto", "add_arguments",
           "run_command",
           "OBJECTIVES", "DEFAULT_RANKS", "TARGET_MODULES"]

#: Objective name -> +1 when minimised, -1 when maximised.
OBJECTIVES = {"round_latency_s": 1, "trainable_params": -1, "peak_memory_bytes": 1,
              "quality": -1}
_ALIASES = {"latency": "round_latency_s", "params": "trainable_params",
            "memory": "peak_memory_bytes"}
_LABELS = {"round_latency_s": "round latency (s)", "trainable_params": "trainable parameters",
           "peak_memory_bytes": "peak device memory (GB)", "quality": "quality"}
_SCALE = {"peak_memory_bytes": 1e-9}
DEFAULT_RANKS = (1, 2, 4, 8, 16, 32)
#: Projections whose adapters the cost model counts (the attention projections of RoBERTa).
TARGET_MODULES = ("query", "key", "value")
_ELEMENT_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
_CONFIG_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                "batch_size", "sequence_length", "rank", "target_modules")
_BOUNDS = {"max_params": ("trainable_params", "<="), "max_latency_s": ("round_latency_s", "<="),
           "min_quality": ("quality", ">="), "max_memory_bytes": ("peak_memory_bytes", "<=")}
DEFAULT_ACME_CELLS = 5
# The grid representatives are no registered method: one fixed colour, apart from the front's.
_ACME_COLOUR = "#d62728"


# ---------------------------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class _Model:
    """What the cost model needs of the scenario's profile."""

    name: str
    config: dict
    depth_memory_bytes: tuple  # measured peak per depth, depth 1 first
    depth_names: tuple
    anchor_rank: int
    anchor_targets: tuple
    element_bytes: int
    measured: bool


def _profile_of(scenario) -> _Model:
    from ..profiles import load_profile

    if scenario.model.profile is None:
        raise ValueError(f"scenario {scenario.name!r} gives its blocks inline, without a "
                         "profile; configurations are counted from a profile's model "
                         "(model.profile: roberta-base, roberta-large or a profile file)")
    base_dir = None
    if scenario.source and not scenario.source.startswith("<"):
        base_dir = Path(scenario.source).resolve().parent
    profile = load_profile(scenario.model.profile, base_dir=base_dir)
    config = dict(profile.info.get("config") or {})
    missing = [key for key in _CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(f"profile {scenario.model.profile!r}: config lacks "
                         f"{', '.join(missing)}, which the configuration cost model needs")
    if config.get("peft", "lora") != "lora":
        raise ValueError(f"profile {scenario.model.profile!r}: config.peft is "
                         f"{config['peft']!r}; configurations are modelled for LoRA only")
    dtype = str(config.get("dtype", "float32"))
    if dtype not in _ELEMENT_BYTES:
        raise ValueError(f"profile {scenario.model.profile!r}: config.dtype {dtype!r} is not "
                         f"one of {', '.join(_ELEMENT_BYTES)}")
    if len(profile.blocks) != config["num_hidden_layers"]:
        raise ValueError(f"profile {scenario.model.profile!r} has {len(profile.blocks)} blocks "
                         f"but config.num_hidden_layers is {config['num_hidden_layers']}; "
                         "configurations need one block per layer")
    method = (profile.info.get("measurement") or {}).get("method")
    return _Model(str(profile.info.get("model", scenario.model.profile)), config,
                  tuple(b.memory_bytes for b in profile.blocks),
                  tuple(b.name for b in profile.blocks), int(config["rank"]),
                  _check_targets(config["target_modules"], "profile config.target_modules"),
                  _ELEMENT_BYTES[dtype], method == "measured")


def _check_targets(targets, what="target_modules") -> tuple:
    if isinstance(targets, str):
        targets = [name.strip() for name in targets.split(",")]
    targets = tuple(targets or ())
    if not targets:
        raise ValueError(f"{what}: give at least one of {', '.join(TARGET_MODULES)}")
    unknown = [name for name in targets if name not in TARGET_MODULES]
    if unknown:
        raise ValueError(f"{what}: {unknown[0]!r} is not modelled; choose among "
                         f"{', '.join(TARGET_MODULES)}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"{what}: {', '.join(targets)} names a projection twice")
    return tuple(name for name in TARGET_MODULES if name in targets)


def _check_rank(rank, what="rank") -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"{what} must be a positive integer, got {rank!r}")
    return int(rank)


def _adapter_params(config: dict, rank: int, targets) -> int:
    """D = 2 h r |T|: A (r x h) and B (h x r) on each adapted h x h projection."""
    return 2 * config["hidden_size"] * rank * len(targets)


def _block_flops(model: _Model, rank: int, targets) -> list:
    """FLOPs per depth (depth 1 first) of one step at ``rank`` on ``targets``."""
    from ..profiles.analytic import analytic_profile

    config = model.config
    tuning = {key: config[key] for key in ("batch_size", "sequence_length")}
    tuning.update(rank=rank, num_labels=config.get("num_labels", 2))
    shape = {key: config[key] for key in ("hidden_size", "intermediate_size",
                                         "num_attention_heads", "num_hidden_layers")}
    counted = analytic_profile(model.name, config=shape, fine_tuning=tuning)["blocks"]
    b, s, h = config["batch_size"], config["sequence_length"], config["hidden_size"]
    q, k, v = ("query" in targets), ("key" in targets), ("value" in targets)
    # analytic_profile counts T = {query, value}: 2 adapters, attention gradients dP, dV, dQ
    extra = (10 * b * s * h * rank * (len(targets) - 2)
             + 2 * b * s * s * h * (int(q or k) + int(v) + int(q) + int(k) - 3))
    return [float(block["flops"] + extra) for block in counted]


def _block_memory(model: _Model, rank: int, targets) -> list:
    """Measured peak at the anchor configuration plus the analytic adapter adjustment."""
    config, e = model.config, model.element_bytes
    b, s = config["batch_size"], config["sequence_length"]
    delta = (3 * e * (_adapter_params(config, rank, targets)
                      - _adapter_params(config, model.anchor_rank, model.anchor_targets))
             + e * b * s * (rank * len(targets) - model.anchor_rank * len(model.anchor_targets)))
    return [float(memory + delta) for memory in model.depth_memory_bytes]


def _layer_indices(layers, n_layers: int) -> list:
    """Layer indices (0-based, as in ``layer.11``), deepest last; ``layers`` is L or indices."""
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        if not 1 <= layers <= n_layers:
            raise ValueError(f"layers must be between 1 and {n_layers} (the model's layers), "
                             f"got {layers}")
        return list(range(n_layers - 1, n_layers - 1 - int(layers), -1))
    try:
        indices = [int(index) for index in layers]
    except (TypeError, ValueError):
        raise ValueError(f"layers must be a number of top layers or a list of layer indices, "
                         f"got {layers!r}") from None
    if not indices:
        raise ValueError("layers: give at least one layer")
    bad = [index for index in indices if not 0 <= index < n_layers]
    if bad:
        raise ValueError(f"layers: layer {bad[0]} does not exist; the model has layers "
                         f"0..{n_layers - 1}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"layers: {indices} names a layer twice")
    return sorted(indices, reverse=True)


def _device_document(device) -> dict:
    return {key: value for key, value in vars(device).items() if value is not None}


def _configured(scenario, model: _Model, indices, rank, targets, flops, memory):
    from ..scenario import load_scenario

    n_layers = len(model.depth_names)
    params = _adapter_params(model.config, rank, targets)
    blocks = []
    for index in indices:
        depth = n_layers - index
        blocks.append({"name": model.depth_names[depth - 1], "flops": flops[depth - 1],
                       "memory_bytes": memory[depth - 1], "params": params})
    document_model = {"blocks": blocks, "bits_per_param": scenario.model.bits_per_param}
    if scenario.model.batch_bytes is not None:
        document_model["batch_bytes"] = scenario.model.batch_bytes
    channel = scenario.channel
    document = {
        "name": f"{scenario.name} [{_describe(indices, rank, targets, model)}]",
        "model": document_model,
        "devices": [_device_document(device) for device in scenario.devices],
        "channel": {"total_bandwidth_hz": channel.total_bandwidth_hz,
                    "rate_model": channel.rate_model,
                    "noise_psd_w_per_hz": channel.noise_psd_w_per_hz},
    }
    if scenario.server is not None:
        document["server"] = {"flops_per_s": scenario.server.flops_per_s}
    return load_scenario(document)


def _describe(indices, rank, targets, model: _Model) -> str:
    n_layers = len(model.depth_names)
    top = list(range(n_layers - 1, n_layers - 1 - len(indices), -1))
    where = f"top {len(indices)}" if list(indices) == top else \
        "layers " + ",".join(map(str, indices))
    text = f"{where}, rank {rank}"
    if tuple(targets) != model.anchor_targets:
        text += ", " + "+".join(targets)
    return text


def configure(scenario=None, layers=None, rank: int = 8, target_modules=None):
    """The scenario of one configuration: adapters on ``layers`` at ``rank``.

    Parameters
    ----------
    scenario : Scenario, path or mapping, optional
        A scenario whose model is a profile (bundled or a file); the default scenario if None.
    layers : int or list of int, optional
        L, the top L layers, or the layer indices themselves (``[11, 10]``); all layers if None.
    rank : int
        The LoRA rank r.
    target_modules : list of str, optional
        The adapted projections, among query, key and value; the profile's by default.

    Returns
    -------
    Scenario
        Inline blocks (deepest last) with the FLOPs, parameters and memory of the module
        docstring; devices, channel and server as in ``scenario``; named after the
        configuration.

    >>> import lola
    >>> configured = configure(lola.default_scenario(), layers=[11, 10], rank=4)
    >>> [b.name for b in configured.blocks], configured.blocks[0].params
    (['layer.11', 'layer.10'], 12288.0)
    """
    from ..api import default_scenario
    from ..scenario import load_scenario

    scenario = default_scenario() if scenario is None else load_scenario(scenario)
    model = _profile_of(scenario)
    rank = _check_rank(rank)
    targets = model.anchor_targets if target_modules is None else _check_targets(target_modules)
    indices = _layer_indices(len(model.depth_names) if layers is None else layers,
                             len(model.depth_names))
    return _configured(scenario, model, indices, rank, targets,
                       _block_flops(model, rank, targets), _block_memory(model, rank, targets))


# ---------------------------------------------------------------------------------------------
# The front, the knee, the grid representatives (pure functions on arrays)


def non_dominated(values, valid=None) -> np.ndarray:
    """Mask of the rows of ``values`` (n x m, every column minimised) that no valid row dominates.

    Row j dominates row i when ``values[j] <= values[i]`` everywhere and ``<`` somewhere; equal
    rows do not dominate each other. Rows where ``valid`` is False are neither on the front nor
    dominate anything.

    >>> non_dominated([[1, 2], [2, 1], [2, 2], [1, 2]]).tolist()
    [True, True, False, True]
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    front = valid.copy()
    candidates = values[valid]
    for i in np.flatnonzero(valid):
        no_worse = np.all(candidates <= values[i], axis=1)
        better = np.any(candidates < values[i], axis=1)
        if np.any(no_worse & better):
            front[i] = False
    return front


def _scaled(values) -> np.ndarray:
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (values - low) / span


def knee_index(values) -> int:
    """Index of the knee among front points ``values`` (n x m, minimised): the point farthest,
    on the ideal side, from the hyperplane through the extreme points (scaled to [0, 1]).

    >>> knee_index([[0, 10], [1, 3], [3, 1], [10, 0]])
    1
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return 0
    scaled = _scaled(values)
    m = values.shape[1]
    # extreme j: best in objective j, ties by the sum of the others
    extremes = np.array([scaled[np.lexsort((scaled.sum(axis=1), scaled[:, j]))[0]]
                         for j in range(m)])
    normal = np.ones(m)
    if np.linalg.matrix_rank(extremes) == m:
        solved = np.linalg.solve(extremes, np.ones(m))
        if np.all(np.isfinite(solved)) and np.any(solved != 0):
            normal = solved
    distance = (1 - scaled @ normal) / np.linalg.norm(normal)
    return int(np.argmax(np.round(distance, 12)))


def grid_representatives(values, valid=None, cells: int = DEFAULT_ACME_CELLS) -> list:
    """One representative per occupied grid cell (indices, ascending).

    Every column (minimised) is scaled to [0, 1] over the valid rows and cut into ``cells``
    intervals; a cell's representative is its row nearest (Euclidean, scaled) to the cell's
    ideal corner, ties to the lower index.

    >>> grid_representatives([[0, 1], [0.1, 0.9], [1, 0]], cells=2)  # 0 and 1 share a cell
    [1, 2]
    """
    values = np.asarray(values, dtype=float)
    valid = np.ones(len(values), bool) if valid is None else np.asarray(valid, bool)
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise ValueError(f"acme_cells must be a positive integer, got {cells!r}")
    rows = np.flatnonzero(valid)
    if not len(rows):
        return []
    scaled = _scaled(values[rows])
    cell = np.minimum(np.floor(scaled * cells), cells - 1)
    distance = np.linalg.norm(scaled - cell / cells, axis=1)
    best = {}
    for position, row in enumerate(rows):
        key = tuple(cell[position].astype(int))
        if key not in best or distance[position] < distance[best[key]] - 1e-12:
            best[key] = position
    return sorted(int(rows[position]) for position in best.values())


# ---------------------------------------------------------------------------------------------
# Quality: measured and surrogate


def _read_quality(quality, n_layers: int) -> dict:
    """{(L, rank): [quality, ...]} from a CSV path or a list of row mappings."""
    if isinstance(quality, (str, Path)):
        where = f"quality CSV {quality}"
        try:
            with open(quality, newline="") as handle:
                reader = csv.DictReader(handle)
                columns = [name.strip() for name in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
        except OSError as err:
            raise ValueError(f"{where}: cannot read it ({err.strerror or err})") from None
    else:
        where = "quality"
        rows = [dict(row) for row in quality]
        columns = sorted({key for row in rows for key in row})
    for column in ("layers", "rank", "quality"):
        if column not in columns:
            raise ValueError(f"{where}: missing column {column!r} (columns: "
                             f"{', '.join(columns) or 'none'}); give layers, rank, quality")
    measured = {}
    for number, row in enumerate(rows, start=2 if where != "quality" else 1):
        here = f"{where}, row {number}"
        try:
            layers, rank = int(str(row["layers"]).strip()), int(str(row["rank"]).strip())
            value = float(str(row["quality"]).strip())
        except (TypeError, ValueError):
            raise ValueError(f"{here}: layers and rank must be integers and quality a number, "
                             f"got {row['layers']!r}, {row['rank']!r}, {row['quality']!r}"
                             ) from None
        if not 1 <= layers <= n_layers:
            raise ValueError(f"{here}: layers {layers} is not between 1 and {n_layers}")
        if rank < 1:
            raise ValueError(f"{here}: rank must be a positive integer, got {rank}")
        if not math.isfinite(value):
            raise ValueError(f"{here}: quality must be finite, got {row['quality']!r}")
        measured.setdefault((layers, rank), []).append(value)
    if not measured:
        raise ValueError(f"{where}: no rows")
    return measured


def _features(layers, params) -> np.ndarray:
    layers, params = np.asarray(layers, float), np.asarray(params, float)
    return np.column_stack([np.ones_like(layers), np.log(params), layers])


def _fit_surrogate(measured: dict, params_of) -> dict:
    keys = sorted(measured)
    layers = [key[0] for key in keys]
    params = [params_of(*key) for key in keys]
    target = np.array([float(np.mean(measured[key])) for key in keys])
    design = _features(layers, params)
    fit = {"model": "quality ~ a + b ln(trainable_params) + c layers (least squares)",
           "measured_configurations": len(keys), "coefficients": None, "loo_rmse": None}
    if len(keys) < 3 or np.linalg.matrix_rank(design) < 3:
        return fit
    coefficients = np.linalg.lstsq(design, target, rcond=None)[0]
    fit["coefficients"] = dict(zip(("a", "b", "c"), map(float, coefficients)))
    if len(keys) >= 4:
        errors = []
        for left_out in range(len(keys)):
            keep = np.arange(len(keys)) != left_out
            if np.linalg.matrix_rank(design[keep]) < 3:
                errors = None
                break
            beta = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
            errors.append(float(design[left_out] @ beta - target[left_out]))
        if errors is not None:
            fit["loo_rmse"] = float(np.sqrt(np.mean(np.square(errors))))
    return fit


# ---------------------------------------------------------------------------------------------
# The study


@dataclass
class ParetoResult:
    """Every configuration with its objectives, the front, the knee, the chosen point.

    :meth:`to_dict` is the JSON of specification section 13 plus these extras:
    ``scenario``, ``problem``, ``method``, ``target_modules``, ``directions`` (objective ->
    "min"/"max"), ``constraints``, ``primary``, ``chosen`` and ``knee`` (the point with its
    ``index`` in ``points``, null when there is none; ``chosen`` also has ``rule``),
    ``surrogate`` (null without quality), ``acme`` (cells per axis, picks, how many are
    dominated, front points missed), ``profile_note``, ``message`` and ``solve_time_s``. Each
    point also has ``configuration``, ``status`` (of its solve), ``quality_source``
    ("measured", "surrogate" or null) and ``acme_pick``.
    """

    scenario: str
    problem: str
    method: str
    objectives: list
    points: list
    target_modules: list
    constraints: dict = field(default_factory=dict)
    primary: str | None = None
    chosen: int | None = None
    chosen_rule: str = ""
    knee: int | None = None
    surrogate: dict | None = None
    acme: dict = field(default_factory=dict)
    profile_note: str = ""
    message: str = ""
    solve_time_s: float = 0.0

    @property
    def front(self) -> list:
        """The points on the front, in point order."""
        return [point for point in self.points if point["on_front"]]

    def _point(self, index, **extra):
        return None if index is None else {"index": index, **extra, **self.points[index]}

    def to_dict(self) -> dict:
        return {
            "points": [dict(point) for point in self.points],
            "objectives": list(self.objectives),
            "directions": {name: "min" if OBJECTIVES[name] > 0 else "max"
                           for name in self.objectives},
            "scenario": self.scenario, "problem": self.problem, "method": self.method,
            "target_modules": list(self.target_modules),
            "constraints": dict(self.constraints), "primary": self.primary,
            "chosen": self._point(self.chosen, rule=self.chosen_rule),
            "knee": self._point(self.knee),
            "surrogate": None if self.surrogate is None else dict(self.surrogate),
            "acme": dict(self.acme),
            "profile_note": self.profile_note, "message": self.message,
            "solve_time_s": self.solve_time_s,
        }


def _solve_task(task):
    """One configuration's solve; module-level so that an executor can pickle it."""
    from ..api import solve

    scenario, problem, method = task
    result = solve(scenario, problem=problem, method=method)
    return result.status, result.round_latency_s, result.message


def _check_objectives(objectives, has_quality: bool) -> list:
    if objectives is None:
        names = ["round_latency_s", "trainable_params"] + (["quality"] if has_quality else [])
        return names
    if isinstance(objectives, str):
        objectives = [name.strip() for name in objectives.split(",") if name.strip()]
    names = []
    for name in objectives:
        full = _ALIASES.get(name, name)
        if full not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; choose among "
                             f"{', '.join(OBJECTIVES)}")
        if full in names:
            raise ValueError(f"objective {full!r} given twice")
        names.append(full)
    if not 2 <= len(names) <= len(OBJECTIVES):
        raise ValueError(f"give two to four objectives, got {len(names)}: {', '.join(names)}")
    if "quality" in names and not has_quality:
        raise ValueError("objective 'quality' needs measured quality: give a CSV with columns "
                         "layers, rank, quality")
    return names


def _check_method(problem, method) -> str:
    import solvers

    from ..api import check_problem, default_method

    check_problem(problem)
    method = method or default_method(problem)
    spec = solvers.get_method(method, problem)
    if not spec.exact:
        exact = [m.name for m in solvers.methods_for(problem) if m.exact]
        raise ValueError(f"method {method!r} does not prove optimality; the front needs an "
                         f"exact method for {problem}: {', '.join(exact)}")
    return method


def _check_bound(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if name != "min_quality" and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def _oriented(points, objectives) -> tuple:
    """(values n x m, every column minimised; valid mask: feasible with every objective)."""
    values = np.full((len(points), len(objectives)), np.nan)
    for i, point in enumerate(points):
        for j, name in enumerate(objectives):
            value = point[name]
            if value is not None:
                values[i, j] = OBJECTIVES[name] * float(value)
    valid = np.array([point["round_latency_s"] is not None for point in points], bool)
    valid &= ~np.isnan(values).any(axis=1)
    return values, valid


def pareto(scenario=None, *, layers=None, ranks=DEFAULT_RANKS, problem: str = "jbba",
           method: str | None = None, quality_csv=None, max_params=None, max_latency_s=None,
           min_quality=None, max_memory_bytes=None, objectives=None, primary=None,
           target_modules=None, acme_cells: int = DEFAULT_ACME_CELLS,
           executor=None) -> ParetoResult:
    """Evaluate every configuration (top L layers x rank) and mark the exact Pareto front.

    Parameters
    ----------
    scenario : Scenario, path or mapping, optional
        Its model must be a profile; the bundled default scenario if None.
    layers : iterable of int, optional
        The numbers L of top layers to try; 1..(number of layers) if None.
    ranks : iterable of int
        The LoRA ranks to try.
    problem, method : str
        The allocation problem (``jbba`` or ``matching``) and an exact method for it (the
        default method of :func:`lola.default_method` if None); a method that does not prove
        optimality is refused.
    quality_csv : path or list of mappings, optional
        Measured quality per configuration: columns ``layers`` (L), ``rank``, ``quality``
        (higher is better); other columns are ignored, repeated configurations averaged. The
        rows are taken to be measured with ``target_modules``; they feed the surrogate even
        when their configuration is not in the grid.
    max_params, max_latency_s, min_quality, max_memory_bytes : float, optional
        Bounds on the chosen point (module docstring: epsilon bounds, budget, filter).
    objectives : list of str, optional
        Two to four of ``round_latency_s``, ``trainable_params``, ``peak_memory_bytes``,
        ``quality`` (or ``latency``, ``params``, ``memory``); by default latency and
        parameters, plus quality when it is given.
    primary : str, optional
        The objective the chosen point optimises among the points within the bounds (default:
        the one objective without an epsilon bound, if there is exactly one).
    target_modules : list of str, optional
        The adapted projections (query, key, value); the profile's by default.
    acme_cells : int
        Cells per objective axis of the grid-representative comparison.
    executor : concurrent.futures.Executor, optional
        Runs the solves (:func:`lola.studies.runner.run_tasks`); the result does not depend
        on it.

    Raises
    ------
    ValueError
        Bad input, with a one-line message naming it.
    """
    from ..api import default_scenario
    from ..scenario import load_scenario
    from .runner import run_tasks

    method = _check_method(problem, method)
    if isinstance(acme_cells, bool) or not isinstance(acme_cells, (int, np.integer)) \
            or acme_cells < 1:
        raise ValueError(f"acme_cells must be a positive integer, got {acme_cells!r}")
    scenario = default_scenario() if scenario is None else load_scenario(scenario)
    model = _profile_of(scenario)
    n_layers = len(model.depth_names)
    targets = model.anchor_targets if target_modules is None else _check_targets(target_modules)
    if layers is None:
        layer_counts = list(range(1, n_layers + 1))
    else:
        layer_counts = sorted({_check_layer_count(count, n_layers) for count in
                               ([layers] if isinstance(layers, int) else layers)})
        if not layer_counts:
            raise ValueError("layers: give at least one number of top layers")
    rank_list = sorted({_check_rank(rank) for rank in
                        ([ranks] if isinstance(ranks, int) else ranks)})
    if not rank_list:
        raise ValueError("ranks: give at least one rank")
    bounds = {name: _check_bound(name, value) for name, value in
              (("max_params", max_params), ("max_latency_s", max_latency_s),
               ("min_quality", min_quality), ("max_memory_bytes", max_memory_bytes))}
    bounds = {name: value for name, value in bounds.items() if value is not None}
    measured = None if quality_csv is None else _read_quality(quality_csv, n_layers)
    if "min_quality" in bounds and measured is None:
        raise ValueError("min_quality needs measured quality: give a CSV with columns layers, "
                         "rank, quality")
    names = _check_objectives(objectives, measured is not None)
    if primary is not None:
        primary = _ALIASES.get(primary, primary)
        if primary not in names:
            raise ValueError(f"primary objective {primary!r} is not one of the objectives "
                             f"{', '.join(names)}")

    def params_of(count, rank):
        return count * _adapter_params(model.config, rank, targets)

    surrogate = None
    if measured is not None:
        surrogate = _fit_surrogate(measured, params_of)
        missing = [(count, rank) for count in layer_counts for rank in rank_list
                   if (count, rank) not in measured]
        if missing and surrogate["coefficients"] is None:
            raise ValueError(f"quality: {len(measured)} measured configuration(s) cannot fit the "
                             "surrogate (it needs three with different layers and ranks) and "
                             f"{len(missing)} configuration(s), e.g. layers {missing[0][0]} "
                             f"rank {missing[0][1]}, have no measurement")

    started = time.perf_counter()
    configurations, tasks = [], []
    for rank in rank_list:
        flops, memory = _block_flops(model, rank, targets), _block_memory(model, rank, targets)
        for count in layer_counts:
            indices = _layer_indices(count, n_layers)
            configured = _configured(scenario, model, indices, rank, targets, flops, memory)
            configurations.append((count, rank, indices, configured))
    configurations.sort(key=lambda item: (item[0], item[1]))
    tasks = [(configured, problem, method) for *_, configured in configurations]
    outcomes = run_tasks(_solve_task, tasks, executor=executor)

    points = []
    for (count, rank, indices, configured), (status, latency, _message) in \
            zip(configurations, outcomes):
        quality, source = None, None
        if measured is not None:
            if (count, rank) in measured:
                quality, source = float(np.mean(measured[(count, rank)])), "measured"
            else:
                beta = np.array([surrogate["coefficients"][key] for key in "abc"])
                quality = float(_features([count], [params_of(count, rank)])[0] @ beta)
                source = "surrogate"
        points.append({
            "layers": list(indices), "rank": rank, "round_latency_s": latency,
            "trainable_params": int(params_of(count, rank)),
            "peak_memory_bytes": max(block.memory_bytes for block in configured.blocks),
            "quality": quality, "on_front": False,
            "configuration": configured.name, "status": status, "quality_source": source,
            "acme_pick": False})

    values, valid = _oriented(points, names)
    front = non_dominated(values, valid)
    for point, flag in zip(points, front):
        point["on_front"] = bool(flag)
    front_rows = np.flatnonzero(front)
    knee = int(front_rows[knee_index(values[front_rows])]) if len(front_rows) else None

    picks = grid_representatives(values, valid, acme_cells)
    for index in picks:
        points[index]["acme_pick"] = True
    acme = {"cells_per_axis": acme_cells, "picks": picks,
            "dominated_picks": sum(not points[i]["on_front"] for i in picks),
            "front_points": int(front.sum()),
            "front_points_missed": int(sum(1 for i in front_rows if i not in picks))}

    chosen, rule, message = knee, "knee", ""
    if bounds or primary is not None:
        chosen, rule, primary, message = _epsilon_constraint(points, names, values, bounds,
                                                             primary)
    elif knee is None:
        message = "no configuration has a feasible allocation"
    return ParetoResult(
        scenario=scenario.name, problem=problem, method=method, objectives=names,
        points=points, target_modules=list(targets), constraints=bounds,
        primary=primary, chosen=chosen, chosen_rule=rule if chosen is not None
        else "", knee=knee, surrogate=surrogate, acme=acme,
        profile_note=_profile_note(model, targets), message=message,
        solve_time_s=time.perf_counter() - started)


def _check_layer_count(count, n_layers) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) \
            or not 1 <= count <= n_layers:
        raise ValueError(f"layers: {count!r} is not a number of top layers between 1 and "
                         f"{n_layers}")
    return int(count)


def _epsilon_constraint(points, names, values, bounds, primary):
    """(chosen index, rule, primary or None, message) under ``bounds``; see the module doc."""
    def admissible(point):
        if point["round_latency_s"] is None:
            return False
        for name, value in bounds.items():
            objective, sense = _BOUNDS[name]
            if point[objective] is None:
                return False
            if sense == "<=" and point[objective] > value:
                return False
            if sense == ">=" and point[objective] < value:
                return False
        return True

    candidates = [i for i, point in enumerate(points) if admissible(point)]
    text = ", ".join(f"{_BOUNDS[name][0]} {_BOUNDS[name][1]} {value:g}"
                     for name, value in bounds.items()) or "no bound"
    if not candidates:
        return None, "", primary, (f"no feasible configuration meets {text}" if bounds
                                   else "no configuration has a feasible allocation")
    # an epsilon bound keeps an objective at least as good as the bound: an upper bound on a
    # minimised objective, a lower bound on a maximised one; max_params is a budget instead
    epsilon = {_BOUNDS[name][0] for name in bounds
               if _BOUNDS[name][0] in names
               and (_BOUNDS[name][1] == "<=") == (OBJECTIVES[_BOUNDS[name][0]] > 0)}
    free = [name for name in names if name not in epsilon]
    if primary is None and len(free) == 1:
        primary = free[0]
    if primary is None:
        rows = np.array(candidates)
        front = rows[non_dominated(values[rows])]
        best = int(front[knee_index(values[front])])
        return best, f"knee of the configurations with {text}", None, ""
    order = [primary] + [name for name in names if name != primary]
    best = min(candidates, key=lambda i: ([OBJECTIVES[n] * points[i][n] for n in order], i))
    sense = "min" if OBJECTIVES[primary] > 0 else "max"
    return best, f"epsilon-constraint: {sense} {primary} with {text}", primary, ""


def _profile_note(model: _Model, targets) -> str:
    anchor = f"rank {model.anchor_rank} on {'+'.join(model.anchor_targets)}"
    memory = ("measured" if model.measured else "taken from the profile (not measured: its "
              "measurement.method is not 'measured')")
    note = (f"FLOPs and parameters: exact analytic count (lola.profiles.analytic) for each rank "
            f"and target set; peak memory: the profile {model.name}'s {memory} per-depth peak at "
            f"{anchor}, plus an analytic adjustment for the adapter at rank r (its weights and "
            "two AdamW moments, and the rank-r activation of each adapted projection)")
    if tuple(targets) != model.anchor_targets:
        note += ("; other memory effects of targeting " + "+".join(targets)
                 + " instead of " + "+".join(model.anchor_targets) + " are not modelled")
    return note


# ---------------------------------------------------------------------------------------------
# The figure


def plot_pareto(result: ParetoResult):
    """Every configuration in the first two objectives, the front as a step line, the chosen
    point, and the grid representatives (dominated ones crossed out).

    Infeasible configurations (no allocation) sit in a band right of (or above) the data when
    the axis is the round latency, else at their coordinates, drawn as grey crosses. A third
    objective colours the points (a fourth is not drawn); the front is then marked point by
    point, without a step line. Created with ``plt.figure``, so that a notebook shows it.
    """
    import matplotlib.pyplot as plt

    from ..plots import method_colour

    x_name, y_name = result.objectives[0], result.objectives[1]
    third = result.objectives[2] if len(result.objectives) > 2 else None
    points = result.points

    def coordinate(name, point):
        value = point[name]
        return None if value is None else float(value) * _SCALE.get(name, 1.0)

    feasible = [p for p in points if p["round_latency_s"] is not None
                and coordinate(x_name, p) is not None and coordinate(y_name, p) is not None]
    infeasible = [p for p in points if p["round_latency_s"] is None]
    figure = plt.figure(figsize=(7.8, 4.6))
    axes = figure.add_subplot()
    front_colour = method_colour(result.method)
    acme_colour = _ACME_COLOUR
    xs = np.array([coordinate(x_name, p) for p in feasible])
    ys = np.array([coordinate(y_name, p) for p in feasible])
    if third is not None and feasible:
        colours = np.array([np.nan if p[third] is None else float(p[third])
                            * _SCALE.get(third, 1.0) for p in feasible])
        drawn = axes.scatter(xs, ys, c=colours, cmap="viridis", s=22, zorder=2,
                             label="configuration")
        bar = figure.colorbar(drawn, ax=axes, pad=0.02)
        bar.set_label(_LABELS[third])
    elif feasible:
        axes.scatter(xs, ys, s=22, color="#9e9e9e", zorder=2, label="configuration")
    if infeasible:
        x_band = _band(xs, x_name)
        y_band = _band(ys, y_name)
        ix = [x_band if coordinate(x_name, p) is None else coordinate(x_name, p)
              for p in infeasible]
        iy = [y_band if coordinate(y_name, p) is None else coordinate(y_name, p)
              for p in infeasible]
        axes.scatter(ix, iy, marker="x", s=24, color="#bdbdbd", zorder=2,
                     label=f"infeasible ({len(infeasible)})")
        if x_name == "round_latency_s":
            axes.axvline(x_band, color="#bdbdbd", lw=0.8, ls=":", zorder=1)
            axes.annotate("no allocation", (x_band, 1), xycoords=("data", "axes fraction"),
                          xytext=(-3, -4), textcoords="offset points", ha="right", va="top",
                          fontsize=9, color="#757575")
    front = [p for p in result.points if p["on_front"]]
    if front:
        fx = np.array([coordinate(x_name, p) for p in front])
        fy = np.array([coordinate(y_name, p) for p in front])
        order = np.lexsort((OBJECTIVES[y_name] * fy, OBJECTIVES[x_name] * fx))
        if OBJECTIVES[x_name] < 0:
            order = order[::-1]
        fx, fy = fx[order], fy[order]
        if third is None:
            axes.plot(fx, fy, drawstyle="steps-post", color=front_colour, lw=1.6, zorder=3,
                      label=f"exact front ({len(front)} points)")
        axes.scatter(fx, fy, s=34, facecolor="none", edgecolor=front_colour, lw=1.4, zorder=4,
                     **({} if third is None else {"label": f"exact front ({len(front)} points)"}))
    picks = [points[i] for i in result.acme.get("picks", [])]
    good = [p for p in picks if p["on_front"]]
    bad = [p for p in picks if not p["on_front"]]
    if good:
        axes.scatter([coordinate(x_name, p) for p in good], [coordinate(y_name, p) for p in good],
                     marker="s", s=70, facecolor="none", edgecolor=acme_colour, lw=1.3, zorder=5,
                     label=f"grid representative on the front ({len(good)})")
    if bad:
        axes.scatter([coordinate(x_name, p) for p in bad], [coordinate(y_name, p) for p in bad],
                     marker="X", s=60, color=acme_colour, zorder=5,
                     label=f"grid representative, dominated ({len(bad)})")
    if result.chosen is not None:
        point = points[result.chosen]
        axes.scatter([coordinate(x_name, point)], [coordinate(y_name, point)], marker="*",
                     s=260, color="#ffb300", edgecolor="black", lw=0.8, zorder=6,
                     label=f"chosen: top {len(point['layers'])} layers, rank {point['rank']}")
    axes.set_xlabel(_LABELS[x_name])
    axes.set_ylabel(_LABELS[y_name])
    if y_name == "trainable_params":
        axes.set_yscale("log")
    if x_name == "trainable_params":
        axes.set_xscale("log")
    axes.set_title(f"{result.scenario}: configurations, {result.method} ({result.problem})",
                   fontsize=10)
    axes.grid(True, lw=0.4, alpha=0.5)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02 if third is None else 1.25, 1),
                fontsize=9, frameon=False)
    figure.tight_layout()
    return figure


def _band(values, name):
    """Where infeasible points sit on an axis where they have no value."""
    if not len(values):
        return 1.0
    high, low = float(np.max(values)), float(np.min(values))
    if name == "trainable_params":
        return high * 1.6
    return high + 0.08 * (high - low if high > low else abs(high) or 1.0)


# ---------------------------------------------------------------------------------------------
# Command line (``lola pareto``)


def _int_list(text, option) -> list:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else (part, "")
                values.extend(range(int(low), int(high) + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise ValueError(f"{option} {text}: give integers or ranges, like 1,2,4 or "
                             "1-12") from None
    if not values:
        raise ValueError(f"{option}: give at least one value")
    return values


def add_arguments(parser) -> None:
    """The options of ``lola pareto`` on an ``argparse`` parser."""
    parser.add_argument("scenario", nargs="?", default=None,
                        help="scenario file (YAML or JSON) whose model is a profile; the "
                             "bundled default scenario if omitted")
    parser.add_argument("--layers", default=None,
                        help="numbers L of top layers to try, like 1-12 or 1,2,4 (default: "
                             "every L)")
    parser.add_argument("--ranks", default=",".join(map(str, DEFAULT_RANKS)),
                        help="LoRA ranks to try, comma-separated")
    import solvers

    parser.add_argument("--problem", default="jbba", choices=solvers.PROBLEMS,
                        help="allocation problem solved for every configuration")
    parser.add_argument("--method", default=None,
                        help="exact method for the problem (default: the fastest exact one)")
    parser.add_argument("--target-modules", default=None,
                        help="adapted projections, comma-separated among query,key,value "
                             "(default: the profile's)")
    parser.add_argument("--quality", metavar="CSV", default=None,
                        help="measured quality per configuration: columns layers, rank, "
                             "quality (higher is better)")
    parser.add_argument("--objectives", default=None,
                        help="two to four of round_latency_s, trainable_params, "
                             "peak_memory_bytes, quality (default: latency and parameters, "
                             "plus quality when given)")
    parser.add_argument("--max-params", type=float, default=None,
                        help="epsilon constraint: at most this many trainable parameters")
    parser.add_argument("--max-latency", type=float, default=None, metavar="SECONDS",
                        help="epsilon constraint: round latency at most this")
    parser.add_argument("--min-quality", type=float, default=None,
                        help="epsilon constraint: quality at least this")
    parser.add_argument("--max-memory", type=float, default=None, metavar="BYTES",
                        help="epsilon constraint: peak device memory at most this")
    parser.add_argument("--primary", default=None,
                        help="objective the chosen point optimises within the bounds "
                             "(default: the one objective without an epsilon bound, if there "
                             "is exactly one; else the knee of the points within the bounds)")
    parser.add_argument("--acme-cells", type=int, default=DEFAULT_ACME_CELLS,
                        help="cells per objective axis of the grid-representative comparison")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (points, objectives, chosen point, knee, "
                             "surrogate, grid comparison)")
    parser.add_argument("-o", "--figure", metavar="FILE", default=None,
                        help="write the figure to FILE.png, .pdf or .svg")


def run_command(args) -> int:
    """Run ``lola pareto`` with parsed ``args``; print a table or the JSON; return 0, or 1 when
    no configuration has a feasible allocation (the table is still printed, no figure written).
    Bad input, an unwritable ``-o`` included (checked before any solve), raises ``ValueError``."""
    import json
    import sys

    from .._io import check_output_path

    if args.figure is not None and Path(args.figure).suffix.lower() not in (".png", ".pdf",
                                                                          ".svg"):
        raise ValueError(f"--figure {args.figure}: the file must end in .png, .pdf or .svg")
    if args.figure is not None:
        check_output_path(args.figure, option="-o")
    result = pareto(
        args.scenario,
        layers=None if args.layers is None else _int_list(args.layers, "--layers"),
        ranks=_int_list(args.ranks, "--ranks"), problem=args.problem, method=args.method,
        quality_csv=args.quality, max_params=args.max_params, max_latency_s=args.max_latency,
        min_quality=args.min_quality, max_memory_bytes=args.max_memory,
        objectives=args.objectives, primary=args.primary,
        target_modules=args.target_modules, acme_cells=args.acme_cells)
    feasible = any(point["round_latency_s"] is not None for point in result.points)
    if args.figure is not None and feasible:
        from ..plots import save

        save(plot_pareto(result), args.figure)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_pareto(result))
    if not feasible:
        print("lola pareto: no configuration has a feasible allocation"
              + ("; no figure written" if args.figure is not None else ""), file=sys.stderr)
        return 1
    return 0


def _layers_text(layers) -> str:
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] - 1, -1)):
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(map(str, layers))


def format_pareto(result: ParetoResult) -> str:
    """The table of ``lola pareto``: one row per configuration, then the choice."""
    from ..report import format_table

    quality = any(p["quality"] is not None for p in result.points)
    headers = ["L", "layers", "rank", "latency (s)", "params", "memory (GB)"]
    headers += ["quality"] if quality else []
    headers += ["front", "grid"]
    rows = []
    for point in result.points:
        latency = point["round_latency_s"]
        row = [len(point["layers"]), _layers_text(point["layers"]), point["rank"],
               "infeasible" if latency is None else f"{latency:.4g}",
               point["trainable_params"], f"{point['peak_memory_bytes'] / 1e9:.3f}"]
        if quality:
            row.append(f"{point['quality']:.4g}" + ("*" if point["quality_source"] ==
                                                     "surrogate" else ""))
        row += ["yes" if point["on_front"] else "",
                ("pick" if point["on_front"] else "pick, dominated") if point["acme_pick"]
                else ""]
        rows.append(row)
    lines = [f"scenario {result.scenario}  problem {result.problem}  method {result.method}  "
             f"objectives {', '.join(result.objectives)}",
             format_table(headers, rows)]
    if quality:
        lines.append("* quality predicted by the surrogate "
                     f"({result.surrogate['model']}; leave-one-out RMSE "
                     + ("n/a" if result.surrogate["loo_rmse"] is None
                        else f"{result.surrogate['loo_rmse']:.4g}") + ")")

    def name(index):
        point = result.points[index]
        latency = point["round_latency_s"]
        return (f"top {len(point['layers'])} layers at rank {point['rank']} "
                f"({latency:.4g} s, {point['trainable_params']} parameters)")

    if result.knee is not None:
        lines.append(f"knee: {name(result.knee)}")
    if result.chosen is not None:
        lines.append(f"chosen ({result.chosen_rule}): {name(result.chosen)}")
    if result.message:
        lines.append(result.message)
    acme = result.acme
    lines.append(f"grid representatives ({acme['cells_per_axis']} cells per axis): "
                 f"{len(acme['picks'])} picks, {acme['dominated_picks']} dominated; "
                 f"{acme['front_points_missed']} of {acme['front_points']} front points missed")
    lines.append(f"costs: {result.profile_note}")
    return "\n".join(lines)


# Specification, section 13: ``lola.pareto(...)`` runs the study and
# ``lola.pareto.configure(...)`` builds one configuration's scenario; the function carries
# ``configure`` so that both spellings hold once ``lola`` exports :func:`pareto`.
pareto.configure = configure
