"""Output that a reader can take at its word: totals that compare, figures that show what they
say, and README numbers that are what the commands print."""
import ast
import importlib.util
import re
import shlex
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import lola  # noqa: E402
from lola import plots  # noqa: E402
from lola.generate import generate_scenario  # noqa: E402
from lola.report import seconds_text  # noqa: E402
from lola.studies import rounds  # noqa: E402
from lola.studies.rounds import simulate  # noqa: E402
from tests.test_readme import _blocks, _commands, _extra_needed, _text, folder  # noqa: E402,F401


pytestmark = pytest.mark.usefixtures("no_open_figures")


# ---------------------------------------------------------------------------------------------
# 7. A total over fewer rounds is not a faster method


@pytest.fixture(scope="module")
def failing_static():
    """Six rounds where devices drop out: the static allocation fails 3 of them, exact none."""
    simulation = simulate(generate_scenario(16, seed=3), problem="jbba",
                          methods=["exact", "greedy"], rounds=6, seed=0, availability=0.9)
    static = {row["method"]: row for row in simulation.summary}["static-exact"]
    assert 0 < static["infeasible_rounds"] < 6  # what the tests below are about
    return simulation


def test_summary_gives_totals_over_the_rounds_every_method_completed(failing_static):
    simulation = failing_static
    completed = {method: {row["round"] for row in simulation.rows(method)
                          if row["round_latency_s"] is not None}
                 for method in simulation.methods}
    common = set.intersection(*completed.values())
    summary = {row["method"]: row for row in simulation.summary}
    for method, entry in summary.items():
        # the specification's keys are kept, as they were
        assert {"method", "total_latency_s", "total_solve_time_s",
                "infeasible_rounds"} <= set(entry)
        assert entry["completed_rounds"] == len(completed[method])
        assert entry["completed_rounds"] + entry["infeasible_rounds"] == simulation.rounds
        assert entry["common_rounds"] == len(common)
        rows = [row for row in simulation.rows(method) if row["round"] in common]
        assert entry["total_latency_common_s"] == pytest.approx(
            sum(row["round_latency_s"] for row in rows))
        assert entry["total_time_common_s"] == pytest.approx(
            sum(row["round_latency_s"] + row["solve_time_s"] for row in rows))
    # Over its own rounds the static variant looks far faster than exact, which is optimal in
    # every round; over the common rounds it is not.
    exact, static = summary["exact"], summary["static-exact"]
    assert static["total_latency_s"] < exact["total_latency_s"]
    assert static["total_latency_common_s"] >= exact["total_latency_common_s"] * (1 - 1e-9)


def test_summary_table_shows_the_rounds_a_total_is_over_and_the_common_totals(failing_static):
    text = rounds.format_summary(failing_static)
    summary = {row["method"]: row for row in failing_static.summary}
    static = summary["static-exact"]
    line = next(line for line in text.splitlines() if line.startswith("static-exact"))
    # next to its total: over how many rounds it is
    assert f"({static['completed_rounds']} rounds)" in line
    common = static["common_rounds"]
    assert f"latency, {common} common" in text and f"time, {common} common" in text
    for method, entry in summary.items():
        row = next(line for line in text.splitlines() if line.startswith(method + " "))
        assert seconds_text(entry["total_latency_common_s"]) in row
    assert "common rounds" in text.splitlines()[-1]


def test_summary_table_unchanged_when_every_method_completes_every_round():
    simulation = simulate(generate_scenario(16, seed=3), problem="matching",
                          methods=["crunch"], rounds=2, seed=0)
    text = rounds.format_summary(simulation)
    assert "common" not in text and "rounds)" not in text


def test_cumulative_time_has_whole_round_ticks_and_says_where_a_curve_stops(failing_static):
    figure = rounds.plot_cumulative_time(failing_static)
    figure.canvas.draw()
    ax = figure.axes[0]
    low, high = ax.get_xlim()
    ticks = [tick for tick in ax.get_xticks() if low <= tick <= high]
    assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks), ticks
    static = {row["method"]: row for row in failing_static.summary}["static-exact"]
    assert any(f"{static['completed_rounds']} of {failing_static.rounds} rounds" in text.get_text()
               for text in ax.texts)


def test_cumulative_time_ticks_are_whole_rounds_for_few_rounds():
    simulation = simulate(generate_scenario(16, seed=3), problem="matching",
                          methods=["crunch"], rounds=3, seed=0, static=False)
    figure = rounds.plot_cumulative_time(simulation)
    figure.canvas.draw()
    ax = figure.axes[0]
    low, high = ax.get_xlim()
    ticks = [tick for tick in ax.get_xticks() if low <= tick <= high]
    assert all(float(tick).is_integer() for tick in ticks), ticks


# ---------------------------------------------------------------------------------------------
# 10. Figures that show what they say


