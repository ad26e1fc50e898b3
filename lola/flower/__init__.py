"""Executing LoLa's allocations: DEFT rounds in Flower (specification, section 15).

Every device of a scenario is a Flower ClientApp that holds the frozen model with LoRA adapters
on every layer; each round the ServerApp queries the devices' properties, allocates the blocks
with any LoLa method, sends each device the names of its blocks with the global adapters, and
writes each block's update back (:mod:`lola.flower.server`, :mod:`lola.flower.apps`). The run
reports, per device and round, the measured step time next to the cost model's prediction at
the host's throughput (:mod:`lola.flower.host`).

>>> from lola.flower import deft_run                                      # doctest: +SKIP
>>> report = deft_run(method="crunch", rounds=3, model="tiny", seed=0)    # doctest: +SKIP
>>> report.to_dict()["compute_ratio_median"]                              # doctest: +SKIP

Needs the ``flower`` and ``profile`` extras (flwr, torch, transformers, peft). Importing this
package imports none of them; :func:`deft_run` does.
"""
from __future__ import annotations

__all__ = ["deft_run", "centralized_run", "RunSettings", "DataError", "ClientFailure",
           "RunFailure", "DeftReport", "FlowerUnavailable", "require_flower"]

from .data import DataError
from .settings import RunSettings


class FlowerUnavailable(ImportError):
    """flwr (or torch, transformers, peft) is not installed."""


def require_flower() -> None:
    """Raise :class:`FlowerUnavailable` with the install command when a dependency is missing."""
    import importlib.util

    missing = [name for name in ("flwr", "torch", "transformers", "peft")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise FlowerUnavailable(
            f"DEFT runs need {', '.join(missing)}; install the extras: pip install "
            "torch==2.13.0 && pip install -e '.[profile,flower]'")


def __getattr__(name):
    if name in ("deft_run", "centralized_run"):
        require_flower()
        from . import run
        return getattr(run, name)
    if name in ("ClientFailure", "RunFailure", "DeftReport"):
        from . import server
        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
