"""The Pareto front of fine-tuning configurations (specification, section 13)."""
import argparse
import csv
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lola
from lola.profiles import load_profile
from lola.profiles.analytic import analytic_profile
from lola.studies.pareto import (add_arguments, configure, grid_representatives, knee_index,
                                 non_dominated, pareto, plot_pareto, run_command)

SMALL = dict(layers=[1, 2, 3, 12], ranks=(1, 8, 32))


@pytest.fixture(scope="module")
def scenario():
    return lola.default_scenario()


@pytest.fixture(scope="module")
def small(scenario):
    return pareto(scenario, **SMALL)


def _dominates(a, b):
    return bool(np.all(a <= b) and np.any(a < b))


def _brute_front(values, valid=None):
    valid = np.ones(len(values), bool) if valid is None else valid
    return np.array([valid[i] and not any(valid[j] and _dominates(values[j], values[i])
                                          for j in range(len(values)))
                     for i in range(len(values))])


# --- the front on arbitrary point sets ------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_front_is_exactly_the_undominated_points(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(2, 4))
    values = rng.integers(0, 6, size=(n, m)).astype(float)  # small range: many ties
    valid = rng.random(n) > 0.15
    front = non_dominated(values, valid)
    assert front.tolist() == _brute_front(values, valid).tolist()
    for i in range(n):
        dominated = any(valid[j] and _dominates(values[j], values[i]) for j in range(n))
        if front[i]:
            assert valid[i] and not dominated
        elif valid[i]:
            assert dominated  # every other feasible point is dominated by some point
    assert not front[~valid].any()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)),
                min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_front_ignores_order_and_dominated_additions(rows, rnd):
    values = np.array(rows, float)
    front = non_dominated(values)
    permutation = list(range(len(rows)))
    rnd.shuffle(permutation)
    assert non_dominated(values[permutation]).tolist() == front[permutation].tolist()
    # adding a point that some point dominates changes nothing for the others
    worse = values[rnd.randrange(len(rows))] + np.array([1, 0, rnd.randrange(2)])
    grown = non_dominated(np.vstack([values, worse]))
    assert grown[:-1].tolist() == front.tolist() and not grown[-1]
    # equal points do not dominate each other
    doubled = non_dominated(np.vstack([values, values]))
    assert doubled.tolist() == front.tolist() * 2


def test_knee_is_the_point_farthest_from_the_extremes_line():
    assert knee_index([[0, 10], [1, 3], [3, 1], [10, 0]]) == 1
    assert knee_index([[0, 1], [0.4, 0.4], [1, 0]]) == 1 and knee_index([[2, 2]]) == 0
    rng = np.random.default_rng(3)
    for _ in range(20):  # two objectives: the minimum of the sum of the scaled objectives
        values = rng.random((15, 2))
        values = values[non_dominated(values)]
        if len(values) < 2:
            continue
        scaled = (values - values.min(0)) / np.ptp(values, axis=0)
        assert knee_index(values) == int(np.argmin(scaled.sum(axis=1)))


def test_grid_keeps_one_representative_per_occupied_cell():
    rng = np.random.default_rng(0)
    values = rng.random((80, 2))
    picks = grid_representatives(values, cells=4)
    cells = {tuple(np.minimum(np.floor(v * 4), 3).astype(int))
             for v in (values - values.min(0)) / np.ptp(values, axis=0)}
    assert len(picks) == len(cells)
    with pytest.raises(ValueError, match="acme_cells"):
        grid_representatives(values, cells=0)


# --- configurations -------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 4, 8, 32])
def test_configured_flops_and_params_equal_the_analytic_count(scenario, rank):
    counted = analytic_profile("roberta-base", fine_tuning={"rank": rank})["blocks"]
    configured = configure(scenario, layers=12, rank=rank)
    assert [b.name for b in configured.blocks] == [b["name"] for b in counted]
    assert [b.flops for b in configured.blocks] == [b["flops"] for b in counted]
    assert [b.params for b in configured.blocks] == [b["params"] for b in counted]
    assert [b.depth for b in configured.blocks] == list(range(1, 13))


