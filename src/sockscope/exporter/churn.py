"""Per-port connection counters, fed by the watch engine's events.

The watch engine runs in a background thread (``exporter.watchers``); each event it
reports updates these counters under a lock, and a scrape reads a copy. Nothing here
reads the kernel: this is the only state the exporter keeps between scrapes, and it is
what makes the counters counters (monotonic since the exporter started).

A connection is on the server side when its local port is one a listener of the
namespace uses (or used, since the exporter started): its counts go to that port. Any
other TCP connection with a peer is outgoing, counted by the remote port's bucket.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from typing import NamedTuple

from sockscope.model.endpoint import Endpoint
from sockscope.model.event import Event, EventKind
from sockscope.model.states import Proto, TcpState

#: Upper bounds of the duration histogram, in seconds: loopback connections live for
#: microseconds, keep-alive ones for minutes.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    60.0,
    300.0,
    1800.0,
)

#: A close straight from one of these states is abortive: a reset sent or received, a
#: refused or timed-out connect, an abort on close with unread data. A graceful close
#: passes through FIN_WAIT*, CLOSING, LAST_ACK or TIME_WAIT first.
ABORTIVE_STATES = frozenset({TcpState.ESTABLISHED, TcpState.SYN_RECV, TcpState.SYN_SENT, TcpState.CLOSE_WAIT})
#: Sources that report a socket's last state before CLOSE exactly. The poll sees only
#: the state at its last dump, which a graceful close passes through in microseconds.
EXACT_STATE_SOURCES = frozenset({"trace", "bpf"})

OTHER = "other"
#: Remote-port buckets for outgoing connections not named with --ports (IANA's ranges).
RPORT_RANGES: tuple[tuple[int, str], ...] = ((1023, "1-1023"), (49151, "1024-49151"), (65535, "49152-65535"))

FourTuple = tuple[object, int, object, int | None]
#: Open server-side connections remembered (one set entry each, ~100 bytes).
MAX_OPEN = 1_000_000


class PortCounts:
    """One listening port's counters (mutable; guarded by the owning Churn's lock)."""

    __slots__ = ("accepted", "buckets", "closed", "duration_sum", "received", "resets", "retrans", "sent")

    def __init__(self) -> None:
        self.accepted = 0
        self.closed = 0
        self.resets = 0
        self.sent = 0
        self.received = 0
        self.retrans = 0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.duration_sum = 0.0

    def copy(self) -> PortCounts:
        """A snapshot for a scrape."""
        out = PortCounts()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(out, name, list(value) if isinstance(value, list) else value)
        return out

    def add(self, other: PortCounts) -> None:
        """Fold ``other`` into this one (ports past the series cap)."""
        for name in self.__slots__:
            if name == "buckets":
                self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


class ChurnSnapshot(NamedTuple):
    """A copy of one namespace's counters, taken at a scrape."""

    ports: dict[int, PortCounts]
    outgoing: dict[str, tuple[int, int]]  # rport bucket -> (connections, resets)
    lost: int
    resets_known: bool  # the last state before a close is exact (see EXACT_STATE_SOURCES)


def rport_bucket(port: int | None, named: frozenset[int]) -> str:
    """The remote-port label of an outgoing connection: the port itself when --ports
    names it, else the IANA range it falls in."""
    if port is None:
        return OTHER
    if port in named:
        return str(port)
    for top, label in RPORT_RANGES:
        if port <= top:
            return label
    return OTHER


class Churn:
    """One namespace's connection counters, updated from events."""

    def __init__(self, named_ports: Iterable[int] = ()) -> None:
        self.lock = threading.Lock()
        self.named = frozenset(named_ports)
        self.listening: set[int] = set()
        self.ports: dict[int, PortCounts] = {}
        self.outgoing: dict[str, list[int]] = {}
        self.lost = 0
        self.resets_known = False
        # Server-side connections already counted as accepted, until they close; and
        # those that were there before the watcher started (never counted).
        self._counted: set[FourTuple] = set()
        self._preexisting: set[FourTuple] = set()

    def start(self, table: Iterable[Endpoint], sources: Iterable[str]) -> None:
        """The watcher's first dump: the listeners there are, and the connections that
        predate it (their close is counted, their accept is not)."""
        eps = list(table)
        with self.lock:
            self.resets_known = bool(EXACT_STATE_SOURCES & set(sources))
            self.listening.update(
                e.local_port for e in eps if e.proto is Proto.TCP and e.state is TcpState.LISTEN
            )
            self._preexisting = {
                _four(e)
                for e in eps
                if e.proto is Proto.TCP and e.has_peer and e.local_port in self.listening
            }

    def add_events(self, events: Iterable[Event]) -> None:
        """Count a batch of events (one lock for the batch)."""
        with self.lock:
            for ev in events:
                self._count(ev)

    def _count(self, ev: Event) -> None:
        kind = ev.kind
        ep = ev.endpoint
        if kind is EventKind.LOST:
            self.lost += ev.amount or 0
        elif ep.proto is not Proto.TCP:
            return
        elif kind is EventKind.LISTEN:
            self.listening.add(ep.local_port)
        elif not ep.has_peer:
            return
        elif kind is EventKind.OPENED:
            if ep.local_port in self.listening:
                key = _four(ep)
                if key not in self._counted and key not in self._preexisting:
                    if len(self._counted) >= MAX_OPEN:
                        # Closes that never came (lost events) would otherwise pile up.
                        self._counted.clear()
                    self._counted.add(key)
                    self._port(ep.local_port).accepted += 1
        elif kind is EventKind.CLOSED:
            self._closed(ev, ep)

    def _closed(self, ev: Event, ep: Endpoint) -> None:
        reset = self.resets_known and ep.state in ABORTIVE_STATES
        if ep.local_port not in self.listening:
            bucket = self.outgoing.setdefault(rport_bucket(ep.remote_port, self.named), [0, 0])
            bucket[0] += 1
            bucket[1] += reset
            return
        counts = self._port(ep.local_port)
        key = _four(ep)
        if key in self._counted:
            self._counted.discard(key)
        elif key in self._preexisting:
            self._preexisting.discard(key)
        else:
            counts.accepted += 1  # never seen open: shorter than a poll, no tracepoint
        counts.closed += 1
        counts.resets += reset
        if ev.duration is not None:
            counts.buckets[bisect.bisect_left(DURATION_BUCKETS, ev.duration)] += 1
            counts.duration_sum += ev.duration
        info = ep.tcp_info
        if info is not None:
            counts.sent += info.bytes_sent
            counts.received += info.bytes_received
            counts.retrans += info.total_retrans

    def _port(self, port: int) -> PortCounts:
        counts = self.ports.get(port)
        if counts is None:
            counts = self.ports[port] = PortCounts()
        return counts

    def snapshot(self) -> ChurnSnapshot:
        """A consistent copy of every counter."""
        with self.lock:
            return ChurnSnapshot(
                {port: c.copy() for port, c in self.ports.items()},
                {k: (v[0], v[1]) for k, v in self.outgoing.items()},
                self.lost,
                self.resets_known,
            )


def _four(ep: Endpoint) -> FourTuple:
    # The 4-tuple, not the cookie: a tracepoint record has no cookie, a destroy message
    # has one, and both must find the same connection.
    return (ep.local_address, ep.local_port, ep.remote_address, ep.remote_port)
