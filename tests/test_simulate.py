"""Many rounds (SPEC section 11): fresh channels and availability per round, every method solving
every round, the static variant, the JSON/CSV rows, the round export and the command line."""
import argparse
import csv
import io
import json
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout

import numpy as np
import pytest

import lola
from lola.generate import MAX_SPECTRAL_EFFICIENCY, generate_scenario
from lola.studies import rounds
from lola.studies.rounds import (export_round, load_availability_trace, round_scenario,
                                 simulate)

SPEC_TOP = {"scenario", "problem", "rounds", "seed", "per_round", "summary"}
EXTRA_TOP = {"fading", "shadowing_db", "max_spectral_efficiency", "availability", "static_of"}
SPEC_ROW = {"round", "method", "status", "round_latency_s", "solve_time_s", "energy_j"}
EXTRA_ROW = {"available_devices"}
SPEC_SUMMARY = {"method", "total_latency_s", "total_solve_time_s", "infeasible_rounds"}
EXTRA_SUMMARY = {"total_time_s", "completed_rounds", "common_rounds", "total_latency_common_s",
                 "total_time_common_s"}

FIXED = generate_scenario(16, seed=3)
SHANNON = generate_scenario(16, seed=4, rate_model="shannon")


def _without_time(simulation):
    """Everything of a simulation (or its JSON) but the measured solve times."""
    document = json.loads(json.dumps(simulation if isinstance(simulation, dict)
                                     else simulation.to_dict()))
    for row in document["per_round"]:
        row.pop("solve_time_s")
    for row in document["summary"]:
        row.pop("total_solve_time_s")
        row.pop("total_time_s")
        row.pop("total_time_common_s")
    return document


def _latency(simulation, round_index, method):
    return next(row["round_latency_s"] for row in simulation.per_round
                if row["round"] == round_index and row["method"] == method)


def _relative(a, b):
    return abs(a - b) / max(abs(a), abs(b))


# ---------------------------------------------------------------------------------------------
# Reproducibility


@pytest.mark.parametrize("problem", ["jbba", "matching"])
def test_same_seed_same_rounds_but_for_the_solve_times(problem):
    first = simulate(FIXED, problem=problem, rounds=3, seed=5, shadowing_db=4.0,
                     availability=0.9)
    second = simulate(FIXED, problem=problem, rounds=3, seed=5, shadowing_db=4.0,
                      availability=0.9)
    assert _without_time(first) == _without_time(second)
    assert len(first.per_round) == 3 * 4  # three methods and the static variant


def test_different_seeds_draw_different_rounds():
    one = simulate(FIXED, rounds=3, seed=1, methods=["exact"], static=False)
    two = simulate(FIXED, rounds=3, seed=2, methods=["exact"], static=False)
    assert one.latencies("exact").tolist() != two.latencies("exact").tolist()
    assert round_scenario(FIXED, 1, seed=1) != round_scenario(FIXED, 1, seed=2)


def test_a_rounds_draw_depends_neither_on_the_number_of_rounds_nor_on_the_methods():
    short = simulate(FIXED, rounds=2, seed=7, methods=["exact", "random"], static=False)
    long = simulate(FIXED, rounds=4, seed=7, methods=["random", "greedy", "exact"],
                    static=False)
    for method in ("exact", "random"):
        assert short.latencies(method).tolist() == long.latencies(method)[:2].tolist()
    # the rounds differ from one another
    assert len(set(long.latencies("exact").tolist())) == 4


def test_the_executor_does_not_change_the_rounds():
    alone = simulate(FIXED, rounds=3, seed=2, methods=["exact", "greedy"])
    with ThreadPoolExecutor(2) as pool:
        pooled = simulate(FIXED, rounds=3, seed=2, methods=["exact", "greedy"], executor=pool)
    assert _without_time(alone) == _without_time(pooled)


