"""HiGHS for LoLa's solvers: quiet, and the same answer whatever ran before in the process.

Two properties of HiGHS that are not LoLa's to choose, handled here once for every caller (the
run-path MILP through ``highspy``, the general MILPs through cvxpy):

- **The banner.** HiGHS prints ``Running HiGHS ... Copyright ...`` with C's ``printf``, whatever
  ``output_flag`` is set to later: highspy 1.16 when a process builds its first ``Highs``
  object, highspy 1.7 for every object that is used before its output is switched off (cvxpy
  builds one such object per solve). It goes to file descriptor 1, beneath Python's
  ``sys.stdout``, so it would land in the middle of ``lola solve --json``. Every HiGHS call of
  LoLa's runs inside :func:`quiet`, which points descriptor 1 at the null device for its
  duration (and flushes C's buffer before giving it back).
- **Threads.** HiGHS 1.16 sizes one scheduler per process, the first time any HiGHS object runs;
  setting the ``threads`` option to another value afterwards makes the run end with model status
  *Not Set*. LoLa therefore never sets ``threads``: every solve in a process runs on the same
  scheduler, whichever solve (LoLa's, cvxpy's, the user's) came first.

:data:`OPTIONS` are the options every HiGHS model built by LoLa gets (through cvxpy too).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["quiet", "OPTIONS"]

#: Set on every HiGHS model LoLa builds: no log on the console or anywhere else.
OPTIONS = {"output_flag": False}

_LOCK = threading.Lock()
_state = {"depth": 0, "saved": None}


def _flush_c_stdout() -> None:
    """Flush C's buffered standard output (where the banner waits when fd 1 is a pipe)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to call (rare platforms)
        pass


def _flush_python_stdout() -> None:
    try:
        sys.stdout.flush()
    except (AttributeError, ValueError, OSError):  # replaced, closed or broken stdout
        pass


@contextlib.contextmanager
def quiet():
    """Run HiGHS with file descriptor 1 pointed at the null device; nested and concurrent uses
    share one redirection, undone when the last one ends.

    >>> with quiet():
    ...     import highspy
    ...     solver = highspy.Highs()
    >>> print("standard output is back")
    standard output is back
    """
    with _LOCK:
        if _state["depth"] == 0:
            _flush_python_stdout()
            _flush_c_stdout()
            try:
                saved = os.dup(1)
            except OSError:  # no descriptor 1 at all: nothing to protect
                saved = None
            if saved is not None:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.close(null)
            _state["saved"] = saved
        _state["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["saved"] is not None:
                _flush_c_stdout()
                os.dup2(_state["saved"], 1)
                os.close(_state["saved"])
                _state["saved"] = None
