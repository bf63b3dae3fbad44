"""Running ``main`` in-process on string streams, as root or as 'nobody'."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main

NOBODY = 65534
# Modules a command may import lazily: 'nobody' cannot read root's Python install, so the
# child imports them while still root.
_WARM = ("contextlib", "ctypes", "ctypes.util", "gettext", "locale", "pathlib", "shlex", "difflib")


def run(*argv: str, **env: object) -> tuple[int, str, str]:
    """``main(argv)``: its status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Env(stdout=out, stderr=err, **env))  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def as_nobody(body: Callable[[], str], netns: str | None = None) -> str:
    """``body()`` in a forked child that dropped to uid 'nobody' (after entering ``netns``,
    which only root may); returns what it returned."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    for name in _WARM:
        __import__(name)
    import sockscope.sources.netns  # noqa: F401, PLC0415 - warmed as above

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(rfd)
            # The fork inherited the test's sockets: let the parent (root) alone hold them.
            os.closerange(3, wfd)
            os.closerange(wfd + 1, 1 << 16)
            if netns is not None:
                enter_for_good(netns)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(wfd, body().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(wfd)
    data = b""
    while chunk := os.read(rfd, 65536):
        data += chunk
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the child failed"
    return data.decode()


def enter_for_good(netns: str) -> None:
    """Move this (forked, single-threaded) process into ``netns`` without coming back."""
    import ctypes  # noqa: PLC0415

    from sockscope.sources.netns import CLONE_NEWNET, resolve_netns  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    with open(resolve_netns(netns), "rb") as f:
        assert libc.setns(f.fileno(), CLONE_NEWNET) == 0
