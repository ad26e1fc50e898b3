"""Every figure kind renders, the plotted data are the results they came from, and each figure
is one a reader can use: readable text, legends off the data, ticks apart, units on the axes."""
import dataclasses
import itertools
import json

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from scipy import stats

import lola
from lola import cli, plots, sweeps


pytestmark = pytest.mark.usefixtures("no_open_figures")


@pytest.fixture(scope="module")
def jbba_result():
    return lola.solve(lola.default_scenario(), problem="jbba", method="dual-ascent")


def _rows(parameter, latencies):
    """Sweep rows from {method: {value: [latency or None per seed]}}."""
    return [{"parameter": parameter, "value": value, "seed": seed, "method": method,
             "status": "infeasible" if latency is None else "optimal",
             "round_latency_s": latency, "solve_time_s": 0.001}
            for method, by_value in latencies.items() for value, seeds in by_value.items()
            for seed, latency in enumerate(seeds)]


def _drawn(figure):
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def _legends(figure):
    return [legend for legend in figure.legends + [ax.get_legend() for ax in figure.axes]
            if legend is not None]


def _tick_labels(axis, renderer):
    return [(label.get_text(), label.get_window_extent(renderer))
            for label in axis.get_ticklabels() if label.get_visible() and label.get_text()]


def assert_publishable(figure):
    """No text under 9 pt, no two tick labels of an axis overlapping, no legend over an axes'
    data area, every data axis labelled."""
    renderer = _drawn(figure)
    small = {t.get_text(): t.get_fontsize() for t in figure.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 9}
    assert not small, small
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = _tick_labels(axis, renderer)
            for (text_a, box_a), (text_b, box_b) in itertools.combinations(labels, 2):
                assert not box_a.overlaps(box_b), (text_a, text_b)
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if ax.has_data() and axis.get_visible() and _tick_labels(axis, renderer):
                assert label, f"an axis of {ax.get_title()!r} has ticks but no label"
    for legend in _legends(figure):
        box = legend.get_window_extent(renderer)
        for ax in figure.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), legend.get_texts()


def test_figures_are_pyplot_figures_so_that_a_kernel_shows_them(jbba_result):
    figure = plots.plot_allocation(jbba_result)
    assert plt.fignum_exists(figure.number)  # pyplot manages it, the inline backend shows it


def test_save_writes_and_closes_the_figure(jbba_result, tmp_path):
    figure = plots.plot_allocation(jbba_result)
    path = plots.save(figure, tmp_path / "allocation.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()


def test_allocation_bars_sum_to_each_devices_latency(jbba_result, tmp_path):
    figure = plots.plot_allocation(jbba_result)
    ax = figure.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() < 1]
    n = len(jbba_result.assignment)
    heights = np.array([bar.get_height() for bar in bars])
    stacked = heights[:n] + heights[n:2 * n]
    depth = {pair["block"]: i + 1 for i, pair in enumerate(jbba_result.assignment)}
    busy = sorted((d for d in jbba_result.devices if d.blocks),
                  key=lambda d: max(depth[b] for b in d.blocks))
    np.testing.assert_allclose(stacked, [d.latency_s for d in busy], rtol=1e-9)
    line = [l for l in ax.get_lines() if "round latency" in l.get_label()][0]
    assert line.get_ydata()[0] == jbba_result.round_latency_s
    path = plots.save(figure, tmp_path / "allocation.png")
    assert path.stat().st_size > 10_000


def test_allocation_orders_bars_by_block_depth_and_is_readable(jbba_result):
    figure = plots.plot_allocation(jbba_result)
    ax = figure.axes[0]
    depth = {pair["block"]: i + 1 for i, pair in enumerate(jbba_result.assignment)}
    block_of = {d.name: d.blocks[-1] for d in jbba_result.devices if d.blocks}
    names = [label.get_text() for label in ax.get_xticklabels()]
    assert sorted(names) == sorted(block_of)
    assert [depth[block_of[name]] for name in names] == list(range(1, len(names) + 1))
    assert "depth" in ax.get_xlabel() and "device" in ax.get_xlabel()
    annotations = [t for t in ax.texts if "MHz" in t.get_text()]
    assert len(annotations) == len(names)
    assert all(t.get_fontsize() >= 9 for t in annotations)
    for name, annotation in zip(names, annotations):  # each bar carries its own block
        assert annotation.get_text().startswith(block_of[name])
    renderer = _drawn(figure)
    legend = ax.get_legend() or figure.legends[0]
    box = legend.get_window_extent(renderer)
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() < 1]
    assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in bars)
    assert not any(box.overlaps(t.get_window_extent(renderer)) for t in annotations)
    assert_publishable(figure)