def test_rank_8_on_every_layer_is_the_measured_profile(scenario):
    profile = load_profile("roberta-base")
    configured = configure(scenario, layers=12, rank=8)
    for block, measured in zip(configured.blocks, profile.blocks):
        assert (block.name, block.flops, block.memory_bytes, block.params) == \
            (measured.name, measured.flops, measured.memory_bytes, measured.params)
    assert configured.devices == scenario.devices and configured.channel == scenario.channel
    assert configured.server == scenario.server and "top 12, rank 8" in configured.name


def test_memory_is_measured_plus_the_adapter_adjustment(scenario):
    measured = load_profile("roberta-base").blocks
    configured = configure(scenario, layers=3, rank=16)
    # weights and two AdamW moments, 12 bytes x (D(16) - D(8)) with D = 4 h r, plus
    # 4 b s (2 x 16 - 2 x 8) bytes of A x (what the profiler measures between ranks)
    delta = 12 * 4 * 768 * 8 + 4 * 16 * 128 * 16
    assert delta == 425984
    assert [b.memory_bytes for b in configured.blocks] == \
        [m.memory_bytes + delta for m in measured[:3]]


def test_configure_is_reachable_from_the_study_function():
    assert pareto.configure is configure  # lola.pareto.configure, as the specification spells it


# Peak memory per depth (depth 1 first) that lola.profiling measured for roberta-base at ranks
# 1 and 32 (CPU, torch 2.13, the settings of the bundled rank-8 table): the adjusted model must
# reproduce them from the rank-8 table.
MEASURED_PEAK_BYTES = {
    1: [656002232, 769281208, 876268728, 983256248, 1090243768, 1197231288, 1304218808,
        1411206328, 1518193848, 1625181368, 1732168888, 1832864952],
    32: [657652920, 770931896, 877919416, 984906936, 1091894456, 1198881976, 1305869496,
         1412857016, 1519844536, 1626832056, 1733819576, 1834515640],
}


@pytest.mark.parametrize("rank", sorted(MEASURED_PEAK_BYTES))
def test_adjusted_memory_equals_the_memory_measured_at_that_rank(scenario, rank):
    configured = configure(scenario, layers=12, rank=rank)
    assert [b.memory_bytes for b in configured.blocks] == MEASURED_PEAK_BYTES[rank]


def test_configure_takes_layer_indices_and_targets(scenario):
    configured = configure(scenario, layers=[5, 11], rank=2)
    assert [b.name for b in configured.blocks] == ["layer.11", "layer.5"]
    whole = configure(scenario, layers=12, rank=2)
    assert configured.blocks[1].flops == whole.blocks[6].flops  # layer.5 is at depth 7
    b, s, h, r = 16, 128, 768, 2
    query_only = configure(scenario, layers=1, rank=r, target_modules=["query"]).blocks[0]
    # one adapter less (4 + 6 b s h r) and no dV (2 b s^2 h)
    assert query_only.flops == whole.blocks[0].flops - 10 * b * s * h * r - 2 * b * s * s * h
    assert query_only.params == whole.blocks[0].params / 2
    all_three = configure(scenario, layers=1, rank=r, target_modules="query,key,value").blocks[0]
    assert all_three.flops == whole.blocks[0].flops + 10 * b * s * h * r + 2 * b * s * s * h


def test_each_point_is_its_configuration_solved_alone(scenario, small):
    assert len(small.points) == 12
    for point in small.points:
        alone = lola.solve(configure(scenario, layers=point["layers"], rank=point["rank"]))
        assert point["round_latency_s"] == alone.round_latency_s
        assert point["trainable_params"] == sum(b.params for b in
                                                configure(scenario, layers=point["layers"],
                                                          rank=point["rank"]).blocks)
    assert small.method == "exact" and small.problem == "jbba"


def test_on_front_is_the_brute_force_front(small):
    values = np.array([[p["round_latency_s"], -p["trainable_params"]] for p in small.points])
    assert [p["on_front"] for p in small.points] == _brute_front(values).tolist()
    assert small.points[small.knee]["on_front"] and small.chosen == small.knee