def _sweep_rows(latencies):
    """Sweep rows from {method: {K: [latency per seed]}}."""
    return [{"parameter": "devices", "value": value, "seed": seed, "method": method,
             "status": "optimal", "round_latency_s": latency, "solve_time_s": 0.001}
            for method, by_value in latencies.items() for value, seeds in by_value.items()
            for seed, latency in enumerate(seeds)]


def test_devices_sweep_keeps_methods_that_coincide_apart():
    same = {12: [1.0, 1.2, 1.1], 16: [0.8, 0.9, 0.85], 20: [0.7, 0.75, 0.72]}
    rows = _sweep_rows({"exact": same, "dual-ascent": same,
                        "greedy": {k: [v * 1.05 for v in s] for k, s in same.items()}})
    figure = plots.plot_sweep(rows)
    figure.canvas.draw()
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    points_per_pt = figure.dpi / 72

    def drawn(line):
        return line.get_transform().transform(np.column_stack([line.get_xdata(),
                                                               line.get_ydata()]))

    # exact's markers are not hidden under dual-ascent's: the two sit side by side
    exact, dual = drawn(lines["exact"]), drawn(lines["dual-ascent"])
    apart = np.hypot(*(exact - dual).T) / points_per_pt
    need = 0.5 * (lines["exact"].get_markersize() + lines["dual-ascent"].get_markersize())
    assert (apart >= 0.6 * need).all(), apart
    # and exact stays on top, dashed, in a style of its own
    assert lines["exact"].get_zorder() > lines["dual-ascent"].get_zorder()
    assert lines["exact"].get_linestyle() == "--"
    assert lines["dual-ascent"].get_linestyle() != "--"
    # the data are still the true K
    np.testing.assert_allclose(lines["exact"].get_xdata(), [12, 16, 20])
    # the intervals are not bands laid over one another: one bar per method and point, the
    # methods' bars at distinct places
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)
                and len(c.get_paths()) and c.get_paths()[0].vertices.size > 8]
    bars = {}
    for collection in ax.collections:
        segments = collection.get_segments() if hasattr(collection, "get_segments") else []
        if not len(segments):
            continue
        colour = matplotlib.colors.to_hex(collection.get_colors()[0], keep_alpha=False)
        transform = collection.get_transform()
        bars[colour] = sorted(round(float(transform.transform(segment[:1])[0][0]), 1)
                              for segment in segments)
    assert len(bars) == 3, bars
    for method in ("exact", "dual-ascent", "greedy"):
        assert len(bars[plots.method_colour(method)]) == 3
    xs = [x for positions in bars.values() for x in positions]
    assert len(set(xs)) == len(xs)  # no two bars on the same vertical


def test_energy_figure_keeps_infeasible_budgets_off_the_latency_axis():
    rows = [{"budget_j": budget, "method": method, "status": status,
             "round_latency_s": latency}
            for budget, status, latency in [(5.0, "infeasible", None), (10.0, "infeasible", None),
                                            (20.0, "optimal", 1.2), (40.0, "optimal", 0.9)]
            for method in ("exact", "greedy")]
    figure = plots.plot_energy_budget(rows)
    figure.canvas.draw()
    latency_ax = figure.axes[0]
    assert latency_ax.get_ylabel() == "round latency (s)"
    # nothing is drawn on the latency axes at a budget without an allocation: a mark there
    # reads as a latency (below the optimum, on the lower edge)
    for line in latency_ax.get_lines():
        assert not set(np.asarray(line.get_xdata(), dtype=float)) & {5.0, 10.0}, \
            line.get_label()
    # the infeasible budgets are marked, by method, above the latency axes, and labelled
    marks = [line for ax in figure.axes[1:] for line in ax.get_lines()
             if "infeasible" in line.get_label()]
    assert {line.get_label().split(":")[0] for line in marks} == {"exact", "greedy"}
    top = latency_ax.get_window_extent().y1
    for line in marks:
        assert sorted(line.get_xdata()) == [5.0, 10.0]
        assert line.get_color() == plots.method_colour(line.get_label().split(":")[0])
        assert line.axes.get_window_extent().y0 >= top
    labels = [text.get_text() for text in latency_ax.get_legend().get_texts()]
    assert any("infeasible" in label for label in labels)


def test_ledger_legend_covers_no_bar():
    from lola.studies.ledger import traffic_ledger

    figure = plots.plot_ledger(traffic_ledger(problem="matching", method="crunch"))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    legend = ax.get_legend() or figure.legends[0]
    box = legend.get_window_extent(renderer)
    bars = [patch for patch in ax.patches if isinstance(patch, Rectangle)
            and patch.get_height() > 0]
    assert bars
    for bar in bars:
        assert not box.overlaps(bar.get_window_extent(renderer))


def _cooperation_row(bandwidth, best, local, split, central):
    return {"mix": "default", "server_flops_per_s": 1e13, "bandwidth_hz": bandwidth,
            "best": best, "local_s": local, "split_s": split, "centralized_s": central}


