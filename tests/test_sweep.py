"""Sweeps (SPEC section 14): the sweep file, one resumable CSV row per (instance, method), and the
same rows whatever runs the tasks: in-process, a local process pool or a Dask cluster."""
import csv
import inspect
import logging
import os
import signal
import sys
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor

import pytest

import lola
import solvers
from lola import sweeps
from lola.cli import main
from lola.generate import generate_scenario
from lola.studies import COLUMNS, load_sweep, run_tasks

SWEEP = {"name": "tiny", "problem": "jbba", "methods": ["exact", "greedy", "random"],
         "seeds": [0, 1], "generate": {"devices": [12, 16], "profile": "roberta-base",
                                       "rate_model": "fixed"}}
TASKS = 2 * 2 * 3


def _write(path, text):
    path.write_text(text)
    return path


def _comparable(rows):
    """Every column but the solve time, which is a measurement."""
    return [{k: v for k, v in row.items() if k != "solve_time_s"} for row in rows]


def _read(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory):
    return lola.sweep(SWEEP, output=tmp_path_factory.mktemp("serial") / "rows.csv").rows


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        yield cluster


def test_every_generator_argument_is_a_sweep_key_and_a_column():
    from lola.studies.grid import GENERATE_ALIASES, GENERATOR_ARGUMENTS
    parameters = inspect.signature(generate_scenario).parameters
    # every scalar argument; class_mix (a mapping of class weights) is no CSV column
    assert set(GENERATOR_ARGUMENTS) == set(parameters) - {"seed", "name", "class_mix"}
    assert "downlink" in GENERATOR_ARGUMENTS
    assert {name: GENERATOR_ARGUMENTS[name] for name in ("n_devices", "profile", "rate_model",
                                                         "total_bandwidth_hz")} == \
        {"n_devices": 20, "profile": "roberta-base", "rate_model": "fixed",
         "total_bandwidth_hz": 20e6}
    assert set(GENERATE_ALIASES.values()) <= set(GENERATOR_ARGUMENTS)
    assert set(GENERATOR_ARGUMENTS) - {"n_devices"} | {"devices"} <= set(COLUMNS)


def test_the_channel_options_are_axes_and_off_is_zero(tmp_path):
    spec = {"methods": ["greedy"], "generate": {
        "devices": 12, "noise_figure_db": [None, 5], "max_spectral_efficiency": [0, 7.4063]}}
    rows = lola.sweep(spec, output=tmp_path / "rows.csv").rows
    assert [(r["noise_figure_db"], r["max_spectral_efficiency"]) for r in rows] == \
        [(0.0, 0.0), (0.0, 7.4063), (5.0, 0.0), (5.0, 7.4063)]
    uncapped = generate_scenario(12, noise_figure_db=None, max_spectral_efficiency=None)
    assert rows[0]["round_latency_s"] == lola.solve(uncapped, method="greedy").round_latency_s
    assert rows[0]["round_latency_s"] != rows[2]["round_latency_s"]  # the noise figure matters


def test_one_row_per_instance_and_method_in_grid_order(serial_rows):
    assert len(serial_rows) == TASKS and list(serial_rows[0]) == list(COLUMNS)
    assert [(r["devices"], r["seed"], r["method"]) for r in serial_rows[:4]] == \
        [(12, 0, "exact"), (12, 0, "greedy"), (12, 0, "random"), (12, 1, "exact")]
    assert len({r["key"] for r in serial_rows}) == TASKS
    exact = [r for r in serial_rows if r["method"] == "exact"]
    assert all(r["status"] == "optimal" and r["lower_bound_s"] > 0 for r in exact)
    for row in serial_rows:  # an exact optimum is never beaten by a baseline on its instance
        best = next(r for r in exact if (r["devices"], r["seed"]) ==
                    (row["devices"], row["seed"]))
        assert row["round_latency_s"] >= best["round_latency_s"] * (1 - 1e-9)
        assert row["time_limit_s"] is None and row["name"] == "tiny"


