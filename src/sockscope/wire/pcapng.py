"""Pure: pcapng blocks (draft-ietf-opsawg-pcapng), as Wireshark, tshark and libpcap read them.

A file is a Section Header Block, an Interface Description Block per interface, then
Enhanced Packet Blocks and, at the end, Interface Statistics Blocks. Every block is
``type, total length, body, total length``, padded to 32 bits; numbers are in the
writer's byte order, which the section header's byte-order magic announces (``=``: this
host's). A block is built whole, so a file cut after any block is still readable.

Options are ``code, length, value`` padded to 32 bits, ended by ``opt_endofopt``.
``build_*_options`` return a list without its end, so callers can append more.
"""

from __future__ import annotations

import struct

# Block types.
SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
ISB_TYPE = 0x00000005
BYTE_ORDER_MAGIC = 0x1A2B3C4D

# Options every block may carry.
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
# Section Header Block.
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
# Interface Description Block.
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_FILTER = 11
IF_OS = 12
# Enhanced Packet Block.
EPB_FLAGS = 2
EPB_DROPCOUNT = 4
# Interface Statistics Block.
ISB_STARTTIME = 2
ISB_ENDTIME = 3
ISB_IFRECV = 4
ISB_IFDROP = 5
ISB_FILTERACCEPT = 6
ISB_OSDROP = 7
ISB_USRDELIV = 8

# epb_flags: bits 0-1 direction, 2-4 reception type, 9 and 10 checksum state.
EPB_INBOUND = 1
EPB_OUTBOUND = 2
EPB_UNICAST = 1 << 2
EPB_MULTICAST = 2 << 2
EPB_BROADCAST = 3 << 2
EPB_PROMISCUOUS = 4 << 2
EPB_CSUM_NOT_READY = 1 << 9
EPB_CSUM_VALID = 1 << 10

# if_filter's first byte: how the rest is written.
FILTER_STRING = 0

# Link types (the tcpdump.org LINKTYPE_ registry).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

#: if_tsresol 9: timestamps count nanoseconds, as TPACKET_V3 gives them.
NANOSECONDS = 9

_HEAD = struct.Struct("=II")  # block type, block total length
_U32 = struct.Struct("=I")
_OPT = struct.Struct("=HH")
_OPT_U32 = struct.Struct("=HHI")
_OPT_U64 = struct.Struct("=HHQ")
_SHB_BODY = struct.Struct("=IHHq")  # byte-order magic, major, minor, section length
_IDB_BODY = struct.Struct("=HHI")  # link type, reserved, snap length
_EPB_HEAD = struct.Struct("=IIIIIII")  # type, length, interface, ts high, ts low, caplen, len
_ISB_BODY = struct.Struct("=III")  # interface, timestamp high, timestamp low
_END = _OPT.pack(OPT_ENDOFOPT, 0)
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")


def build_option(code: int, value: bytes) -> bytes:
    """One option: its code, length and value padded to 32 bits."""
    return _OPT.pack(code, len(value)) + value + _PADS[len(value) & 3]


def build_text_option(code: int, text: str) -> bytes:
    """An option holding UTF-8 text (never zero-terminated)."""
    return build_option(code, text.encode("utf-8", "replace"))


def build_comment(text: str) -> bytes:
    """An ``opt_comment``: tshark shows it as ``frame.comment`` on a packet."""
    return build_text_option(OPT_COMMENT, text)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _HEAD.pack(block_type, total) + body + _U32.pack(total)


def _options(parts: list[bytes]) -> bytes:
    return b"".join(parts) + _END if parts else b""


def build_section_header(application: str, os_name: str = "", hardware: str = "", comment: str = "") -> bytes:
    """A Section Header Block, version 1.0, of unknown length (-1), as a live capture writes it."""
    opts = [build_text_option(SHB_USERAPPL, application)]
    if os_name:
        opts.append(build_text_option(SHB_OS, os_name))
    if hardware:
        opts.append(build_text_option(SHB_HARDWARE, hardware))
    if comment:
        opts.append(build_comment(comment))
    return _block(SHB_TYPE, _SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts))


