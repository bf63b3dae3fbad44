"""The ``process`` label of each listener, found by scanning ``/proc/*/fd``.

No kernel interface maps a socket to its processes; the scan reads every open fd on the
host (0.2-0.3 s at 60k sockets, most of a scrape's budget). A listener's holders rarely
change, so the scan runs when a scrape meets a listener inode it has not named yet, and
each name is checked again after ``RECHECK`` seconds. Between those, a scrape reuses the
names: they are labels, and a label that changed at every scrape would make a new series
each time anyway.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from sockscope.sources.procfs import ProcFS

RECHECK = 600.0


class OwnerNames:
    """``{listener inode: "nginx"}`` over every namespace (socket inodes are host-wide)."""

    def __init__(self, procfs: ProcFS | None = None, recheck: float = RECHECK) -> None:
        self.procfs = procfs or ProcFS()
        self.recheck = recheck
        self.names: dict[int, str] = {}
        self.checked: dict[int, float] = {}
        self.scans = 0
        self.denied = 0
        self._lock = threading.Lock()

    def lookup(self, inodes: Iterable[int]) -> tuple[dict[int, str], str | None]:
        """Names for ``inodes`` (``""`` when no readable process holds one), and a
        warning when other users' processes could not be examined."""
        wanted = [i for i in inodes if i]
        with self._lock:
            now = time.monotonic()
            stale = [i for i in wanted if now - self.checked.get(i, -1e18) >= self.recheck]
            if stale:
                self._scan(wanted, now)
            names = {i: self.names.get(i, "") for i in wanted}
        warning = None
        if self.denied and os.geteuid() != 0:
            warning = f"{self.denied} processes could not be examined: listeners they hold show no process"
        return names, warning

    def _scan(self, wanted: list[int], now: float) -> None:
        owners, self.denied = self.procfs.read_owners()
        self.scans += 1
        keep = set(wanted)
        # Forget listeners that are gone, so the maps stay as small as the listener set
        # (plus those of other namespaces, refreshed at their own scrape).
        for inode in [i for i in self.names if i not in keep and now - self.checked[i] >= self.recheck]:
            del self.names[inode]
            del self.checked[inode]
        for inode in wanted:
            held = owners.get(inode, [])
            self.names[inode] = ",".join(sorted({o.name for o in held}))
            self.checked[inode] = now