def test_convergence_plots_the_history_with_both_dual_curves_visible(jbba_result):
    figure = plots.plot_convergence(jbba_result)
    ax = figure.axes[0]
    lines = {l.get_label(): l for l in ax.get_lines()}
    primal = lines["best feasible latency (primal)"].get_ydata()
    assert list(primal) == [h["primal_s"] for h in jbba_result.history]
    bound, dual = lines["best dual bound"], lines["dual value of the iteration"]
    assert list(dual.get_ydata()) == [h["dual_s"] for h in jbba_result.history]
    # the per-iteration dual value is drawn as markers above the bound it often equals
    assert dual.get_zorder() > bound.get_zorder() and dual.get_marker() not in ("", "None")
    assert dual.get_linestyle() == "None" and dual.get_color() != bound.get_color()
    assert_publishable(figure)


def test_convergence_refuses_a_result_without_history():
    exact = lola.solve(lola.default_scenario(), problem="jbba", method="exact")
    assert not exact.history
    with pytest.raises(ValueError, match="convergence is drawn for dual-ascent only.*'exact'"):
        plots.plot_convergence(exact)


def test_profile_figure_shows_depth_curves(tmp_path):
    figure = plots.plot_profile(["roberta-base", "roberta-large"])
    flops_ax, latency_ax, memory_ax = figure.axes
    base = lola.profiles.load_profile("roberta-base")
    assert list(flops_ax.get_lines()[0].get_ydata()) == [b.flops / 1e12 for b in base.blocks]
    assert list(memory_ax.get_lines()[0].get_ydata()) == [b.memory_bytes / 1e9
                                                          for b in base.blocks]
    assert latency_ax.get_ylabel().startswith("step latency (s")
    assert_publishable(figure)
    assert plots.save(figure, tmp_path / "profile.svg").read_text().startswith("<?xml")


def _figure_text(figure):
    return " ".join(t.get_text() for t in figure.findobj(Text))


def test_profile_figure_says_where_the_latency_was_measured():
    figure = plots.plot_profile(["roberta-base"])
    document = json.loads(open(lola.profiles.load_profile("roberta-base").source).read())
    measurement = document["measurement"]
    threads = measurement["host"]["threads"]
    text = _figure_text(figure)
    assert measurement["device"] == "cpu" and "CPU" in text
    assert f"{threads} thread" in text and measurement["host"]["cpu"] in text
    assert "measured" in figure.axes[1].get_title()
    assert f"median of {measurement['repetitions']} steps" in text


def test_profile_figure_reads_the_host_from_the_profile_file(tmp_path):
    document = json.loads(open(lola.profiles.load_profile("roberta-base").source).read())
    document["measurement"]["device"] = "cuda"
    document["measurement"]["host"]["threads"] = 4
    path = tmp_path / "gpu-profile.json"
    path.write_text(json.dumps(document))
    text = _figure_text(plots.plot_profile([str(path)]))
    assert "GPU" in text and "4 threads" in text and "1 thread" not in text


def test_analytic_profile_is_not_called_measured(tmp_path):
    from lola.profiles.analytic import analytic_profile
    path = tmp_path / "analytic.json"
    path.write_text(json.dumps(analytic_profile("roberta-base")))
    figure = plots.plot_profile([str(path)])
    assert "no measured latency" in _figure_text(figure)
    assert "measured" not in figure.axes[2].get_title()


@pytest.mark.parametrize("parameter, values", [("devices", [12, 16]),
                                               ("bandwidth", [5e6, 2e7]),
                                               ("memory", [0.3, 1.0])])
