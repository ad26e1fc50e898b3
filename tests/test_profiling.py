"""The real profiler on a tiny RoBERTa: exact FLOP counts, monotone costs, atomic output."""
import json

import pytest

torch = pytest.importorskip("torch", reason="profiling needs the profile extra")
pytest.importorskip("peft")
pytest.importorskip("transformers")

import lola  # noqa: E402
from lola import cli, profiling  # noqa: E402
from lola.profiles import load_profile  # noqa: E402
from lola.profiles.analytic import analytic_profile  # noqa: E402

TINY = dict(num_hidden_layers=3, hidden_size=64, intermediate_size=128, num_attention_heads=4,
            vocab_size=1000, max_position_embeddings=130)
TUNING = dict(batch_size=4, sequence_length=32)


@pytest.fixture(scope="module")
def tiny_profile():
    settings = profiling.ProfileSettings(config=TINY, repetitions=2, warmup=1, **TUNING)
    return profiling.profile_model(settings, progress=False)


def test_flops_equal_the_analytic_matmul_count(tiny_profile):
    analytic = analytic_profile("roberta-base", config=TINY, fine_tuning=TUNING)["blocks"]
    for measured, counted in zip(tiny_profile["blocks"], analytic):
        assert measured["depth"] == counted["depth"]
        assert measured["flops"] == pytest.approx(counted["flops"], rel=1e-6)
        assert measured["params"] == counted["params"] == 4 * 8 * 64


def test_flops_and_memory_strictly_increase_with_depth(tiny_profile):
    blocks = sorted(tiny_profile["blocks"], key=lambda b: b["depth"])
    assert [b["name"] for b in blocks] == ["layer.2", "layer.1", "layer.0"]
    for shallow, deep in zip(blocks, blocks[1:]):
        assert deep["flops"] > shallow["flops"]
        assert deep["memory_bytes"] > shallow["memory_bytes"]
    checks = tiny_profile["checks"]["monotone"]
    assert checks["flops"]["non_decreasing"] and checks["memory_bytes"]["non_decreasing"]
    assert tiny_profile["measurement"]["method"] == "measured"
    assert "saved_tensors_hooks" in tiny_profile["measurement"]["memory"]
    assert tiny_profile["measurement"]["host"]["libraries"]["torch"] == torch.__version__


def test_profile_round_trips_through_the_loader_into_a_solvable_scenario(tmp_path, tiny_profile):
    path = profiling.write_profile(tiny_profile, tmp_path / "tiny.json")
    profile = load_profile(str(path))
    assert [b.flops for b in profile.blocks] == [b["flops"] for b in tiny_profile["blocks"]]
    scenario = lola.load_scenario({
        "model": {"profile": str(path)},
        "devices": [{"name": f"d{k}", "flops_per_s": 1e10 * (k + 1), "memory_bytes": 1e8,
                     "spectral_efficiency": 2.0} for k in range(4)],
        "channel": {"total_bandwidth_hz": 1e6}})
    assert lola.solve(scenario, problem="jbba", method="exact").status == "optimal"


def test_interrupted_profile_leaves_no_file_and_keeps_an_old_one(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = profiling._profile_layer

    def interrupt_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(profiling, "_profile_layer", interrupt_on_second)
    fresh = tmp_path / "fresh.json"
    args = ["profile", "roberta-base", "--layers", "3", "--hidden-size", "64",
            "--intermediate-size", "128", "--heads", "4", "--batch-size", "2",
            "--sequence-length", "16", "--repetitions", "1", "--warmup", "0", "--quiet"]
    assert cli.main(args + ["-o", str(fresh)]) == 130
    assert not fresh.exists() and list(tmp_path.iterdir()) == []
    old = tmp_path / "old.json"
    old.write_text('{"previous": true}')
    calls["n"] = 0
    assert cli.main(args + ["-o", str(old)]) == 130
    assert json.loads(old.read_text()) == {"previous": True}
    assert "not written" in capsys.readouterr().err


def test_cli_profile_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "cli.json"
    code = cli.main(["profile", "roberta-base", "--layers", "2", "--hidden-size", "32",
                     "--intermediate-size", "64", "--heads", "2", "--batch-size", "2",
                     "--sequence-length", "8", "--repetitions", "1", "--warmup", "0",
                     "--quiet", "-o", str(out)])
    assert code == 0 and len(load_profile(str(out)).blocks) == 2
    assert "R^2" in capsys.readouterr().out  # the fit is reported, whatever the timings


def test_distilbert_profiles_with_its_own_projection_names():
    settings = profiling.ProfileSettings(model="distilbert-base-uncased",
                                         config=dict(n_layers=2, dim=32, hidden_dim=64,
                                                     n_heads=2, vocab_size=500),
                                         batch_size=2, sequence_length=8, repetitions=1,
                                         warmup=0)
    document = profiling.profile_model(settings, progress=False)
    assert [b["params"] for b in document["blocks"]] == [4 * 8 * 32] * 2
    assert document["blocks"][1]["flops"] > document["blocks"][0]["flops"]


def test_fit_and_monotonicity_report():
    fit = profiling.fit_latency([1e9, 2e9, 3e9], [0.11, 0.21, 0.31])
    assert fit["throughput_flops_per_s"] == pytest.approx(1e10)
    assert fit["r_squared"] == pytest.approx(1.0)
    report = profiling.monotonicity_report([
        {"depth": 1, "flops": 1, "memory_bytes": 1, "latency_s": 0.2},
        {"depth": 2, "flops": 2, "memory_bytes": 2, "latency_s": 0.1}])
    assert report["latency_s"] == {"non_decreasing": False, "drops_at_depth": [2]}
    assert report["flops"]["non_decreasing"]