def test_progress_is_reported_once_per_round():
    calls = []
    simulate(FIXED, problem="matching", rounds=4, methods=["crunch"],
             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


# ---------------------------------------------------------------------------------------------
# The channel model


def _power_draws(seed, round_index, count, *, rayleigh=True, shadowing_db=None):
    """The documented draw, written out again: Exp(1) fading, then N(0, 1) scaled by sigma dB."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(round_index)[round_index - 1])
    fades, shadows = rng.exponential(1.0, count), rng.normal(0.0, 1.0, count)
    power = fades if rayleigh else np.ones(count)
    if shadowing_db:
        power = power * 10 ** (shadowing_db * shadows / 10)
    return np.maximum(power, rounds.MIN_POWER_DRAW)


@pytest.mark.parametrize("shadowing_db", [None, 6.0])
def test_fixed_model_efficiency_follows_the_mean_snr_times_the_draw(shadowing_db):
    base = lola.load_scenario(FIXED)
    played = round_scenario(FIXED, 3, seed=11, shadowing_db=shadowing_db)
    power = _power_draws(11, 3, len(base.devices), shadowing_db=shadowing_db)
    for device, faded, draw in zip(base.devices, played.devices, power):
        mean_snr = 2 ** device.spectral_efficiency - 1
        expected = min(math.log2(1 + mean_snr * draw), MAX_SPECTRAL_EFFICIENCY)
        assert faded.spectral_efficiency == pytest.approx(expected, rel=1e-12)
        assert faded.flops_per_s == device.flops_per_s
    efficiencies = [d.spectral_efficiency for d in played.devices]
    assert max(efficiencies) <= MAX_SPECTRAL_EFFICIENCY
    assert len(set(efficiencies)) > len(efficiencies) // 2  # the fades are not all capped


def test_the_cap_can_be_switched_off():
    played = round_scenario(FIXED, 1, seed=0, max_spectral_efficiency=None)
    assert max(d.spectral_efficiency for d in played.devices) > MAX_SPECTRAL_EFFICIENCY


def test_shannon_gain_is_the_mean_gain_times_the_draw():
    base = lola.load_scenario(SHANNON)
    played = round_scenario(SHANNON, 2, seed=9)
    power = _power_draws(9, 2, len(base.devices))
    for device, faded, draw in zip(base.devices, played.devices, power):
        assert faded.channel_gain == pytest.approx(device.channel_gain * draw, rel=1e-12)
        assert faded.tx_power_w == device.tx_power_w


def test_without_fading_the_channel_is_static_and_the_static_variant_loses_nothing():
    simulation = simulate(FIXED, rounds=3, seed=4, fading="none", methods=["exact"])
    base = lola.load_scenario(FIXED)
    assert round_scenario(FIXED, 2, fading="none").devices == base.devices
    latencies = simulation.latencies("exact")
    assert latencies.tolist() == [latencies[0]] * 3
    for static, exact in zip(simulation.latencies("static-exact"), latencies):
        assert _relative(static, exact) <= 1e-6


# ---------------------------------------------------------------------------------------------
# Every round is an ordinary instance


@pytest.mark.parametrize("scenario, problem, methods", [
    (FIXED, "jbba", ["exact", "dual-ascent", "greedy", "min-sum"]),
    (SHANNON, "jbba", ["exact", "greedy", "min-sum"]),
    (FIXED, "matching", ["crunch", "bottleneck", "greedy", "min-sum"])])
def test_the_exact_method_is_never_beaten_in_a_round(scenario, problem, methods):
    simulation = simulate(scenario, problem=problem, rounds=3, seed=1, shadowing_db=3.0,
                          methods=methods)
    exact = methods[0]
    for round_index in range(1, 4):
        best = _latency(simulation, round_index, exact)
        for method in simulation.methods[1:]:
            other = _latency(simulation, round_index, method)
            assert best <= other * (1 + 1e-9), (round_index, method, best, other)


@pytest.mark.parametrize("scenario, problem", [(FIXED, "jbba"), (SHANNON, "jbba"),
                                               (FIXED, "matching")])
def test_each_round_solved_on_its_own_gives_the_simulations_latency(scenario, problem):
    options = {"seed": 3, "shadowing_db": 5.0, "availability": 0.95}
    simulation = simulate(scenario, problem=problem, rounds=3, methods=["greedy"],
                          static=False, **options)
    method = lola.default_method(problem)
    with_exact = simulate(scenario, problem=problem, rounds=3, methods=[method], static=False,
                          **options)
    for round_index in range(1, 4):
        played = round_scenario(scenario, round_index, **options)
        for sim, name in ((simulation, "greedy"), (with_exact, method)):
            alone = lola.solve(played, problem, name)
            assert alone.round_latency_s == _latency(sim, round_index, name)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("scenario", [FIXED, SHANNON], ids=["fixed", "shannon"])
def test_an_exported_round_reads_back_as_the_same_instance(tmp_path, scenario, suffix):
    options = {"seed": 8, "shadowing_db": 4.0, "availability": 0.8}
    path = export_round(scenario, 2, tmp_path / f"round{suffix}", **options)
    again = lola.load_scenario(str(path))
    played = round_scenario(scenario, 2, **options)
    assert again.name == played.name == f"{scenario['name']}-round2"
    assert again.devices == played.devices
    assert lola.solve(again).round_latency_s == lola.solve(played).round_latency_s
    assert len(again.devices) < len(scenario["devices"])  # somebody sat this round out


def test_exporting_a_scenario_file_with_a_relative_profile_path(tmp_path):
    folder = tmp_path / "lab"
    folder.mkdir()
    profile = json.loads((lola.api.default_scenario_path().parent.parent / "profiles"
                          / "roberta-base.json").read_text())
    (folder / "my-profile.json").write_text(json.dumps(profile))
    document = dict(FIXED, model=dict(FIXED["model"], profile="my-profile.json"))
    (folder / "lab.json").write_text(json.dumps(document))
    (tmp_path / "elsewhere").mkdir()  # a file is written in a folder that exists: none is made
    path = export_round(str(folder / "lab.json"), 1, tmp_path / "elsewhere" / "round.yaml")
    assert lola.solve(str(path)).round_latency_s == lola.solve(
        round_scenario(str(folder / "lab.json"), 1)).round_latency_s


# ---------------------------------------------------------------------------------------------
# The static variant


@pytest.mark.parametrize("problem, method", [("jbba", "exact"), ("matching", "crunch")])
def test_the_static_variant_in_round_one_is_its_method(problem, method):
    simulation = simulate(FIXED, problem=problem, rounds=3, seed=6, methods=[method, "greedy"])
    assert simulation.methods == [method, "greedy", f"static-{method}"]
    assert simulation.static_of == method
    static, original = _latency(simulation, 1, f"static-{method}"), _latency(simulation, 1,
                                                                           method)
    assert _relative(static, original) <= (1e-6 if problem == "jbba" else 0.0)
    # later rounds: the kept allocation is no better than the re-allocated optimum
    for round_index in (2, 3):
        assert _latency(simulation, round_index, method) <= _latency(
            simulation, round_index, f"static-{method}") * (1 + 1e-9)
    rows = simulation.rows(f"static-{method}")
    assert rows[0]["solve_time_s"] == simulation.rows(method)[0]["solve_time_s"]
    assert [row["solve_time_s"] for row in rows[1:]] == [0.0, 0.0]


def test_the_static_variant_recomputes_the_kept_assignment_on_each_rounds_channel():
    simulation = simulate(FIXED, problem="matching", rounds=3, seed=2, methods=["crunch"])
    first = round_scenario(FIXED, 1, seed=2)
    kept = lola.solve(first, "matching", "crunch")
    names = [pair["device"] for pair in kept.assignment]
    for round_index in (2, 3):
        played = round_scenario(FIXED, round_index, seed=2)
        device = {d.name: d for d in played.devices}
        share = played.channel.total_bandwidth_hz / len(played.blocks)
        expected = max(lola.costs.latency_s(block, device[name], played.channel, share)
                       for block, name in zip(played.blocks, names))
        assert _latency(simulation, round_index, "static-crunch") == pytest.approx(expected,
                                                                                  rel=1e-12)


def test_a_round_without_one_of_the_static_devices_is_infeasible_for_it():
    first = lola.solve(round_scenario(FIXED, 1, seed=0), "matching", "crunch")
    kept = first.assignment[0]["device"]
    trace = {kept: [1, 0, 1]}
    simulation = simulate(FIXED, problem="matching", rounds=3, methods=["crunch"],
                          availability_trace=trace)
    assert [row["status"] for row in simulation.rows("static-crunch")] == [
        "feasible", "infeasible", "feasible"]
    assert [row["status"] for row in simulation.rows("crunch")] == ["optimal"] * 3
    summary = {row["method"]: row for row in simulation.summary}
    assert summary["static-crunch"]["infeasible_rounds"] == 1
    assert summary["crunch"]["infeasible_rounds"] == 0
    assert summary["static-crunch"]["total_latency_s"] == pytest.approx(
        sum(row["round_latency_s"] for row in simulation.rows("static-crunch")
            if row["round_latency_s"] is not None))


def test_no_static_variant_when_asked():
    simulation = simulate(FIXED, rounds=2, methods=["greedy"], static=False)
    assert simulation.methods == ["greedy"] and simulation.static_of is None
    assert {row["method"] for row in simulation.per_round} == {"greedy"}


# ---------------------------------------------------------------------------------------------
# Availability


def test_a_device_with_availability_zero_never_takes_part():
    name = FIXED["devices"][4]["name"]
    simulation = simulate(FIXED, problem="matching", rounds=4, methods=["crunch"],
                          availability={name: 0.0})
    for round_index in range(1, 5):
        played = round_scenario(FIXED, round_index, availability={name: 0.0})
        assert name not in [d.name for d in played.devices]
        assert len(played.devices) == len(FIXED["devices"]) - 1
    assert {row["available_devices"] for row in simulation.per_round} == {15}


def test_a_probability_below_one_leaves_devices_out_at_that_rate():
    counts = [len(round_scenario(FIXED, r, seed=1, availability=0.5).devices)
              for r in range(1, 41)]
    assert 0.35 * 16 < np.mean(counts) < 0.65 * 16
    assert len(set(counts)) > 3


def test_nobody_available_is_an_infeasible_simulation_with_exit_status_one():
    simulation = simulate(FIXED, rounds=2, availability=0.0)
    assert simulation.status == "infeasible"
    assert {row["status"] for row in simulation.per_round} == {"infeasible"}
    assert all(row["infeasible_rounds"] == 2 for row in simulation.summary)
    assert _run_cli(["--availability", "0", "--rounds", "2"])[0] == 1


def _trace_files(tmp_path):
    names = [device["name"] for device in FIXED["devices"][:2]]
    csv_path = tmp_path / "trace.csv"
    csv_path.write_text(f"round,{names[0]},{names[1]}\n1,1,0\n2,0,1\n3,true,false\n")
    json_path = tmp_path / "trace.json"
    json_path.write_text(json.dumps({names[0]: [1, 0, True], names[1]: [0, 1, False]}))
    return names, csv_path, json_path


def test_an_availability_trace_is_read_from_csv_or_json(tmp_path):
    names, csv_path, json_path = _trace_files(tmp_path)
    expected = {names[0]: (True, False, True), names[1]: (False, True, False)}
    assert load_availability_trace(csv_path) == expected
    assert load_availability_trace(json_path) == expected
    for path in (csv_path, json_path):
        for round_index, present in enumerate([(True, False), (False, True), (True, False)],
                                              start=1):
            played = [d.name for d in round_scenario(FIXED, round_index,
                                                     availability_trace=path).devices]
            assert [name in played for name in names] == list(present)
            assert len(played) == len(FIXED["devices"]) - 1  # the others: always there
    simulation = simulate(FIXED, rounds=3, methods=["greedy"], availability_trace=csv_path)
    assert simulation.to_dict()["availability"] == "trace"


@pytest.mark.parametrize("text, words", [
    ("round,nobody\n1,1\n", ["trace.csv", "nobody", "no device"]),
    ("round,phone-01\n1,2\n", ["trace.csv", "phone-01 (round 1)", "1 or 0"]),
    ("round,phone-01\n2,1\n", ["trace.csv", "expected 1"]),
    ("device,phone-01\n1,1\n", ["trace.csv", "header", "round"]),
    ("round,phone-01\n1,1,0\n", ["trace.csv", "line 2", "cells"]),
    ("round,phone-01\n1,1\n", ["trace.csv", "phone-01", "1 rounds, fewer than the 2"]),
])
def test_a_bad_csv_trace_is_one_line_naming_the_file_and_the_column(tmp_path, text, words):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        simulate(FIXED, rounds=2, availability_trace=path)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("document, words", [
    ([1, 0], ["trace.json", "mapping"]),
    ({"phone-01": [1, 0.5]}, ["trace.json", "phone-01[1]", "1 or 0"]),
    ({"phone-01": [1, 1], "tablet-01": [1]}, ["trace.json", "tablet-01", "1 rounds"]),
    ({"phone-01": "yes"}, ["trace.json", "phone-01", "list"]),
])
def test_a_bad_json_trace_is_one_line_naming_the_file_and_the_key(tmp_path, document, words):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as caught:
        simulate(FIXED, rounds=2, availability_trace=path)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("options, words", [
    ({"rounds": 0}, ["rounds", "positive integer"]),
    ({"seed": -1}, ["seed"]),
    ({"fading": "rician"}, ["fading", "rayleigh"]),
    ({"shadowing_db": -2.0}, ["shadowing_db"]),
    ({"shadowing_db": float("nan")}, ["shadowing_db"]),
    ({"availability": 1.5}, ["availability", "[0, 1]"]),
    ({"availability": {"nobody": 0.5}}, ["availability", "nobody"]),
    ({"max_spectral_efficiency": -1.0}, ["max_spectral_efficiency"]),
    ({"methods": ["exakt"]}, ["methods", "exakt", "exact"]),
    ({"methods": ["greedy", "greedy"]}, ["methods", "twice"]),
    ({"methods": ["crunch"]}, ["methods", "crunch"]),
    ({"methods": []}, ["methods"]),
    ({"problem": "knapsack"}, ["problem", "knapsack"]),
    ({"methods": ["centralized", "exact"]}, ["static", "centralized"]),
])
def test_bad_options_are_one_line_value_errors_naming_the_option(options, words):
    with pytest.raises(ValueError) as caught:
        simulate(FIXED, **{"rounds": 2, **options})
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# ---------------------------------------------------------------------------------------------
# Rows, JSON, CSV


def test_the_json_has_the_specification_keys_and_the_documented_extras():
    document = json.loads(json.dumps(simulate(FIXED, rounds=2, seed=1).to_dict()))
    assert set(document) == SPEC_TOP | EXTRA_TOP
    assert list(document)[:6] == ["scenario", "problem", "rounds", "seed", "per_round",
                                  "summary"]
    assert (document["scenario"], document["problem"], document["rounds"],
            document["seed"]) == (FIXED["name"], "jbba", 2, 1)
    for row in document["per_round"]:
        assert set(row) == SPEC_ROW | EXTRA_ROW
        assert row["energy_j"] is None  # no device of this scenario has its powers
    assert [row["method"] for row in document["summary"]] == ["exact", "greedy", "min-sum",
                                                             "static-exact"]
    for row in document["summary"]:
        assert set(row) == SPEC_SUMMARY | EXTRA_SUMMARY
        assert row["total_time_s"] == pytest.approx(row["total_latency_s"]
                                                    + row["total_solve_time_s"])
    assert [(row["round"], row["method"]) for row in document["per_round"]][:5] == [
        (1, "exact"), (1, "greedy"), (1, "min-sum"), (1, "static-exact"), (2, "exact")]
    assert document["fading"] == "rayleigh"
    assert document["max_spectral_efficiency"] == MAX_SPECTRAL_EFFICIENCY


def test_the_csv_has_one_row_per_round_and_method():
    simulation = simulate(FIXED, rounds=2, seed=1, availability={"phone-01": 0.0})
    rows = list(csv.DictReader(io.StringIO(simulation.to_csv())))
    assert list(rows[0]) == list(rounds.ROW_COLUMNS)
    assert len(rows) == len(simulation.per_round) == 8
    for text, row in zip(rows, simulation.per_round):
        assert float(text["round_latency_s"]) == row["round_latency_s"]  # round-trips
        assert text["energy_j"] == ""


# ---------------------------------------------------------------------------------------------
# Figures


@pytest.mark.parametrize("plot", [rounds.plot_cumulative_time, rounds.plot_latency_distribution])
def test_figures_have_units_a_legend_outside_and_readable_text(plot):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    simulation = simulate(FIXED, problem="matching", rounds=3, methods=["crunch", "greedy"],
                          availability={"phone-01": 0.0})
    figure = plot(simulation)
    try:
        ax = figure.axes[0]
        assert "(s)" in ax.get_ylabel()
        [legend] = figure.legends
        assert [t.get_text().split(",")[0] for t in legend.get_texts()] == [
            "crunch", "greedy", "crunch"]
        assert "static" in legend.get_texts()[2].get_text()
        figure.canvas.draw()
        below = ax.get_tightbbox().y0
        assert legend.get_window_extent().y1 <= below + 1  # outside the data, underneath
        texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_text()]
        assert min(t.get_fontsize() for t in texts) >= 9
    finally:
        plt.close(figure)


# ---------------------------------------------------------------------------------------------
# Command line


def _parser():
    parser = argparse.ArgumentParser(prog="lola simulate")
    rounds.add_arguments(parser)
    return parser


def _run_cli(argv):
    args = _parser().parse_args(argv)
    out = io.StringIO()
    with redirect_stdout(out):
        code = rounds.run_command(args)
    return code, out.getvalue()


def test_every_option_has_a_help_string():
    for action in _parser()._actions:
        assert action.help, action.dest


def test_the_command_prints_the_json_and_writes_the_csv_and_the_figures(tmp_path, write_json):
    scenario = write_json(FIXED)
    code, out = _run_cli([str(scenario), "--problem", "matching", "--methods", "crunch,greedy",
                          "--rounds", "3", "--seed", "2", "--json", "--csv",
                          str(tmp_path / "rows.csv"), "--figure", str(tmp_path / "time.png"),
                          "--latency-figure", str(tmp_path / "latency.png")])
    assert code == 0
    document = json.loads(out)
    same = simulate(str(scenario), problem="matching", methods=["crunch", "greedy"], rounds=3,
                    seed=2)
    assert _without_time(same) == _without_time(document)
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == 1 + 3 * 3
    assert (tmp_path / "time.png").stat().st_size > 0
    assert (tmp_path / "latency.png").stat().st_size > 0


def test_the_command_prints_a_summary_table():
    code, out = _run_cli(["--rounds", "2", "--methods", "exact,greedy"])
    assert code == 0
    assert "static-exact" in out and "infeasible rounds" in out
    code, out = _run_cli(["--rounds", "2", "--methods", "exact,greedy", "--no-static"])
    assert code == 0 and "static" not in out and "greedy" in out


def test_the_command_exports_a_round_that_lola_solve_reads(tmp_path, write_json):
    scenario = write_json(FIXED)
    code, out = _run_cli([str(scenario), "--seed", "4", "--shadowing-db", "3",
                          "--export-round", "2", "-o", str(tmp_path / "round2.yaml")])
    assert code == 0 and out == ""
    from lola.cli import main
    solved = io.StringIO()
    with redirect_stdout(solved):
        assert main(["solve", str(tmp_path / "round2.yaml"), "--json"]) == 0
    simulation = simulate(str(scenario), rounds=2, seed=4, shadowing_db=3.0)
    assert json.loads(solved.getvalue())["round_latency_s"] == _latency(simulation, 2, "exact")


@pytest.mark.parametrize("argv, words", [
    (["--rounds", "0"], ["--rounds"]),
    (["--shadowing-db", "-1"], ["--shadowing-db"]),
    (["--availability", "2"], ["--availability"]),
    (["--methods", "exact,nope"], ["--methods", "nope"]),
    (["--export-round", "2"], ["--export-round", "-o"]),
    (["-o", "x.yaml"], ["-o", "--export-round"]),
    (["--export-round", "0", "-o", "x.yaml"], ["--export-round"]),
    (["--figure", "time.gif"], ["--figure", "png"]),
    (["--availability-trace", "missing.csv"], ["missing.csv", "cannot read"]),
])
def test_bad_command_lines_are_one_line_value_errors_naming_the_option(argv, words):
    with pytest.raises(ValueError) as caught:
        _run_cli(argv)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message
