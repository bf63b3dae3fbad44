"""Thin I/O: ``/proc`` text, with the root passed in so tests can point at a fixture tree."""

from __future__ import annotations

import os
from pathlib import Path

from sockscope.model.endpoint import Owner
from sockscope.wire.join import parse_fd_link
from sockscope.wire.procnet import (
    ProcNetInet,
    ProcNetUnix,
    parse_proc_net_inet,
    parse_proc_net_unix,
)
from sockscope.wire.snmp import parse_snmp_counters


class ProcFS:
    """Reads ``/proc`` (or a copy of it under ``root``)."""

    def __init__(self, root: Path | str = "/proc") -> None:
        self.root = Path(root)

    def read_text(self, relative: str) -> str:
        """The text of one file under the root."""
        return (self.root / relative).read_text(encoding="ascii", errors="replace")

    def read_inet(self, proto: str, family: int) -> list[ProcNetInet]:
        """``net/tcp``, ``net/udp6``... for the reader's network namespace."""
        name = f"net/{proto}{'6' if family == 6 else ''}"
        try:
            text = self.read_text(name)
        except FileNotFoundError:
            return []  # IPv6 disabled: no tcp6/udp6 file
        return parse_proc_net_inet(text, family)

    def read_unix(self) -> list[ProcNetUnix]:
        """``net/unix``."""
        return parse_proc_net_unix(self.read_text("net/unix"))

    def read_somaxconn(self) -> int | None:
        """``net.core.somaxconn`` of the reader's namespace (None if unreadable)."""
        try:
            return int(self.read_text("sys/net/core/somaxconn").strip())
        except (OSError, ValueError):
            return None

    def read_counters(self) -> dict[str, int]:
        """``/proc/net/netstat`` and ``/proc/net/snmp`` counters, ``{"TcpExt.X": n}``."""
        counters: dict[str, int] = {}
        for name in ("net/netstat", "net/snmp"):
            try:
                counters.update(parse_snmp_counters(self.read_text(name)))
            except FileNotFoundError:
                continue
        return counters

    def read_owners(self) -> tuple[dict[int, list[Owner]], int]:
        """Scan every ``PID/fd`` once into ``{inode: [owners]}``.

        Returns the map and how many processes' fds could not be read for lack of
        permission. Processes that exit during the scan are skipped.
        """
        owners: dict[int, list[Owner]] = {}
        denied = 0
        root = str(self.root)
        readlink = os.readlink
        for entry in os.scandir(root):
            name = entry.name
            if not name.isdigit():
                continue
            fd_dir = f"{root}/{name}/fd"
            try:
                fds = os.listdir(fd_dir)
            except PermissionError:
                denied += 1
                continue
            except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
                continue  # the process exited while we looked
            pid = int(name)
            comm: str | None = None
            for fd in fds:
                try:
                    target = readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue  # fd closed or process gone mid-scan
                inode = parse_fd_link(target)
                if inode is None:
                    continue
                if comm is None:
                    comm = self._comm(root, name)
                owners.setdefault(inode, []).append(Owner(pid, comm, int(fd)))
        return owners, denied

    @staticmethod
    def _comm(root: str, pid: str) -> str:
        try:
            with open(f"{root}/{pid}/comm", encoding="utf-8", errors="replace") as f:
                return f.read().rstrip("\n")
        except OSError:
            return "?"
