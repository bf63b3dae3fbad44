"""The library's front: ``snapshot()`` reads every socket into a ``Snapshot``.

Orchestration only: sources read, ``wire`` decodes, ``model`` holds the result.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sockscope.model.endpoint import Endpoint, Snapshot
from sockscope.model.listener import QUEUE_COUNTERS, Listener, NamespaceCounters, build_listeners
from sockscope.model.states import ALL_STATES, Proto, TcpState, states_mask
from sockscope.sources.netlink import (
    RECV_BUFFER,
    DiagSocket,
    netlink_available,
    open_diag_socket,
    read_dump,
)
from sockscope.sources.netns import entered_netns
from sockscope.sources.procfs import ProcFS
from sockscope.wire.dump import ChunkParser, ChunkResult, inet_chunk_parser, walk_chunk
from sockscope.wire.inet_diag import (
    INET_DIAG_INFO,
    INET_DIAG_SKMEMINFO,
    build_inet_diag_req,
    ext_bit,
)
from sockscope.wire.join import (
    AddressCache,
    endpoint_from_procnet,
    endpoint_from_procnet_unix,
    endpoint_from_unix_diag,
    join_owners,
)
from sockscope.wire.netlink import NetlinkError
from sockscope.wire.unix_diag import build_unix_diag_req, parse_unix_diag_msg

AF_INET, AF_INET6 = 2, 10
IPPROTO = {Proto.TCP: 6, Proto.UDP: 17}
DUMP_RETRIES = 3


@dataclass(frozen=True, slots=True)
class KernelFilter:
    """What the kernel can filter for us: which dumps, which states, a bytecode program."""

    states: frozenset[TcpState] = ALL_STATES
    bytecode: bytes | None = None


@dataclass(slots=True)
class Query:
    """Everything ``snapshot`` was asked for, resolved to plain values."""

    protocols: tuple[Proto, ...] = (Proto.TCP, Proto.UDP)
    families: tuple[int, ...] = (4, 6)
    kernel: KernelFilter = field(default_factory=KernelFilter)
    processes: bool = False
    tcp_info: bool = False
    memory: bool = False
    netns: str | None = None
    source: str = "auto"


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
        processes=processes, tcp_info=tcp_info, memory=memory, netns=netns, source=source,
    )
    return run_query(query, socket_factory=socket_factory, procfs=procfs)


def run_query(
    query: Query,
    *,
    socket_factory: Callable[[], DiagSocket] = open_diag_socket,
    procfs: ProcFS | None = None,
) -> Snapshot:
    """Carry out a resolved ``Query`` (the CLI builds one from its flags and filter)."""
    proc = procfs or ProcFS()
    warnings: list[str] = []
    with entered_netns(query.netns) as ns_name:
        source = query.source
        if source == "auto":
            source = "netlink" if netlink_available(socket_factory) else "procfs"
        taken_at, mono = time.time(), time.monotonic()
        if source == "netlink":
            endpoints = _dump_netlink(query, socket_factory, ns_name, warnings)
        else:
            endpoints = _read_procfs(query, proc, ns_name)
    if query.processes:
        owners, denied = proc.read_owners()
        if denied and os.geteuid() != 0:
            warnings.append(
                f"not all processes could be examined ({denied} denied): only your own "
                "processes' sockets show owners; run as root to see all"
            )
        endpoints = join_owners(endpoints, owners)
    return Snapshot(
        tuple(endpoints), taken_at, mono, source, ns_name, socket.gethostname(),
        os.uname().release, tuple(warnings),
    )


def _dump_netlink(
    query: Query, factory: Callable[[], DiagSocket], netns: str, warnings: list[str]
) -> list[Endpoint]:
    cache: AddressCache = {}
    buf = bytearray(RECV_BUFFER)
    mask = states_mask(query.kernel.states)
    out: list[Endpoint] = []
    sock = factory()
    try:
        for proto in query.protocols:
            if proto is Proto.UNIX:
                req = build_unix_diag_req(mask)
                out.extend(_dump_retrying(sock, req, _unix_chunk_parser(netns), buf, warnings))
                continue
            ext = 0
            if query.tcp_info and proto is Proto.TCP:
                ext |= ext_bit(INET_DIAG_INFO)
            if query.memory:
                ext |= ext_bit(INET_DIAG_SKMEMINFO)
            for fam in query.families:
                af = AF_INET if fam == 4 else AF_INET6
                req = build_inet_diag_req(af, IPPROTO[proto], mask, ext=ext,
                                          bytecode=query.kernel.bytecode)
                parse = inet_chunk_parser(proto, cache, netns, attrs=ext != 0)
                out.extend(_dump_retrying(sock, req, parse, buf, warnings))
    finally:
        sock.close()
    return out


def _unix_chunk_parser(netns: str) -> ChunkParser:
    def parse(buf: bytearray, start: int, end: int) -> Endpoint:
        return endpoint_from_unix_diag(parse_unix_diag_msg(buf, start, end), netns)

    def chunk(buf: bytearray, n: int, out: list[Endpoint]) -> ChunkResult:
        return walk_chunk(buf, n, out, parse)
    return chunk


def _dump_retrying(
    sock: DiagSocket, req: bytes, parse: ChunkParser, buf: bytearray, warnings: list[str],
) -> list[Endpoint]:
    for _ in range(DUMP_RETRIES):
        try:
            rows, interrupted = read_dump(sock, req, parse, buf)
        except NetlinkError as exc:
            if exc.errno == 2:  # ENOENT: the protocol's diag module is not loaded
                warnings.append(f"the kernel has no sock_diag support for this protocol ({exc})")
                return []
            raise
        if not interrupted:
            return rows
    warnings.append("the socket table kept changing during the dump (NLM_F_DUMP_INTR); "
                    "some sockets may be missing or shown twice")
    return rows


def _read_procfs(query: Query, proc: ProcFS, netns: str) -> list[Endpoint]:
    cache: AddressCache = {}
    wanted = query.kernel.states
    out: list[Endpoint] = []
    for proto in query.protocols:
        if proto is Proto.UNIX:
            out.extend(e for e in (endpoint_from_procnet_unix(r, netns) for r in proc.read_unix())
                       if e.state in wanted)
            continue
        for fam in query.families:
            for rec in proc.read_inet(proto.value, fam):
                ep = endpoint_from_procnet(rec, proto, cache, netns)
                if ep.state in wanted:
                    out.append(ep)
    return out


@dataclass(frozen=True, slots=True)
class QueueReport:
    """Every listener's queue, plus the namespace's listen counters, at one moment."""

    snapshot: Snapshot
    listeners: tuple[Listener, ...]
    counters: NamespaceCounters
    somaxconn: int | None


QUEUE_STATES = frozenset({TcpState.LISTEN, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT,
                          TcpState.SYN_RECV})


def queue_report(
    query: Query,
    *,
    socket_factory: Callable[[], DiagSocket] = open_diag_socket,
    procfs: ProcFS | None = None,
) -> QueueReport:
    """Listeners with their accept queues, half-open handshakes and drops.

    ``query`` gives the families, namespace, processes and any kernel filter; this adds
    the states and attributes the queue needs (children, drops, tcp_info).
    """
    proc = procfs or ProcFS()
    with entered_netns(query.netns):
        somaxconn = proc.read_somaxconn()
        raw = proc.read_counters()
    counters = NamespaceCounters({k: raw.get(f"TcpExt.{k}", 0) for k in QUEUE_COUNTERS})
    q = Query(protocols=(Proto.TCP,), families=query.families,
              kernel=KernelFilter(states=query.kernel.states & QUEUE_STATES
                                  if query.kernel.states != ALL_STATES else QUEUE_STATES,
                                  bytecode=query.kernel.bytecode),
              processes=query.processes, tcp_info=True, memory=True, netns=query.netns,
              source=query.source)
    snap = run_query(q, socket_factory=socket_factory, procfs=proc)
    return QueueReport(snap, tuple(build_listeners(snap.endpoints, somaxconn)), counters, somaxconn)


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
    query = Query(protocols=(Proto.TCP,), families=tuple(families), processes=processes,
                  netns=netns, source=source)
    return list(queue_report(query).listeners)
