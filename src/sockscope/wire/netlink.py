"""Pure: netlink framing (``include/uapi/linux/netlink.h``).

A reply buffer holds several ``nlmsghdr``-framed messages; each message's payload may be
followed by ``rtattr``/``nlattr`` attributes. Both are aligned to 4 bytes.
"""

from __future__ import annotations

import struct

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


def parse_rtattrs(buf: bytes | bytearray | memoryview, start: int, end: int) -> dict[int, tuple[int, int]]:
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
