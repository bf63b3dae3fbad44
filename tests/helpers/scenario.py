"""The primer's socket states, built for real inside a network namespace.

LISTEN on every interface, an ESTABLISHED pair (both ends on this host), TIME_WAIT,
CLOSE_WAIT (with FIN_WAIT2 on the other end), a bound UDP socket, an IPv6 listener and
a v4-mapped connection to it. Used by integration tests and by tools/record_fixtures.py.
"""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from tests.helpers.netns import socket_in

PORT_LISTEN = 2323
PORT_V6 = 2324
PORT_UDP = 5353
PORT_QUEUE = 2325


@dataclass
class Scenario:
    """The sockets of one scenario; closing it closes every socket."""

    stack: ExitStack = field(default_factory=ExitStack)
    sockets: dict[str, socket.socket] = field(default_factory=dict)

    def keep(self, name: str, sock: socket.socket) -> socket.socket:
        self.sockets[name] = sock
        self.stack.callback(sock.close)
        return sock

    def close(self) -> None:
        self.stack.close()


def build(ns: str) -> Scenario:
    """Create every state in ``ns``; returns once they are all in place."""
    sc = Scenario()
    lst = sc.keep("listener", socket_in(ns))
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("0.0.0.0", PORT_LISTEN))
    lst.listen(16)
    # ESTABLISHED, both ends.
    cli = sc.keep("client", socket_in(ns))
    cli.connect(("127.0.0.1", PORT_LISTEN))
    sc.keep("server", lst.accept()[0])
    # CLOSE_WAIT on the server side, FIN_WAIT2 on the client side.
    cw_cli = socket_in(ns)
    cw_cli.connect(("127.0.0.1", PORT_LISTEN))
    sc.keep("close_wait", lst.accept()[0])
    cw_cli.shutdown(socket.SHUT_WR)
    sc.keep("fin_wait2", cw_cli)
    # TIME_WAIT: the client closes first, then the server.
    tw_cli = socket_in(ns)
    tw_cli.connect(("127.0.0.1", PORT_LISTEN))
    tw_srv = lst.accept()[0]
    tw_cli.close()
    time.sleep(0.05)
    tw_srv.close()
    # UDP bound, not connected.
    udp = sc.keep("udp", socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM))
    udp.bind(("127.0.0.1", PORT_UDP))
    # IPv6 dual-stack listener and a v4-mapped connection to it.
    l6 = sc.keep("listener6", socket_in(ns, socket.AF_INET6))
    l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    l6.bind(("::", PORT_V6))
    l6.listen(8)
    mapped = sc.keep("mapped_client", socket_in(ns))
    mapped.connect(("127.0.0.1", PORT_V6))
    sc.keep("mapped_server", l6.accept()[0])
    time.sleep(0.1)  # let FIN/ACKs settle so states are stable
    return sc


def build_queue(ns: str, sc: Scenario) -> Scenario:
    """A listener (backlog 1) whose application accepts nothing: two connections wait
    in its accept queue, which is then full."""
    lst = sc.keep("queue_listener", socket_in(ns))
    lst.bind(("0.0.0.0", PORT_QUEUE))
    lst.listen(1)
    for i in range(2):
        sc.keep(f"queued_client{i}", socket_in(ns)).connect(("127.0.0.1", PORT_QUEUE))
    time.sleep(0.1)
    return sc
