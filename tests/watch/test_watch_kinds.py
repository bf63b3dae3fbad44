"""The rarer event kinds, through the library API: bound/unbound, accepted, dropped."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pytest

from sockscope.api import Query
from sockscope.model.event import Event, EventKind
from sockscope.model.states import Proto
from sockscope.watch import Watcher
from tests.helpers.netns import socket_in


def collect(watcher: Watcher, seconds: float, enough: set[tuple[EventKind, int]]) -> list[Event]:
    """Events until every (kind, local port) in ``enough`` was seen, or ``seconds`` pass.

    The owner scan is rate-limited by its own cost, so on a host with many sockets an
    ``accepted`` event can take a few seconds to be reported with its owner.
    """
    out: list[Event] = []
    for ev in watcher.events(until=time.monotonic() + seconds):
        out.append(ev)
        if enough <= {(e.kind, e.endpoint.local_port) for e in out}:
            break
    return out


def test_udp_bound_unbound_accept_and_drops(netns: str) -> None:
    query = Query(protocols=(Proto.TCP, Proto.UDP), netns=netns, processes=True)
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", 2500))
    srv.listen(0)  # admits one; the next handshakes are dropped
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []

    def act() -> None:
        time.sleep(0.4)
        udp = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 5300))
        for _ in range(3):
            c = socket_in(netns)
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", 2500))
            clients.append(c)
        time.sleep(0.6)  # a poll sees the queued child with inode 0
        accepted.append(srv.accept()[0])  # kept open until the end: its owner is looked up
        time.sleep(0.6)
        udp.close()

    with Watcher(query, interval=0.2) as watcher:
        t = threading.Thread(target=act)
        t.start()
        events = collect(
            watcher,
            10.0,
            {
                (EventKind.BOUND, 5300),
                (EventKind.UNBOUND, 5300),
                (EventKind.ACCEPTED, 2500),
                (EventKind.DROPPED, 2500),
            },
        )
        t.join()
    for c in clients + accepted:
        c.close()
    srv.close()
    kinds = {(e.kind, e.endpoint.local_port) for e in events}
    assert (EventKind.BOUND, 5300) in kinds
    assert (EventKind.UNBOUND, 5300) in kinds
    assert (EventKind.ACCEPTED, 2500) in kinds
    acc = next(e for e in events if e.kind is EventKind.ACCEPTED)
    assert acc.endpoint.inode != 0 and acc.endpoint.owners
    dropped = [e for e in events if e.kind is EventKind.DROPPED and e.endpoint.local_port == 2500]
    assert dropped and all((e.amount or 0) > 0 for e in dropped)


def test_a_destroy_overrun_is_counted_and_resynchronised(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOBUFS is never silent: a ``lost`` event, the count, and a dump finds the closes."""
    from sockscope.sources import destroy  # noqa: PLC0415

    monkeypatch.setattr(destroy, "RCVBUF_BYTES", 1)  # the kernel's minimum, a few messages
    monkeypatch.setattr(destroy, "GUARD_AFTER", 60.0)  # the guard looks away during the burst
    monkeypatch.setattr(destroy, "GUARD_AFTER_MAX", 60.0)
    n = 150
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", 2600))
    srv.listen(n)
    pairs = []
    for _ in range(n):
        c = socket_in(netns)
        c.connect(("127.0.0.1", 2600))
        pairs.append((c, srv.accept()[0]))
    query = Query(protocols=(Proto.TCP,), netns=netns, processes=False)
    with Watcher(query, interval=0.2, sources={"poll", "destroy"}) as watcher:
        list(watcher.events(until=time.monotonic() + 0.5))  # both ends in its table
        for c, a in pairs:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # a reset: both ends are destroyed at once
            a.close()
        events = list(watcher.events(until=time.monotonic() + 3.0))
        stats = watcher.stats
    srv.close()
    lost = [e for e in events if e.kind is EventKind.LOST]
    assert lost and sum(e.amount or 0 for e in lost) == stats.destroy_overruns > 0
    assert stats.lost_closes > 0  # found by the dump, not by a destroy message
    closed = {
        (e.endpoint.local_port, e.endpoint.remote_port)
        for e in events
        if e.kind is EventKind.CLOSED and 2600 in (e.endpoint.local_port, e.endpoint.remote_port)
    }
    assert len(closed) == 2 * n  # every end, one way or the other


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="the bpf source needs root")
def test_lost_ebpf_records_are_counted_and_the_destroy_net_catches_the_next(
    netns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ring of one page overflows under a burst: the losses are lost events, TCP's
    destroy broadcasts join, and from then every close is reported, once."""
    from sockscope.sources import bpf  # noqa: PLC0415
    from tests.helpers.load import start_load  # noqa: PLC0415

    real = bpf.BpfSource

    class TinyRing(real):  # type: ignore[misc, valid-type]
        def __init__(self, **kw: object) -> None:
            super().__init__(**kw, ring_bytes=4096)

    monkeypatch.setattr(bpf, "BpfSource", TinyRing)
    query = Query(protocols=(Proto.TCP,), netns=netns)
    n = 300
    with Watcher(query, interval=0.2, sources={"bpf", "destroy", "poll"}) as watcher:
        first = start_load(netns, n, 2700, delay=0.3)
        events = list(watcher.events(until=time.monotonic() + 3.0))
        first.communicate(timeout=30)
        assert watcher.engine.destroy_net  # the losses engaged the net
        second = start_load(netns, n, 2701, delay=0.3)
        events2 = list(watcher.events(until=time.monotonic() + 4.0))
        second.communicate(timeout=30)
        stats = watcher.stats
    lost = [e for e in events + events2 if e.kind is EventKind.LOST]
    assert sum(e.amount or 0 for e in lost) == stats.bpf_lost + stats.bpf_recursion + stats.bpf_map_full
    assert stats.bpf_lost > 0
    ends = [
        (e.endpoint.local_port, e.endpoint.remote_port)
        for e in events2
        if e.kind is EventKind.CLOSED and 2701 in (e.endpoint.local_port, e.endpoint.remote_port)
    ]
    assert len(ends) == len(set(ends)) == 2 * n  # every end of the second burst, once
    assert stats.closes_recovered > 0  # some told only by a destroy message
