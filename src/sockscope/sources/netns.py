"""Thin I/O: entering another network namespace with ``setns`` (as ``ss -N`` does)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")


class NetnsError(Exception):
    """The namespace could not be found or entered.

    ``needs_root`` is set when the refusal was for lack of privilege, so a front door
    can say how to run the command with it.
    """

    def __init__(self, message: str, *, needs_root: bool = False) -> None:
        super().__init__(message)
        self.needs_root = needs_root


def resolve_netns(spec: str) -> Path:
    """A namespace file for NAME (``ip netns``), PID, or PATH.

    Raises:
        NetnsError: nothing by that name exists.
    """
    shown = spec if len(spec) <= 80 else f"{spec[:77]}..."
    if spec.isdigit():
        path = Path(f"/proc/{spec}/ns/net")
    elif "/" in spec:
        path = Path(spec)
    else:
        path = NETNS_RUN_DIR / spec
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise NetnsError(f"no network namespace {shown!r}: {exc.strerror}") from None
    if not exists:
        raise NetnsError(f"no network namespace {shown!r} ({_short(path)} does not exist)")
    if path.is_dir():
        raise NetnsError(f"{shown!r} is a directory, not a network namespace")
    return path


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 100 else f"{text[:97]}..."


def _libc() -> ctypes.CDLL:
    """libc, loaded once: ``find_library`` runs ``ldconfig`` in a child process, which a
    watcher entering its namespace for every poll must not pay each time."""
    global _LIBC  # noqa: PLW0603 - a process-wide handle, loaded on first use
    if _LIBC is None:
        import ctypes  # noqa: PLC0415
        import ctypes.util  # noqa: PLC0415

        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


_LIBC: ctypes.CDLL | None = None


def _setns(fd: int, what: str) -> None:
    # ctypes costs ~7 ms to import: only pay it when a namespace is entered (os.setns is 3.12+).
    import ctypes  # noqa: PLC0415

    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            raise NetnsError(f"{what} is not a network namespace")
        if err == errno.EPERM:
            raise NetnsError("entering a network namespace needs root", needs_root=True)
        raise NetnsError(f"could not enter {what}: {os.strerror(err)}")


@contextmanager
def entered_netns(spec: str | None) -> Iterator[str]:
    """Run the body inside namespace ``spec`` and come back; yields its display name.

    With ``spec`` None the body runs where it is and the name is empty.
    """
    if not spec:
        yield ""
        return
    target = resolve_netns(spec)
    with open("/proc/thread-self/ns/net", "rb") as home:
        there = _open_ns(target)
        try:
            _setns(there, repr(spec) if len(spec) <= 80 else _short(target))
        finally:
            os.close(there)
        try:
            yield spec
        finally:
            _setns(home.fileno(), "this thread's own namespace")


def _open_ns(target: Path) -> int:
    # Non-blocking: a FIFO given as the namespace must not wait for a writer.
    try:
        return os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except PermissionError:
        raise NetnsError(f"cannot open {_short(target)}: permission denied", needs_root=True) from None
    except OSError as exc:
        raise NetnsError(f"cannot open {_short(target)}: {exc.strerror}") from None
