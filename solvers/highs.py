"""HiGHS for LoLa's solvers: quiet, and the same answer whatever ran before in the process.

Two properties of HiGHS that are not LoLa's to choose, handled here once for every caller (the
run-path MILP through ``highspy``, the general MILPs through cvxpy):

- **The banner.** highspy 1.16 prints ``Running HiGHS ... Copyright ...`` (two lines) with C's
  ``printf`` when the first ``Highs`` object of a process is built, whatever ``output_flag`` is
  set to afterwards. It goes to file descriptor 1, beneath Python's ``sys.stdout``, so it would
  land in the middle of ``lola solve --json``. :func:`highspy` builds that first object with
  descriptor 1 pointed at the null device; every later object prints nothing (each sets
  ``output_flag`` false before it is used).
- **Threads.** HiGHS 1.16 sizes one scheduler per process, the first time any HiGHS object runs;
  setting the ``threads`` option to another value afterwards makes the run end with model status
  *Not Set*. LoLa therefore never sets ``threads``: every solve in a process runs on the same
  scheduler, whichever solve (LoLa's, cvxpy's, the user's) came first.

:data:`OPTIONS` are the options every HiGHS model built by LoLa gets (through cvxpy too).
"""
from __future__ import annotations

import os
import sys
import threading

__all__ = ["highspy", "OPTIONS"]

#: Set on every HiGHS model LoLa builds: no log on the console or anywhere else.
OPTIONS = {"output_flag": False}

_LOCK = threading.Lock()
_SILENCED = False


def _flush_c_stdout() -> None:
    """Flush C's buffered standard output (where the banner waits when fd 1 is a pipe)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to call (rare platforms)
        pass


def highspy():
    """The ``highspy`` module, once its one-per-process banner has been sent to the null device.

    Call it instead of ``import highspy`` (and before cvxpy solves with HiGHS): afterwards no
    HiGHS object of this process writes to standard output.

    >>> module = highspy()
    >>> module.Highs  # doctest: +ELLIPSIS
    <class '...Highs'>
    """
    global _SILENCED
    import highspy as module

    if _SILENCED:
        return module
    with _LOCK:
        if _SILENCED:
            return module
        try:
            sys.stdout.flush()
        except (AttributeError, ValueError, OSError):  # replaced, closed or broken stdout
            pass
        _flush_c_stdout()
        try:
            saved = os.dup(1)
        except OSError:  # no descriptor 1 at all: nothing to protect
            saved = None
        if saved is None:
            module.Highs().setOptionValue("output_flag", False)
        else:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, 1)
                module.Highs().setOptionValue("output_flag", False)
                _flush_c_stdout()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(null)
        _SILENCED = True
    return module
