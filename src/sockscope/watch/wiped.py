"""Rebuilding the 4-tuple of a socket that a reset wiped before its destroy broadcast.

``close()`` with SO_LINGER 0 (or an abort) runs ``tcp_disconnect``, which zeroes the
socket's source address and peer port before the destroy message is built: the message
says ``0.0.0.0:P -> D:0``. When the other end lives on this host (loopback, or a
namespace peer), that end's tuple tells ours: its local address is our ``D`` and its
remote port is our ``P``.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

from sockscope.model.endpoint import Endpoint, IPAddress
from sockscope.model.states import Proto, TcpState
from sockscope.watch.aging import forget_before, touch

#: How long a wiped destroy waits for its other end to show up.
WIPED_WAIT = 1.0
#: How long a closed end is remembered as a possible other end.
REMEMBER = 5.0


def is_wiped(ep: Endpoint) -> bool:
    """A TCP destroy message whose peer port was cleared by a reset."""
    return (
        ep.proto is Proto.TCP
        and not ep.remote_port
        and ep.remote_address is not None
        and not ep.remote_address.is_unspecified
        and ep.state is not TcpState.LISTEN
    )


class PeerIndex:
    """Ends of local connections, keyed by (their local address, their remote port)."""

    def __init__(self) -> None:
        self.ends: dict[tuple[IPAddress, int], tuple[IPAddress, int, float]] = {}

    def remember(self, ep: Endpoint, now: float) -> None:
        """Keep a closing end: it may be the other end of a wiped socket."""
        if ep.remote_port and ep.local_address is not None and ep.remote_address is not None:
            touch(self.ends, (ep.local_address, ep.remote_port), (ep.remote_address, ep.local_port, now))

    def resolve(self, ep: Endpoint, live: Iterable[Endpoint]) -> Endpoint | None:
        """``ep`` with its tuple rebuilt from its other end, or None if none is known."""
        assert ep.remote_address is not None
        hit = self.ends.get((ep.remote_address, ep.local_port))
        if hit is None:
            for other in live:  # the other end may still be open
                if (
                    other.remote_port == ep.local_port
                    and other.local_address == ep.remote_address
                    and other.remote_address is not None
                ):
                    hit = (other.remote_address, other.local_port, 0.0)
                    break
        if hit is None:
            return None
        return ep._replace(local_address=hit[0], remote_port=hit[1])

    def expire(self, now: float) -> None:
        """Forget ends older than ``REMEMBER``."""
        forget_before(self.ends, now - REMEMBER, itemgetter(2))