def test_a_row_is_the_generated_scenario_solved_with_its_solver_seed(serial_rows):
    row = next(r for r in serial_rows if r["method"] == "random" and r["devices"] == 16
               and r["seed"] == 1)
    scenario = generate_scenario(16, profile="roberta-base", rate_model="fixed", seed=1)
    result = lola.solve(scenario, problem="jbba", method="random", seed=row["solver_seed"])
    assert result.round_latency_s == row["round_latency_s"]
    # the method's seed is not the generator's: its draws are not the scenario's draws again
    assert row["solver_seed"] != row["seed"]


def test_local_processes_and_dask_give_the_serial_rows(serial_rows, tmp_path):
    pytest.importorskip("distributed")
    local = lola.sweep(SWEEP, output=tmp_path / "local.csv", executor="local", workers=2)
    dask = lola.sweep(SWEEP, output=tmp_path / "dask.csv", executor="dask", workers=2)
    assert local.ran == dask.ran == TASKS
    assert _comparable(local.rows) == _comparable(dask.rows) == _comparable(serial_rows)


def test_a_resumed_sweep_adds_nothing(tmp_path):
    output = tmp_path / "rows.csv"
    first = lola.sweep(SWEEP, output=output)
    written = output.read_bytes()
    again = lola.sweep(SWEEP, output=output)
    assert (again.ran, again.skipped) == (0, TASKS)
    assert output.read_bytes() == written
    assert _comparable(again.rows) == _comparable(first.rows)
    assert written.count(b"\n") == TASKS + 1 and written.startswith(b"key,name,")


def test_a_torn_last_line_is_cut_off_and_its_task_run_again(tmp_path, serial_rows):
    output = tmp_path / "rows.csv"
    lola.sweep(SWEEP, output=output)
    data = output.read_bytes()
    output.write_bytes(data[:-25])  # killed in the middle of writing the last row
    outcome = lola.sweep(SWEEP, output=output)
    assert outcome.ran == 1 and outcome.repaired_bytes == len(data.splitlines()[-1]) + 1 - 25
    rows = _read(output)
    assert len(rows) == TASKS and len({r["key"] for r in rows}) == TASKS
    assert _comparable(outcome.rows) == _comparable(serial_rows)


def test_a_torn_header_is_written_again(tmp_path):
    output = tmp_path / "rows.csv"
    output.write_bytes(b"key,name,pro")
    assert lola.sweep(SWEEP, output=output).ran == TASKS
    assert len(_read(output)) == TASKS


def test_a_file_of_other_rows_is_left_alone(tmp_path, capsys):
    output = _write(tmp_path / "other.csv", "size,seed\n1,2\n")
    sweep_file = _write(tmp_path / "s.yaml", "methods: [greedy]\ngenerate: {devices: 12}\n")
    assert main(["sweep", str(sweep_file), "-o", str(output)]) == 2
    assert "other.csv" in capsys.readouterr().err
    assert output.read_text() == "size,seed\n1,2\n"


# --- a worker that dies mid-sweep -------------------------------------------------------------


def _kill_once_then(function, task, marker, key):
    """Run ``function(task)``, but first kill this worker process, once, on task ``key``."""
    if task["key"] == key:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return function(task)


class _KillingExecutor(Executor):
    """Another executor's tasks, one of which kills the worker that runs it the first time."""

    def __init__(self, inner, marker, key):
        self.inner, self.marker, self.key = inner, str(marker), key

    def submit(self, function, task):
        return self.inner.submit(_kill_once_then, function, task, self.marker, self.key)


def test_a_dead_worker_stops_the_pool_and_a_rerun_completes_the_grid(tmp_path, serial_rows):
    output, marker = tmp_path / "rows.csv", tmp_path / "killed"
    victim = load_sweep(SWEEP).tasks()[6]["key"]
    with ProcessPoolExecutor(2) as pool:
        with pytest.raises(BrokenExecutor):
            lola.sweep(SWEEP, output=output, executor=_KillingExecutor(pool, marker, victim))
    assert marker.exists()
    partial = _read(output)
    assert len(partial) < TASKS and len({r["key"] for r in partial}) == len(partial)
    assert victim not in {r["key"] for r in partial}
    outcome = lola.sweep(SWEEP, output=output, executor="local", workers=2)
    assert outcome.ran == TASKS - len(partial)
    rows = _read(output)
    assert len(rows) == TASKS and len({r["key"] for r in rows}) == TASKS
    assert _comparable(outcome.rows) == _comparable(serial_rows)


