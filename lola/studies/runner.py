"""The one runner of every study: pure, picklable tasks over a ``concurrent.futures.Executor``.

A study (a sweep, the benchmarks' grids) is a list of tasks, each plain data with its own seed,
and a module-level function that turns one task into its result. :func:`run_tasks` runs them
in-process when there is no executor, else submits them to any ``concurrent.futures.Executor``
(a ``ProcessPoolExecutor``, Dask's ``Client.get_executor()``, mpi4py's ``MPIPoolExecutor``, ...)
and returns the results in task order, whatever order they finish in. The results therefore do
not depend on the executor, as long as each task carries its own seed.

:func:`open_executor` builds the executors the command line names: ``local`` (processes on
this machine) and ``dask`` (a Dask cluster, a local one when no scheduler address is given).

>>> run_tasks(abs, [-2, 3, -5])
[2, 3, 5]
>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(2) as pool:
...     run_tasks(abs, [-2, 3, -5], executor=pool)
[2, 3, 5]
"""
from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait

__all__ = ["run_tasks", "open_executor", "check_executor", "PoolExecutor", "ExecutorUnavailable",
           "EXECUTORS", "DASK_INSTALL"]

EXECUTORS = ("local", "dask")
DASK_INSTALL = "pip install 'lola-deft[dask]'"

# Tasks in flight at once: enough to keep a large cluster busy, few enough that a grid of a
# million tasks is not a million futures.
_DEFAULT_WINDOW = 1024


class ExecutorUnavailable(ValueError):
    """The executor asked for cannot be built here (a library missing, a bad option)."""


class PoolExecutor(Executor):
    """A ``multiprocessing.Pool``-like pool as a ``concurrent.futures.Executor``.

    Anything with ``apply_async(function, args, callback=..., error_callback=...)``:
    ``multiprocessing.Pool``, or Ray's ``ray.util.multiprocessing.Pool`` to run a sweep on a Ray
    cluster. The pool is used, never closed: whoever made it owns it.

    >>> from multiprocessing.pool import ThreadPool
    >>> with ThreadPool(2) as pool:
    ...     run_tasks(abs, [-2, 3], executor=PoolExecutor(pool))
    [2, 3]
    """

    def __init__(self, pool):
        self.pool = pool

    def submit(self, function, *args, **kwargs):
        future = Future()
        # Running from the start: the pool cannot take a task back, so it cannot be cancelled.
        future.set_running_or_notify_cancel()
        self.pool.apply_async(function, args, kwargs, callback=future.set_result,
                              error_callback=future.set_exception)
        return future


def run_tasks(function, tasks, *, executor: Executor | None = None, on_result=None,
              window: int | None = None) -> list:
    """``[function(task) for task in tasks]``, on ``executor`` when one is given.

    Parameters
    ----------
    function : callable
        Applied to each task. With an executor it must be picklable (a module-level function)
        and so must the tasks and results: plain data, never a solver's model object.
    tasks : iterable
    executor : concurrent.futures.Executor, optional
        None runs the tasks one after the other in this process. The executor is used, never
        shut down: whoever made it owns it.
    on_result : callable, optional
        Called in this process as ``on_result(index, task, result)`` as each task finishes, in
        the order they finish (e.g. to append a row to a file).
    window : int, optional
        Most tasks submitted and not yet finished at once (default: 1024).

    Returns
    -------
    list
        The results in the order of ``tasks``.

    Raises
    ------
    Exception
        The first exception a task raised (or the executor's, e.g. ``BrokenProcessPool`` when a
        worker process died); the tasks not yet started are cancelled first, and every result
        reported to ``on_result`` before it stays reported.
    """
    tasks = list(tasks)
    results = [None] * len(tasks)
    if executor is None:
        for index, task in enumerate(tasks):
            results[index] = function(task)
            if on_result is not None:
                on_result(index, task, results[index])
        return results
    window = max(1, window or _DEFAULT_WINDOW)
    pending, upcoming = {}, iter(enumerate(tasks))
    try:
        while True:
            while len(pending) < window:
                try:
                    index, task = next(upcoming)
                except StopIteration:
                    break
                pending[executor.submit(function, task)] = index
            if not pending:
                return results
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            # Finished futures in task order, so that a serial-looking log stays readable.
            for future in sorted(done, key=pending.get):
                index = pending.pop(future)
                results[index] = future.result()
                if on_result is not None:
                    on_result(index, tasks[index], results[index])
    finally:
        for future in pending:
            future.cancel()


def check_executor(kind: str = "local", *, workers: int | None = None,
                   scheduler: str | None = None):
    """Raise :class:`ExecutorUnavailable` where :func:`open_executor` would, starting nothing.

    Returns the ``distributed`` module for ``dask``, None for ``local``.
    """
    if kind not in EXECUTORS:
        raise ExecutorUnavailable(f"unknown executor {kind!r}; choose one of "
                                  f"{', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ExecutorUnavailable(f"workers must be a positive integer, got {workers!r}")
    if kind == "local":
        if scheduler:
            raise ExecutorUnavailable("a scheduler address is for the dask executor; the local "
                                      "executor runs on this machine")
        return None
    try:
        import distributed
    except ImportError:
        raise ExecutorUnavailable("the dask executor needs Dask's distributed scheduler, which "
                                  f"is not installed: {DASK_INSTALL}") from None
    return distributed


@contextlib.contextmanager
def open_executor(kind: str = "local", *, workers: int | None = None,
                  scheduler: str | None = None):
    """The executor named by ``kind``, shut down (with its cluster) on leaving the block.

    ``local``: a ``ProcessPoolExecutor`` of ``workers`` processes (default: the number of cores).
    ``dask``: ``distributed.Client(scheduler).get_executor()`` on an existing cluster when
    ``scheduler`` is an address (``tcp://host:8786``); without one, a
    ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes on this
    machine, closed at the end.

    Raises
    ------
    ExecutorUnavailable
        As :func:`check_executor`, or when the scheduler at ``scheduler`` cannot be reached.
    """
    distributed = check_executor(kind, workers=workers, scheduler=scheduler)
    if distributed is None:
        pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count())
        try:
            yield pool
        except BaseException:
            # Stopping (Ctrl-C, a task's error): drop the queued tasks rather than wait for them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="30s"))
            except OSError as err:
                raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {scheduler}: "
                                          f"{err}") from None
        else:
            # One thread per worker process: cvxpy is not thread-safe, and one solve per core is
            # what a process pool gives too.
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=workers or os.cpu_count(), threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(cluster))
        # pure=False: a task's key is not a hash of its arguments, so no two tasks are merged.
        executor = client.get_executor(pure=False)
        try:
            yield executor
        finally:
            executor.shutdown(wait=False)