def build_interface_description(
    linktype: int,
    snaplen: int,
    name: str = "",
    filter_text: str = "",
    description: str = "",
    comment: str = "",
    os_name: str = "",
) -> bytes:
    """An Interface Description Block with nanosecond timestamps.

    ``filter_text`` goes in ``if_filter`` as a string (code 0), as dumpcap writes the
    capture filter; ``comment`` in ``opt_comment``.
    """
    opts = []
    if name:
        opts.append(build_text_option(IF_NAME, name))
    if description:
        opts.append(build_text_option(IF_DESCRIPTION, description))
    opts.append(build_option(IF_TSRESOL, bytes([NANOSECONDS])))
    if filter_text:
        opts.append(build_option(IF_FILTER, bytes([FILTER_STRING]) + filter_text.encode("utf-8", "replace")))
    if os_name:
        opts.append(build_text_option(IF_OS, os_name))
    if comment:
        opts.append(build_comment(comment))
    return _block(IDB_TYPE, _IDB_BODY.pack(linktype, 0, snaplen) + _options(opts))


def build_flags_option(flags: int) -> bytes:
    """``epb_flags`` (direction, reception type, checksum state); callers cache these."""
    return _OPT_U32.pack(EPB_FLAGS, 4, flags)


def build_enhanced_packet(
    interface_id: int, timestamp: int, data: bytes, original_length: int, options: bytes = b""
) -> bytes:
    """An Enhanced Packet Block: ``data`` as captured, ``timestamp`` in the interface's units.

    ``options`` is already encoded (``build_flags_option``, ``build_comment``...) without
    its end.
    """
    return b"".join(build_enhanced_packet_parts(interface_id, timestamp, data, original_length, options))


def build_enhanced_packet_parts(
    interface_id: int, timestamp: int, data: bytes, original_length: int, options: bytes = b""
) -> tuple[bytes, bytes, bytes]:
    """``build_enhanced_packet`` in three pieces, the packet's bytes untouched in the
    middle, so a writer can hand them to ``writev`` without copying a large packet
    once more. This is the hot path, called once per packet."""
    caplen = len(data)
    tail = _PADS[caplen & 3] + options + _END if options else _PADS[caplen & 3]
    total = 32 + caplen + len(tail)
    head = _EPB_HEAD.pack(
        EPB_TYPE, total, interface_id, timestamp >> 32, timestamp & 0xFFFFFFFF, caplen, original_length
    )
    return head, data, tail + _U32.pack(total)


def build_interface_statistics(
    interface_id: int,
    timestamp: int,
    *,
    start: int | None = None,
    end: int | None = None,
    received: int | None = None,
    os_dropped: int | None = None,
    delivered: int | None = None,
    comment: str = "",
) -> bytes:
    """An Interface Statistics Block; times in the interface's units, counts since the start.

    ``received`` (``isb_ifrecv``): packets the capture socket's filter accepted;
    ``os_dropped`` (``isb_osdrop``): those the kernel dropped for want of room;
    ``delivered`` (``isb_usrdeliv``): packets written.
    """
    opts = []
    for code, value in ((ISB_STARTTIME, start), (ISB_ENDTIME, end)):
        if value is not None:
            opts.append(_OPT_U32.pack(code, 8, value >> 32) + _U32.pack(value & 0xFFFFFFFF))
    for code, value in ((ISB_IFRECV, received), (ISB_OSDROP, os_dropped), (ISB_USRDELIV, delivered)):
        if value is not None:
            opts.append(_OPT_U64.pack(code, 8, value))
    if comment:
        opts.append(build_comment(comment))
    body = _ISB_BODY.pack(interface_id, timestamp >> 32, timestamp & 0xFFFFFFFF)
    return _block(ISB_TYPE, body + _options(opts))


def build_process_comments(
    pid: int, name: str, args: str = "", uid: int | None = None, user: str = "", container: str = ""
) -> list[str]:
    """The comments naming a packet's process, in the layout ptcpdump writes and reads.

    ``PID``/``Cmd``/``Args`` in one comment, the user in another, the container in a
    third when known; each ``Key: value`` on its own line, so ``frame.comment contains``
    and ``contrib/wireshark/sockscope.lua`` find them.
    """
    name, args, user, container = (_one_line(v) for v in (name, args, user, container))
    out = [f"PID: {pid}\nCmd: {name}\nArgs: {args or name}"]
    if uid is not None:
        out.append(f"UserId: {uid}\nUserName: {user or uid}")
    if container:
        out.append(f"ContainerId: {container}")
    return out


def _one_line(text: str) -> str:
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text)
