"""A watch filtered by port: the kernel drops other ports' destroy messages and
tracepoint records before the watcher ever reads them."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time

from sockscope.api import KernelFilter, Query
from sockscope.model.event import EventKind, EventView
from sockscope.model.filter import Filter, parse_filter
from sockscope.model.states import Proto, TcpState
from sockscope.query.pushdown import pushdown
from sockscope.sources.destroy import DestroySubscriber
from sockscope.sources.netns import entered_netns
from sockscope.sources.procfs import ephemeral_port_range
from sockscope.sources.tracefs import TraceSession
from sockscope.watch import Watcher
from sockscope.wire.ftrace import StateChange, filter_expression
from tests.helpers.netns import socket_in


def _connect_once(
    netns: str, port: int, family: socket.AddressFamily = socket.AF_INET, host: str = "127.0.0.1"
) -> int:
    """Listen on ``port``, connect, accept, close all three; the client's port."""
    srv = socket_in(netns, family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(4)
    cli = socket_in(netns, family)
    cli.connect((host, port))
    conn, _ = srv.accept()
    client_port: int = cli.getsockname()[1]
    for s in (cli, conn, srv):
        s.close()
    return client_port


def _ports_of(expr: str) -> list[tuple[bool, int, int]]:
    ports = pushdown(parse_filter(expr)).ports
    assert ports is not None
    return [tuple(p) for p in ports]  # type: ignore[misc]


def test_destroy_messages_of_other_ports_never_arrive(netns: str) -> None:
    with entered_netns(netns):
        sub = DestroySubscriber((Proto.TCP,), (4, 6), ports=_ports_of("port == 40123"))
    try:
        assert sub.filtered
        wanted = _connect_once(netns, 40123)
        _connect_once(netns, 40124)
        _connect_once(netns, 40125, socket.AF_INET6, "::1")
        time.sleep(0.2)
        got, overruns = sub.read()
    finally:
        sub.close()
    ends = sorted((ep.local_port, ep.remote_port) for ep, _at in got if ep.remote_port)
    assert ends == sorted([(wanted, 40123), (40123, wanted)])  # the client's end, the server's
    # Without a peer a message passes (a reset wipes the peer; the reader decides): here
    # the three listeners.
    assert sorted(ep.local_port for ep, _at in got if not ep.remote_port) == [40123, 40124, 40125]
    assert overruns == 0


def _records(trace: TraceSession, until_closed: int) -> list[StateChange]:
    """What the session reads until it has the CLOSE of local port ``until_closed``."""
    records: list[StateChange] = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        records += trace.read()
        if any(r.new_state is TcpState.CLOSE and r.local_port == until_closed for r in records):
            break
        time.sleep(0.02)
    return records


def test_a_remote_port_filter_keeps_the_connect_record_of_port_zero(netns: str) -> None:
    # connect() records CLOSE -> SYN_SENT before it has a local port: with a filter on the
    # remote port it passes by its remote port.
    with entered_netns(netns):
        ephemeral = ephemeral_port_range()
    trace = TraceSession(event_filter=filter_expression(_ports_of("rport == 40133"), (4,), ephemeral))
    try:
        assert trace.event_filter is not None and "sport == 0" not in trace.event_filter
        client = _connect_once(netns, 40133)
        _connect_once(netns, 40134)
        _connect_once(netns, 40135, socket.AF_INET6, "::1")  # another family: left out
        records = _records(trace, client)
    finally:
        trace.close()
    seen = {(r.local_port, r.remote_port) for r in records}
    assert (0, 40133) in seen  # connect()'s first record, before its port was picked
    assert (client, 40133) in seen
    # New listeners pass whatever their port (their owner names what they accept).
    listeners = [r for r in records if r.new_state is TcpState.LISTEN]
    assert {r.local_port for r in listeners} >= {40133, 40134}
    assert all(r.remote_port == 40133 for r in records if r not in listeners)
    assert all(r.family == 4 for r in records)


def test_a_local_port_filter_over_the_ephemeral_range_keeps_port_zero(netns: str) -> None:
    with entered_netns(netns):
        ephemeral = ephemeral_port_range()
    trace = TraceSession(
        event_filter=filter_expression(
            _ports_of(f"lport >= {ephemeral[0]} and lport <= {ephemeral[1]}"), (4, 6), ephemeral
        )
    )
    try:
        assert trace.event_filter is not None and "sport == 0" in trace.event_filter
        client = _connect_once(netns, 20143)
        everything = _records(trace, client)
    finally:
        trace.close()
    records = [r for r in everything if r.remote_port == 20143]
    seen = {(r.local_port, r.old_state, r.new_state) for r in records}
    assert (0, TcpState.CLOSE, TcpState.SYN_SENT) in seen
    assert (client, TcpState.SYN_SENT, TcpState.ESTABLISHED) in seen
    # The server's end (local port 20143, below the range) is not written; its listener is.
    assert [r.new_state for r in everything if r.local_port == 20143] == [TcpState.LISTEN]


def _watcher(netns: str, text: str, sources: set[str]) -> tuple[Watcher, Filter]:
    """A watcher as `sockscope watch TEXT` makes it: the filter's kernel part pushed down."""
    flt = parse_filter(text)
    push = pushdown(flt)
    query = Query(
        protocols=(Proto.TCP,),
        families=(4, 6),
        netns=netns,
        kernel=KernelFilter(bytecode=push.bytecode, ports=push.ports),
    )
    return Watcher(query, interval=0.3, sources=sources), flt


def test_a_reset_close_is_rebuilt_from_its_peer_under_a_remote_port_filter(netns: str) -> None:
    # A reset wipes the closing socket's addresses from its destroy message; without the
    # tracepoint they are rebuilt from its peer's message, whose ports are the other way
    # round: the kernel's filter must let that one through too.
    watcher, flt = _watcher(netns, "rport == 40153", {"poll", "destroy"})
    try:
        assert watcher.destroy is not None and watcher.destroy.filtered
        srv = socket_in(netns)
        srv.bind(("127.0.0.1", 40153))
        srv.listen(4)
        cli = socket_in(netns)
        cli.connect(("127.0.0.1", 40153))
        client = cli.getsockname()[1]
        conn, _ = srv.accept()
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cli.close()  # a reset
        time.sleep(0.05)
        conn.close()
        srv.close()
        shown = [
            (ev.kind, ev.endpoint.local_port, ev.endpoint.remote_port)
            for ev in watcher.events(until=time.monotonic() + 2.5)
            if flt.matches(EventView(ev))
        ]
    finally:
        watcher.close()
    assert (EventKind.CLOSED, client, 40153) in shown


def test_connects_keep_their_own_process_under_a_local_port_filter(netns: str) -> None:
    # With two ephemeral ports, two processes connect to the same peer; the filter wants
    # one local port. Each connect()'s first record (port 0) is paired with the next
    # SYN_SENT exit to that peer, so every exit must reach the reader, not only ours.
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=40160 40161"],
        check=True,
    )
    watcher, flt = _watcher(netns, "lport == 40161", {"poll", "destroy", "trace"})
    try:
        srv = socket_in(netns)
        srv.bind(("127.0.0.1", 5000))
        srv.listen(8)
        clients: dict[int, int] = {}  # local port -> pid
        for _ in range(2):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                c = socket_in(netns)
                c.connect(("127.0.0.1", 5000))
                os.write(w, str(c.getsockname()[1]).encode())
                time.sleep(1.5)
                os._exit(0)
            os.close(w)
            clients[int(os.read(r, 10))] = pid
            os.close(r)
            time.sleep(0.05)
        opened = [
            (ev.endpoint.local_port, ev.process.pid if ev.process else None)
            for ev in watcher.events(until=time.monotonic() + 1.2)
            if ev.kind is EventKind.OPENED and flt.matches(EventView(ev))
        ]
        for pid in clients.values():
            os.waitpid(pid, 0)
    finally:
        watcher.close()
    assert set(clients) == {40160, 40161}
    assert opened == [(40161, clients[40161])]
