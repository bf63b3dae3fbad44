"""The library's front: ``snapshot()`` reads every socket into a ``Snapshot``;
``listeners()`` gives every listener's queue. A facade over the query layer
(``sockscope.query``), which does the work."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sockscope.model.endpoint import Snapshot
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.query.dump import QueueReport, queue_report, run_query
from sockscope.query.spec import KernelFilter, Query
from sockscope.sources.netlink import DiagSocket, open_diag_socket
from sockscope.sources.procfs import ProcFS

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see _namedtuple)
if TYPE_CHECKING:
    from sockscope.model.listener import Listener

__all__ = [
    "KernelFilter",
    "Query",
    "QueueReport",
    "listeners",
    "queue_report",
    "run_query",
    "snapshot",
]


def snapshot(
    protocols: Iterable[str] = ("tcp", "udp"),
    families: Iterable[int] = (4, 6),
    states: Iterable[TcpState] | None = None,
    *,
    processes: bool = False,
    tcp_info: bool = False,
    memory: bool = False,
    netns: str | None = None,
    source: str = "auto",
    socket_factory: Callable[[], DiagSocket] = open_diag_socket,
    procfs: ProcFS | None = None,
) -> Snapshot:
    """Read the sockets of this (or ``netns``'s) network namespace.

    Args:
        protocols: any of "tcp", "udp", "unix".
        families: 4 and/or 6 (ignored for UNIX sockets).
        states: keep only these states (filtered in the kernel); None keeps every state.
        processes: attach every owning process (pid, name, fd); scans ``/proc/*/fd``.
        tcp_info: attach ``TcpInfo`` (RTT, cwnd, bytes...) to TCP endpoints.
        memory: read per-socket memory counters (gives listeners' ``drops``).
        netns: a namespace NAME (``ip netns``), PID, or PATH; entering it needs root.
        source: "netlink", "procfs", or "auto" (netlink, else procfs).
        socket_factory: makes the sock_diag socket (tests pass a replay).
        procfs: where ``/proc`` is (tests pass a fixture tree).

    Raises:
        NetnsError: the namespace is missing or cannot be entered.
        NetlinkError: the kernel refused a dump.
        ParseError: the kernel's reply or ``/proc`` text could not be decoded.
    """
    query = Query(
        protocols=tuple(Proto(p) for p in protocols),
        families=tuple(families),
        kernel=KernelFilter(states=frozenset(states) if states is not None else ALL_STATES),
        processes=processes,
        tcp_info=tcp_info,
        memory=memory,
        netns=netns,
        source=source,
    )
    return run_query(query, socket_factory=socket_factory, procfs=procfs)


def listeners(
    families: Iterable[int] = (4, 6),
    *,
    processes: bool = False,
    netns: str | None = None,
    source: str = "auto",
) -> list[Listener]:
    """Every TCP listener with its accept queue, backlog, half-open handshakes and drops.

    Args:
        families: 4 and/or 6.
        processes: attach the owning processes of each listener (scans ``/proc/*/fd``).
        netns: a namespace NAME, PID or PATH (needs root).
        source: "netlink", "procfs" or "auto"; /proc has no backlog or drops.
    """
    query = Query(
        protocols=(Proto.TCP,), families=tuple(families), processes=processes, netns=netns, source=source
    )
    return list(queue_report(query).listeners)
