"""Pure: netlink framing (``include/uapi/linux/netlink.h``).

A reply buffer holds several ``nlmsghdr``-framed messages; each message's payload may be
followed by ``rtattr``/``nlattr`` attributes. Both are aligned to 4 bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from sockscope.wire.errors import ParseError

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH

SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21

# struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags;
#                   __u32 nlmsg_seq; __u32 nlmsg_pid; }
NLMSGHDR = struct.Struct("=IHHII")
# struct rtattr { unsigned short rta_len; unsigned short rta_type; }
RTATTR = struct.Struct("=HH")
# struct nlmsgerr { int error; struct nlmsghdr msg; }
NLMSGERR_ERROR = struct.Struct("=i")


def NLMSG_ALIGN(length: int) -> int:  # noqa: N802 - the kernel macro's name
    """Round up to the 4-byte netlink alignment."""
    return (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class NetlinkMessage:
    """One framed message: its header fields and where its payload lies in the buffer."""

    nlmsg_type: int
    nlmsg_flags: int
    nlmsg_seq: int
    payload_start: int
    payload_end: int


class NetlinkError(Exception):
    """An ``NLMSG_ERROR`` reply with a non-zero errno."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


def build_nlmsg(nlmsg_type: int, flags: int, seq: int, payload: bytes) -> bytes:
    """Frame ``payload`` with an ``nlmsghdr`` (the kernel fills in ``nlmsg_pid``)."""
    length = NLMSGHDR.size + len(payload)
    pad = b"\0" * (NLMSG_ALIGN(length) - length)
    return NLMSGHDR.pack(length, nlmsg_type, flags, seq, 0) + payload + pad


def build_rtattr(rta_type: int, data: bytes) -> bytes:
    """One attribute, padded to the netlink alignment."""
    length = RTATTR.size + len(data)
    return RTATTR.pack(length, rta_type) + data + b"\0" * (NLMSG_ALIGN(length) - length)


def parse_nlmsgs(buf: bytes | bytearray | memoryview, end: int) -> Iterator[NetlinkMessage]:
    """Walk the messages in ``buf[:end]``.

    Raises:
        ParseError: a header that claims more bytes than the buffer holds, or fewer than
            a header.
    """
    off = 0
    unpack = NLMSGHDR.unpack_from
    hdr_size = NLMSGHDR.size
    while off + hdr_size <= end:
        length, mtype, flags, seq, _pid = unpack(buf, off)
        if length < hdr_size or off + length > end:
            raise ParseError(f"truncated netlink message at offset {off}: length {length}")
        yield NetlinkMessage(mtype, flags, seq, off + hdr_size, off + length)
        off += NLMSG_ALIGN(length)
    if off < end and end - off >= 4:
        raise ParseError(f"{end - off} trailing bytes after the last netlink message")


def parse_nlmsgerr(buf: bytes | bytearray | memoryview, msg: NetlinkMessage) -> int:
    """Return the positive errno carried by an ``NLMSG_ERROR`` (0 means an ACK)."""
    if msg.payload_end - msg.payload_start < NLMSGERR_ERROR.size:
        raise ParseError("truncated NLMSG_ERROR")
    (error,) = NLMSGERR_ERROR.unpack_from(buf, msg.payload_start)
    return -int(error)


def parse_rtattrs(
    buf: bytes | bytearray | memoryview, start: int, end: int
) -> dict[int, tuple[int, int]]:
    """Map attribute type to the (start, end) of its data; unknown types are kept too.

    Raises:
        ParseError: an attribute whose length runs past ``end`` or is shorter than its header.
    """
    attrs: dict[int, tuple[int, int]] = {}
    unpack = RTATTR.unpack_from
    off = start
    while off + 4 <= end:
        rta_len, rta_type = unpack(buf, off)
        if rta_len < 4 or off + rta_len > end:
            raise ParseError(f"truncated attribute type {rta_type} at offset {off}")
        # NLA_F_NESTED / NLA_F_NET_BYTEORDER live in the top two bits of the type.
        attrs[rta_type & 0x3FFF] = (off + 4, off + rta_len)
        off += NLMSG_ALIGN(rta_len)
    return attrs