def test_infeasible_configurations_are_points_never_on_the_front(scenario):
    five = dataclasses.replace(scenario, devices=scenario.devices[:5])
    result = pareto(five, layers=[1, 4, 5, 6, 12], ranks=(1, 32))
    for point in result.points:
        feasible = len(point["layers"]) <= 5
        assert (point["round_latency_s"] is not None) == feasible
        assert point["status"] == ("optimal" if feasible else "infeasible")
        if not feasible:
            assert not point["on_front"] and not point["acme_pick"]
    # a 12-layer configuration has the most parameters, yet is not on the front
    assert max(result.points, key=lambda p: p["trainable_params"])["on_front"] is False


def test_epsilon_constraint_picks_the_best_admissible_point(scenario):
    result = pareto(scenario, layers=range(1, 13), ranks=(1, 4, 16), max_latency_s=0.5,
                    max_memory_bytes=1.5e9)
    admissible = [p for p in result.points if p["round_latency_s"] <= 0.5
                  and p["peak_memory_bytes"] <= 1.5e9]
    best = max(admissible, key=lambda p: (p["trainable_params"], -p["round_latency_s"]))
    assert result.points[result.chosen] == best
    assert result.primary == "trainable_params"
    assert result.to_dict()["chosen"]["rule"].startswith("epsilon-constraint: max "
                                                         "trainable_params")
    # a budget on the parameters and a memory filter leave two free objectives: the knee of
    # the configurations within them
    budget = pareto(scenario, layers=range(1, 13), ranks=(1, 4, 16), max_params=200_000,
                    max_memory_bytes=1.5e9)
    kept = [i for i, p in enumerate(budget.points)
            if p["trainable_params"] <= 200_000 and p["peak_memory_bytes"] <= 1.5e9]
    values = np.array([[budget.points[i]["round_latency_s"], -budget.points[i]["trainable_params"]]
                       for i in kept])
    front = [kept[j] for j in np.flatnonzero(_brute_front(values))]
    assert budget.chosen == front[knee_index(values[_brute_front(values)])]
    assert budget.chosen_rule.startswith("knee of the configurations with trainable_params <=")
    assert budget.primary is None
    # a primary objective named: the best in it within the bounds
    fastest = pareto(scenario, layers=range(1, 13), ranks=(1, 4, 16), max_params=200_000,
                     primary="latency")
    assert fastest.points[fastest.chosen] == min(
        (p for p in fastest.points if p["trainable_params"] <= 200_000),
        key=lambda p: (p["round_latency_s"], -p["trainable_params"]))
    widest = pareto(scenario, layers=[1, 2], ranks=(1, 32), primary="params")
    assert widest.points[widest.chosen]["trainable_params"] == 2 * 32 * 4 * 768
    none = pareto(scenario, layers=[3], ranks=(8,), max_latency_s=1e-3)
    assert none.chosen is None and "no feasible configuration meets" in none.message


def test_same_points_on_any_executor(scenario, small):
    with ThreadPoolExecutor(2) as pool:
        threaded = pareto(scenario, executor=pool, **SMALL)
    assert threaded.points == small.points


# --- quality -------------------------------------------------------------------------------


