"""Thin I/O: ``NETLINK_SOCK_DIAG`` dumps.

The socket comes from a factory so tests can replay recorded frames. Receives go into
one preallocated buffer (``recv_into``); the kernel hands back at most ~32 KiB a read.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Protocol

from sockscope.model.endpoint import Endpoint
from sockscope.wire.dump import ChunkParser
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NetlinkError

NETLINK_SOCK_DIAG = 4
RECV_BUFFER = 1 << 20
RCVBUF_BYTES = 1 << 20


class DiagSocket(Protocol):
    """What a dump needs from a socket; a real netlink socket or a replay."""

    def send(self, data: bytes, /) -> int: ...
    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int: ...
    def close(self) -> None: ...


def open_diag_socket() -> socket.socket:
    """A ``NETLINK_SOCK_DIAG`` socket in the caller's current network namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    return sock


def read_dump(
    sock: DiagSocket, request: bytes, parse_chunk: ChunkParser, buffer: bytearray | None = None,
) -> tuple[list[Endpoint], bool]:
    """Send one dump request; return every endpoint in the reply.

    The flag is True when the kernel set ``NLM_F_DUMP_INTR``: the table changed while it
    was dumped, so some sockets may be missing or doubled; the caller may dump again.

    Raises:
        NetlinkError: the kernel answered with an error.
        ParseError: a reply that does not follow the kernel's layout.
    """
    buf = buffer if buffer is not None else bytearray(RECV_BUFFER)
    out: list[Endpoint] = []
    sock.send(request)
    interrupted = False
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            raise ParseError("netlink socket closed before NLMSG_DONE")
        done, intr, err = parse_chunk(buf, n, out)
        interrupted = interrupted or intr
        if err:
            raise NetlinkError(err)
        if done:
            return out, interrupted


def netlink_available(factory: Callable[[], DiagSocket] = open_diag_socket) -> bool:
    """Whether sock_diag can be opened here (it is missing in some sandboxes)."""
    try:
        factory().close()
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT, errno.EACCES, errno.EPERM):
            return False
        raise
    return True