def test_sweeps_plot_their_means(parameter, values, tmp_path):
    rows = sweeps.sweep(parameter, values, methods=["exact", "greedy"], seeds=3)
    summary = sweeps.summarise(rows)
    figure = plots.plot_sweep(rows)
    lines = {l.get_label(): l for l in figure.axes[0].get_lines()}
    for method in ("exact", "greedy"):
        np.testing.assert_allclose(lines[method].get_ydata(), summary[method]["mean"])
        assert lines[method].get_color() == plots.method_colour(method)
    exact = np.array(summary["exact"]["mean"])
    greedy = np.array(summary["greedy"]["mean"])
    finite = np.isfinite(exact) & np.isfinite(greedy)
    assert np.all(exact[finite] <= greedy[finite] * (1 + 1e-9))  # the optimum is never worse
    legend = figure.axes[0].get_legend()
    assert "mean and 95 % t-interval" in legend.get_title().get_text()
    assert "over 3 seeds" in legend.get_title().get_text()
    assert_publishable(figure)
    assert plots.save(figure, tmp_path / "sweep.pdf").read_bytes().startswith(b"%PDF")


def test_bandwidth_sweep_is_drawn_in_megahertz():
    rows = _rows("bandwidth", {"exact": {1e6: [2.0, 2.2], 2e6: [1.5, 1.6], 5e6: [1.1, 1.2],
                                         1e7: [1.0, 1.0], 2e7: [0.9, 0.95]}})
    figure = plots.plot_sweep(rows)
    latency_ax, feasible_ax = figure.axes[:2]
    np.testing.assert_allclose(latency_ax.get_lines()[0].get_xdata(), [1, 2, 5, 10, 20])
    assert feasible_ax.get_xlabel() == "total bandwidth B (MHz)"
    _drawn(figure)
    ticks = [t.get_text() for t in feasible_ax.get_xticklabels() if t.get_text()]
    assert ticks == ["1", "2", "5", "10", "20"]
    assert_publishable(figure)


def test_summarise_gives_the_student_t_interval_of_the_mean():
    latencies = [1.0, 1.3, 0.8, 1.1, 1.6]
    summary = sweeps.summarise(_rows("devices", {"exact": {12: latencies}}))["exact"]
    low, high = stats.t.interval(0.95, len(latencies) - 1, loc=np.mean(latencies),
                                 scale=stats.sem(latencies))
    assert summary["half_width"][0] == pytest.approx((high - low) / 2, rel=1e-12)
    assert summary["seeds"][0] == 5 and summary["feasible_seeds"][0] == 5


def test_sweep_curves_that_coincide_stay_visible():
    same = {12: [1.0, 1.1], 16: [0.8, 0.9]}
    rows = _rows("devices", {"dual-ascent": {12: [0.9, 1.0], 16: [0.7, 0.8]},
                             "greedy": same, "min-sum": same, "exact": {12: [0.9, 1.0],
                                                                      16: [0.7, 0.8]}})
    lines = {l.get_label(): l for l in plots.plot_sweep(rows).axes[0].get_lines()}
    styles = {(l.get_marker(), l.get_linestyle()) for l in lines.values()}
    assert len(styles) == len(lines)  # each method its own marker or line style
    for below, above in [("greedy", "min-sum"), ("dual-ascent", "exact")]:
        # whichever is on top is thinner, with smaller markers: the one below shows around it
        low, high = sorted((lines[below], lines[above]), key=lambda l: l.get_zorder())
        assert high.get_zorder() > low.get_zorder()
        assert high.get_linewidth() < low.get_linewidth()
        assert high.get_markersize() < low.get_markersize()
    assert lines["exact"].get_linestyle() == "--"  # and dashed, so what is below shows through


