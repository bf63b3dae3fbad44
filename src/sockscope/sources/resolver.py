"""Thin I/O: service and host names for display, with a cache and a total time budget.

Reverse DNS runs on a few threads with one deadline for the whole listing, so a dead
resolver costs at most the budget, never a stall per row (netstat's classic failure).
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable

from sockscope.model.endpoint import IPAddress

DNS_BUDGET_S = 2.0
DNS_THREADS = 8


def service_name(port: int, proto: str, _cache: dict[tuple[int, str], str | None] = {}) -> str | None:  # noqa: B006 - a deliberate process-wide cache
    """The services-database name of ``port`` (``23`` -> ``telnet``), or None."""
    key = (port, proto)
    if key not in _cache:
        try:
            _cache[key] = socket.getservbyport(port, proto if proto in ("tcp", "udp") else "tcp")
        except (OSError, OverflowError):
            _cache[key] = None
    return _cache[key]


def _reverse(addr: IPAddress) -> str | None:
    try:
        host, _ = socket.getnameinfo((str(addr), 0), socket.NI_NAMEREQD)
    except OSError:
        return None
    return host


def resolve_hosts(
    addrs: Iterable[IPAddress],
    budget_s: float = DNS_BUDGET_S,
    lookup: Callable[[IPAddress], str | None] = _reverse,
) -> dict[IPAddress, str]:
    """Names for as many of ``addrs`` as resolve within ``budget_s`` seconds in total.

    ``lookup`` is the per-address resolver (tests pass a slow one to check the budget).
    The threads are daemons: a ThreadPoolExecutor would be joined at interpreter exit,
    so a stalled lookup would hold the finished listing hostage.
    """
    todo: queue.SimpleQueue[IPAddress] = queue.SimpleQueue()
    unique = [a for a in set(addrs) if not a.is_unspecified]
    for addr in unique:
        todo.put(addr)
    names: dict[IPAddress, str] = {}
    done = threading.Semaphore(0)

    def worker() -> None:
        while True:
            try:
                addr = todo.get_nowait()
            except queue.Empty:
                return
            name = lookup(addr)
            if name:
                names[addr] = name
            done.release()

    for _ in range(min(DNS_THREADS, len(unique))):
        threading.Thread(target=worker, daemon=True, name="sockscope-dns").start()
    deadline = time.monotonic() + budget_s
    for _ in unique:
        if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break  # the budget is spent: the rest stay numeric
    return dict(names)
