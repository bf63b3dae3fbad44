"""Thin I/O: what a capture writes about a process: its command line, user and container.

Each is read once per process (a capture meets the same few processes again and
again) and never fails: a process gone, or one we may not look at, gives empty text.
"""

from __future__ import annotations

import pwd
import re
from pathlib import Path

#: A container runtime's 64-hex id in a cgroup path (``docker-<id>.scope``,
#: ``/docker/<id>``, ``cri-containerd-<id>.scope``, ``libpod-<id>``...).
_CONTAINER_ID = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?(?:/|$)")
MAX_ARGS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ProcessInfo:
    """Command lines, user names and container ids, cached (by pid and name, as pids are
    reused)."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self._procs: dict[tuple[int, str], tuple[str, str, int | None]] = {}
        self._users: dict[int, str] = {}

    def describe(self, pid: int, name: str) -> tuple[str, str, int | None]:
        """``(arguments, container id, user id)`` of process ``pid`` called ``name``
        (its effective user: the owner of ``/proc/PID``); None when it is gone."""
        key = (pid, name)
        got = self._procs.get(key)
        if got is None:
            got = self._procs[key] = (self._args(pid), self._container(pid), self._uid(pid))
        return got

    def _uid(self, pid: int) -> int | None:
        try:
            return (self.proc / str(pid)).stat().st_uid
        except OSError:
            return None

    def _args(self, pid: int) -> str:
        try:
            raw = (self.proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return ""
        text = raw.rstrip(b"\0").decode("utf-8", "replace")[:MAX_ARGS]
        # One line: the comment's layout is a "Key: value" per line.
        return _CONTROL.sub(" ", text)

    def _container(self, pid: int) -> str:
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return ""
        for line in text.splitlines():
            m = _CONTAINER_ID.search(line.rpartition(":")[2])
            if m:
                return m.group(1)
        return ""

    def user(self, uid: int) -> str:
        """The name of user ``uid``, or its number."""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name