def test_sweep_with_no_feasible_point_says_so():
    rows = _rows("memory", {"exact": {0.05: [None, None], 0.1: [None, None]},
                            "greedy": {0.05: [None, None], 0.1: [None, None]}})
    figure = plots.plot_sweep(rows)
    latency_ax, feasible_ax = figure.axes[:2]
    assert any(plots.INFEASIBLE_TEXT in t.get_text() for t in latency_ax.texts)
    _drawn(figure)
    assert not [t.get_text() for t in latency_ax.get_yticklabels() if t.get_text()]
    assert list(feasible_ax.get_lines()[0].get_ydata()) == [0, 0]
    assert_publishable(figure)


def test_sweep_marks_points_where_no_seed_is_feasible():
    rows = _rows("memory", {"exact": {0.1: [None, None], 0.5: [1.2, None], 1.0: [0.9, 1.0]}})
    figure = plots.plot_sweep(rows)
    latency_ax = figure.axes[0]
    marks = [l for l in latency_ax.get_lines() if l.get_marker() == "x"]
    assert [list(l.get_xdata()) for l in marks] == [[0.1]]
    labels = [t.get_text() for t in latency_ax.get_legend().get_texts()]
    assert "no seed feasible" in labels and "some seeds infeasible" in labels
    assert "feasible seeds only" in latency_ax.get_legend().get_title().get_text()
    assert not any(plots.INFEASIBLE_TEXT in t.get_text() for t in latency_ax.texts)
    assert_publishable(figure)


def test_memory_sweep_shows_where_blocks_stop_fitting():
    rows = sweeps.sweep("memory", [0.1, 1.0], methods=["exact"], seeds=2)
    summary = sweeps.summarise(rows)
    assert summary["exact"]["feasible"][0] < 1 and summary["exact"]["feasible"][1] == 1
    figure = plots.plot_sweep(rows)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "some seeds infeasible" in labels or "no seed feasible" in labels


def test_solver_time_is_log_log_with_plain_size_ticks(tmp_path):
    rows = sweeps.timing([10, 20], methods=["exact", "dual-ascent", "brute"], seeds=1)
    assert {r["method"] for r in rows} == {"exact", "dual-ascent"}  # brute refuses K = N = 10
    figure = plots.plot_solver_time(rows)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    _drawn(figure)
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["10", "20"]
    assert "(s" in ax.get_ylabel()
    assert_publishable(figure)


def test_method_colours_are_stable_and_distinct():
    names = ["dual-ascent", "crunch", "bottleneck", "exact", "milp", "brute", "random",
             "greedy", "min-sum", "centralized"]
    colours = [plots.method_colour(n) for n in names]
    assert len(set(colours)) == len(colours)
    assert plots.method_colour("exact") == plots.method_colour("exact")
    jbba = ["dual-ascent", "exact", "milp", "brute", "random", "greedy", "min-sum",
            "centralized"]
    assert len({plots.method_marker(n) for n in jbba}) == len(jbba)


@pytest.mark.parametrize("kind, extra", [
    ("profile", []), ("allocation", []), ("convergence", ["--method", "dual-ascent"]),
    ("devices", ["--values", "12,14", "--seeds", "2", "--methods", "exact,random"]),
    ("solver-time", ["--values", "10,20", "--seeds", "1"])])
def test_cli_plot_writes_every_kind(kind, extra, tmp_path, capsys):
    out = tmp_path / f"{kind}.png"
    assert cli.main(["plot", kind, "-o", str(out)] + extra) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000
    assert not plt.get_fignums()  # written and closed: a long run does not keep figures open


def test_cli_plot_rejects_unknown_formats_before_working(tmp_path, capsys):
    assert cli.main(["plot", "devices", "-o", str(tmp_path / "x.gif")]) == 2
    assert ".png, .pdf or .svg" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_infeasible_result_has_no_allocation_figure(jbba_result):
    infeasible = dataclasses.replace(jbba_result, round_latency_s=None, status="infeasible")
    with pytest.raises(ValueError, match="infeasible"):
        plots.plot_allocation(infeasible)


