"""A one-line progress report on standard error, for work on large scenarios.

It shows only when standard error is a terminal, and only once the work has run longer than a
couple of seconds, so that quick runs, pipes, logs and standard output never see it. tqdm is not
needed (it is only in the profile extra): the report is one line rewritten in place, and cleared
when the work ends.
"""
from __future__ import annotations

import contextlib
import gc
import sys
import time

__all__ = ["Progress", "paused_gc"]


@contextlib.contextmanager
def paused_gc():
    """No cyclic garbage collection inside: building a million small dicts and objects (which
    make no cycles) otherwise sets it off again and again, each pass slower than the last."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Progress:
    """``Progress("writing big.yaml", total=K, unit="devices")``; ``update(done)``; ``close()``.

    ``enabled`` None (the default) means: when ``stream`` (standard error) is a terminal.
    Nothing is written before ``delay`` seconds have passed since the report was made.

    >>> import io
    >>> progress = Progress("writing x.yaml", 10, stream=io.StringIO(), enabled=True, delay=0)
    >>> progress.update(5); progress.close()
    >>> progress.stream.getvalue().split("\\r")[1]
    'lola: writing x.yaml: 50% (5 of 10 devices)'
    """

    def __init__(self, label: str, total: int, *, unit: str = "devices", stream=None,
                 delay: float = 2.0, enabled: bool | None = None):
        self.label, self.total, self.unit, self.delay = label, max(int(total), 1), unit, delay
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            try:
                enabled = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                enabled = False
        self.enabled = enabled
        self.start = time.monotonic()
        self.shown = 0  # width of the line on screen, 0 when none is

    def update(self, done: int) -> None:
        if not self.enabled or time.monotonic() - self.start < self.delay:
            return
        done = min(max(int(done), 0), self.total)
        line = (f"lola: {self.label}: {100 * done // self.total}% "
                f"({done} of {self.total} {self.unit})")
        self._write("\r" + line.ljust(self.shown))
        self.shown = len(line)

    def close(self) -> None:
        if self.shown:
            self._write("\r" + " " * self.shown + "\r")
            self.shown = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
