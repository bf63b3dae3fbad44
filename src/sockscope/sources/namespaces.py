"""Thin I/O: every network namespace of the host, and the container each one serves.

Two places name them: ``ip netns`` bind mounts under ``/run/netns`` (``/var/run/netns``
is a link to it), and each process's ``/proc/PID/ns/net``; a namespace is known by the
inode both lead to. Container runtimes often mount nothing (Docker keeps its own under
``/run/docker/netns``), so the processes are what finds them all.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from sockscope.model.container import Container, container_from_cgroup_paths
from sockscope.sources.netns import NETNS_RUN_DIR
from sockscope.wire.cgroup import parse_proc_pid_cgroup
from sockscope.wire.errors import ParseError


class FoundNetns(NamedTuple):
    """One namespace: its inode, and where it can be entered from."""

    inode: int
    name: str  # the ip netns name, or "" when none
    path: str  # a file that enters it: /run/netns/NAME or /proc/PID/ns/net
    pid: int | None  # the lowest PID living in it, when one was seen


def read_netns_inode(path: str) -> int:
    """The inode that identifies the namespace ``path`` refers to."""
    return os.stat(path).st_ino


def read_own_netns_inode(proc: str = "/proc") -> int:
    """The inode of the namespace this process's main thread is in."""
    return read_netns_inode(f"{proc}/self/ns/net")


def read_named_netns(run_dir: str = str(NETNS_RUN_DIR)) -> list[tuple[str, int]]:
    """``ip netns`` names with their inodes (entries that are not namespaces are skipped)."""
    out: list[tuple[str, int]] = []
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return out
    for name in names:
        try:
            out.append((name, read_netns_inode(f"{run_dir}/{name}")))
        except OSError:
            continue  # removed meanwhile, or a plain file left behind
    return out


def read_proc_netns(proc: str = "/proc") -> tuple[dict[int, int], int]:
    """``{inode: lowest pid}`` over every process, and how many could not be examined.

    Reading another user's ``ns/net`` link needs the right to ptrace it (root, or
    CAP_SYS_PTRACE).
    """
    seen: dict[int, int] = {}
    denied = 0
    pids = sorted(int(e.name) for e in os.scandir(proc) if e.name.isdigit())
    for pid in pids:
        try:
            link = os.readlink(f"{proc}/{pid}/ns/net")
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue  # exited, or a kernel thread without one
        # "net:[4026531840]"
        try:
            inode = int(link[link.index("[") + 1 : -1])
        except ValueError:
            continue
        seen.setdefault(inode, pid)
    return seen, denied


def read_all_netns(proc: str = "/proc", run_dir: str = str(NETNS_RUN_DIR)) -> tuple[list[FoundNetns], int]:
    """Every namespace, named ones first, each once; and the processes not examined."""
    by_pid, denied = read_proc_netns(proc)
    out: list[FoundNetns] = []
    named: set[int] = set()
    for name, inode in read_named_netns(run_dir):
        if inode in named:
            continue
        named.add(inode)
        out.append(FoundNetns(inode, name, f"{run_dir}/{name}", by_pid.get(inode)))
    for inode, pid in sorted(by_pid.items(), key=lambda kv: kv[1]):
        if inode not in named:
            out.append(FoundNetns(inode, "", f"{proc}/{pid}/ns/net", pid))
    return out, denied


def read_container(pid: int, proc: str = "/proc") -> Container | None:
    """The container process ``pid`` runs in, as its cgroup tells (None: none, or gone)."""
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    try:
        lines = parse_proc_pid_cgroup(text)
    except ParseError:
        return None
    # The unified (v2) hierarchy first: on a hybrid host it is the runtime's own.
    ordered = sorted(lines, key=lambda ln: ln.hierarchy_id != 0)
    return container_from_cgroup_paths(ln.path for ln in ordered)


def open_netns(path: str) -> int:
    """An fd holding the namespace at ``path``: it can be entered through
    ``/proc/self/fd/FD`` even after the process it was found through exits."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def close_fd(fd: int) -> None:
    """Release an fd from ``open_netns``."""
    os.close(fd)