def test_centralized_allocation_shows_the_server_compute():
    result = lola.solve(lola.default_scenario(), method="centralized")
    figure = plots.plot_allocation(result)
    ax = figure.axes[0]
    server = [p for p in ax.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("#2ca02c")]
    assert len(server) == 1
    bar = server[0]
    assert bar.get_height() == pytest.approx(result.extras["server_compute_s"])
    assert bar.get_y() + bar.get_height() == pytest.approx(result.round_latency_s)
    assert ax.get_xticklabels()[-1].get_text() == "server"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "compute" not in labels and any("server compute" in t for t in labels)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# Several blocks per device and split mode in the allocation figure; latency versus K


def _uniform_blocks(n, *, extra_flops=3e9, extra_memory=5e7):
    """Per-layer blocks: equal payloads and extras, costs growing with depth (the case the
    exact several-blocks methods solve combinatorially)."""
    return [{"name": f"layer.{n - 1 - i}", "flops": 4e11 + 3e10 * i,
             "memory_bytes": 7e8 + 1e8 * i, "params": 24576, "extra_flops": extra_flops,
             "extra_memory_bytes": extra_memory} for i in range(n)]


SEVERAL = {"name": "several", "model": {"blocks": _uniform_blocks(8)},
           "devices": [{"name": "laptop", "flops_per_s": 3.0e12, "memory_bytes": 6e9,
                        "spectral_efficiency": 5.0},
                       {"name": "tablet", "flops_per_s": 1.2e12, "memory_bytes": 4e9,
                        "spectral_efficiency": 6.0},
                       {"name": "phone", "flops_per_s": 0.9e12, "memory_bytes": 3e9,
                        "spectral_efficiency": 7.0}],
           "channel": {"total_bandwidth_hz": 2e7, "rate_model": "fixed"}}

SPLIT = {"name": "split-demo", "model": {"blocks": [
    {"name": "top", "flops": 1.0e11, "memory_bytes": 1.0e9, "params": 1.0e5,
     "split_device_flops": 9.0e10, "split_server_flops": 2.0e10, "split_memory_bytes": 9.0e8,
     "cut_bytes": 1.0e5},
    {"name": "middle", "flops": 2.0e11, "memory_bytes": 2.0e9, "params": 1.0e5,
     "split_device_flops": 6.0e10, "split_server_flops": 1.4e11, "split_memory_bytes": 7.0e8,
     "cut_bytes": 1.0e5},
    {"name": "bottom", "flops": 3.0e11, "memory_bytes": 3.0e9, "params": 1.0e5,
     "split_device_flops": 3.0e10, "split_server_flops": 2.7e11, "split_memory_bytes": 5.0e8,
     "cut_bytes": 1.0e5}]},
    "devices": [{"name": "phone", "flops_per_s": 2.0e10, "memory_bytes": 1.5e9,
                 "spectral_efficiency": 5.0, "downlink_bps": 1.0e8},
                {"name": "laptop", "flops_per_s": 2.0e11, "memory_bytes": 8.0e9,
                 "spectral_efficiency": 3.0},
                {"name": "jetson", "flops_per_s": 1.0e11, "memory_bytes": 4.0e9,
                 "spectral_efficiency": 6.0, "downlink_bps": 5.0e7}],
    "channel": {"total_bandwidth_hz": 1.0e7, "rate_model": "fixed"},
    "server": {"flops_per_s": 1.0e13}}


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _stacks(ax):
    """Each bar's x centre -> (width, summed height, top, hatches), over all its segments."""
    stacks = {}
    for bar in _bars(ax):
        centre = round(bar.get_x() + bar.get_width() / 2, 9)
        width, height, top, hatches = stacks.get(centre, (bar.get_width(), 0.0, 0.0, set()))
        stacks[centre] = (width, height + bar.get_height(),
                          max(top, bar.get_y() + bar.get_height()),
                          hatches | {bar.get_hatch()})
    return dict(sorted(stacks.items()))