def _write_quality(path, rows, columns=("layers", "rank", "quality")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_measured_and_surrogate_quality(scenario, tmp_path):
    # quality exactly a + b ln(params) + c L on five measured configurations
    D = 4 * 768

    def truth(layers, rank):
        return 0.5 + 0.02 * np.log(layers * rank * D) - 0.01 * layers

    rows = [(L, r, truth(L, r)) for L, r in [(1, 1), (2, 8), (4, 2), (8, 32), (12, 4)]]
    rows.append((1, 1, truth(1, 1)))  # a repeat, averaged
    path = _write_quality(tmp_path / "quality.csv", rows)
    result = pareto(scenario, layers=[1, 2, 4, 12], ranks=(1, 8), quality_csv=path)
    assert result.objectives == ["round_latency_s", "trainable_params", "quality"]
    for point in result.points:
        L, r = len(point["layers"]), point["rank"]
        assert point["quality"] == pytest.approx(truth(L, r), abs=1e-9)
        assert point["quality_source"] == ("measured" if (L, r) in {(1, 1), (2, 8)}
                                           else "surrogate")
    assert result.surrogate["measured_configurations"] == 5
    assert result.surrogate["loo_rmse"] == pytest.approx(0, abs=1e-9)


def test_leave_one_out_error_is_reported(scenario):
    rows = [{"layers": L, "rank": r, "quality": q} for L, r, q in
            [(1, 1, 0.80), (2, 2, 0.83), (3, 4, 0.84), (6, 8, 0.88), (12, 16, 0.86)]]
    result = pareto(scenario, layers=[1, 2], ranks=(1,), quality_csv=rows)
    keys = [(1, 1), (2, 2), (3, 4), (6, 8), (12, 16)]
    quality = np.array([row["quality"] for row in rows])
    design = np.array([[1, np.log(L * r * 4 * 768), L] for L, r in keys])
    errors = []
    for i in range(5):
        keep = np.arange(5) != i
        beta = np.linalg.lstsq(design[keep], quality[keep], rcond=None)[0]
        errors.append(design[i] @ beta - quality[i])
    assert result.surrogate["loo_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(errors))))
    assert result.surrogate["loo_rmse"] > 1e-3


def test_quality_bound_selects_among_measured_or_predicted(scenario):
    rows = [{"layers": L, "rank": r, "quality": 0.7 + 0.02 * L + 0.001 * r}
            for L in (1, 2, 3) for r in (1, 8)]
    # latency and quality: a quality floor leaves the latency to minimise
    result = pareto(scenario, layers=[1, 2, 3], ranks=(1, 8), quality_csv=rows,
                    objectives="latency,quality", min_quality=0.75)
    admissible = [p for p in result.points if p["quality"] >= 0.75]
    assert result.points[result.chosen] == min(admissible,
                                               key=lambda p: p["round_latency_s"])
    assert result.chosen_rule == "epsilon-constraint: min round_latency_s with quality >= 0.75"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    (dict(objectives=["round_latency_s", "cost"]), "unknown objective 'cost'"),
    (dict(objectives=["quality", "round_latency_s"]), "objective 'quality' needs"),
    (dict(objectives=["round_latency_s"]), "two to four objectives"),
    (dict(ranks=(4, -1)), "rank must be a positive integer, got -1"),
    (dict(ranks=(0,)), "rank must be a positive integer, got 0"),
    (dict(layers=[0, 3]), "layers: 0 is not a number of top layers"),
    (dict(layers=[13]), "between 1 and 12"),
    (dict(method="dual-ascent"), "method 'dual-ascent' does not prove optimality"),
    (dict(method="greedy"), "exact method for jbba: exact, milp"),
    (dict(problem="matching", method="exact"), "exact"),
    (dict(target_modules=["dense"]), "'dense' is not modelled"),
    (dict(max_latency_s=-1.0), "max_latency_s must be positive"),
    (dict(min_quality=0.5), "min_quality needs measured quality"),
    (dict(quality_csv=[{"layers": 1, "rank": 1}]), "missing column 'quality'"),
    (dict(quality_csv=[{"layers": 1, "rank": 2, "quality": 0.8}]), "cannot fit the surrogate"),
])
def test_bad_input_is_a_one_line_value_error(scenario, kwargs, words):
    with pytest.raises(ValueError) as error:
        pareto(scenario, layers=kwargs.pop("layers", [1, 2]), **kwargs)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_a_csv_missing_a_column_is_named(scenario, tmp_path):
    path = _write_quality(tmp_path / "q.csv", [(1, 8)], columns=("layers", "rank"))
    with pytest.raises(ValueError, match=r"quality CSV .*q\.csv: missing column 'quality'"):
        pareto(scenario, layers=[1], ranks=(8,), quality_csv=path)
    path = _write_quality(tmp_path / "r.csv", [(1, -2, 0.8)])
    with pytest.raises(ValueError, match=r"r\.csv, row 2: rank must be a positive integer"):
        pareto(scenario, layers=[1], ranks=(8,), quality_csv=path)


