"""Studies: everything that calls :func:`lola.solve` many times, over one shared runner.

A study is a list of pure, picklable tasks, each with its own seed, run by
:func:`~lola.studies.runner.run_tasks` in-process or on any ``concurrent.futures.Executor``, and
written as rows. :func:`sweep` runs a sweep file (specification, section 14) into a resumable
CSV; :mod:`lola.sweeps` (the figures' sweeps) and the benchmark suite run their grids through
the same runner.

>>> from lola.studies import run_tasks
>>> run_tasks(len, ["ab", "c"])
[2, 1]
"""
from .grid import COLUMNS, Sweep, SweepOutcome, load_sweep, solve_task, sweep
from .rows import RowLog
from .runner import (EXECUTORS, ExecutorUnavailable, PoolExecutor, check_executor, open_executor,
                     run_tasks)

__all__ = ["run_tasks", "open_executor", "check_executor", "PoolExecutor", "ExecutorUnavailable",
           "EXECUTORS", "RowLog", "sweep", "load_sweep", "solve_task", "Sweep", "SweepOutcome",
           "COLUMNS"]