@pytest.mark.parametrize("problem", ["jbba", "matching"])
def test_allocation_shows_each_devices_blocks_as_one_group(problem):
    result = lola.solve(SEVERAL, problem=problem, max_blocks=4)
    busy = [d for d in result.devices if d.blocks]
    assert any(len(d.blocks) > 1 for d in busy)  # the figure has groups to draw
    figure = plots.plot_allocation(result)
    ax = figure.axes[0]
    depth = {pair["block"]: i + 1 for i, pair in enumerate(result.assignment)}
    ordered = sorted(busy, key=lambda d: depth[d.blocks[-1]])
    names = [label.get_text() for label in ax.get_xticklabels()]
    assert names == [d.name for d in ordered]
    stacks = _stacks(ax)
    assert len(stacks) == len(ordered)
    slot = 0
    for (centre, (width, height, top, _)), device in zip(stacks.items(), ordered):
        n = len(device.blocks)
        # one slot per block, the bar centred on its slots and as tall as the device's latency
        assert width == pytest.approx(n - 0.2)
        assert centre == pytest.approx(slot + (n - 1) / 2)
        assert height == pytest.approx(device.latency_s, rel=1e-9)
        assert top == pytest.approx(device.latency_s, rel=1e-9)
        slot += n
    assert slot == len(result.assignment)
    groups = [d for d in ordered if len(d.blocks) > 1]
    counts = sorted(t.get_text() for t in ax.texts if t.get_text().endswith("blocks"))
    assert counts == sorted(f"{len(d.blocks)}\nblocks" for d in groups
                            if max(d.compute_s, d.upload_s) > 0.12 * result.round_latency_s)
    brackets = [line for line in ax.get_lines() if len(line.get_xdata()) == 4]
    assert len(brackets) == len(groups)
    for line, device in zip(brackets, groups):  # over the bar, as wide as its slots
        x, y = line.get_xdata(), line.get_ydata()
        assert x[-1] - x[0] == pytest.approx(len(device.blocks) - 0.2)
        assert min(y) > device.latency_s
    annotations = [t for t in ax.texts if "MHz" in t.get_text()]
    for annotation, device in zip(annotations, ordered):
        assert annotation.get_text().startswith(device.blocks[0])
        if len(device.blocks) > 2:
            assert f"({len(device.blocks)})" in annotation.get_text()
    assert "one slot per block" in ax.get_xlabel()
    assert_publishable(figure)


def test_allocation_marks_split_devices_and_shows_the_server_and_downlink():
    result = lola.solve(SPLIT, modes=("local", "split"))
    split = {d.name: d for d in result.devices if d.mode == "split"}
    assert split and any(d.mode == "local" for d in result.devices if d.blocks)
    figure = plots.plot_allocation(result)
    ax = figure.axes[0]
    names = [label.get_text() for label in ax.get_xticklabels()]
    stacks = list(_stacks(ax).values())
    for name, (_, height, _, hatches) in zip(names, stacks):
        device = next(d for d in result.devices if d.name == name)
        # compute, server, downlink and upload add up to the device's latency
        assert height == pytest.approx(device.latency_s, rel=1e-9)
        assert hatches == ({"//"} if name in split else {None})

    def segments(colour):
        return {round(p.get_x() + p.get_width() / 2): p for p in _bars(ax)
                if p.get_facecolor()[:3] == matplotlib.colors.to_rgb(colour)}
    server, downlink = segments("#2ca02c"), segments("#9467bd")
    assert len(server) == len(downlink) == len(split)
    for i, name in enumerate(names):
        if name in split:
            assert server[i].get_height() == pytest.approx(split[name].server_s)
            assert downlink[i].get_height() == pytest.approx(split[name].downlink_s)
            assert server[i].get_y() == pytest.approx(split[name].compute_s)
    annotations = {t.get_text().split("\n")[0] for t in ax.texts if "MHz" in t.get_text()}
    assert {f"{d.blocks[0]} (split)" for d in split.values()} <= annotations
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "split mode (hatched)" in labels and "server compute (split)" in labels
    assert "downlink (split)" in labels
    assert_publishable(figure)


def _sweep_rows(profile, n_blocks, points):
    """latency_vs_devices rows from {(K, cap): (status, latency, lower bound)}."""
    return [{"profile": profile, "blocks": n_blocks, "problem": "jbba", "seed": 0,
             "devices": k, "max_blocks": cap, "status": status, "round_latency_s": latency,
             "lower_bound_s": bound, "method": "exact" if status != "feasible" else "packing"}
            for (k, cap), (status, latency, bound) in points.items()]


