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
    TRACE = "trace"  # the sock:inet_sock_set_state tracepoint


class Event(NamedTuple):
    """One thing that happened to one endpoint."""

    kind: EventKind
    endpoint: Endpoint
    mono: float  # seconds, monotonic clock
    time: float  # seconds since the epoch
    source: Source
    old_state: TcpState | None = None  # state events: the state before
    duration: float | None = None  # closed: seconds since it was first seen opening
    amount: int | None = None  # dropped: new drops; lost: events lost
    process: Owner | None = None  # who did it, when the source knows (trace: connect())

    @property
    def owner(self) -> Owner | None:
        """The process to show: the one that acted, else the first holder."""
        if self.process is not None:
            return self.process
        return self.endpoint.owners[0] if self.endpoint.owners else None