def test_cooperation_legend_lists_what_is_drawn_and_the_number_is_named():
    rows = [_cooperation_row(5e6, "local", 1.0, 1.0, 2.0),
            _cooperation_row(2e7, "centralized", 2.0, 2.0, 0.5)]
    figure = plots.plot_cooperation(rows)
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert len(labels) == 2 and not any("split" in label for label in labels), labels
    title = figure._suptitle.get_text()
    assert "the other's" not in title
    assert "second fastest" in title
    numbers = sorted(text.get_text() for text in figure.axes[0].texts)
    assert numbers == ["0.25", "0.50"]  # 1.0 / 2.0 and 0.5 / 2.0


def test_cooperation_number_is_the_fastest_over_the_second_fastest_of_three():
    # split wins; local is second, centralized a distant third
    rows = [_cooperation_row(5e6, "split", 1.5, 1.0, 3.0)]
    figure = plots.plot_cooperation(rows)
    assert [text.get_text() for text in figure.axes[0].texts] == ["0.67"]  # 1.0 / 1.5
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert len(labels) == 1 and "split" in labels[0]


# ---------------------------------------------------------------------------------------------
# 11. The README and the documentation pages say what the commands print


def _shown_seconds(command: str):
    """The durations (``1.63 s``) in a command's trailing comment that are not its options."""
    if "#" not in command:
        return []
    code, comment = command.split("#", 1)
    return [figure for figure in re.findall(r"\d+(?:\.\d+)? s\b", comment)
            if figure.split()[0] not in shlex.split(code)]


def test_durations_in_the_readmes_command_comments_are_what_the_commands_print(folder):
    checked = 0
    for body in _blocks("sh"):
        writers = []  # the block's earlier commands that write a file a later one reads
        for line in body.replace("\\\n", " ").splitlines():
            figures = _shown_seconds(line)
            if not line.startswith("lola "):
                continue
            if not figures:
                if " -o " in line:
                    writers.append(line)
                continue
            for writer in writers:
                made = subprocess.run([sys.executable, "-m", "lola.cli",
                                       *shlex.split(writer, comments=True)[1:]],
                                      capture_output=True, text=True, timeout=300)
                assert made.returncode == 0, (writer, made.stderr)
            writers = []
            words = shlex.split(line, comments=True)
            process = subprocess.run([sys.executable, "-m", "lola.cli", *words[1:]],
                                     capture_output=True, text=True, timeout=300)
            assert process.returncode == 0, (line, process.stderr)
            for figure in figures:
                assert figure in process.stdout, (line, figure, process.stdout[:400])
            checked += 1
    assert checked >= 2  # the split-mode example: local only, and with split mode


def test_dual_ascent_gaps_in_the_readme_are_measured():
    text = " ".join(_text().split())  # the README and the documentation pages
    default = re.search(r"on the default scenario .*? reported gap is ([\d.]+) %", text)
    generated = re.search(r"on (\d+) generated devices, `lola scenario generate --devices "
                          r"(\d+)` \(seed (\d+)\), the same with a gap of (\d+) %", text)
    assert default and generated
    result = lola.solve(lola.default_scenario(), problem="jbba", method="dual-ascent")
    gap = (result.round_latency_s - result.lower_bound_s) / result.round_latency_s
    assert f"{100 * gap:.1f}" == default.group(1)
    count, devices, seed, percent = (int(group) for group in generated.groups())
    assert count == devices
    scenario = generate_scenario(devices, seed=seed)
    result = lola.solve(scenario, problem="jbba", method="dual-ascent")
    exact = lola.solve(scenario, problem="jbba", method="exact")
    gap = (result.round_latency_s - result.lower_bound_s) / result.round_latency_s
    assert f"{100 * gap:.0f}" == str(percent)
    assert result.round_latency_s == pytest.approx(exact.round_latency_s, rel=1e-9)  # "the same"


def _imports(code: str) -> set:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_readme_code_needing_a_missing_package_says_so_and_is_not_run():
    # the README test runs the ``python`` blocks: they import nothing that is not installed,
    # but for those it skips when an optional extra is missing
    for code in _blocks("python"):
        if _extra_needed(code) is not None:
            continue
        missing = {name for name in _imports(code) if importlib.util.find_spec(name) is None}
        assert not missing, (missing, code[:200])
    # a ``py`` block (shown, not run) that needs a package lola does not install says so first
    for code in _blocks("py"):
        for name in _imports(code):
            if name in ("lola", "solvers") or importlib.util.find_spec(name) is not None:
                continue
            first = code.splitlines()[0]
            assert first.startswith("# needs") and name in first, (name, first)


def test_readme_py_blocks_with_installed_imports_run_as_written(folder):
    ran = 0
    for code in _blocks("py"):
        if any(name not in ("lola", "solvers") and importlib.util.find_spec(name) is None
               for name in _imports(code)):
            continue
        process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=300)
        assert process.returncode == 0, process.stderr
        ran += 1
    assert ran >= 1
