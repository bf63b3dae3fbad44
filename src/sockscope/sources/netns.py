"""Thin I/O: entering another network namespace with ``setns`` (as ``ss -N`` does)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")


class NetnsError(Exception):
    """The namespace could not be found or entered."""


def resolve_netns(spec: str) -> Path:
    """A namespace file for NAME (``ip netns``), PID, or PATH.

    Raises:
        NetnsError: nothing by that name exists.
    """
    if spec.isdigit():
        path = Path(f"/proc/{spec}/ns/net")
    elif "/" in spec:
        path = Path(spec)
    else:
        path = NETNS_RUN_DIR / spec
    if not path.exists():
        raise NetnsError(f"no network namespace {spec!r} ({path} does not exist)")
    return path


def _setns(fd: int) -> None:
    # ctypes costs ~7 ms to import: only pay it when a namespace is entered (os.setns is 3.12+).
    import ctypes  # noqa: PLC0415
    import ctypes.util  # noqa: PLC0415

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns failed: {os.strerror(err)} (entering a namespace needs root)")


@contextmanager
def entered_netns(spec: str | None) -> Iterator[str]:
    """Run the body inside namespace ``spec`` and come back; yields its display name.

    With ``spec`` None the body runs where it is and the name is empty.
    """
    if not spec:
        yield ""
        return
    target = resolve_netns(spec)
    with open("/proc/thread-self/ns/net", "rb") as home, open(target, "rb") as there:
        _setns(there.fileno())
        try:
            yield spec
        finally:
            _setns(home.fileno())
