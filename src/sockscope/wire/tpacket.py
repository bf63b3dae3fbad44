"""Pure: a ``TPACKET_V3`` ring's blocks and the packets in them (``packet(7)``,
``include/uapi/linux/if_packet.h``, ``Documentation/networking/packet_mmap.rst``).

The kernel fills a block with packets, then hands it over by setting ``block_status``
to ``TP_STATUS_USER``; the reader gives it back with ``TP_STATUS_KERNEL``. Each packet
starts with a ``struct tpacket3_hdr``, then the ``struct sockaddr_ll`` saying where it
went, then (at ``tp_mac``) its bytes from the link-layer header on.
"""

from __future__ import annotations

import struct

from sockscope._namedtuple import NamedTuple

TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_LOSING = 1 << 2
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
TP_STATUS_CSUM_VALID = 1 << 7

# sll_pkttype (include/uapi/linux/if_packet.h)
PACKET_HOST = 0
PACKET_BROADCAST = 1
PACKET_MULTICAST = 2
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4

# Device types whose packets start with a 14-byte Ethernet header (loopback's is zeros).
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHERNET_LIKE = frozenset({ARPHRD_ETHER, ARPHRD_LOOPBACK})

# struct tpacket_block_desc { __u32 version; __u32 offset_to_priv; struct tpacket_hdr_v1
# { __u32 block_status; __u32 num_pkts; __u32 offset_to_first_pkt; __u32 blk_len; ... } }
BLOCK_DESC = struct.Struct("=8xIII")
BLOCK_STATUS_AT = 8
# struct tpacket3_hdr { __u32 tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
# tp_status; __u16 tp_mac, tp_net; { __u32 tp_rxhash, tp_vlan_tci; __u16 tp_vlan_tpid,
# pad } hv1; __u8 tp_padding[8]; } (48 bytes), then at TPACKET_ALIGN(48) = 48 the
# struct sockaddr_ll { __u16 family; __be16 protocol; int ifindex; __u16 hatype;
# unsigned char pkttype, halen, addr[8]; }: read up to sll_pkttype.
TPACKET3_HDR = struct.Struct("=6I2H4xIH10x4xiHB")
ETH_P_8021Q = 0x8100
_VLAN_TAG = struct.Struct("!HH")


class Frame(NamedTuple):
    """One captured packet.

    ``data`` starts at the link-layer header on Ethernet-like devices, at the network
    header on the others (``l3`` is where that header starts in ``data``); ``length``
    is the packet's length on the wire, counted from the same place.
    """

    sec: int
    nsec: int
    data: bytes
    length: int
    ifindex: int
    hatype: int
    pkttype: int
    status: int
    l3: int


def parse_block_header(block: bytes | memoryview) -> tuple[int, int, int]:
    """``(block_status, num_pkts, offset_to_first_pkt)`` of a ring block."""
    status, count, first = BLOCK_DESC.unpack_from(block, 0)
    return status, count, first


def parse_block(ring: bytes | memoryview, start: int, count: int, first: int) -> list[Frame]:
    """The ``count`` packets of the block at ``start`` of ``ring``, copied out, so the
    block can go back to the kernel at once."""
    frames: list[Frame] = []
    append = frames.append
    unpack = TPACKET3_HDR.unpack_from
    at = start + first
    for _ in range(count):
        nxt, sec, nsec, snap, length, status, mac, net, tci, tpid, ifindex, hatype, pkttype = unpack(ring, at)
        if hatype in ETHERNET_LIKE:
            data = bytes(ring[at + mac : at + mac + snap])
            l3 = net - mac
            if status & TP_STATUS_VLAN_VALID:
                data, length, l3 = _with_vlan_tag(data, length, l3, tci, tpid, status)
        else:
            skip = net - mac
            data = bytes(ring[at + net : at + mac + snap])
            length -= skip
            l3 = 0
        append(Frame(sec, nsec, data, length, ifindex, hatype, pkttype, status, l3))
        at += nxt
    return frames


def _with_vlan_tag(
    data: bytes, length: int, l3: int, tci: int, tpid: int, status: int
) -> tuple[bytes, int, int]:
    # The kernel strips the 802.1Q tag into tp_vlan_tci; libpcap puts it back where it
    # was, after the two MAC addresses, and so do we.
    tag = _VLAN_TAG.pack(tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q, tci)
    return data[:12] + tag + data[12:], length + 4, l3 + 4


_IPV4 = struct.Struct("!B5xHxB2x4s4s")  # version/IHL, frag offset, protocol, src, dst
_IPV6 = struct.Struct("!6xBx16s16s")  # next header, src, dst
_PORTS = struct.Struct("!HH")
_L4 = frozenset({6, 17})

#: ``(protocol, source, source port, destination, destination port)``, addresses packed.
Flow = tuple[int, bytes, int, bytes, int]


def parse_flow(data: bytes, l3: int) -> Flow | None:
    """The TCP or UDP flow a packet belongs to; None for anything else, an IPv4 fragment
    after the first, or IPv6 with extension headers before TCP/UDP."""
    try:
        first = data[l3] >> 4
        if first == 4:
            vihl, frag, proto, src, dst = _IPV4.unpack_from(data, l3)
            if proto not in _L4 or frag & 0x1FFF:
                return None
            sport, dport = _PORTS.unpack_from(data, l3 + (vihl & 0x0F) * 4)
        elif first == 6:
            proto, src, dst = _IPV6.unpack_from(data, l3)
            if proto not in _L4:
                return None
            sport, dport = _PORTS.unpack_from(data, l3 + 40)
        else:
            return None
    except (IndexError, struct.error):
        return None  # cut short by the snap length
    return proto, src, sport, dst, dport


def packet_flags(pkttype: int, status: int) -> int:
    """The pcapng ``epb_flags`` for a packet: direction, reception type, checksum state."""
    flags = _DIRECTION.get(pkttype, 0)
    if status & TP_STATUS_CSUMNOTREADY:
        flags |= 1 << 9
    if status & TP_STATUS_CSUM_VALID:
        flags |= 1 << 10
    return flags


# Inbound (1) with its reception type (unicast 1, multicast 2, broadcast 3, promiscuous
# 4, in bits 2-4), or outbound (2).
_DIRECTION = {
    PACKET_HOST: 1 | 1 << 2,
    PACKET_BROADCAST: 1 | 3 << 2,
    PACKET_MULTICAST: 1 | 2 << 2,
    PACKET_OTHERHOST: 1 | 4 << 2,
    PACKET_OUTGOING: 2,
}


def linktype_for(hatype: int) -> int:
    """The pcapng link type of ``Frame.data`` for a device type: Ethernet, or raw IP."""
    return 1 if hatype in ETHERNET_LIKE else 101
