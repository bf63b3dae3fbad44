"""Thin I/O: ``/proc`` text, with the root passed in so tests can point at a fixture tree."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from sockscope.model.endpoint import Owner
from sockscope.wire.procnet import ProcNetInet, ProcNetUnix, parse_proc_net_inet, parse_proc_net_unix
from sockscope.wire.snmp import parse_snmp_counters

# Threads for the fd scan. readlink() releases the GIL, so two threads keep both cores
# of a small host busy; more only add contention (measured at 60k sockets on 2 cores:
# 1 thread 275 ms, 2 threads 195-250 ms, 4 threads 380 ms).
SCAN_THREADS = 2
# Below this many processes a second thread costs more to start than it saves.
_THREADED_MIN_PIDS = 64

_new = tuple.__new__

# What one process's fd directory held: (inode, owner) for each of its sockets.
_Held = list[tuple[int, Owner]]
# Stands for a process whose fds we may not read (compared by identity).
_DENIED: _Held = []


class ProcFS:
    """Reads ``/proc`` (or a copy of it under ``root``)."""

    def __init__(self, root: os.PathLike[str] | str = "/proc") -> None:
        # A str, not a pathlib.Path: pathlib costs ~3 ms to import on every start-up.
        self.root = os.fspath(root)

    def read_text(self, relative: str) -> str:
        """The text of one file under the root."""
        with open(f"{self.root}/{relative}", encoding="ascii", errors="replace") as f:
            return f.read()

    def read_net(self, name: str) -> str:
        """``net/NAME`` of the calling thread's network namespace.

        ``/proc/net`` is ``/proc/self/net``: the namespace of the process's main thread.
        A thread that entered another namespace (``setns`` is per thread), as the
        exporter's scrape threads do, finds its own under ``/proc/thread-self``. A
        fixture tree has no ``thread-self`` and serves ``net/`` itself.
        """
        try:
            return self.read_text(f"thread-self/net/{name}")
        except FileNotFoundError:
            return self.read_text(f"net/{name}")

    def read_inet(self, proto: str, family: int) -> list[ProcNetInet]:
        """``net/tcp``, ``net/udp6``... for the reader's network namespace."""
        name = f"{proto}{'6' if family == 6 else ''}"
        try:
            text = self.read_net(name)
        except FileNotFoundError:
            return []  # IPv6 disabled: no tcp6/udp6 file
        return parse_proc_net_inet(text, family)

    def read_unix(self) -> list[ProcNetUnix]:
        """``net/unix``."""

        return parse_proc_net_unix(self.read_net("unix"))

    def read_somaxconn(self) -> int | None:
        """``net.core.somaxconn`` of the reader's namespace (None if unreadable)."""
        try:
            return int(self.read_text("sys/net/core/somaxconn").strip())
        except (OSError, ValueError):
            return None

    def read_counters(self) -> dict[str, int]:
        """``/proc/net/netstat`` and ``/proc/net/snmp`` counters, ``{"TcpExt.X": n}``."""
        counters: dict[str, int] = {}
        for name in ("netstat", "snmp"):
            try:
                counters.update(parse_snmp_counters(self.read_net(name)))
            except FileNotFoundError:
                continue
        return counters

    def read_owners(
        self, threads: int = SCAN_THREADS, pids: Iterable[int] | None = None
    ) -> tuple[dict[int, list[Owner]], int]:
        """Scan every ``PID/fd`` (or only these ``pids``') once into ``{inode: [owners]}``.

        Returns the map and how many processes' fds could not be read for lack of
        permission. Processes that exit during the scan are skipped. Owners come in the
        order of a single-threaded scan (process by process, fd by fd), however many
        threads share the work.
        """
        root = self.root
        names = (
            [e.name for e in os.scandir(root) if e.name.isdigit()] if pids is None else [str(p) for p in pids]
        )
        results: list[_Held | None] = [None] * len(names)
        # Threads claim processes one at a time (next() on a shared iterator is atomic
        # under the GIL), so one process with thousands of fds does not leave a thread idle.
        claim = iter(range(len(names))).__next__
        workers = []
        failures: list[BaseException] = []
        if threads > 1 and len(names) >= _THREADED_MIN_PIDS:

            def work() -> None:
                try:
                    _scan_fds(root, names, results, claim)
                except BaseException as exc:  # re-raised in the caller's thread below
                    failures.append(exc)

            workers = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
            for worker in workers:
                worker.start()
        try:
            _scan_fds(root, names, results, claim)
        finally:
            for worker in workers:
                worker.join()
        if failures:
            raise failures[0]
        owners: dict[int, list[Owner]] = {}
        get = owners.get
        denied = 0
        for held in results:
            if held is None:
                continue
            if held is _DENIED:
                denied += 1
                continue
            for inode, owner in held:
                holders = get(inode)
                if holders is None:
                    owners[inode] = [owner]
                else:
                    holders.append(owner)
        return owners, denied


def _scan_fds(root: str, pids: list[str], results: list[_Held | None], claim: Callable[[], int]) -> None:
    """Fill ``results[i]`` for each process index claimed, until none are left."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    while True:
        try:
            i = claim()
        except StopIteration:
            return
        name = pids[i]
        try:
            dir_fd = os.open(f"{root}/{name}/fd", flags)
            try:
                results[i] = _read_fd_dir(root, name, dir_fd)
            finally:
                os.close(dir_fd)
        except PermissionError:
            results[i] = _DENIED
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue  # the process exited while we looked


def _read_fd_dir(root: str, name: str, dir_fd: int) -> _Held:
    """The sockets among one process's fds.

    Each fd costs a ~3.5 µs readlink in the kernel, 60k of them at 60k sockets, so the
    loop stays lean: links are read relative to the open fd directory (no path walk
    through /proc/PID per fd) and only ``socket:[N]`` targets are parsed.
    """
    readlink = os.readlink
    pid = int(name)
    comm: str | None = None
    held: _Held = []
    for fd in os.listdir(dir_fd):
        try:
            target = readlink(fd, dir_fd=dir_fd)
        except OSError:
            continue  # fd closed or process gone mid-scan
        # wire.join.parse_fd_link, inline: this runs once per open file on the host.
        if target[:8] != "socket:[" or target[-1:] != "]":
            continue
        try:
            inode = int(target[8:-1])
        except ValueError:
            continue
        if comm is None:
            comm = _comm(root, name)
        held.append((inode, _new(Owner, (pid, comm, int(fd)))))
    return held


def _comm(root: str, pid: str) -> str:
    try:
        with open(f"{root}/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        return "?"


def ephemeral_port_range() -> tuple[int, int]:
    """``net.ipv4.ip_local_port_range`` of the caller's namespace, where connect() picks
    a local port (it applies to IPv6 too); every port when it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            first, last = (int(w) for w in f.read().split())
    except (OSError, ValueError):
        return 1, 65535
    return first, last
