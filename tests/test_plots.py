"""Every figure kind renders, and the plotted data are the results they came from."""
import numpy as np
import pytest
from matplotlib.patches import Rectangle

import lola
from lola import cli, plots, sweeps


@pytest.fixture(scope="module")
def jbba_result():
    return lola.solve(lola.default_scenario(), problem="jbba", method="dual-ascent")


def test_allocation_bars_sum_to_each_devices_latency(jbba_result, tmp_path):
    figure = plots.plot_allocation(jbba_result)
    ax = figure.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() < 1]
    n = len(jbba_result.assignment)
    heights = np.array([bar.get_height() for bar in bars])
    stacked = heights[:n] + heights[n:2 * n]
    busy = [d for d in jbba_result.devices if d.blocks]
    np.testing.assert_allclose(stacked, [d.latency_s for d in busy], rtol=1e-9)
    line = [l for l in ax.get_lines() if "round latency" in l.get_label()][0]
    assert line.get_ydata()[0] == jbba_result.round_latency_s
    path = plots.save(figure, tmp_path / "allocation.png")
    assert path.stat().st_size > 10_000


def test_convergence_plots_the_history(jbba_result):
    figure = plots.plot_convergence(jbba_result)
    primal = figure.axes[0].get_lines()[0].get_ydata()
    assert list(primal) == [h["primal_s"] for h in jbba_result.history]
    with pytest.raises(ValueError, match="no iteration history"):
        plots.plot_convergence(lola.solve(lola.default_scenario(), problem="jbba",
                                          method="exact"))


def test_profile_figure_shows_depth_curves(tmp_path):
    figure = plots.plot_profile(["roberta-base", "roberta-large"])
    flops_ax, latency_ax, memory_ax = figure.axes
    base = lola.profiles.load_profile("roberta-base")
    assert list(flops_ax.get_lines()[0].get_ydata()) == [b.flops / 1e12 for b in base.blocks]
    assert list(memory_ax.get_lines()[0].get_ydata()) == [b.memory_bytes / 1e9
                                                          for b in base.blocks]
    assert latency_ax.get_ylabel() == "measured step latency (s)"
    assert plots.save(figure, tmp_path / "profile.svg").read_text().startswith("<?xml")


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
    assert plots.save(figure, tmp_path / "sweep.pdf").read_bytes().startswith(b"%PDF")


def test_memory_sweep_shows_where_blocks_stop_fitting():
    rows = sweeps.sweep("memory", [0.1, 1.0], methods=["exact"], seeds=2)
    summary = sweeps.summarise(rows)
    assert summary["exact"]["feasible"][0] < 1 and summary["exact"]["feasible"][1] == 1
    labels = [l.get_label() for l in plots.plot_sweep(rows).axes[0].get_lines()]
    assert "some seeds infeasible" in labels


def test_solver_time_is_log_log(tmp_path):
    rows = sweeps.timing([10, 20], methods=["exact", "dual-ascent", "brute"], seeds=1)
    assert {r["method"] for r in rows} == {"exact", "dual-ascent"}  # brute refuses K = N = 10
    figure = plots.plot_solver_time(rows)
    assert figure.axes[0].get_xscale() == "log" and figure.axes[0].get_yscale() == "log"


def test_method_colours_are_stable_and_distinct():
    names = ["dual-ascent", "crunch", "bottleneck", "exact", "milp", "brute", "random",
             "greedy", "min-sum", "centralized"]
    colours = [plots.method_colour(n) for n in names]
    assert len(set(colours)) == len(colours)
    assert plots.method_colour("exact") == plots.method_colour("exact")


@pytest.mark.parametrize("kind, extra", [
    ("profile", []), ("allocation", []), ("convergence", []),
    ("devices", ["--values", "12,14", "--seeds", "2", "--methods", "exact,random"]),
    ("solver-time", ["--values", "10,20", "--seeds", "1"])])
def test_cli_plot_writes_every_kind(kind, extra, tmp_path, capsys):
    out = tmp_path / f"{kind}.png"
    assert cli.main(["plot", kind, "-o", str(out)] + extra) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000


def test_cli_plot_rejects_unknown_formats_before_working(tmp_path, capsys):
    assert cli.main(["plot", "devices", "-o", str(tmp_path / "x.gif")]) == 2
    assert ".png, .pdf or .svg" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
