"""Thin I/O: what ``/proc`` says of a task (a thread): its process and its namespace.

The tracepoint's records name the task that was running; a socket belongs to the task's
process (thread group), and the task's network namespace is the socket's when the
transition ran in the socket's own process.
"""

from __future__ import annotations

import os

from sockscope.model.endpoint import Owner
from sockscope.sources.tracefs import saved_comm


class ProcTasks:
    """Answers from ``/proc``, each task looked up once (thread ids are reused rarely, and
    a watcher's answers must not change under it)."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self._owners: dict[int, Owner | None] = {}

    def owner(self, tid: int) -> Owner | None:
        """The thread group of ``tid`` and its name; what tracefs remembered if it is gone."""
        if tid in self._owners:
            return self._owners[tid]
        name, tgid = "", tid
        try:
            with open(f"{self.proc}/{tid}/status", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Tgid:"):
                        tgid = int(line.split()[1])
                        break
            with open(f"{self.proc}/{tgid}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip()
        except (OSError, ValueError):
            pass  # the task is gone already
        if not name:
            name = saved_comm(tid) or "?"
        owner = Owner(tgid, name if name != "<...>" else "?", -1)
        self._owners[tid] = owner
        return owner

    def netns(self, tid: int) -> int | None:
        """The inode of ``tid``'s network namespace; None when the task is gone."""
        try:
            return os.stat(f"{self.proc}/{tid}/ns/net").st_ino
        except OSError:
            return None
