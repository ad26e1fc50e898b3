"""Does the cost model predict a device's real training step? measured / predicted over block sets.

For each model (the tiny RoBERTa of ``lola deft-run --model tiny`` at batch 16, sequence 32, and
RoBERTa-base at batch 16, sequence 128, both on this host's CPU with one torch thread), the
model is first profiled here (:func:`lola.flower.host.measure_host`: C_n, delta_n, and f_host =
sum C_n / sum t_n). Then the very step a DEFT client runs
(:meth:`lola.flower.training.DeftModel.train_step`: every adapter active, those of the set A
trainable, one SGD step) is timed for block sets of three kinds:

* ``one``: a single block, at every depth (tiny) or at depths 1, 4, 8, 12 (RoBERTa-base);
* ``several``: the shallowest block with the deepest, a middle one with the deepest, and seeded
  random sets of 2 to N - 1 blocks;
* ``all``: every block.

Timings are interleaved: after an untimed pass over every set, each of ``repetitions`` rounds
times every set once in a seeded shuffled order, so that drift of the host spreads over all
sets. Per set: the median measured step, the prediction C(A) / f_host (section 8:
C(A) = C_d + sum of the other blocks' delta_n), their ratio, the straight-line fit's prediction
a + C(A) / f_fit for comparison, and, for sets of several blocks, what the set adds over its
deepest block alone, measured and predicted (sum delta_n / f_host).

For the tiny model it also runs DEFT rounds in Flower (:func:`lola.flower.deft_run`, 5 rounds)
where devices train one block (5 devices, ``crunch``), several blocks (2 devices,
``max_blocks`` 4, ``greedy``) and all blocks (1 device), and reports each run's
``compute_ratio_median`` and spread.

Writes ``results/deft_ratio.csv`` (one row per model and block set) and
``results/deft_ratio.json`` (the summaries). ``--quick``: the tiny model only, fewer
repetitions; ``--models tiny,roberta-base`` picks the models.
"""
from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lola._io import atomic_write_text

from .common import RESULTS, print_table, write_csv

MODELS = ("tiny", "roberta-base")
REPETITIONS = {"tiny": 9, "roberta-base": 2}
PROFILE_REPETITIONS = {"tiny": 5, "roberta-base": 1}


