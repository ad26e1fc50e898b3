"""Loading and validating scenarios and profiles."""
import json
from pathlib import Path

import pytest

import lola
from lola.profiles import bundled_profiles, load_profile
from lola.profiles.analytic import analytic_profile


def test_good_scenario_loads_with_units(good_scenario):
    scenario = lola.load_scenario(good_scenario)
    assert [b.depth for b in scenario.blocks] == [1, 2]
    assert scenario.blocks[0].payload_bits == 32 * 24576
    assert scenario.channel.noise_psd_w_per_hz == pytest.approx(10 ** (-17.4) * 1e-3)
    assert scenario.devices[2].spectral_efficiency == 8.0


def test_yaml_reads_exponent_floats_and_json_reads_the_same(tmp_path, good_scenario):
    yaml_text = """
model: {profile: roberta-base}
devices:
  - {name: p, flops_per_s: 1e12, memory_bytes: 3e9, spectral_efficiency: 4}
channel: {total_bandwidth_hz: 2e7}
"""
    path = tmp_path / "s.yaml"
    path.write_text(yaml_text)
    scenario = lola.load_scenario(path)
    assert scenario.devices[0].flops_per_s == 1e12
    assert scenario.name == "s" and len(scenario.blocks) == 12


def test_profile_path_is_relative_to_the_scenario_file(tmp_path, good_scenario):
    profile = analytic_profile("roberta-base")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.json").write_text(json.dumps(profile))
    good_scenario["model"] = {"profile": "sub/mine.json"}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(good_scenario))
    assert len(lola.load_scenario(path).blocks) == 12


@pytest.mark.parametrize("name, layers", [("roberta-base", 12), ("roberta-large", 24)])
def test_bundled_profiles_are_monotone_and_count_what_the_formulas_say(name, layers):
    from lola.profiling import fit_latency

    assert name in bundled_profiles()
    profile = load_profile(name)
    assert len(profile.blocks) == layers
    assert [b.depth for b in profile.blocks] == list(range(1, layers + 1))
    # Measured FLOPs equal the exact matmul count of the configuration.
    counted = [b["flops"] for b in analytic_profile(name)["blocks"]]
    assert [b.flops for b in profile.blocks] == pytest.approx(counted, rel=1e-9)
    for shallow, deep in zip(profile.blocks, profile.blocks[1:]):
        assert deep.flops > shallow.flops and deep.memory_bytes > shallow.memory_bytes
    measurement = profile.info["measurement"]
    if measurement["method"] == "measured":
        document = json.loads(Path(profile.source).read_text())
        latency = [b["latency_s"] for b in document["blocks"]]
        fit = fit_latency([b["flops"] for b in document["blocks"]], latency)
        assert fit["r_squared"] >= 0.95
        assert fit == pytest.approx(document["checks"]["latency_fit"])
        assert measurement["host"]["libraries"]["torch"]


def test_analytic_roberta_base_numbers():
    blocks = analytic_profile("roberta-base")["blocks"]
    # one more frozen layer of input gradients per depth step:
    # F_bwd = 8bsh^2 + 8bs^2h + 4bshi with b=16, s=128, h=768, i=3072
    f_backward = 8 * 16 * 128 * 768**2 + 8 * 16 * 128**2 * 768 + 4 * 16 * 128 * 768 * 3072
    assert blocks[1]["flops"] - blocks[0]["flops"] == f_backward
    assert blocks[0]["params"] == 4 * 8 * 768
    # roberta-base has 124,645,632 parameters with its 2-label classification head
    from lola.profiles.analytic import ROBERTA_CONFIGS, model_parameters
    assert model_parameters(ROBERTA_CONFIGS["roberta-base"]) == 124_647_170


def mutate(document, path, value):
    target = document
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


BAD = [
    (("devices", 1, "memory_bytes"), -5, "devices[1].memory_bytes", "positive"),
    (("devices", 0, "memory_bytes"), KeyError, "devices[0].memory_bytes", "missing"),
    (("devices", 1, "colour"), "red", "devices[1].colour", "unknown key"),
    (("devices", 0, "flops_per_s"), "fast", "devices[0].flops_per_s", "number"),
    (("devices", 0, "flops_per_s"), True, "devices[0].flops_per_s", "number"),
    (("devices", 2, "flops_per_s"), float("nan"), "devices[2].flops_per_s", "nan"),
    (("devices", 2, "flops_per_s"), float("inf"), "devices[2].flops_per_s", "inf"),
    (("channel", "total_bandwidth_hz"), 0, "channel.total_bandwidth_hz", "got 0"),
    (("channel", "rate_model"), "magic", "channel.rate_model", "shannon"),
    (("devices", 1, "name"), "a", "devices[1].name", "duplicate"),
    (("model", "blocks", 1, "name"), "layer.1", "model.blocks[1].name", "duplicate"),
    (("devices",), [], "devices", "empty"),
    (("model", "blocks"), [], "model.blocks", "empty"),
    (("model", "blocks", 0, "params"), None, "model.blocks[0].params", "nothing"),
    (("model",), {"profile": "roberta-tiny"}, "model.profile", "no bundled profile"),
    (("model",), {"profile": "missing.json"}, "missing.json", "cannot read"),
    (("model", "profile"), "roberta-base", "model", "exactly one"),
    (("server",), {"flops": 1}, "server.flops", "unknown"),
    (("devices", 0, "spectral_efficiency"), KeyError, "devices[0].spectral_efficiency",
     "missing"),
    (("channel",), "wide", "channel", "mapping"),
    (("model", "bits_per_param"), -1, "model.bits_per_param", "positive"),
]


@pytest.mark.parametrize("path, value, key, words", BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_bad_scenarios_name_file_and_key(tmp_path, good_scenario, path, value, key, words):
    document = mutate(good_scenario, path, value)
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(document))
    with pytest.raises(lola.ScenarioError) as info:
        lola.load_scenario(file)
    message = str(info.value)
    assert str(file) in message or key.endswith(".json")
    assert key in message and words.lower() in message.lower(), message
    assert "\n" not in message


def test_malformed_and_unreadable_files(tmp_path):
    cases = {"broken.yaml": "model: [unclosed\n", "broken.json": '{"model": ',
             "list.yaml": "- 1\n- 2\n", "dup.yaml": "name: a\nname: b\n",
             "latin.yaml": b"name: caf\xe9\n"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(lola.ScenarioError) as info:
            lola.load_scenario(path)
        assert str(path) in str(info.value)
    with pytest.raises(lola.ScenarioError, match="cannot read"):
        lola.load_scenario(tmp_path / "nowhere.yaml")
    with pytest.raises(lola.ScenarioError, match="directory|cannot read"):
        lola.load_scenario(tmp_path)


def test_scenario_error_is_a_value_error():
    assert issubclass(lola.ScenarioError, ValueError)
