"""Pure: ``unix_diag`` requests and replies (``include/uapi/linux/unix_diag.h``)."""

from __future__ import annotations

import struct

from sockscope._namedtuple import NamedTuple
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    SOCK_DIAG_BY_FAMILY,
    build_nlmsg,
    parse_rtattrs,
)

AF_UNIX = 1
UDIAG_SHOW_NAME = 0x01
UDIAG_SHOW_PEER = 0x04
UDIAG_SHOW_RQLEN = 0x10
UDIAG_SHOW_UID = 0x40

UNIX_DIAG_NAME = 0
UNIX_DIAG_PEER = 2
UNIX_DIAG_RQLEN = 4
UNIX_DIAG_UID = 7

# struct unix_diag_req { __u8 sdiag_family; __u8 sdiag_protocol; __u16 pad;
#   __u32 udiag_states; __u32 udiag_ino; __u32 udiag_show; __u32 udiag_cookie[2]; }
UNIX_DIAG_REQ = struct.Struct("=BBHIIIII")
# struct unix_diag_msg { __u8 udiag_family, udiag_type, udiag_state, pad;
#   __u32 udiag_ino; __u32 udiag_cookie[2]; }
UNIX_DIAG_MSG = struct.Struct("=BBBxIII")
U32 = struct.Struct("=I")
RQLEN = struct.Struct("=II")

# SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET from include/linux/net.h
SOCK_TYPES = {1: "stream", 2: "dgram", 5: "seqpacket"}


class UnixDiagMsg(NamedTuple):
    """One decoded ``unix_diag_msg`` with its name, peer and queue attributes."""

    udiag_type: int
    udiag_state: int
    udiag_ino: int
    udiag_cookie: int
    name: str | None
    peer: int | None
    rqueue: int
    wqueue: int
    uid: int | None


def build_unix_diag_req(states: int, seq: int = 1) -> bytes:
    """A dump request for every UNIX socket in ``states``."""
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID
    body = UNIX_DIAG_REQ.pack(AF_UNIX, 0, 0, states, 0, show, 0xFFFFFFFF, 0xFFFFFFFF)
    return build_nlmsg(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def _decode_name(raw: bytes) -> str:
    # An abstract name starts with NUL; ss and netstat show it with a leading '@'.
    if raw.startswith(b"\0"):
        return "@" + raw[1:].decode("utf-8", "backslashreplace")
    return raw.rstrip(b"\0").decode("utf-8", "backslashreplace")


def parse_unix_diag_msg(buf: bytes | bytearray | memoryview, start: int, end: int) -> UnixDiagMsg:
    """Decode one reply payload.

    Raises:
        ParseError: the payload or an attribute is cut short.
    """
    if end - start < UNIX_DIAG_MSG.size:
        raise ParseError("truncated unix_diag_msg")
    _fam, utype, state, ino, c_lo, c_hi = UNIX_DIAG_MSG.unpack_from(buf, start)
    attrs = parse_rtattrs(buf, start + UNIX_DIAG_MSG.size, end)
    name = peer = uid = None
    rq = wq = 0
    if UNIX_DIAG_NAME in attrs:
        a, b = attrs[UNIX_DIAG_NAME]
        name = _decode_name(bytes(buf[a:b]))
    if UNIX_DIAG_PEER in attrs and attrs[UNIX_DIAG_PEER][1] - attrs[UNIX_DIAG_PEER][0] >= 4:
        (peer,) = U32.unpack_from(buf, attrs[UNIX_DIAG_PEER][0])
    if UNIX_DIAG_RQLEN in attrs and attrs[UNIX_DIAG_RQLEN][1] - attrs[UNIX_DIAG_RQLEN][0] >= 8:
        rq, wq = RQLEN.unpack_from(buf, attrs[UNIX_DIAG_RQLEN][0])
    if UNIX_DIAG_UID in attrs and attrs[UNIX_DIAG_UID][1] - attrs[UNIX_DIAG_UID][0] >= 4:
        (uid,) = U32.unpack_from(buf, attrs[UNIX_DIAG_UID][0])
    return UnixDiagMsg(utype, state, ino, c_lo | (c_hi << 32), name, peer, rq, wq, uid)
