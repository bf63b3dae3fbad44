"""Pure: ``SOCK_DESTROY`` requests and their acknowledgement, as ``ss -K`` sends them.

The kernel looks the socket up by the exact ``inet_diag_sockid`` (both ends, interface)
and then checks the cookie (``sock_diag_check_cookie``, ``net/core/sock_diag.c``), so a
socket that was closed and replaced by another with the same 4-tuple is never hit:
the kernel answers ``ESTALE`` instead. A matched socket is aborted with
``ECONNABORTED`` (``tcp_abort``/``udp_abort``). Needs ``CAP_NET_ADMIN`` in the socket's
namespace and ``CONFIG_INET_DIAG_DESTROY``.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import (
    NLM_F_REQUEST,
    NLMSG_ALIGN,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ERROR,
    NLMSGHDR,
    SOCK_DESTROY,
    build_nlmsg,
)

# include/uapi/linux/netlink.h: ask for an NLMSG_ERROR reply even on success.
NLM_F_ACK = 0x04
AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6
IPPROTO_UDP = 17
# Every state bit: the exact lookup (inet_diag_find_one_icsk) ignores idiag_states,
# but a narrower mask would look like a filter it is not.
ALL_STATES_MASK = 0xFFFFFFFF

# struct inet_diag_req_v2 { __u8 sdiag_family; __u8 sdiag_protocol; __u8 idiag_ext;
#   __u8 pad; __u32 idiag_states; struct inet_diag_sockid id; }
# struct inet_diag_sockid { __be16 idiag_sport; __be16 idiag_dport; __be32 idiag_src[4];
#   __be32 idiag_dst[4]; __u32 idiag_if; __u32 idiag_cookie[2]; }
# (include/uapi/linux/inet_diag.h). Unlike a dump request, every sockid field is set.
INET_DIAG_REQ_V2_EXACT = struct.Struct("=BBBxI2s2s16s16sIII")


class SockId(NamedTuple):
    """The exact identity of one inet socket, as ``inet_diag_sockid`` holds it."""

    family: int  # 4 or 6, as the socket was dumped (a v4-mapped peer stays family 6)
    protocol: int  # IPPROTO_TCP or IPPROTO_UDP
    src: IPv4Address | IPv6Address  # local address
    sport: int
    dst: IPv4Address | IPv6Address | None  # None: no peer (a listener, unconnected UDP)
    dport: int
    ifindex: int
    cookie: int  # idiag_cookie, both 32-bit halves


def _addr16(addr: IPv4Address | IPv6Address | None, family: int) -> bytes:
    """16 network-order bytes; an IPv4 address fills the first 4 (``idiag_src[0]``)."""
    if addr is None:
        return bytes(16)
    if family == 4:
        if not isinstance(addr, IPv4Address):
            raise ValueError(f"family 4 socket with an IPv6 address {addr}")
        return addr.packed + bytes(12)
    if isinstance(addr, IPv4Address):
        # A family-6 socket always has 16-byte addresses; write a bare IPv4 as v4-mapped.
        return IPv6Address(f"::ffff:{addr}").packed
    return addr.packed


def build_sock_destroy(sock: SockId, seq: int = 1) -> bytes:
    """The ``SOCK_DESTROY`` request for exactly ``sock``, asking for an acknowledgement."""
    if sock.family not in (4, 6):
        raise ValueError(f"not an inet family: {sock.family}")
    body = INET_DIAG_REQ_V2_EXACT.pack(
        AF_INET if sock.family == 4 else AF_INET6,
        sock.protocol,
        0,
        ALL_STATES_MASK,
        sock.sport.to_bytes(2, "big"),
        sock.dport.to_bytes(2, "big"),
        _addr16(sock.src, sock.family),
        _addr16(sock.dst, sock.family),
        sock.ifindex,
        sock.cookie & 0xFFFFFFFF,
        (sock.cookie >> 32) & 0xFFFFFFFF,
    )
    return build_nlmsg(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def parse_ack(buf: bytes | bytearray | memoryview, n: int, seq: int) -> int | None:
    """The errno the kernel answered to request ``seq`` (0: done), or None if not in ``buf``.

    Raises:
        ParseError: a message runs past ``n`` or an ``NLMSG_ERROR`` is cut short.
    """
    off = 0
    while off + NLMSGHDR.size <= n:
        length, mtype, _flags, mseq, _pid = NLMSGHDR.unpack_from(buf, off)
        if length < NLMSGHDR.size or off + length > n:
            raise ParseError(f"truncated netlink message at offset {off}: length {length}")
        if mtype == NLMSG_ERROR and mseq == seq:
            if length < NLMSGHDR.size + NLMSGERR_ERROR.size:
                raise ParseError("truncated NLMSG_ERROR")
            (err,) = NLMSGERR_ERROR.unpack_from(buf, off + NLMSGHDR.size)
            return -int(err)
        if mtype == NLMSG_DONE and mseq == seq:
            return 0
        off += NLMSG_ALIGN(length)
    return None