def test_a_profile_file_beside_the_scenario_and_an_unmeasured_profile(tmp_path, scenario):
    # the analytic table as a profile file, named relative to the scenario file
    (tmp_path / "counted.json").write_text(json.dumps(analytic_profile("roberta-base")))
    document = {"model": {"profile": "counted.json"},
                "devices": [dataclasses.asdict(device) for device in scenario.devices[:4]],
                "channel": {"total_bandwidth_hz": 2e7}}
    for device in document["devices"]:
        for key in [k for k, v in device.items() if v is None]:
            del device[key]
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(document))
    counted = analytic_profile("roberta-base")["blocks"]
    configured = configure(str(path), layers=4, rank=8)
    assert [b.memory_bytes for b in configured.blocks] == [b["memory_bytes"]
                                                          for b in counted[:4]]
    result = pareto(str(path), layers=[1, 4, 5], ranks=(8,))
    assert "not measured" in result.profile_note
    assert [p["round_latency_s"] is None for p in result.points] == [False, False, True]


def test_inline_blocks_without_a_profile_are_refused(good_scenario):
    with pytest.raises(ValueError, match="gives its blocks inline, without a profile"):
        pareto(good_scenario)
    with pytest.raises(ValueError, match="rank must be a positive integer, got -3"):
        configure(lola.default_scenario(), layers=2, rank=-3)
    with pytest.raises(ValueError, match="layer 12 does not exist"):
        configure(lola.default_scenario(), layers=[12], rank=2)


# --- JSON, figure, command line ------------------------------------------------------------


def test_json_is_the_documented_object(small):
    document = json.loads(json.dumps(small.to_dict()))
    assert document["objectives"] == ["round_latency_s", "trainable_params"]
    first = document["points"][0]
    assert list(first)[:7] == ["layers", "rank", "round_latency_s", "trainable_params",
                               "peak_memory_bytes", "quality", "on_front"]
    assert first["layers"] == [11] and document["points"][3]["layers"] == [11, 10]
    assert first["quality"] is None
    assert document["knee"]["index"] == small.knee and document["chosen"]["rule"] == "knee"
    acme = document["acme"]
    assert acme["dominated_picks"] == sum(not document["points"][i]["on_front"]
                                          for i in acme["picks"])
    assert "measured" in document["profile_note"] and "analytic" in document["profile_note"]


def test_figure_shows_points_front_choice_and_grid_picks(small):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    figure = plot_pareto(small)
    assert plt.fignum_exists(figure.number)
    axes = figure.axes[0]
    assert axes.get_xlabel() == "round latency (s)"
    assert axes.get_ylabel() == "trainable parameters"
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert any(label.startswith("exact front") for label in labels)
    assert any(label.startswith("chosen") for label in labels)
    assert any(label.startswith("grid representative") for label in labels)
    assert all(t.get_fontsize() >= 9 for t in figure.findobj(Text) if t.get_text().strip())
    plt.close(figure)


def _parse(argv):
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    return parser, parser.parse_args(argv)


def test_every_option_has_help():
    parser, _ = _parse([])
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, action.dest


def test_command_prints_json_and_writes_the_figure(tmp_path, capsys, small):
    figure = tmp_path / "front.png"
    _, args = _parse(["--layers", "1-3,12", "--ranks", "1,8,32", "--json", "-o", str(figure)])
    assert run_command(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert [p["round_latency_s"] for p in document["points"]] == \
        [p["round_latency_s"] for p in small.points]
    assert figure.stat().st_size > 10_000
    _, args = _parse(["--layers", "1-4", "--ranks", "4,32", "--max-latency", "0.25"])
    assert run_command(args) == 0
    out = capsys.readouterr().out
    assert "chosen (epsilon-constraint: max trainable_params with round_latency_s <= 0.25): " \
        "top 2 layers at rank 32" in out


@pytest.mark.parametrize("argv, words", [
    (["--ranks", "1,x"], "--ranks 1,x: give integers"),
    (["--ranks", "-2"], "rank must be a positive integer, got -2"),
    (["--objectives", "latency,speed"], "unknown objective 'speed'"),
    (["-o", "front.jpg"], "must end in .png, .pdf or .svg"),
])
def test_command_bad_input_is_a_one_line_value_error(argv, words):
    _, args = _parse(["--layers", "1"] + argv)
    with pytest.raises(ValueError) as error:
        run_command(args)
    assert words in str(error.value) and "\n" not in str(error.value)
