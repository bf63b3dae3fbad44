"""Which namespaces to export: the exporter's own, those named with ``--netns``, or every
one on the host (``--all-netns``), each with its labels.

A namespace found only through a process is entered through an fd the exporter holds
(``/proc/self/fd/N``), so it can still be read after that process exits; the fd is
closed once no process and no ``ip netns`` name shows the namespace any more, which lets
the kernel free it.
"""

from __future__ import annotations

import os
import threading

from sockscope.exporter.scrape import Target
from sockscope.sources import namespaces
from sockscope.sources.netns import NETNS_RUN_DIR, NetnsError, resolve_netns

#: Directories whose entries are ``ip netns`` names (the label is the entry's name).
NAMED_DIRS = (str(NETNS_RUN_DIR), "/var/run/netns")


def netns_label(inode: int) -> str:
    """The label of a namespace without a name: its inode, as ``readlink`` shows it."""
    return f"net:[{inode}]"


class Targets:
    """The namespaces to read, refreshed from the host when ``all_netns`` is set."""

    def __init__(self, specs: list[str], *, all_netns: bool, proc: str = "/proc") -> None:
        self.all_netns = all_netns
        self.proc = proc
        self.own = namespaces.read_own_netns_inode(proc)
        self.denied = 0
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # namespace inode -> fd
        self._containers: dict[int, str] = {}
        self._fixed = [self._from_spec(s) for s in specs]
        if not specs and not all_netns:
            self._fixed = [Target(self.own, "", self._container_of(self.own, None), None)]

    def current(self) -> list[Target]:
        """The namespaces to read now."""
        if not self.all_netns:
            return list(self._fixed)
        found, self.denied = namespaces.read_all_netns(self.proc, str(NETNS_RUN_DIR))
        with self._lock:
            out = [self._from_found(f) for f in found]
            live = {t.key for t in out}
            for inode in [i for i in self._held if i not in live]:
                namespaces.close_fd(self._held.pop(inode))
                self._containers.pop(inode, None)
        return out

    def close(self) -> None:
        """Release every namespace held."""
        with self._lock:
            for fd in self._held.values():
                namespaces.close_fd(fd)
            self._held.clear()

    def _from_found(self, f: namespaces.FoundNetns) -> Target:
        container = self._container_of(f.inode, f.pid)
        if f.inode == self.own:
            return Target(f.inode, "", container, None)
        if f.name:
            return Target(f.inode, f.name, container, f.path)
        fd = self._held.get(f.inode)
        if fd is None:
            try:
                fd = self._held[f.inode] = namespaces.open_netns(f.path)
            except OSError:
                # The process left meanwhile; entering through its path fails just the same,
                # and the scrape reports it.
                return Target(f.inode, netns_label(f.inode), container, f.path)
        return Target(f.inode, netns_label(f.inode), container, f"/proc/self/fd/{fd}")

    def _from_spec(self, spec: str) -> Target:
        """A ``--netns NAME|PATH|PID``, resolved once at start.

        Raises:
            NetnsError: nothing by that name exists.
        """
        path = str(resolve_netns(spec))
        inode = namespaces.read_netns_inode(path)
        pid = int(spec) if spec.isdigit() else None
        if os.path.dirname(path) in NAMED_DIRS:
            label = os.path.basename(path)
        elif inode == self.own:
            label = ""
        else:
            label = netns_label(inode)
        if pid is not None:
            try:
                fd = self._held[inode] = namespaces.open_netns(path)
            except OSError as exc:
                raise NetnsError(f"cannot hold network namespace {spec!r}: {exc.strerror}") from None
            path = f"/proc/self/fd/{fd}"
        target_spec = None if inode == self.own else path
        return Target(inode, label, self._container_of(inode, pid), target_spec)

    def _container_of(self, inode: int, pid: int | None) -> str:
        label = self._containers.get(inode)
        if label is None:
            if pid is None:
                pid = namespaces.read_proc_netns(self.proc)[0].get(inode)
            found = namespaces.read_container(pid, self.proc) if pid is not None else None
            label = self._containers[inode] = found.label if found is not None else ""
        return label
