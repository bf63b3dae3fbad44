"""Thin I/O: output files that may hold what only root could see, created safely.

A saved view names processes and pids that only root could read. Such a file is made
new (``O_EXCL``: never over an existing file, which a planted one would be), never
through a symbolic link (``O_NOFOLLOW``, and ``O_EXCL`` refuses a dangling one too), and
readable by its owner only when the data came from privileged sources, as dumpcap does
for captures.
"""

from __future__ import annotations

import os

PRIVATE_MODE = 0o600
SHARED_MODE = 0o666  # less the umask, as any file a user makes


class OutputFileError(Exception):
    """The file could not be created; ``str()`` says why, for a person."""


def create_new_file(path: str, *, private: bool) -> int:
    """A descriptor open for writing on a file that did not exist before this call.

    Raises:
        OutputFileError: the name exists (a file, a link, anything), or the directory
            refuses the file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, PRIVATE_MODE if private else SHARED_MODE)
    except FileExistsError:
        raise OutputFileError(
            f"{path} already exists: choose another name (nothing is overwritten)"
        ) from None
    except OSError as exc:
        raise OutputFileError(f"could not create {path}: {exc.strerror or exc}") from None


def write_new_file(path: str, text: str, *, private: bool) -> None:
    """``text`` in a new file at ``path`` (see ``create_new_file``).

    Raises:
        OutputFileError: as ``create_new_file``, or the write failed (the partial file
            is removed).
    """
    fd = create_new_file(path, private=private)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        os.unlink(path)
        raise OutputFileError(f"could not write {path}: {exc.strerror or exc}") from None
