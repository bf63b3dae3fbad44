"""The dump strategy: carry out a ``Query`` against sock_diag (or ``/proc``).

Orchestration only: sources read, ``wire`` decodes, ``model`` holds the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sockscope._namedtuple import NamedTuple
from sockscope.model.endpoint import Endpoint, Owner, Snapshot
from sockscope.model.states import ALL_STATES, Proto, TcpState, states_mask
from sockscope.query.spec import KernelFilter, Query
from sockscope.sources.netlink import (
    RECV_BUFFER,
    DiagSocket,
    open_diag_socket,
    open_if_available,
    read_dump,
)
from sockscope.sources.procfs import ProcFS
from sockscope.wire.dump import ChunkParser, ChunkResult, inet_chunk_parser, walk_chunk
from sockscope.wire.inet_diag import (
    INET_DIAG_INFO,
    INET_DIAG_SKMEMINFO,
    build_inet_diag_req,
    build_tcpdiag_compat_req,
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

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see _namedtuple)
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sockscope.model.listener import Listener, NamespaceCounters

AF_INET, AF_INET6 = 2, 10
IPPROTO = {Proto.TCP: 6, Proto.UDP: 17}
DUMP_RETRIES = 3
ENOENT = 2

# A TCP socket is unhashed before it is set to CLOSE (tcp_set_state), so a TCP dump never
# finds one; but asking for CLOSE makes the kernel walk every established socket looking
# (~7 ms at 60k sockets, where LISTEN alone takes 0.1 ms). '-l' asks for LISTEN and CLOSE
# (for unbound UDP), so a TCP dump of listeners leaves CLOSE out.
_CLOSE_BIT = 1 << int(TcpState.CLOSE)
_LISTEN_BIT = 1 << int(TcpState.LISTEN)


def run_query(
    query: Query,
    *,
    socket_factory: Callable[[], DiagSocket] = open_diag_socket,
    procfs: ProcFS | None = None,
    clock: Callable[[], float] = time.time,
) -> Snapshot:
    """Carry out a resolved ``Query`` (the CLI builds one from its flags and filter).

    Changes nothing process-wide (the CLI's own process tunes the cyclic collector).
    """
    proc = procfs or ProcFS()
    warnings: list[str] = []
    # Owners first, so the decoder attaches them as it builds each endpoint: joining
    # afterwards rebuilt every endpoint a second time (~30 ms at 60k sockets).
    owners: dict[int, list[Owner]] = {}
    denied = 0
    if query.processes:
        owners, denied = proc.read_owners()
    with _entered_netns(query.netns) as ns_name:
        source = query.source
        sock = None
        if source == "auto":
            sock = open_if_available(socket_factory)
            source = "netlink" if sock is not None else "procfs"
        taken_at, mono = clock(), time.monotonic()
        if source == "netlink":
            if sock is None:
                sock = socket_factory()
            endpoints = _dump_netlink(query, sock, ns_name, warnings, owners)
        else:
            endpoints = join_owners(_read_procfs(query, proc, ns_name), owners)
    if denied and os.geteuid() != 0:
        warnings.append(
            f"not all processes could be examined ({denied} denied): only your own "
            "processes' sockets show owners; run as root to see all"
        )
    # os.uname() gives the same nodename as socket.gethostname(), without importing socket.
    uname = os.uname()
    return Snapshot(
        tuple(endpoints),
        taken_at,
        mono,
        source,
        ns_name,
        uname.nodename,
        uname.release,
        tuple(warnings),
    )


def _entered_netns(spec: str | None) -> AbstractContextManager[str]:
    """``sources.netns.entered_netns``, imported only when a namespace is named: it pulls
    in pathlib and contextlib, which a plain listing need not pay for at start-up."""
    if not spec:
        return _HERE
    from sockscope.sources.netns import entered_netns  # noqa: PLC0415

    return entered_netns(spec)


class _Here:
    """The current namespace, as a context manager whose name is empty."""

    def __enter__(self) -> str:
        return ""

    def __exit__(self, *exc: object) -> None:
        return None


_HERE = _Here()


def _dump_netlink(
    query: Query, sock: DiagSocket, netns: str, warnings: list[str], owners: dict[int, list[Owner]]
) -> list[Endpoint]:
    cache: AddressCache = {}
    buf = bytearray(RECV_BUFFER)
    mask = states_mask(query.kernel.states)
    tcp_mask = mask
    if mask & _LISTEN_BIT and not mask & ~(_LISTEN_BIT | _CLOSE_BIT):
        tcp_mask = _LISTEN_BIT
    bytecode = query.kernel.bytecode
    out: list[Endpoint] = []
    try:
        for proto in query.protocols:
            if proto is Proto.UNIX:
                req = build_unix_diag_req(mask)
                rows = _dump_retrying(sock, req, _unix_chunk_parser(netns), buf, warnings)
                out.extend(join_owners(rows, owners) if owners else rows)
                continue
            ext = 0
            if query.tcp_info and proto is Proto.TCP:
                ext |= ext_bit(INET_DIAG_INFO)
            if query.memory:
                ext |= ext_bit(INET_DIAG_SKMEMINFO)
            proto_mask = tcp_mask if proto is Proto.TCP else mask
            if proto is Proto.TCP and ext == 0 and query.families == (4, 6):
                both = _dump_tcp_both(sock, proto_mask, bytecode, cache, netns, buf, warnings, owners)
                if both is not None:
                    out.extend(both)
                    continue
            for fam in query.families:
                af = AF_INET if fam == 4 else AF_INET6
                req = build_inet_diag_req(af, IPPROTO[proto], proto_mask, ext=ext, bytecode=bytecode)
                parse = inet_chunk_parser(proto, cache, netns, attrs=ext != 0, owners=owners)
                out.extend(_dump_retrying(sock, req, parse, buf, warnings))
    finally:
        sock.close()
    return out


def _dump_tcp_both(
    sock: DiagSocket,
    mask: int,
    bytecode: bytes | None,
    cache: AddressCache,
    netns: str,
    buf: bytearray,
    warnings: list[str],
    owners: dict[int, list[Owner]],
) -> list[Endpoint] | None:
    """TCP over IPv4 and IPv6 in one kernel walk (see ``build_tcpdiag_compat_req``).

    The rows come out as the two per-family dumps would give them: IPv4 first. None when
    the kernel does not serve the request; the caller then dumps family by family.
    """
    req = build_tcpdiag_compat_req(mask, bytecode=bytecode)
    v6: list[Endpoint] = []
    parse = inet_chunk_parser(Proto.TCP, cache, netns, attrs=False, v6_out=v6, owners=owners)
    try:
        rows = _dump_retrying(sock, req, parse, buf, warnings, v6_out=v6, missing_ok=False)
    except NetlinkError:
        return None
    rows += v6
    return rows


def _unix_chunk_parser(netns: str) -> ChunkParser:
    def parse(buf: bytearray, start: int, end: int) -> Endpoint:
        return endpoint_from_unix_diag(parse_unix_diag_msg(buf, start, end), netns)

    def chunk(buf: bytearray, n: int, out: list[Endpoint]) -> ChunkResult:
        return walk_chunk(buf, n, out, parse)

    return chunk


def _dump_retrying(
    sock: DiagSocket,
    req: bytes,
    parse: ChunkParser,
    buf: bytearray,
    warnings: list[str],
    v6_out: list[Endpoint] | None = None,
    missing_ok: bool = True,
) -> list[Endpoint]:
    for _ in range(DUMP_RETRIES):
        if v6_out is not None:
            v6_out.clear()  # a retry starts the split-off IPv6 rows afresh too
        try:
            rows, interrupted = read_dump(sock, req, parse, buf)
        except NetlinkError as exc:
            if exc.errno == ENOENT and missing_ok:  # the protocol's diag module is not loaded
                warnings.append(f"the kernel has no sock_diag support for this protocol ({exc})")
                return []
            raise
        if not interrupted:
            return rows
    warnings.append(
        "the socket table kept changing during the dump (NLM_F_DUMP_INTR); "
        "some sockets may be missing or shown twice"
    )
    return rows


def _read_procfs(query: Query, proc: ProcFS, netns: str) -> list[Endpoint]:
    cache: AddressCache = {}
    wanted = query.kernel.states
    out: list[Endpoint] = []
    for proto in query.protocols:
        if proto is Proto.UNIX:
            out.extend(
                e
                for e in (endpoint_from_procnet_unix(r, netns) for r in proc.read_unix())
                if e.state in wanted
            )
            continue
        for fam in query.families:
            for rec in proc.read_inet(proto.value, fam):
                ep = endpoint_from_procnet(rec, proto, cache, netns)
                if ep.state in wanted:
                    out.append(ep)
    return out


class QueueReport(NamedTuple):
    """Every listener's queue, plus the namespace's listen counters, at one moment."""

    snapshot: Snapshot
    listeners: tuple[Listener, ...]
    counters: NamespaceCounters
    somaxconn: int | None


QUEUE_STATES = frozenset({TcpState.LISTEN, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECV})


def queue_report(
    query: Query,
    *,
    socket_factory: Callable[[], DiagSocket] = open_diag_socket,
    procfs: ProcFS | None = None,
    clock: Callable[[], float] = time.time,
) -> QueueReport:
    """Listeners with their accept queues, half-open handshakes and drops.

    ``query`` gives the families, namespace, processes and any kernel filter; this adds
    the states and attributes the queue needs (children, drops, tcp_info).
    """
    from sockscope.model.listener import (  # noqa: PLC0415
        QUEUE_COUNTERS,
        NamespaceCounters,
        build_listeners,
    )

    proc = procfs or ProcFS()
    with _entered_netns(query.netns):
        somaxconn = proc.read_somaxconn()
        raw = proc.read_counters()
    counters = NamespaceCounters({k: raw.get(f"TcpExt.{k}", 0) for k in QUEUE_COUNTERS})
    q = Query(
        protocols=(Proto.TCP,),
        families=query.families,
        kernel=KernelFilter(
            states=query.kernel.states & QUEUE_STATES if query.kernel.states != ALL_STATES else QUEUE_STATES,
            bytecode=query.kernel.bytecode,
        ),
        processes=query.processes,
        tcp_info=True,
        memory=True,
        netns=query.netns,
        source=query.source,
    )
    snap = run_query(q, socket_factory=socket_factory, procfs=proc, clock=clock)
    return QueueReport(snap, tuple(build_listeners(snap.endpoints, somaxconn)), counters, somaxconn)
