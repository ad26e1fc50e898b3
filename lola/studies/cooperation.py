"""When does cooperation pay? The best of local DEFT, split DEFT and centralized training.

For generated scenarios (:func:`lola.generate.generate_scenario` with ``downlink=True``) over a
grid of edge-server throughputs f_srv and uplink bandwidths B, and for each device class mix,
three optimal round latencies are computed with the exact method of P2:

* ``local``: DEFT, every device runs its whole step (``modes=("local",)``);
* ``split``: DEFT where each device may also hand the layers above its block to the server
  (``modes=("local", "split")``; never slower than ``local``, since it may choose local);
* ``centralized``: the reference where devices upload mini-batches and the server trains every
  block itself (latency = slowest upload + N C_N / f_srv).

Each row says which is fastest (``best``); :func:`lola.plots.plot_cooperation` draws the map.
Split mode needs a profile with the split keys (the bundled ones carry them).

>>> rows = cooperation_map(server_flops_per_s=[1e13], bandwidths_hz=[2e7], seeds=[0],
...                        n_devices=12)
>>> sorted(rows[0]) == sorted(ROW_KEYS)
True
"""
from __future__ import annotations

from .runner import run_tasks

__all__ = ["cooperation_map", "cooperation_row", "ROW_KEYS", "DEFAULT_MIXES"]

ROW_KEYS = ("profile", "mix", "devices", "seed", "server_flops_per_s", "bandwidth_hz",
            "local_s", "split_s", "centralized_s", "best", "split_devices")

#: Device class mixes of the default map: the generator's own, phones only, laptops only.
DEFAULT_MIXES = {"default": None, "phones": {"phone": 1}, "laptops": {"laptop": 1}}


def cooperation_row(task: dict) -> dict:
    """One grid point (a picklable task): the three latencies and the fastest of them."""
    from ..api import solve
    from ..generate import generate_scenario

    document = generate_scenario(task["devices"], profile=task["profile"], seed=task["seed"],
                                 total_bandwidth_hz=task["bandwidth_hz"], downlink=True,
                                 class_mix=task["class_mix"])
    document["server"] = {"flops_per_s": task["server_flops_per_s"]}
    local = solve(document, problem="jbba", method="exact")
    split = solve(document, problem="jbba", method="exact", modes=("local", "split"))
    central = solve(document, problem="jbba", method="centralized")
    latencies = {"local": local.round_latency_s, "split": split.round_latency_s,
                 "centralized": central.round_latency_s}
    finite = {name: value for name, value in latencies.items() if value is not None}
    # split can choose local everywhere: it wins only when it is strictly faster
    best = min(finite, key=lambda name: (finite[name], name != "local")) if finite else None
    if best == "split" and latencies["local"] is not None and \
            not latencies["split"] < latencies["local"] * (1 - 1e-9):
        best = "local"
    return {"profile": task["profile"], "mix": task["mix"], "devices": task["devices"],
            "seed": task["seed"], "server_flops_per_s": task["server_flops_per_s"],
            "bandwidth_hz": task["bandwidth_hz"], "local_s": latencies["local"],
            "split_s": latencies["split"], "centralized_s": latencies["centralized"],
            "best": best,
            "split_devices": sum(1 for d in split.devices if d.mode == "split")}


def cooperation_map(*, profile: str = "roberta-base", server_flops_per_s=(1e12, 1e13, 1e14),
                    bandwidths_hz=(5e6, 2e7, 8e7), mixes=None, seeds=(0, 1, 2),
                    n_devices: int = 20, executor=None) -> list:
    """Rows of :func:`cooperation_row` over the grid f_srv x B x mixes x seeds.

    ``mixes`` maps a label to a ``class_mix`` of the generator (None: its own mix); by default
    :data:`DEFAULT_MIXES` restricted to the generator's mix when not given. ``executor`` is any
    ``concurrent.futures.Executor`` (None runs in this process).
    """
    mixes = {"default": None} if mixes is None else dict(mixes)
    tasks = [{"profile": profile, "mix": label, "class_mix": mix, "devices": n_devices,
              "seed": seed, "server_flops_per_s": float(server), "bandwidth_hz": float(band)}
             for label, mix in mixes.items() for server in server_flops_per_s
             for band in bandwidths_hz for seed in seeds]
    return run_tasks(cooperation_row, tasks, executor=executor)
