"""The scenario generator: deterministic, faithful to its channel model, always solvable."""
import math

import numpy as np
import pytest
from scipy import stats

import lola
import lola.profiles
from lola import cli, generate


def test_same_seed_same_scenario_different_seed_different():
    assert generate.generate_scenario(12, seed=5) == generate.generate_scenario(12, seed=5)
    assert generate.generate_scenario(12, seed=5) != generate.generate_scenario(12, seed=6)
    for rate_model in ("fixed", "shannon"):
        options = {"rate_model": rate_model, "noise_figure_db": 7.0,
                   "max_spectral_efficiency": 5.5547}
        assert generate.to_yaml(generate.generate_scenario(12, seed=5, **options)) == \
            generate.to_yaml(generate.generate_scenario(12, seed=5, **options))
    first, second = (generate.scaled_instance(40, 12, seed=9) for _ in range(2))
    np.testing.assert_array_equal(first.device_spectral_efficiency,
                                  second.device_spectral_efficiency)


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
    noise_psd = 10 ** (-17.4) * 1e-3 * 10 ** 0.5  # -174 dBm/Hz and the 5 dB noise figure
    assert document["channel"]["noise_psd_w_per_hz"] == pytest.approx(noise_psd, rel=1e-6)
    for shannon_device, fixed_device in zip(document["devices"], fixed["devices"]):
        snr = 0.2 * shannon_device["channel_gain"] / (noise_psd * share)
        assert fixed_device["spectral_efficiency"] == pytest.approx(
            min(math.log2(1 + snr), 7.4063), rel=1e-3)


def test_fixed_efficiency_never_exceeds_the_256qam_cap():
    efficiencies = [device["spectral_efficiency"]
                    for n_devices in (1, 5, 12, 20, 40, 100) for seed in range(25)
                    for device in generate.generate_scenario(n_devices, seed=seed)["devices"]]
    assert max(efficiencies) == 7.4063
    assert sum(e == 7.4063 for e in efficiencies) > 100  # near devices sit at the cap
    instance = generate.scaled_instance(500, 12, seed=1)
    assert instance.device_spectral_efficiency.max() == 7.4063


def test_without_the_cap_near_devices_exceed_it_again():
    for max_spectral_efficiency in (None, 0):
        efficiencies = [device["spectral_efficiency"] for seed in range(5) for device in
                        generate.generate_scenario(
                            40, seed=seed, max_spectral_efficiency=max_spectral_efficiency)[
                            "devices"]]
        assert max(efficiencies) > 12
        assert sum(e > 7.4063 for e in efficiencies) > 20
    # both switches off: exactly the uncapped, noise-figure-free generator
    old = generate.generate_scenario(20, seed=0, noise_figure_db=None,
                                     max_spectral_efficiency=None)
    assert old["devices"][0] == {"name": "laptop-01", "flops_per_s": 2.192e12,
                                 "memory_bytes": 3.596e9, "spectral_efficiency": 17.79}
    assert "noise_psd_w_per_hz" not in generate.generate_scenario(
        5, rate_model="shannon", noise_figure_db=0)["channel"]


def test_noise_figure_lowers_the_snr_by_its_db_value():
    # P g / (N0 F b) with P = 0.2 W, g = 1e-12, b = 1 MHz: -6.9897 - 120 + 174 + 30 - 60 dB
    def snr_db(noise_figure_db):
        noise = generate.receiver_noise_psd_w_per_hz(noise_figure_db)
        return 10 * math.log10(0.2 * 1e-12 / (noise * 1e6))

    assert snr_db(None) == pytest.approx(17.0103, abs=1e-4)
    assert snr_db(5.0) == pytest.approx(12.0103, abs=1e-4)
    assert snr_db(0) - snr_db(7.5) == pytest.approx(7.5, abs=1e-12)
    quiet = generate.scaled_instance(30, 12, seed=3, rate_model="shannon", noise_figure_db=0)
    noisy = generate.scaled_instance(30, 12, seed=3, rate_model="shannon")
    np.testing.assert_allclose(10 * np.log10(quiet.device_snr_hz / noisy.device_snr_hz), 5.0,
                               rtol=1e-12)
    # the scenario's noise density, as the loader reads it, carries the same 5 dB (to the six
    # significant digits a scenario file keeps)
    scenario = lola.load_scenario(generate.generate_scenario(3, rate_model="shannon"))
    assert 10 * math.log10(scenario.channel.noise_psd_w_per_hz / 10 ** (-20.4)) == \
        pytest.approx(5.0, abs=5e-5)


@pytest.mark.parametrize("keyword, value", [("noise_figure_db", -1.0),
                                            ("noise_figure_db", math.inf),
                                            ("max_spectral_efficiency", -7.0),
                                            ("max_spectral_efficiency", math.nan)])
def test_bad_channel_options_are_refused(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        generate.generate_scenario(5, **{keyword: value})
    with pytest.raises(ValueError, match=keyword):
        generate.scaled_instance(5, 3, **{keyword: value})


def test_feasibility_warning_for_too_few_devices():
    message = generate.feasibility_warning(generate.generate_scenario(3, seed=0))
    assert message == ("3 devices for 12 blocks: a device trains at most one block, so at least "
                       "12 devices are needed")
    assert "\n" not in message
    for seed in range(5):
        assert generate.feasibility_warning(generate.generate_scenario(20, seed=seed)) is None
    assert generate.feasibility_warning(lola.default_scenario()) is None
    assert generate.feasibility_warning(lola.default_scenario_path()) is None


def test_feasibility_warning_for_memory():
    document = generate.generate_scenario(20, seed=0)
    memory = {b.name: b.memory_bytes for b in lola.profiles.load_profile("roberta-base").blocks}
    for device in document["devices"]:
        device["memory_bytes"] = 1.5e9
    message = generate.feasibility_warning(document)
    assert message.startswith(f"block layer.0 needs {memory['layer.0']:.4g} bytes of memory, "
                              "more than any device has (the most is 1.5e+09")
    # every block fits some device, but the blocks above 1.5e9 outnumber the two devices that
    # have room for them
    roomy = max(memory.values()) * 1.01
    document["devices"][0]["memory_bytes"] = roomy
    document["devices"][1]["memory_bytes"] = roomy
    big = sorted((m for m in memory.values() if m > 1.5e9), reverse=True)
    assert len(big) > 2
    message = generate.feasibility_warning(document)  # the first count that Hall's rule fails
    assert message == (f"3 blocks need at least {big[2]:.4g} bytes of memory each, but the "
                       "devices with that much memory can take only 2 of them")
    assert lola.solve(lola.load_scenario(document), problem="matching",
                      method="crunch").status == "infeasible"


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
