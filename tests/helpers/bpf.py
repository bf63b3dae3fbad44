"""A classic BPF interpreter with the kernel's negative offsets, for checking programs.

Mirrors ``net/core/filter.c``: a load past the packet's end makes the program return 0;
``SKF_NET_OFF + k`` reads byte ``k`` of the network header and ``SKF_AD_OFF + n`` the
ancillary values (protocol, packet type, device type).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sockscope.wire.packet_filter import (
    SKF_AD_HATYPE,
    SKF_AD_IFINDEX,
    SKF_AD_OFF,
    SKF_AD_PKTTYPE,
    SKF_AD_PROTOCOL,
    SKF_NET_OFF,
    SOCK_FILTER,
)

U32 = 0xFFFFFFFF
_SIZES = {0x00: 4, 0x08: 2, 0x10: 1}
_ALU = {
    0x00: lambda a, b: a + b,
    0x10: lambda a, b: a - b,
    0x20: lambda a, b: a * b,
    0x30: lambda a, b: a // b if b else None,
    0x40: lambda a, b: a | b,
    0x50: lambda a, b: a & b,
    0x60: lambda a, b: a << b if b < 32 else 0,
    0x70: lambda a, b: a >> b if b < 32 else 0,
    0x90: lambda a, b: a % b if b else None,
    0xA0: lambda a, b: a ^ b,
}


@dataclass
class Packet:
    """What the kernel shows a packet socket's filter: the bytes from the link header."""

    data: bytes
    net: int  # where the network header starts
    protocol: int  # skb->protocol, host order (0x0800, 0x86dd...)
    pkttype: int = 0
    hatype: int = 1
    ifindex: int = 1


class _OutOfBoundsError(Exception):
    pass


def _load(pkt: Packet, k: int, size: int) -> int:
    if k >= SKF_AD_OFF:
        return {
            SKF_AD_PROTOCOL: pkt.protocol,
            SKF_AD_PKTTYPE: pkt.pkttype,
            SKF_AD_HATYPE: pkt.hatype,
            SKF_AD_IFINDEX: pkt.ifindex,
        }[k - SKF_AD_OFF]
    if k >= SKF_NET_OFF:
        k = pkt.net + k - SKF_NET_OFF
    if k + size > len(pkt.data):
        raise _OutOfBoundsError
    return int.from_bytes(pkt.data[k : k + size], "big")


def run_classic_bpf(program: bytes, pkt: Packet) -> int:
    """The program's verdict on ``pkt``: how many bytes to keep (0: drop)."""
    insns = [SOCK_FILTER.unpack_from(program, i) for i in range(0, len(program), SOCK_FILTER.size)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    try:
        while True:
            code, jt, jf, k = insns[pc]
            pc += 1
            cls = code & 0x07
            if cls == 0x00:  # LD
                mode = code & 0xE0
                if mode == 0x00:
                    a = k
                elif mode in (0x20, 0x40):  # ABS, IND
                    off = k if mode == 0x20 else (x + k) & U32
                    a = _load(pkt, off, _SIZES[code & 0x18])
                elif mode == 0x60:
                    a = mem[k]
                elif mode == 0x80:
                    a = len(pkt.data)
            elif cls == 0x01:  # LDX
                mode = code & 0xE0
                if mode == 0x00:
                    x = k
                elif mode == 0x60:
                    x = mem[k]
                elif mode == 0x80:
                    x = len(pkt.data)
                elif mode == 0xA0:  # MSH: 4 * (P[k] & 0xf)
                    x = 4 * (_load(pkt, k, 1) & 0x0F)
            elif cls == 0x02:
                mem[k] = a
            elif cls == 0x03:
                mem[k] = x
            elif cls == 0x04:  # ALU
                op = code & 0xF0
                if op == 0x80:
                    a = -a & U32
                else:
                    result = _ALU[op](a, x if code & 0x08 else k)
                    if result is None:
                        return 0
                    a = result & U32
            elif cls == 0x05:  # JMP
                op = code & 0xF0
                if op == 0x00:
                    pc += k
                    continue
                b = x if code & 0x08 else k
                taken = {0x10: a == b, 0x20: a > b, 0x30: a >= b, 0x40: bool(a & b)}[op]
                pc += jt if taken else jf
            elif cls == 0x06:  # RET
                return a if code & 0x18 == 0x10 else k
            else:  # MISC: TAX, TXA
                if code & 0xF8 == 0x00:
                    x = a
                else:
                    a = x
    except _OutOfBoundsError:
        return 0


ETH_HEADER = b"\x00" * 12


def ipv4_packet(src: bytes, dst: bytes, proto: int, sport: int, dport: int, flags: int = 0x10) -> bytes:
    """An Ethernet frame holding a minimal IPv4 TCP or UDP packet."""
    l4 = (
        struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 1024, 0, 0)
        if proto == 6
        else struct.pack("!HHHH", sport, dport, 8, 0)
    )
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, src, dst)
    return ETH_HEADER + b"\x08\x00" + ip + l4


def ipv6_packet(src: bytes, dst: bytes, proto: int, sport: int, dport: int, flags: int = 0x10) -> bytes:
    """An Ethernet frame holding a minimal IPv6 TCP or UDP packet."""
    l4 = (
        struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 1024, 0, 0)
        if proto == 6
        else struct.pack("!HHHH", sport, dport, 8, 0)
    )
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, src, dst)
    return ETH_HEADER + b"\x86\xdd" + ip + l4
