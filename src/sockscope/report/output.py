"""Writing the report's files: never through a symbolic link, never over an existing
file unless asked, owner-only when the recording was."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class OutputError(OSError):
    """An output file that cannot be written (the message says why)."""


class ExistsError(OutputError):
    """The output exists and replacing it was not asked for."""


def private_source(recording: str | Path) -> bool:
    """Whether the recording is readable by its owner only (so must be what comes of it)."""
    try:
        return not os.stat(recording).st_mode & 0o044
    except OSError:
        return True


def write_file(path: str | Path, data: bytes, *, private: bool, overwrite: bool) -> None:
    """Write ``data`` to ``path``: created exclusively (or truncated with ``overwrite``),
    0600 when ``private``, refused when ``path`` is a symbolic link.

    Raises:
        ExistsError: it exists and ``overwrite`` is false.
        OutputError: anything else that stops the write.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_TRUNC if overwrite else os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600 if private else 0o666)
    except FileExistsError:
        raise ExistsError(f"{path} exists; --overwrite replaces it") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(path, exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"cannot write {path}: not a regular file")
        if private and st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def check_writable(path: str | Path, overwrite: bool) -> None:
    """Fail early, before any work, on an output that could never be written."""
    p = Path(path)
    if not str(path):
        raise OutputError("an output needs a file name")
    if p.is_symlink():
        raise OutputError(f"cannot write {path}: is a symbolic link")
    if p.exists():
        if not overwrite:
            raise ExistsError(f"{path} exists; --overwrite replaces it")
        if not p.is_file():
            raise OutputError(f"cannot write {path}: not a regular file")
        if not os.access(p, os.W_OK):
            raise OutputError(f"cannot write {path}: permission denied")
        return
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: permission denied in {parent}")


def make_dir(path: str | Path, private: bool) -> Path:
    """The CSV directory: made if missing, refused if a symbolic link or not a directory."""
    p = Path(path)
    if not str(path):
        raise OutputError("--csv needs a directory name")
    if p.is_symlink():
        raise OutputError(f"cannot write into {path}: is a symbolic link")
    try:
        p.mkdir(mode=0o700 if private else 0o777, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make {path}: {_why(path, exc)}") from None
    if not p.is_dir():
        raise OutputError(f"cannot write into {path}: not a directory")
    return p


def _why(path: str | Path, exc: OSError) -> str:
    if exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
        return "is a symbolic link"
    return exc.strerror or str(exc)