def test_devices_sweep_draws_both_caps_per_profile_and_marks_what_is_not_proven():
    off = ("infeasible", None, None)
    base = _sweep_rows("roberta-base", 4, {
        (1, 1): off, (1, 3): off, (2, 1): off, (2, 3): ("optimal", 2.0, 2.0),
        (4, 1): ("optimal", 3.0, 3.0), (4, 3): ("optimal", 1.5, 1.5),
        (6, 1): ("optimal", 2.5, 2.5), (6, 3): ("feasible", 1.2, 0.9)})
    large = _sweep_rows("roberta-large", 8, {
        (2, 1): off, (2, 3): off, (4, 1): off, (4, 3): ("optimal", 6.0, 6.0),
        (8, 1): ("optimal", 5.0, 5.0), (8, 3): ("feasible", 2.0, 1.5)})
    figure = plots.plot_devices_sweep(base + large)
    assert len(figure.axes) == 2
    base_ax, large_ax = figure.axes
    assert base_ax.get_title() == "roberta-base: N = 4 blocks"
    assert large_ax.get_title() == "roberta-large: N = 8 blocks"
    assert base_ax.get_yscale() == "log" and base_ax.get_xlabel() == "number of devices K"

    def markers(ax, colour, *, filled):
        found = {}
        for line in ax.get_lines():
            if line.get_linestyle() != "None" or line.get_marker() == "x":
                continue
            if line.get_color() != colour:
                continue
            if (line.get_markerfacecolor() != "white") == filled:
                found.update(zip(line.get_xdata(), line.get_ydata()))
        return found
    one, several = "#1f77b4", "#d62728"
    assert markers(base_ax, one, filled=True) == {4: 3.0, 6: 2.5}
    assert markers(base_ax, several, filled=True) == {2: 2.0, 4: 1.5}
    assert markers(base_ax, several, filled=False) == {6: 1.2}  # not proven: open
    assert markers(large_ax, several, filled=False) == {8: 2.0}
    # the bar of an unproven point reaches down to its lower bound
    bars = [c for c in base_ax.collections if len(c.get_segments())]
    assert [segment.tolist() for c in bars for segment in c.get_segments()] == [
        [[6.0, 0.9], [6.0, 1.2]]]
    crosses = {(line.get_color(), x) for line in base_ax.get_lines()
               if line.get_marker() == "x" for x in line.get_xdata()}
    assert crosses == {(one, 1), (one, 2), (several, 1)}
    assert any(t.get_text() == "K = N = 4" for t in base_ax.texts)
    labels = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert "one block per device, optimal" in labels
    assert any(label.startswith("up to 3 blocks per device, packing: not proven optimal")
               for label in labels)
    assert "one block per device: infeasible (× on the lower edge)" in labels
    assert_publishable(figure)


