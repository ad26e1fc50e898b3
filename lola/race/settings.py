"""The settings of one race run, checked before any model is built or file written."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from .glue import TASKS
from .model import OPTIMIZERS
from .strategies import STRATEGIES

__all__ = ["RaceSettings", "RaceSettingsError", "MODELS", "DEFAULT_SEQUENCE_LENGTH"]

MODELS = ("minilm",)
DEFAULT_SEQUENCE_LENGTH = 64


class RaceSettingsError(ValueError):
    """A race setting that cannot work; the message names the ``lola race`` option."""


def _whole(value, option, least=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise RaceSettingsError(f"{option} {value!r}: must be an integer >= {least}")


def _positive(value, option):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise RaceSettingsError(f"{option} {value!r}: must be a positive finite number")


@dataclass(frozen=True)
class RaceSettings:
    """Everything one (strategy, seed) run needs; plain data, so that it travels to workers."""

    glue_dir: str
    task: str = "sst2"
    model: str = "minilm"
    strategy: str = "deft"
    seed: int = 0
    rounds: int = 10
    scenario: str | None = None       # None: the bundled default devices, model minilm-l6
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    alpha: float | None = None        # None: IID shards; else Dirichlet(alpha) label skew
    size_skew: float = 0.0            # shard sizes ~ lognormal(0, size_skew); 0: equal shares
    lr: float = 1e-3                  # the server's Adam
    client_lr: float = 0.1            # the client optimizer's
    optimizer: str = "sgd"            # the client optimizer
    local_steps: int = 1
    batch_size: int = 16
    clients_per_round: int | None = None
    max_blocks: int = 1
    eval_every: int = 1
    threads: int = 1

    def __post_init__(self):
        if self.task not in TASKS:
            raise RaceSettingsError(f"--task {self.task}: unknown task; choose one of "
                                    f"{', '.join(sorted(TASKS))}")
        if self.model not in MODELS:
            raise RaceSettingsError(f"--model {self.model}: choose one of {', '.join(MODELS)}")
        if self.strategy not in STRATEGIES:
            raise RaceSettingsError(f"--strategies {self.strategy}: unknown strategy; choose "
                                    f"from {', '.join(STRATEGIES)}")
        if self.optimizer not in OPTIMIZERS:
            raise RaceSettingsError(f"--optimizer {self.optimizer}: choose one of "
                                    f"{', '.join(OPTIMIZERS)}")
        _whole(self.seed, "--seeds", least=0)
        for name in ("rounds", "sequence_length", "local_steps", "batch_size", "max_blocks",
                     "eval_every", "threads"):
            _whole(getattr(self, name), "--" + name.replace("_", "-"))
        if self.sequence_length < 4:
            raise RaceSettingsError(f"--sequence-length {self.sequence_length}: must be at "
                                    "least 4 tokens")
        if self.clients_per_round is not None:
            _whole(self.clients_per_round, "--clients-per-round")
        _positive(self.lr, "--lr")
        _positive(self.client_lr, "--client-lr")
        if self.alpha is not None:
            _positive(self.alpha, "--alpha")
        if isinstance(self.size_skew, bool) or not isinstance(self.size_skew, (int, float)) \
                or not math.isfinite(self.size_skew) or self.size_skew < 0:
            raise RaceSettingsError(f"--size-skew {self.size_skew!r}: must be a number >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, scenario_digest: str) -> str:
        """What makes two runs' rows comparable: every setting but the strategy and seed (each
        row names those), the threads (no effect on the rows), and the scenario's content."""
        settings = {k: v for k, v in self.to_dict().items()
                    if k not in ("strategy", "seed", "threads", "scenario", "glue_dir")}
        text = json.dumps([settings, scenario_digest], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