def _block_sets(names: list, model: str, seed: int = 0) -> list:
    """(kind, blocks) pairs; ``names`` in depth order (depth 1 first)."""
    n = len(names)
    depths = range(1, n + 1) if model == "tiny" else sorted({1, 4, 8, n})
    sets = [("one", [names[d - 1]]) for d in depths]
    several = [[names[0], names[-1]], [names[n // 2], names[-1]]]
    rng = random.Random(seed)
    for size in (2, 3, max(2, n - 1)) if model == "tiny" else (3,):
        several.append(sorted(rng.sample(names, size), key=names.index))
    seen = set()
    for blocks in several:
        if tuple(blocks) not in seen and 1 < len(blocks) < n:
            seen.add(tuple(blocks))
            sets.append(("several", blocks))
    sets.append(("all", list(names)))
    return sets


def _summary(ratios) -> dict:
    from lola.flower.server import summarise_ratios
    return summarise_ratios(ratios)


def measure_model(model: str, *, repetitions: int, profile_repetitions: int, seed: int = 0,
                  host_profile=None, progress=print) -> tuple:
    """Profile ``model`` here (or read ``host_profile``), time its block sets; return
    (rows, summary, host costs)."""
    import torch

    from lola.flower.data import synthetic_task
    from lola.flower.host import load_host_profile, measure_host
    from lola.flower.training import ModelSpec, get_model

    torch.set_num_threads(1)
    spec = ModelSpec(model, batch_size=16, seed=seed)
    started = time.perf_counter()
    if host_profile:
        host = load_host_profile(host_profile, spec)
    else:
        host = measure_host(spec, repetitions=profile_repetitions, warmup=1, threads=1)
    torch.set_num_threads(1)
    profiled_s = time.perf_counter() - started
    progress(f"{model}: {'read' if host_profile else 'profiled'} in {profiled_s:.0f} s, "
             f"f_host = {host.host_flops_per_s:.4g} FLOP/s, extra_flops: "
             f"{host.extra_flops_source}")
    deft = get_model(spec)
    data = synthetic_task(4 * spec.batch_size, vocab_size=deft.vocab_size,
                          sequence_length=spec.sequence_length, seed=seed)
    sets = _block_sets(host.names, model, seed)
    samples = {index: [] for index in range(len(sets))}
    if model == "tiny":  # an untimed pass: first-run effects of each set (for steps of a few
        for _, blocks in sets:  # ms; a multi-second step does not notice them)
            deft.train_step(blocks, data, lr=0.0, seed=seed)
    shuffler = random.Random(seed)
    for repetition in range(repetitions):
        for index in shuffler.sample(range(len(sets)), len(sets)):
            outcome = deft.train_step(sets[index][1], data, lr=0.0, seed=seed + repetition)
            samples[index].append(outcome.step_s)
        progress(f"{model}: repetition {repetition + 1}/{repetitions}, "
                 f"{time.perf_counter() - started:.0f} s")
    fit = (host.document.get("checks") or {}).get("latency_fit") or {}
    single = {sets[i][1][0]: statistics.median(samples[i]) for i in samples
              if sets[i][0] == "one"}
    rows = []
    for index, (kind, blocks) in enumerate(sets):
        measured = statistics.median(samples[index])
        q1, q3 = np.percentile(samples[index], [25, 75])
        predicted = host.predicted_s(blocks)
        deepest = max(blocks, key=host.depth)
        row = {"model": model, "kind": kind, "blocks": " ".join(blocks), "size": len(blocks),
               "deepest_depth": host.depth(deepest), "predicted_flops": host.flops(blocks),
               "predicted_s": predicted, "measured_s": measured, "measured_q1_s": float(q1),
               "measured_q3_s": float(q3), "ratio": measured / predicted,
               "predicted_fit_s": None, "ratio_to_fit": None,
               "added_measured_s": None, "added_predicted_s": None}
        if fit.get("throughput_flops_per_s"):
            row["predicted_fit_s"] = (fit["intercept_s"]
                                      + host.flops(blocks) / fit["throughput_flops_per_s"])
            row["ratio_to_fit"] = measured / row["predicted_fit_s"]
        if len(blocks) > 1 and deepest in single:
            row["added_measured_s"] = measured - single[deepest]
            row["added_predicted_s"] = predicted - host.predicted_s([deepest])
        rows.append(row)
    summary = {"model": model, "host_profile": host.source, "batch_size": spec.batch_size,
               "sequence_length": spec.sequence_length, "threads": 1,
               "profile_time_s": profiled_s, "repetitions": repetitions,
               "profile_repetitions": profile_repetitions,
               "host_flops_per_s": host.host_flops_per_s,
               "extra_flops_source": host.extra_flops_source,
               "latency_fit": fit or None,
               "by_kind": {kind: _summary([r["ratio"] for r in rows if r["kind"] == kind])
                           for kind in ("one", "several", "all")},
               "wall_s": time.perf_counter() - started}
    return rows, summary, host


def _flower_runs(host, seed: int = 0, rounds: int = 5) -> dict:
    """DEFT rounds in Flower on the tiny model: one, several and all blocks per device."""
    from lola.flower import deft_run

    def scenario(folder, names):
        document = {"name": f"deft-ratio-{len(names)}", "model": {"profile": "roberta-base"},
                    "devices": [{"name": name, "flops_per_s": 1e12 * (k + 1),
                                 "memory_bytes": 8e9, "spectral_efficiency": 2.0 + k}
                                for k, name in enumerate(names)],
                    "channel": {"total_bandwidth_hz": 2e7, "rate_model": "fixed"}}
        path = Path(folder) / f"{len(names)}.json"
        path.write_text(json.dumps(document))
        return str(path)

    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        cases = {"one": (scenario(folder, [f"d{k}" for k in range(5)]), "crunch", None),
                 "several": (scenario(folder, ["d0", "d1"]), "greedy", 4),
                 "all": (scenario(folder, ["d0"]), "greedy", len(host.names))}
        for kind, (path, method, max_blocks) in cases.items():
            report = deft_run(path, method=method, rounds=rounds, seed=seed, host=host,
                              max_blocks=max_blocks).to_dict()
            runs[kind] = {"method": method, "max_blocks": max_blocks, "rounds": rounds,
                          "compute_ratio_median": report["compute_ratio_median"],
                          "compute_ratio_spread": report["compute_ratio_spread"],
                          "by_block_count": report["compute_ratio_by_block_count"],
                          "initial_eval_loss": report["initial_eval_loss"],
                          "eval_loss": [row["eval_loss"] for row in report["per_round"]]}
    return runs


def run(out_dir=None, quick=False, models=None, host_profiles=None) -> dict:
    """Measure, write ``deft_ratio.csv`` and ``deft_ratio.json`` into ``out_dir``.

    ``host_profiles`` maps a model to a profile file of it made on this host, read instead of
    profiling the model now.
    """
    models = list(models or (["tiny"] if quick else MODELS))
    host_profiles = dict(host_profiles or {})
    rows, summaries, flower = [], {}, None
    for model in models:
        repetitions = REPETITIONS[model] if not quick else max(2, REPETITIONS[model] // 2)
        model_rows, summary, host = measure_model(
            model, repetitions=repetitions, profile_repetitions=PROFILE_REPETITIONS[model],
            host_profile=host_profiles.get(model))
        rows += model_rows
        summaries[model] = summary
        if model == "tiny":
            flower = _flower_runs(host, rounds=3 if quick else 5)
    out = Path(out_dir or RESULTS)
    print_table([{key: row[key] for key in ("model", "kind", "blocks", "predicted_s",
                                            "measured_s", "ratio", "ratio_to_fit")}
                 for row in rows])
    write_csv("deft_ratio.csv", rows, out)
    summary = {"models": summaries, "flower_runs": flower}
    atomic_write_text(out / "deft_ratio.json", json.dumps(summary, indent=2) + "\n", parents=True)
    return summary


def headline(summary) -> list:
    lines = []
    for model, entry in summary["models"].items():
        parts = []
        for kind in ("one", "several", "all"):
            stats = entry["by_kind"][kind]
            if stats["count"]:
                parts.append(f"{kind} block{'s' if kind != 'one' else ''}: median "
                             f"{stats['median']:.2f} (range {stats['min']:.2f} to "
                             f"{stats['max']:.2f}, {stats['count']} sets)")
        lines.append(f"{model} (batch {entry['batch_size']}, sequence "
                     f"{entry['sequence_length']}, f_host {entry['host_flops_per_s']:.3g} "
                     f"FLOP/s): measured / predicted step, " + "; ".join(parts))
    for kind, entry in (summary.get("flower_runs") or {}).items():
        spread = entry["compute_ratio_spread"]
        lines.append(f"tiny, DEFT rounds in Flower, {kind} block(s) per device "
                     f"({entry['method']}): compute_ratio_median "
                     f"{entry['compute_ratio_median']:.2f}, quartiles {spread['q1']:.2f} to "
                     f"{spread['q3']:.2f}, {spread['count']} steps")
    return lines


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny model only, fewer "
                        "repetitions")
    parser.add_argument("--models", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--host-profile", action="append", default=[], metavar="MODEL=FILE",
                        help="read MODEL's profile on this host from FILE instead of profiling "
                        "it now (RoBERTa-base's full profile takes more than 10 minutes on two "
                        "busy cores); repeatable")
    parser.add_argument("--out", help="results folder (default: benchmarks/results)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    profiles = {}
    for entry in args.host_profile:
        model, _, path = entry.partition("=")
        if not path:
            parser.error(f"--host-profile {entry}: give MODEL=FILE")
        profiles[model.strip()] = path
    summary = run(args.out, quick=args.quick, models=models, host_profiles=profiles)
    print("\n".join(headline(summary)))
    return summary


if __name__ == "__main__":
    main()