def _die(task):
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_command_says_a_dead_worker_stopped_it_and_how_to_resume(tmp_path, capsys,
                                                                     monkeypatch):
    from lola.studies import grid

    monkeypatch.setattr(grid, "solve_task", _die)  # the pool's forked workers see it too
    sweep_file = _write(tmp_path / "s.yaml", "methods: [greedy]\ngenerate: {devices: 12}\n")
    output = tmp_path / "rows.csv"
    assert main(["sweep", str(sweep_file), "-o", str(output), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BrokenProcessPool" in err and "run the same command" in err
    monkeypatch.undo()
    assert main(["sweep", str(sweep_file), "-o", str(output), "--workers", "1"]) == 0
    assert len(_read(output)) == 1


def test_two_runs_never_write_the_same_file_at_once(tmp_path):
    from lola.studies import RowLog

    with RowLog(tmp_path / "rows.csv", COLUMNS):
        with pytest.raises(lola.ScenarioError, match="another run is writing this file"):
            lola.sweep(SWEEP, output=tmp_path / "rows.csv")


def test_dask_reruns_the_task_of_a_dead_worker(dask_cluster, tmp_path, serial_rows):
    from distributed import Client

    output, marker = tmp_path / "rows.csv", tmp_path / "killed"
    victim = load_sweep(SWEEP).tasks()[3]["key"]
    with Client(dask_cluster) as client:
        executor = _KillingExecutor(client.get_executor(pure=False), marker, victim)
        outcome = lola.sweep(SWEEP, output=output, executor=executor)
    assert marker.exists() and outcome.ran == TASKS
    rows = _read(output)
    assert len(rows) == TASKS and len({r["key"] for r in rows}) == TASKS
    assert _comparable(outcome.rows) == _comparable(serial_rows)


# --- what a method cannot do is a row, not a crash --------------------------------------------


def test_a_method_that_finds_nothing_gives_a_failed_row(tmp_path, monkeypatch):
    import lola.api

    real_solve = lola.api.solve

    def solve(scenario, problem, method, **kwargs):
        if method == "greedy":
            raise solvers.SolverFailure("time limit reached before any allocation was found")
        return real_solve(scenario, problem, method, **kwargs)

    monkeypatch.setattr(lola.api, "solve", solve)
    outcome = lola.sweep({"methods": ["exact", "greedy"], "generate": {"devices": 12}},
                         output=tmp_path / "rows.csv")
    failed = outcome.rows[1]
    assert (failed["method"], failed["status"], failed["round_latency_s"]) == \
        ("greedy", "failed", None)
    assert "time limit reached" in failed["message"]
    assert outcome.rows[0]["status"] == "optimal" and outcome.counts == {"optimal": 1,
                                                                         "failed": 1}


def test_the_time_limit_goes_to_the_methods_that_take_one(tmp_path):
    spec = {"methods": ["dual-ascent", "greedy"], "time_limit_s": 30,
            "generate": {"devices": 12, "bandwidth": [1e7, 2e7]}}
    rows = lola.sweep(spec, output=tmp_path / "rows.csv").rows
    assert [r["time_limit_s"] for r in rows] == [30.0, None, 30.0, None]
    assert [r["total_bandwidth_hz"] for r in rows] == [1e7, 1e7, 2e7, 2e7]


# --- the sweep file and the command line ------------------------------------------------------


@pytest.mark.parametrize("text, key, words", [
    ("methods: [exact]\ncolour: red\ngenerate: {devices: 12}\n", "colour", "unknown key"),
    ("methods: [exact, gredy]\ngenerate: {devices: 12}\n", "methods[1]", "greedy"),
    ("methods: [crunch]\ngenerate: {devices: 12}\n", "methods[0]", "methods that do: exact"),
    ("methods: [exact]\ngenerate: {devices: 12, antennas: 4}\n", "generate.antennas",
     "allowed here: bandwidth, devices"),
    ("methods: [exact]\ngenerate: {devices: [12, 0]}\n", "generate.devices[1]", "at least 1"),
    ("methods: [exact]\ngenerate: {devices: [12, 12]}\n", "generate.devices[1]", "duplicate"),
    ("methods: [exact]\ngenerate: {devices: 12, bandwidth: 1e6, total_bandwidth_hz: 2e6}\n",
     "generate.total_bandwidth_hz", "generate.bandwidth"),
    ("methods: [exact]\ngenerate: {devices: 12, rate_model: [fixed, shanon]}\n",
     "generate.rate_model[1]", "fixed, shannon"),
    ("methods: [exact]\ngenerate: {devices: 12, max_spectral_efficiency: -1}\n",
     "generate.max_spectral_efficiency", "at least 0"),
    ("methods: [exact]\ngenerate: {devices: 12, name: lab}\n", "generate.name", "unknown key"),
    ("methods: [exact]\ngenerate: {devices: 12, profile: roberta-huge}\n", "generate.profile",
     "roberta-base"),
    ("methods: [exact]\ngenerate: {seed: 3}\n", "generate.seed", "seeds"),
    ("methods: [exact]\nseeds: 3\ngenerate: {devices: 12}\n", "seeds", "[0, 1, 2]"),
    ("methods: [greedy]\ntime_limit_s: 5\ngenerate: {devices: 12}\n", "time_limit_s",
     "dual-ascent"),
    ("problem: jbba\ngenerate: {devices: 12}\n", "methods", "missing"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_the_key(tmp_path, capsys, text, key,
                                                                  words):
    sweep_file = _write(tmp_path / "bad.yaml", text)
    assert main(["sweep", str(sweep_file), "-o", str(tmp_path / "rows.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"bad.yaml: {key}:" in err and words in err
    assert not (tmp_path / "rows.csv").exists()


def test_the_command_writes_then_resumes(tmp_path, capsys, serial_rows, monkeypatch):
    sweep_file = _write(tmp_path / "devices-sweep.yaml", """\
name: tiny
problem: jbba
methods: [exact, greedy, random]
seeds: [0, 1]
generate: {devices: [12, 16], profile: roberta-base, rate_model: fixed}
""")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(sweep_file), "--workers", "2", "--quiet"]) == 0
    assert f"tiny: {TASKS} rows in devices-sweep.csv" in capsys.readouterr().out
    # in the file in the order the tasks finished; each row as the serial sweep wrote it
    written = {r["key"]: r["round_latency_s"] for r in _read(tmp_path / "devices-sweep.csv")}
    assert written == {r["key"]: repr(r["round_latency_s"]) for r in serial_rows}
    assert main(["sweep", str(sweep_file), "--executor", "local"]) == 0
    assert f"0 solved now, {TASKS} found in the file" in capsys.readouterr().out


def test_dask_without_dask_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    sweep_file = _write(tmp_path / "s.yaml", "methods: [greedy]\ngenerate: {devices: 12}\n")
    assert main(["sweep", str(sweep_file), "-o", str(tmp_path / "rows.csv"),
                 "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'lola-deft[dask]'" in err
    assert not (tmp_path / "rows.csv").exists()


def test_an_unreachable_scheduler_is_one_line_and_leaves_no_file(tmp_path, capsys,
                                                                 monkeypatch):
    distributed = pytest.importorskip("distributed")

    def unreachable(address, **kwargs):
        raise OSError(f"Timed out trying to connect to {address} after 30 s")

    monkeypatch.setattr(distributed, "Client", unreachable)
    sweep_file = _write(tmp_path / "s.yaml", "methods: [greedy]\ngenerate: {devices: 12}\n")
    assert main(["sweep", str(sweep_file), "-o", str(tmp_path / "rows.csv"), "--scheduler",
                 "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "rows.csv").exists()


@pytest.mark.parametrize("options, words", [
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "--workers"),
    (["--workers", "0"], "positive integer"),
])
def test_contradictory_executor_options_are_usage_errors(tmp_path, capsys, options, words):
    sweep_file = _write(tmp_path / "s.yaml", "methods: [greedy]\ngenerate: {devices: 12}\n")
    assert main(["sweep", str(sweep_file)] + options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_the_command_joins_a_running_dask_scheduler(dask_cluster, tmp_path, capsys,
                                                    serial_rows):
    sweep_file = _write(tmp_path / "s.yaml", "name: tiny\nmethods: [exact, greedy, random]\n"
                        "seeds: [0, 1]\ngenerate: {devices: [12, 16]}\n")
    output = tmp_path / "rows.csv"
    assert main(["sweep", str(sweep_file), "-o", str(output), "--scheduler",
                 dask_cluster.scheduler_address]) == 0
    assert f"{TASKS} solved now" in capsys.readouterr().out
    assert {r["key"]: float(r["round_latency_s"]) for r in _read(output)} == \
        {r["key"]: r["round_latency_s"] for r in serial_rows}


# --- the figures' sweeps and the benchmarks run on the same runner ----------------------------


def test_the_figures_sweeps_give_the_same_rows_on_an_executor():
    serial = sweeps.sweep("devices", [12, 14], methods=["crunch", "greedy"], problem="matching",
                          seeds=2)
    progress = []
    with ProcessPoolExecutor(2) as pool:
        parallel = sweeps.sweep("devices", [12, 14], methods=["crunch", "greedy"],
                                problem="matching", seeds=2, executor=pool,
                                progress=lambda done, total: progress.append((done, total)))
    assert _comparable(parallel) == _comparable(serial) and len(serial) == 8
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    timed = sweeps.timing([10], methods=["exact", "brute"], seeds=2)
    assert [(r["size"], r["seed"], r["method"]) for r in timed] == [(10, 0, "exact"),
                                                                     (10, 1, "exact")]


def test_the_runner_returns_results_in_task_order_and_reports_each_once():
    seen = []
    with ProcessPoolExecutor(2) as pool:
        results = run_tasks(abs, range(-20, 0), executor=pool, window=3,
                            on_result=lambda index, task, result: seen.append(index))
    assert results == list(range(20, 0, -1)) and sorted(seen) == list(range(20))


def test_a_multiprocessing_pool_runs_a_sweep_as_an_executor(tmp_path, serial_rows):
    import multiprocessing

    from lola.studies import PoolExecutor

    with multiprocessing.Pool(2) as pool:  # the interface of ray.util.multiprocessing.Pool
        outcome = lola.sweep(SWEEP, output=tmp_path / "rows.csv", executor=PoolExecutor(pool))
    assert _comparable(outcome.rows) == _comparable(serial_rows)


def test_the_benchmarks_run_their_grids_on_a_dask_scheduler(dask_cluster, tmp_path,
                                                            monkeypatch):
    import benchmarks.__main__ as suite
    from benchmarks import crunch_scaling, jbba_quality, jbba_scaling

    executors = {}

    def stage(name):
        def run(*args, executor=None, **kwargs):
            executors[name] = executor
            return {}
        return run

    monkeypatch.setattr(crunch_scaling, "run", stage("crunch"))
    monkeypatch.setattr(jbba_scaling, "run", stage("scaling"))
    monkeypatch.setattr(jbba_quality, "run", stage("quality"))
    monkeypatch.setattr(suite, "figures_stage", stage("figures"))
    monkeypatch.setattr(suite, "_report", lambda out_dir, *_: _write(out_dir / "report.md", ""))
    suite.main(["--out", str(tmp_path), "--executor", "dask", "--scheduler",
                dask_cluster.scheduler_address])
    assert executors["crunch"] is None and executors["scaling"] is None
    quality = executors["quality"]
    assert quality is executors["figures"] and type(quality).__name__ == "ClientExecutor"
