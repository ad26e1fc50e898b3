"""Writing files whole or not at all: a temporary file in the same folder, then a rename.

Every command that writes a file checks its path first, with :func:`check_output_path`, before
any work: a folder that does not exist, a path that names a folder, or a folder it may not write
in is bad input (one line naming the path and the reason), never a traceback after minutes of
measurement. No folder is created that the caller did not ask for.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "check_output_path", "OutputPathError"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the path and the reason."""


def check_output_path(path, *, option: str | None = None) -> Path:
    """Check that ``path`` can be written as a file, without writing or creating anything.

    Raises :class:`OutputPathError` (a ``ValueError``) whose message starts with the option (when
    given) and the path, then says why: the path is a folder, its folder does not exist (folders
    are never created unasked), or the folder or the existing file may not be written.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> check_output_path(os.path.join(folder, "x.yaml")).name
    'x.yaml'
    >>> check_output_path(folder, option="-o")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lola._io.OutputPathError: -o ...: is a folder, not a file
    """
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    if str(path) == "" or path.name in ("", ".", ".."):
        raise OutputPathError(f"{where}: not a file name")
    if path.is_dir():
        raise OutputPathError(f"{where}: is a folder, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputPathError(f"{where}: the folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise OutputPathError(f"{where}: {parent} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{where}: the file is not writable (permission denied)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{where}: cannot write in the folder {parent} (permission denied)")
    return path


def _new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: the existing file's, else 0o666 less the umask.

    (``mkstemp`` creates its file 0o600 whatever the umask, which would leave every file LoLa
    writes unreadable to the rest of a group or a web server.)
    """
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path, data: bytes, *, parents: bool = False) -> Path:
    """Write ``data`` to ``path`` whole or not at all. The folder must exist unless ``parents``
    asks for it to be created."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path, text: str, *, parents: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), parents=parents)
