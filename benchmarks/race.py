"""Time to accuracy on GLUE SST-2: LoLa's DEFT raced against FedAvg over LoRA, depth-heterogeneous
training and the centralized reference (``python -m benchmarks.race``; hours on a CPU).

all-MiniLM-L6-v2 (the ``minilm-l6`` profile's model) is fine-tuned for real on SST-2's training
split, dealt to the devices of a generated 20-device scenario (``lola.generate``, the default
device classes, seed 0, with ``model: {profile: minilm-l6}``), once per strategy and seed. Every
strategy uses the same client optimizer (AdamW, created afresh each round), learning rate, batch
size 16, sequence length 64 and one local step per round; ``fedavg-lora`` and ``depth-hetero``
take M participants per round (``--clients-per-round``, default 7: the seven devices DEFT uses
for its seven blocks). Two splits of the data: IID shards, and label-skewed shards (Dirichlet
alpha = 0.1). The dev split is evaluated after every ``--eval-every``-th round, so a time to
target is the first *evaluated* round at or above the target (a resolution of that many rounds).

Writes, per split, ``race-<split>.csv`` (every round's row, resumable: rerun the same command
after an interruption), ``race-<split>.json`` (the report) and ``race-<split>.png`` (the figure),
and prints the table: time to 0.80 and 0.85 dev accuracy per strategy (mean, and min to max over
the seeds, or how many seeds never reached it), final dev and test accuracy, and the share of the
race's wall time spent beyond the training steps and evaluations (planning, solving, Flower
messages, aggregation).

The GLUE folder is ``$LOLA_GLUE_DIR``, else ``../shared/data/glue`` beside the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from .common import RESULTS, print_table

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (0.80, 0.85)
STRATEGIES = ("deft", "fedavg-lora", "depth-hetero", "centralized")
SPLITS = {"iid": None, "skew": 0.1}


def glue_dir() -> Path:
    given = os.environ.get("LOLA_GLUE_DIR")
    path = Path(given) if given else ROOT.parent / "shared" / "data" / "glue"
    if not (path / "SST-2" / "train.tsv").is_file():
        raise SystemExit(f"benchmarks.race: no SST-2 under {path}; set LOLA_GLUE_DIR to the "
                         "folder that holds GLUE's SST-2")
    return path


def scenario(devices: int = 20) -> dict:
    from lola.generate import generate_scenario

    return generate_scenario(devices, profile="minilm-l6", seed=0)


def table(report: dict, split: str) -> list:
    """One row per strategy: times to each target over the seeds, accuracies, overhead."""
    from lola.race.run import summarise

    rows = []
    for strategy in report["strategies"]:
        mine = [r for r in report["rows"] if r["strategy"] == strategy]
        runs = [s for s in report["summary"] if s["strategy"] == strategy]
        row = {"split": split, "strategy": strategy, "seeds": len(runs),
               "round_s": statistics.mean(s["round_latency_s_mean"] for s in runs)}
        for target in TARGETS:
            times = []
            for seed in report["seeds"]:
                reached = summarise(mine, strategy, seed, target)["time_to_target_s"]
                times.append(reached)
            got = [t for t in times if t is not None]
            label = f"to_{int(round(target * 100))}"
            if len(got) == len(times):
                row[label] = f"{statistics.mean(got):.4g} ({min(got):.4g}-{max(got):.4g})"
            else:
                row[label] = (f"never in {len(times) - len(got)} of {len(times)}"
                              + (f"; {statistics.mean(got):.4g}" if got else ""))
        row["final_dev"] = statistics.mean(s["final_dev_accuracy"] for s in runs)
        row["best_dev"] = statistics.mean(s["best_dev_accuracy"] for s in runs)
        tests = [s["test_accuracy"] for s in runs if s["test_accuracy"] is not None]
        row["test"] = statistics.mean(tests) if tests else None
        walls = [s for s in runs if s.get("wall_s")]
        if walls:
            wall = sum(s["wall_s"] for s in walls)
            row["overhead_percent"] = 100 * sum(s["overhead_s"] for s in walls) / wall
            row["wall_s"] = wall
        rows.append(row)
    return rows


def run(out_dir=None, quick=False, *, rounds=None, seeds=None, eval_every=None,
        clients_per_round=7, strategies=STRATEGIES, splits=tuple(SPLITS), lr=1e-3,
        workers=None) -> dict:
    import lola

    out = Path(out_dir or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    rounds = rounds or (10 if quick else 300)
    seeds = list(seeds or ([0] if quick else [0, 1, 2]))
    eval_every = eval_every or (5 if quick else 10)
    document = scenario()
    found = {}
    for split in splits:
        options = dict(glue_dir=glue_dir(), strategies=list(strategies), rounds=rounds,
                       target=TARGETS[0], alpha=SPLITS[split], lr=lr,
                       clients_per_round=clients_per_round, eval_every=eval_every,
                       output=out / f"race-{split}.csv", executor="local" if workers else None,
                       workers=workers, progress=True)
        # seed by seed, so that an interrupted study has whole seeds (every strategy) done;
        # the CSV keeps every finished run and the last call only reads them back
        for seed in seeds:
            lola.race(document, seeds=[seed], **options)
        report = lola.race(document, seeds=seeds, figure=out / f"race-{split}.png", **options)
        data = report.to_dict()
        (out / f"race-{split}.json").write_text(json.dumps(data, indent=1))
        found[split] = table(data, split)
    rows = [row for split in found for row in found[split]]
    print_table(rows)
    return {"rounds": rounds, "seeds": seeds, "eval_every": eval_every, "lr": lr,
            "clients_per_round": clients_per_round, "rows": rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 10 rounds")
    parser.add_argument("--rounds", type=int, help="round budget per run (default 300)")
    parser.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")],
                        help="seeds, e.g. 0,1,2 (default)")
    parser.add_argument("--eval-every", type=int, help="dev evaluation every K rounds "
                        "(default 10)")
    parser.add_argument("--clients-per-round", type=int, default=7)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--splits", default=",".join(SPLITS), help="iid, skew or both")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, help="runs in parallel processes")
    parser.add_argument("--out", help="output folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    return run(args.out, args.quick, rounds=args.rounds, seeds=args.seeds,
               eval_every=args.eval_every, clients_per_round=args.clients_per_round,
               strategies=tuple(args.strategies.split(",")), splits=tuple(args.splits.split(",")),
               lr=args.lr, workers=args.workers)


if __name__ == "__main__":
    main()
