"""An append-only CSV of result rows that survives being killed at any moment.

Each row is one line, written by a single ``os.write`` to a file opened with ``O_APPEND`` and then
``fsync``-ed: a crash leaves the file with whole rows and at most one torn last line, never a row
half-overwritten. On opening, :class:`RowLog` reads the rows already there (their ``key``
column tells which tasks are done), cuts a torn last line off, and writes the header only when
the file is new or empty. Line breaks inside a value are replaced by spaces, so one line is
always one row.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
>>> with RowLog(path, ["key", "x"]) as log:
...     log.append({"key": "a", "x": 1.5})
>>> _ = path.open("a").write("b,2")  # as if killed in the middle of a row
>>> log = RowLog(path, ["key", "x"])
>>> sorted(log.keys), log.repaired_bytes
(['a'], 3)
>>> log.close()
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..scenario import ScenarioError

__all__ = ["RowLog", "format_value"]


def format_value(value) -> str:
    """A value as its CSV text: None is empty, floats round-trip (``repr``), one line always."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


class RowLog:
    """Rows with the columns ``columns`` (the first names the task), appended to ``path``.

    Attributes
    ----------
    rows : list of dict
        The rows found in the file when it was opened (values as text).
    keys : set
        Their first column: the tasks already done.
    repaired_bytes : int
        Bytes of a torn last line cut off on opening (0 when the file ended cleanly).
    created : bool
        Whether the file was new (or empty) and got its header from this log.

    Raises
    ------
    ScenarioError
        The file exists with another header (rows of another kind of study): it is left as it
        is rather than mixed. Or another process has it open as a ``RowLog`` (an advisory
        ``flock``, where the system has one).
    """

    def __init__(self, path, columns):
        self.path, self.columns = Path(path), list(columns)  # its folder must exist
        self.repaired_bytes, self.created = 0, False
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            self._lock()
            self.rows = self._read_existing()
        except BaseException:
            os.close(self._fd)
            raise
        self.keys = {row[self.columns[0]] for row in self.rows}

    def _lock(self) -> None:
        """One writer per file: a second sweep into the same file would solve the same tasks."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScenarioError("another run is writing this file; wait for it, or write to "
                                "another file", source=str(self.path)) from None

    def _read_existing(self) -> list:
        with open(self._fd, "rb", closefd=False) as stream:
            stream.seek(0)
            data = stream.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a row cut short when the writer was killed: drop it
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            self.repaired_bytes, data = len(data) - end, data[:end]
        if not data:
            self._write(self.columns)
            self.created = True
            return []
        reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))
        header = next(reader)
        if header != self.columns:
            raise ScenarioError("the file has other columns than this study writes "
                                f"({', '.join(header[:4])}, ...); write to a new file",
                                source=str(self.path))
        return [dict(zip(header, line)) for line in reader if len(line) == len(header)]

    def _write(self, values) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        line = buffer.getvalue().encode("utf-8")
        # One write of one whole line: an O_APPEND write lands at the end in one piece.
        written = os.write(self._fd, line)
        while written < len(line):  # a short write (a full disk, a signal): finish the line
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)

    def append(self, row: dict) -> None:
        """Append one row (a mapping with every column), durably, and remember its key."""
        self._write([format_value(row.get(column)) for column in self.columns])
        self.keys.add(format_value(row.get(self.columns[0])))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
