"""Pure: each listener's connection request queue, built from one snapshot.

The kernel's facts (``include/net/sock.h``, ``net/ipv4/tcp_diag.c``): a listener's
``idiag_rqueue`` is its accept-queue length and ``idiag_wqueue`` its effective backlog,
min(backlog, ``net.core.somaxconn``). ``sk_acceptq_is_full`` tests ``>``, so the queue
admits backlog + 1. A child that finished the handshake but was not ``accept()``ed is an
ESTABLISHED (or CLOSE_WAIT) socket on the listener's port with inode 0 and no owner; a
half-open handshake is a SYN_RECV request socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto, TcpState


class Listener(NamedTuple):
    """One TCP listener and the state of its queue."""

    endpoint: Endpoint
    accept_queue: int  # accepted by TCP, waiting for the application
    backlog: int  # effective, after the somaxconn clamp
    queued: tuple[Endpoint, ...]  # the waiting connections themselves
    half_open: tuple[Endpoint, ...]  # SYN_RECV request sockets
    drops: int | None  # sk_drops: packets this listener dropped
    somaxconn: int | None  # the namespace's clamp, when known

    @property
    def capacity(self) -> int:
        """How many connections the queue admits: backlog + 1."""
        return self.backlog + 1

    @property
    def fill(self) -> float:
        """Accept-queue length as a fraction of the capacity (1.0 = full)."""
        return self.accept_queue / self.capacity

    @property
    def full(self) -> bool:
        """The next completed handshake will be dropped (or reset)."""
        return self.accept_queue >= self.capacity

    @property
    def clamped(self) -> bool:
        """The backlog equals somaxconn: the application may have asked for more."""
        return self.somaxconn is not None and self.backlog == self.somaxconn


def _serves(listener: Endpoint, child: Endpoint) -> bool:
    if child.local_port != listener.local_port or child.family != listener.family:
        return False
    addr = listener.local_address
    return addr is None or addr.is_unspecified or addr == child.local_address


def build_listeners(endpoints: Iterable[Endpoint], somaxconn: int | None = None) -> list[Listener]:
    """Group queued and half-open children under the listener they belong to.

    With several listeners on one port (SO_REUSEPORT, or one per address) a child goes to
    the most specific match: an exact address before a wildcard.
    """
    eps = list(endpoints)
    listeners = [e for e in eps if e.proto is Proto.TCP and e.state is TcpState.LISTEN]
    by_port: dict[int, list[Endpoint]] = {}
    for lst in listeners:
        by_port.setdefault(lst.local_port, []).append(lst)
    queued: dict[int, list[Endpoint]] = {id(x): [] for x in listeners}
    half: dict[int, list[Endpoint]] = {id(x): [] for x in listeners}
    for ep in eps:
        if ep.proto is not Proto.TCP:
            continue
        is_half = ep.state in (TcpState.SYN_RECV, TcpState.NEW_SYN_RECV)
        if not (is_half or ep.queued):
            continue
        candidates = [x for x in by_port.get(ep.local_port, ()) if _serves(x, ep)]
        if not candidates:
            continue
        owner = min(candidates, key=lambda x: x.local_address is None or x.local_address.is_unspecified)
        (half if is_half else queued)[id(owner)].append(ep)
    return [
        Listener(x, x.recv_q, x.send_q, tuple(queued[id(x)]), tuple(half[id(x)]), x.drops, somaxconn)
        for x in listeners
    ]


class NamespaceCounters(NamedTuple):
    """The namespace-wide listen-queue counters of /proc/net/netstat (they count packets)."""

    values: dict[str, int]

    def delta(self, before: NamespaceCounters | None) -> dict[str, int]:
        """Change of each counter since ``before`` (0 with no earlier reading)."""
        if before is None:
            return dict.fromkeys(self.values, 0)
        return {k: v - before.values.get(k, v) for k, v in self.values.items()}


QUEUE_COUNTERS = (
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "SyncookiesSent",
)
