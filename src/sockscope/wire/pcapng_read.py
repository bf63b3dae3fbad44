"""Pure: packet captures (pcapng, and classic pcap) in, TCP segments out.

Formats: pcapng as in draft-ietf-opsawg-pcapng (Section Header Block 0x0A0D0D0A with its
byte-order magic 0x1A2B3C4D, Interface Description Block 1 with ``if_tsresol`` (option
9), Enhanced Packet Block 6, Simple Packet Block 3, the obsolete Packet Block 2), and
classic pcap (magic 0xA1B2C3D4 in microseconds, 0xA1B23C4D in nanoseconds, either byte
order). Link types from the tcpdump.org registry: ``LINKTYPE_NULL`` 0,
``LINKTYPE_ETHERNET`` 1 (802.1Q tags skipped), ``LINKTYPE_RAW`` 101,
``LINKTYPE_LINUX_SLL`` 113, ``LINKTYPE_IPV4`` 228, ``LINKTYPE_IPV6`` 229,
``LINKTYPE_LINUX_SLL2`` 276. IPv4 (RFC 791) and IPv6 (RFC 8200, extension headers
walked) carrying TCP (RFC 9293).

Frame numbers count every packet block from 1, as Wireshark numbers them, whatever it
carries, so a number here is the one to type into Wireshark's "Go to packet".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IF_TSRESOL = 9

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IP = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_TCP = 6
IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options (fragments: 44)
IPPROTO_FRAGMENT = 44

TH_FIN, TH_SYN, TH_RST, TH_ACK = 0x01, 0x02, 0x04, 0x10


class CaptureError(ValueError):
    """Not a capture this reader understands, or one cut short."""


class Packet(NamedTuple):
    """One captured frame."""

    frame: int  # 1-based, as Wireshark numbers frames
    time: float | None  # seconds since the epoch (None: a Simple Packet Block has none)
    linktype: int
    data: bytes


class Segment(NamedTuple):
    """One TCP segment: who sent it to whom, and its flags."""

    frame: int
    time: float | None
    src: IPv4Address | IPv6Address
    sport: int
    dst: IPv4Address | IPv6Address
    dport: int
    flags: int  # th_flags: FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10


def parse_capture(buf: bytes | memoryview) -> Iterator[Packet]:
    """Every frame of a pcapng or classic pcap capture, in file order.

    Raises:
        CaptureError: neither format, or a block that runs past the end.
    """
    view = memoryview(buf)
    if len(view) < 4:
        raise CaptureError("too short to be a capture")
    (magic,) = struct.unpack_from("<I", view, 0)
    if magic == SHB:
        yield from _pcapng(view)
    elif magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(">I", view, 0)[0] in (
        PCAP_MAGIC_US,
        PCAP_MAGIC_NS,
    ):
        yield from _pcap(view)
    else:
        raise CaptureError(f"not a pcapng or pcap capture (magic {magic:#010x})")


def _pcapng(view: memoryview) -> Iterator[Packet]:
    pos, frame, end = 0, 0, "<"
    interfaces: list[tuple[int, float]] = []  # linktype, seconds per timestamp unit
    while pos + 12 <= len(view):
        (btype,) = struct.unpack_from(end + "I", view, pos)
        if btype == SHB:
            (bom,) = struct.unpack_from("<I", view, pos + 8)
            end = "<" if bom == BYTE_ORDER_MAGIC else ">"
            if struct.unpack_from(end + "I", view, pos + 8)[0] != BYTE_ORDER_MAGIC:
                raise CaptureError(f"bad byte-order magic at offset {pos}")
            interfaces = []  # each section numbers its interfaces afresh
        (length,) = struct.unpack_from(end + "I", view, pos + 4)
        if length < 12 or length % 4 or pos + length > len(view):
            raise CaptureError(f"block at offset {pos} runs past the end (length {length})")
        body = view[pos + 8 : pos + length - 4]
        if btype == IDB:
            interfaces.append(_interface(body, end))
        elif btype in (EPB, PB, SPB):
            frame += 1
            yield _packet(btype, body, end, interfaces, frame)
        pos += length
    if pos != len(view):
        raise CaptureError(f"{len(view) - pos} bytes left after the last block")


def _interface(body: memoryview, end: str) -> tuple[int, float]:
    linktype = struct.unpack_from(end + "H", body, 0)[0]
    resolution = 1e-6
    pos = 8
    while pos + 4 <= len(body):
        code, size = struct.unpack_from(end + "HH", body, pos)
        if code == 0:
            break
        if code == IF_TSRESOL and size >= 1:
            value = body[pos + 4]
            resolution = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        pos += 4 + (size + 3) // 4 * 4
    return linktype, resolution


def _packet(
    btype: int, body: memoryview, end: str, interfaces: list[tuple[int, float]], frame: int
) -> Packet:
    if btype == SPB:
        if not interfaces:
            raise CaptureError(f"frame {frame}: a packet before any interface")
        (orig,) = struct.unpack_from(end + "I", body, 0)
        linktype = interfaces[0][0]
        return Packet(frame, None, linktype, bytes(body[4 : 4 + min(orig, len(body) - 4)]))
    if btype == EPB:
        iface, hi, lo, caplen = struct.unpack_from(end + "IIII", body, 0)
    else:  # PB: a 16-bit interface id and a 16-bit drop count
        iface, _drops, hi, lo, caplen = struct.unpack_from(end + "HHIII", body, 0)
    if iface >= len(interfaces):
        raise CaptureError(f"frame {frame}: interface {iface} was never described")
    linktype, resolution = interfaces[iface]
    if 20 + caplen > len(body):
        raise CaptureError(f"frame {frame}: {caplen} bytes captured, block too short")
    return Packet(frame, ((hi << 32) | lo) * resolution, linktype, bytes(body[20 : 20 + caplen]))


def _pcap(view: memoryview) -> Iterator[Packet]:
    if len(view) < 24:
        raise CaptureError("pcap header cut short")
    end = "<" if struct.unpack_from("<I", view, 0)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
    magic = struct.unpack_from(end + "I", view, 0)[0]
    scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
    linktype = struct.unpack_from(end + "I", view, 20)[0] & 0x0FFFFFFF  # FCS bits above
    pos, frame = 24, 0
    while pos + 16 <= len(view):
        sec, frac, caplen, _orig = struct.unpack_from(end + "IIII", view, pos)
        if pos + 16 + caplen > len(view):
            raise CaptureError(f"frame {frame + 1}: record runs past the end")
        frame += 1
        yield Packet(frame, sec + frac * scale, linktype, bytes(view[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    if pos != len(view):
        raise CaptureError(f"{len(view) - pos} bytes left after the last record")


def parse_segment(pkt: Packet) -> Segment | None:
    """The TCP segment a frame carries; None for anything else (or a fragment)."""
    found = _network(pkt.linktype, pkt.data)
    if found is None:
        return None
    version, offset = found
    data = pkt.data
    if version == 4:
        tcp = _ipv4(data, offset)
        if tcp is None:
            return None
        src: IPv4Address | IPv6Address = IPv4Address(data[offset + 12 : offset + 16])
        dst: IPv4Address | IPv6Address = IPv4Address(data[offset + 16 : offset + 20])
    else:
        tcp = _ipv6(data, offset)
        if tcp is None:
            return None
        src = IPv6Address(data[offset + 8 : offset + 24])
        dst = IPv6Address(data[offset + 24 : offset + 40])
    if tcp + 14 > len(data):
        return None
    sport, dport = struct.unpack_from("!HH", data, tcp)
    return Segment(pkt.frame, pkt.time, src, sport, dst, dport, data[tcp + 13])


def _network(linktype: int, data: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the IP header) for the link types above."""
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, struct.unpack_from("!H", data, 12)[0] if len(data) >= 14 else 0
        while ethertype in ETHERTYPE_VLAN and len(data) >= offset + 4:
            ethertype = struct.unpack_from("!H", data, offset + 2)[0]
            offset += 4
        return _by_ethertype(ethertype, offset)
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 16:
        return _by_ethertype(struct.unpack_from("!H", data, 14)[0], 16)
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 20:
        return _by_ethertype(struct.unpack_from("!H", data, 0)[0], 20)
    if linktype == LINKTYPE_NULL and len(data) >= 4:
        family = struct.unpack_from("<I", data, 0)[0]
        if family > 0xFFFF:
            family = struct.unpack_from(">I", data, 0)[0]
        return (4, 4) if family == 2 else (6, 4) if family in (10, 24, 28, 30) else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) and data:
        version = data[0] >> 4
        return (version, 0) if version in (4, 6) else None
    return None


def _by_ethertype(ethertype: int, offset: int) -> tuple[int, int] | None:
    if ethertype == ETHERTYPE_IP:
        return 4, offset
    if ethertype == ETHERTYPE_IPV6:
        return 6, offset
    return None


def _ipv4(data: bytes, offset: int) -> int | None:
    if len(data) < offset + 20 or data[offset + 9] != IPPROTO_TCP:
        return None
    frag = struct.unpack_from("!H", data, offset + 6)[0]
    if frag & 0x1FFF:  # a later fragment: no TCP header in it
        return None
    return offset + (data[offset] & 0x0F) * 4


def _ipv6(data: bytes, offset: int) -> int | None:
    if len(data) < offset + 40:
        return None
    nxt, pos = data[offset + 6], offset + 40
    while nxt in IPV6_EXTENSIONS and len(data) >= pos + 8:
        nxt, pos = data[pos], pos + (data[pos + 1] + 1) * 8
    if nxt == IPPROTO_FRAGMENT and len(data) >= pos + 8:
        if struct.unpack_from("!H", data, pos + 2)[0] & 0xFFF8:
            return None
        nxt, pos = data[pos], pos + 8
    return pos if nxt == IPPROTO_TCP else None
