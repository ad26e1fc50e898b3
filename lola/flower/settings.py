"""The settings of a DEFT run, and how they travel in Flower's configurations.

A run's settings (:class:`RunSettings`) reach the ServerApp and every ClientApp as Flower's *run
config*: flat ``key = value`` pairs (``rounds``, ``model``, ``seed``, ``batch-size``, ...; the
field names with ``-`` for ``_``), which ``flwr run`` takes from the app's ``pyproject.toml``
(``[tool.flwr.app.config]``) or ``--run-config``. In one process they are handed to the apps
directly.

A device's properties travel in its SuperNode's *node config*: the device keys of section 5 of
the specification, each prefixed with ``device.`` (:data:`NODE_PREFIX`), e.g.
``flower-supernode --node-config 'device.name="phone-1" device.flops_per_s=1.2e12
device.memory_bytes=6e9 device.spectral_efficiency=6.5 data="/data/phone-1.jsonl"'``. A node
config without them (Flower's simulation engine gives only ``partition-id`` and
``num-partitions``) makes the client the device ``partition-id`` of the run's scenario file.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import solvers

from .._hints import did_you_mean

__all__ = ["RunSettings", "DEVICE_KEYS", "NODE_PREFIX", "NODE_DATA_KEY", "PARTITION_KEY",
           "SettingsError", "device_properties"]

# Section 5's device keys (and section 8's max_blocks, section 9's downlink_bps, section 10's
# powers): what a client reports when the server queries its properties.
DEVICE_KEYS = ("name", "flops_per_s", "memory_bytes", "spectral_efficiency", "tx_power_w",
               "channel_gain", "bandwidth_hz", "compute_power_w", "energy_budget_j",
               "max_blocks", "downlink_bps")
NODE_PREFIX = "device."
NODE_DATA_KEY = "data"            # node config: the device's own JSON-lines file
PARTITION_KEY = "partition-id"    # node config of Flower's simulation engine


class SettingsError(ValueError):
    """A setting that cannot work; the message names the ``lola deft-run`` option."""


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class RunSettings:
    """Everything a DEFT run needs besides the devices (which the clients report).

    ``method`` and ``problem`` default as in ``lola solve``: the problem is the only one the
    method solves, else ``jbba``; the method is the problem's default exact method.
    """

    method: str | None = None
    problem: str | None = None
    rounds: int = 3
    scenario: str | None = None       # None: the bundled default scenario
    model: str = "tiny"
    weights: str | None = None
    data: str | None = None           # None: the synthetic task
    seed: int = 0
    batch_size: int = 16
    sequence_length: int | None = None
    lr: float = 0.2
    local_steps: int = 1
    max_blocks: int | None = None
    threads: int = 1
    host_profile: str | None = None   # a profile file of this model on this host, else measured
    profile_repetitions: int = 5
    examples_per_device: int = 64     # synthetic task: training examples of each device
    eval_examples: int = 128          # synthetic task: held-out examples
    eval_fraction: float = 0.2        # --data: the share held out for evaluation
    audit: bool = False               # clients record which layers back-propagation reached
    report: str | None = None         # deployments: the JSON report file the ServerApp writes
    min_nodes: int = 1                # deployments: nodes to wait for before each round
    node_wait_s: float = 120.0        # ... for at most this long

    def __post_init__(self):
        for name in ("rounds", "batch_size", "local_steps", "threads", "profile_repetitions",
                     "examples_per_device", "eval_examples", "min_nodes"):
            _whole(getattr(self, name), name)
        for name in ("max_blocks", "sequence_length"):
            if getattr(self, name) is not None:
                _whole(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SettingsError(f"--seed {self.seed!r}: must be an integer >= 0")
        if not _finite_positive(self.node_wait_s):
            raise SettingsError(f"node_wait_s {self.node_wait_s!r}: must be a positive number "
                                "of seconds")
        if not _finite_positive(self.lr):
            raise SettingsError(f"--lr {self.lr!r}: must be a positive finite number")
        if not (_finite_positive(self.eval_fraction) and self.eval_fraction < 1):
            raise SettingsError(f"eval_fraction {self.eval_fraction!r}: must lie in (0, 1)")
        if self.problem is not None and self.problem not in solvers.PROBLEMS:
            raise SettingsError(f"--problem {self.problem}: choose one of "
                                f"{', '.join(solvers.PROBLEMS)}")

    def resolved(self) -> "RunSettings":
        """The settings with ``problem`` and ``method`` filled in and checked."""
        from ..api import default_method

        method, problem = self.method, self.problem
        if method is not None:
            spec = solvers.METHODS.get(method)
            if spec is None:
                hint = did_you_mean(method, solvers.METHODS)
                raise SettingsError(f"--method {method}: unknown method{hint}; 'lola methods' "
                                    "lists them")
            if method == "centralized":
                raise SettingsError("--method centralized: the centralized reference trains on "
                                    "the server, not on the devices; choose a DEFT method")
            if problem is None:
                problem = spec.problems[0] if len(spec.problems) == 1 else "jbba"
            if problem not in spec.problems:
                raise SettingsError(f"--method {method} solves {', '.join(spec.problems)}, not "
                                    f"--problem {problem}")
        problem = problem or "jbba"
        return dataclasses.replace(self, problem=problem,
                                   method=method or default_method(problem))

    def to_user_config(self) -> dict:
        """Flower's run config: ``{"batch-size": 16, ...}``, None values left out."""
        return {field.name.replace("_", "-"): getattr(self, field.name)
                for field in dataclasses.fields(self) if getattr(self, field.name) is not None}

    @classmethod
    def from_user_config(cls, config) -> "RunSettings":
        """The settings in a Flower run config; keys that are not settings belong to the rest of
        the app and are left alone."""
        names = {field.name: field for field in dataclasses.fields(cls)}
        values = {}
        for key, value in dict(config).items():
            name = str(key).replace("-", "_")
            if name in names:
                if names[name].type in ("float", "float | None") and isinstance(value, int):
                    value = float(value)
                values[name] = value
        return cls(**values)


def _finite_positive(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and value > 0)


def _whole(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{_option(name)} {value!r}: must be a positive integer")


def device_properties(device) -> dict:
    """The section-5 keys of a :class:`lola.scenario.Device` that are set."""
    return {key: getattr(device, key) for key in DEVICE_KEYS
            if getattr(device, key, None) is not None}
