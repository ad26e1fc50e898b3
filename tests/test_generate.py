"""The scenario generator: deterministic, faithful to its channel model, always solvable."""
import math

import numpy as np
import pytest
from scipy import stats

import lola
from lola import cli, generate


def test_same_seed_same_scenario_different_seed_different():
    assert generate.generate_scenario(12, seed=5) == generate.generate_scenario(12, seed=5)
    assert generate.generate_scenario(12, seed=5) != generate.generate_scenario(12, seed=6)


def test_mean_path_loss_matches_the_model():
    rng = np.random.default_rng(0)
    distance, loss, fading, gain = generate.draw_channel(rng, 200_000)
    low, high = generate.DISTANCE_RANGE_M
    # E[log10 d] for d ~ U[a, b]: (b ln b - a ln a - (b - a)) / ((b - a) ln 10)
    mean_log10 = (high * math.log(high) - low * math.log(low) - (high - low)) / (
        (high - low) * math.log(10))
    expected = 128.1 + 37.6 * (mean_log10 - 3)
    assert loss.mean() == pytest.approx(expected, abs=0.05)
    assert distance.min() >= low and distance.max() <= high
    np.testing.assert_allclose(gain, 10 ** (-loss / 10) * fading)


def test_fading_power_is_exponential_with_unit_mean():
    _, _, fading, _ = generate.draw_channel(np.random.default_rng(1), 50_000)
    assert fading.mean() == pytest.approx(1.0, abs=0.02)
    assert stats.kstest(fading, "expon").pvalue > 0.01


def test_fixed_spectral_efficiency_is_shannon_at_the_equal_share():
    document = generate.generate_scenario(30, seed=2, rate_model="shannon")
    fixed = generate.generate_scenario(30, seed=2, rate_model="fixed")
    share = 20e6 / 12
    for shannon_device, fixed_device in zip(document["devices"], fixed["devices"]):
        snr = 0.2 * shannon_device["channel_gain"] / (10 ** (-17.4) * 1e-3 * share)
        assert fixed_device["spectral_efficiency"] == pytest.approx(math.log2(1 + snr), rel=1e-3)


@pytest.mark.parametrize("rate_model", ["fixed", "shannon"])
@pytest.mark.parametrize("seed", range(4))
def test_every_generated_scenario_loads_and_solves(rate_model, seed, tmp_path):
    path = tmp_path / "generated.yaml"
    assert cli.main(["scenario", "generate", "--devices", "25", "--seed", str(seed),
                     "--rate-model", rate_model, "-o", str(path)]) == 0
    scenario = lola.load_scenario(path)
    assert len(scenario.devices) == 25
    for problem, method in (("matching", "crunch"), ("jbba", "exact"), ("jbba", "dual-ascent")):
        result = lola.solve(scenario, problem=problem, method=method)
        assert result.status in ("optimal", "feasible", "infeasible")
        assert (result.round_latency_s is None) == (result.status == "infeasible")


def test_device_classes_cover_their_ranges():
    document = generate.generate_scenario(400, seed=3)
    by_class = {}
    for device in document["devices"]:
        by_class.setdefault(device["name"].split("-")[0], []).append(device)
    assert set(by_class) == set(generate.DEVICE_CLASSES)
    for name, devices in by_class.items():
        _, speed, memory = generate.DEVICE_CLASSES[name]
        assert all(speed[0] * 0.999 <= d["flops_per_s"] <= speed[1] * 1.001 for d in devices)
        assert all(memory[0] * 0.999 <= d["memory_bytes"] <= memory[1] * 1.001 for d in devices)


def test_bundled_default_scenario_is_the_generator_output():
    text = lola.default_scenario_path().read_text()
    expected = generate.to_yaml(generate.generate_scenario(20, seed=0),
                                command="lola scenario generate --devices 20 --profile "
                                        "roberta-base --rate-model fixed --bandwidth 2e+07 "
                                        "--seed 0")
    assert text == expected


def test_bad_generator_arguments_exit_2(capsys):
    assert cli.main(["scenario", "generate", "--devices", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