@pytest.fixture
def small_profile(tmp_path):
    """The bundled roberta-base table cut to its top 4 layers, with uniform extras."""
    document = json.loads(open(lola.profiles.load_profile("roberta-base").source).read())
    document["blocks"] = document["blocks"][:4]
    for block in document["blocks"]:
        block["extra_flops"], block["extra_memory_bytes"] = 3.0e8, 6.7e6
    path = tmp_path / "small.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_latency_vs_devices_rows_and_their_figure(small_profile, monkeypatch):
    from lola.studies import blocks

    # one device more than exact_up_to comes from packing
    rows = blocks.latency_vs_devices(small_profile, max_blocks=2, seed=1, exact_up_to=7)
    assert [(r["devices"], r["max_blocks"]) for r in rows] == [
        (k, cap) for k in range(1, 9) for cap in (1, 2)]  # K = 1 .. 2N by default
    by = {(r["devices"], r["max_blocks"]): r for r in rows}
    for k in range(1, 9):
        one, several = by[(k, 1)], by[(k, 2)]
        assert (one["status"] == "infeasible") == (k < 4)  # one block each needs K >= N
        assert (several["status"] == "infeasible") == (2 * k < 4)
        assert one["method"] == "exact"
        assert several["method"] == ("packing" if k > 7 else "exact")
        if 2 <= k <= 7:
            assert several["status"] == "optimal"
        if k >= 4:  # a cap of 2 allows every one-block allocation
            assert several["round_latency_s"] <= one["round_latency_s"] * (1 + 1e-9)
    # nested draws: adding devices never lengthens the optimal round
    for cap, first in ((1, 4), (2, 2)):
        proven = [by[(k, cap)]["round_latency_s"] for k in range(first, 8)]
        assert all(b <= a * (1 + 1e-9) for a, b in zip(proven, proven[1:])), proven
    assert by[(8, 2)]["status"] in ("feasible", "optimal")
    assert by[(8, 2)]["lower_bound_s"] <= by[(8, 2)]["round_latency_s"]
    # by default every K is solved exactly (the path MILP above the subset programme's limit)
    exact = blocks.latency_vs_devices(small_profile, [8], max_blocks=2, seed=1)[1]
    assert (exact["method"], exact["status"]) == ("exact", "optimal")
    assert exact["round_latency_s"] <= by[(8, 2)]["round_latency_s"] * (1 + 1e-9)
    assert exact["round_latency_s"] >= by[(8, 2)]["lower_bound_s"] * (1 - 1e-9)
    figure = plots.plot_devices_sweep(rows)
    ax = figure.axes[0]
    assert ax.get_title() == "small: N = 4 blocks"
    drawn = {}
    for line in ax.get_lines():
        if line.get_linestyle() == "None" and line.get_marker() not in ("x", "None"):
            drawn.update({(int(x), line.get_color()): y
                          for x, y in zip(line.get_xdata(), line.get_ydata())})
    expected = {(r["devices"], "#1f77b4" if r["max_blocks"] == 1 else "#d62728"):
                r["round_latency_s"] for r in rows if r["round_latency_s"] is not None}
    assert drawn == expected
    assert_publishable(figure)


def test_several_blocks_is_a_figure_kind():
    assert "several-blocks" in plots.FIGURE_KINDS


def test_cooperation_map_colours_each_cell_by_its_winner():
    from lola.studies.cooperation import cooperation_row

    task = {"profile": "roberta-base", "mix": "default", "class_mix": None, "devices": 12,
            "seed": 0, "bandwidth_hz": 2e7}
    slow = cooperation_row(dict(task, server_flops_per_s=1e12))
    fast = cooperation_row(dict(task, server_flops_per_s=1e15))
    # a server 1000 times faster makes centralized training faster than any DEFT round here
    assert slow["best"] == "local" and fast["best"] == "centralized"
    assert fast["centralized_s"] < fast["local_s"] <= slow["centralized_s"]
    assert slow["split_s"] <= slow["local_s"] * (1 + 1e-9)
    figure = plots.plot_cooperation([slow, fast])
    colours = [patch.get_facecolor()[:3] for patch in figure.axes[0].patches]
    from matplotlib.colors import to_rgb
    assert colours == [to_rgb(plots._WINNER_COLOURS["local"]),
                       to_rgb(plots._WINNER_COLOURS["centralized"])]
    labels = sorted(text.get_text() for text in figure.axes[0].texts)
    assert labels == sorted([f"{slow['local_s'] / slow['centralized_s']:.2f}",
                             f"{fast['centralized_s'] / fast['local_s']:.2f}"])


def test_ledger_figure_stacks_each_devices_bytes():
    from lola.studies.ledger import traffic_ledger

    ledger = traffic_ledger(problem="matching", method="crunch")
    figure = plots.plot_ledger(ledger)
    heights = {}
    for patch in figure.axes[0].patches:
        heights[round(patch.get_x(), 6)] = heights.get(round(patch.get_x(), 6), 0.0) + \
            patch.get_height()
    expected = [entry["uplink_bytes"] + entry["downlink_bytes"]
                for entry in ledger.per_round["devices"].values()]
    assert sorted(heights.values()) == pytest.approx(sorted(e / 1e6 for e in expected))
