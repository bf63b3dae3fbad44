"""Pure: what happened to a socket, and when.

Events are per socket: a loopback connection has two ends on the host, and each end has
its own ``opened``, ``state`` and ``closed`` events.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.states import TcpState


class EventKind(StrEnum):
    """The kinds of event ``watch`` reports."""

    OPENED = "opened"  # a connect(), or a connection the kernel accepted for a listener
    ACCEPTED = "accepted"  # the application took it off the accept queue
    STATE = "state"  # any TCP state change
    CLOSED = "closed"  # the socket is gone, with its final counters when known
    LISTEN = "listen"
    UNLISTEN = "unlisten"
    BOUND = "bound"  # UDP
    UNBOUND = "unbound"
    DROPPED = "dropped"  # a listener's drop counter rose
    LOST = "lost"  # events the kernel could not deliver (ENOBUFS); resynchronised by a dump


class Source(StrEnum):
    """Which mechanism saw an event."""

    POLL = "poll"  # periodic sock_diag dumps, diffed by socket cookie
    DESTROY = "destroy"  # the sock_diag destroy multicast groups
    TRACE = "trace"  # the sock:inet_sock_set_state tracepoint, read through tracefs
    BPF = "bpf"  # sockscope's eBPF program on that tracepoint: one record per connection


class Event(NamedTuple):
    """One thing that happened to one endpoint."""

    kind: EventKind
    endpoint: Endpoint
    mono: float  # seconds, monotonic clock
    time: float  # seconds since the epoch
    source: Source
    old_state: TcpState | None = None  # state events: the state before
    duration: float | None = None  # closed: seconds from its opening to its close
    amount: int | None = None  # dropped: new drops; lost: events lost
    process: Owner | None = None  # who did it, when the source knows (trace: connect())
    #: The socket opened before it was first seen (before the watch began, or between two
    #: polls): ``duration`` counts from that first sight, a lower bound.
    lower_bound: bool = False

    @property
    def owner(self) -> Owner | None:
        """The process to show: the one that acted, else the first holder."""
        if self.process is not None:
            return self.process
        return self.endpoint.owners[0] if self.endpoint.owners else None


class AtLeast(float):
    """A value known only from below: the true value is this or more."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AtLeast({float(self)!r})"


class EventView:
    """An event seen as an endpoint with three more fields, so filters apply to events.

    ``event``, ``duration`` and ``source`` are the event's; every other attribute is the
    endpoint's, except ``owners``, which prefers the process that acted.
    """

    __slots__ = ("_ev",)

    def __init__(self, ev: Event) -> None:
        self._ev = ev

    def __getattr__(self, name: str) -> object:
        return getattr(self._ev.endpoint, name)

    @property
    def event(self) -> str:
        """The event kind's name."""
        return self._ev.kind.value

    @property
    def duration(self) -> float | None:
        """Seconds from open to close, on closed events (an ``AtLeast`` when only a lower
        bound is known, so a filter does not take it for exact)."""
        ev = self._ev
        if ev.lower_bound and ev.duration is not None:
            return AtLeast(ev.duration)
        return ev.duration

    @property
    def source(self) -> str:
        """Which mechanism saw it."""
        return self._ev.source.value

    @property
    def owners(self) -> tuple[Owner, ...]:
        """The acting process first, then the socket's holders."""
        own = self._ev.endpoint.owners
        proc = self._ev.process
        if proc is None or proc in own:
            return own
        return (proc, *own)


def _endpoint_field(index: int) -> property:
    def get(view: EventView) -> object:
        return view._ev[1][index]  # the endpoint, by position

    return property(get)


# The endpoint's fields as properties of the view: a filter reads a few of them for every
# event, and __getattr__ is reached only after a failed lookup, which costs a microsecond.
for _index, _name in enumerate(Endpoint._fields):
    if _name not in vars(EventView):
        setattr(EventView, _name, _endpoint_field(_index))
