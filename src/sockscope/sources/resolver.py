"""Thin I/O: service and host names for display, with a cache and a total time budget.

Reverse DNS runs on a few threads with one deadline for the whole listing, so a dead
resolver costs at most the budget, never a stall per row (netstat's classic failure).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait

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


def resolve_hosts(addrs: Iterable[IPAddress], budget_s: float = DNS_BUDGET_S) -> dict[IPAddress, str]:
    """Names for as many of ``addrs`` as resolve within ``budget_s`` seconds in total."""
    unique = [a for a in set(addrs) if not a.is_unspecified]
    if not unique:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(DNS_THREADS, len(unique)))
    futures = {pool.submit(_reverse, a): a for a in unique}
    done, _ = wait(futures, timeout=budget_s)
    # Threads still blocked in getnameinfo are abandoned, not joined: that is the budget.
    pool.shutdown(wait=False, cancel_futures=True)
    names = {}
    for fut in done:
        name = fut.result()
        if name:
            names[futures[fut]] = name
    return names
