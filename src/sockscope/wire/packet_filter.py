"""Pure: classic BPF programs that keep packets of some protocols, ports and addresses.

A capture socket runs the program on every packet before it is copied to the ring
(``SO_ATTACH_FILTER``, ``socket(7)``, ``Documentation/networking/filter.rst``); the value
it returns is how many bytes to keep, 0 dropping the packet, so the snap length is the
accepting return.

The programs read the packet through the kernel's negative offsets rather than from a
link-layer header of known size, so one program serves every interface of an ``any``
capture, Ethernet, loopback or a tunnel without a link header alike:
``SKF_AD_OFF + SKF_AD_PROTOCOL`` is ``skb->protocol`` (the EtherType, host order),
``SKF_AD_OFF + SKF_AD_PKTTYPE`` and ``SKF_AD_HATYPE`` the packet and device types, and
``SKF_NET_OFF + k`` byte ``k`` of the network header (``include/uapi/linux/filter.h``).
As in pcap-filter(7), IPv6 ports and flags are read only when no extension header
precedes TCP or UDP, and IPv4 fragments other than the first have no ports.

``PktProto``, ``PktFamily``, ``PktPort``, ``PktHost`` and ``PktTcpFlags`` under
``PktAnd``/``PktOr``/``PktNot`` form the tree; ``build_packet_filter`` lays it out with
short-circuit jumps. ``run_packet_filter`` mirrors the kernel's interpreter for tests.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } (include/uapi/linux/filter.h)
SOCK_FILTER = struct.Struct("=HBBI")
BPF_MAXINSNS = 4096

# Opcodes: class | size | mode, or class | op | source (include/uapi/linux/bpf_common.h).
BPF_LD_W_ABS = 0x20
BPF_LD_H_ABS = 0x28
BPF_LD_B_ABS = 0x30
BPF_LD_W_IND = 0x40
BPF_LD_H_IND = 0x48
BPF_LD_B_IND = 0x50
BPF_LDX_B_MSH = 0xB1
BPF_ALU_AND_K = 0x54
BPF_JA = 0x05
BPF_JEQ_K = 0x15
BPF_JGT_K = 0x25
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
BPF_RET_A = 0x16

# Negative offsets: ancillary data and the network header (as u32, the way k is stored).
SKF_AD_OFF = -0x1000 & 0xFFFFFFFF
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
SKF_AD_HATYPE = 28
SKF_NET_OFF = -0x100000 & 0xFFFFFFFF

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04


class PacketFilterError(ValueError):
    """A program the kernel would refuse (too long)."""


@dataclass(frozen=True, slots=True)
class PktFamily:
    """IPv4 (4) or IPv6 (6)."""

    versions: frozenset[int]


@dataclass(frozen=True, slots=True)
class PktProto:
    """The IP protocol (6 TCP, 17 UDP...) of an IPv4 or IPv6 packet."""

    numbers: frozenset[int]


@dataclass(frozen=True, slots=True)
class PktPort:
    """A TCP or UDP packet with its source or destination port in one of ``spans``
    (inclusive ``(lo, hi)`` pairs)."""

    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class PktHost:
    """The source or destination address is in the network ``addr/prefix_len``."""

    version: int
    addr: bytes  # network order, 4 or 16 bytes
    prefix_len: int


@dataclass(frozen=True, slots=True)
class PktTcpFlags:
    """A TCP packet with one of ``mask``'s flags set (``TCP_SYN | TCP_FIN | TCP_RST``)."""

    mask: int


@dataclass(frozen=True, slots=True)
class PktAnd:
    """Every item holds; an empty one always holds."""

    items: tuple[PktExpr, ...]


@dataclass(frozen=True, slots=True)
class PktOr:
    """Some item holds; an empty one never holds."""

    items: tuple[PktExpr, ...]


@dataclass(frozen=True, slots=True)
class PktNot:
    """The item does not hold."""

    item: PktExpr


PktExpr = PktFamily | PktProto | PktPort | PktHost | PktTcpFlags | PktAnd | PktOr | PktNot
Label = int


class _Asm:
    """Instructions with symbolic forward jumps, resolved by ``assemble``.

    A jump target is a label, or None for the next instruction. Conditional jumps hold
    8-bit offsets; with ``far`` each goes through two 32-bit ``ja`` (taken, not taken),
    for programs too long for short jumps.
    """

    def __init__(self, far: bool = False) -> None:
        self.far = far
        self.code: list[tuple[int, Label | None, Label | None, int, bool]] = []
        self.where: dict[Label, int] = {}
        self._labels = itertools.count()

    def label(self) -> Label:
        return next(self._labels)

    def place(self, label: Label, at: int | None = None) -> None:
        self.where[label] = len(self.code) if at is None else at

    def op(self, code: int, k: int = 0) -> None:
        self.code.append((code, None, None, k & 0xFFFFFFFF, False))

    def jump(self, code: int, k: int, yes: Label | None, no: Label | None) -> None:
        """Jump to ``yes`` when the test holds, else to ``no``."""
        if not self.far:
            self.code.append((code, yes, no, k, False))
            return
        taken, not_taken, after = self.label(), self.label(), self.label()
        self.code.append((code, taken, not_taken, k, False))
        self.place(taken)
        self.goto(after if yes is None else yes)
        self.place(not_taken)
        self.goto(after if no is None else no)
        self.place(after)

    def goto(self, label: Label) -> None:
        self.code.append((BPF_JA, None, None, label, True))

    def assemble(self) -> bytes:
        if len(self.code) > BPF_MAXINSNS:
            raise PacketFilterError(
                f"the filter needs {len(self.code)} instructions, over the kernel's {BPF_MAXINSNS}"
            )
        out = []
        for pc, (code, jt, jf, k, k_label) in enumerate(self.code):
            out.append(
                SOCK_FILTER.pack(
                    code, self._offset(pc, jt), self._offset(pc, jf), self.where[k] - pc - 1 if k_label else k
                )
            )
        return b"".join(out)

    def _offset(self, pc: int, target: Label | None) -> int:
        if target is None:
            return 0
        off = self.where[target] - pc - 1
        if off > 0xFF:
            raise _TooFarError
        return off


class _TooFarError(Exception):
    """A conditional jump needs more than 8 bits: assemble again with far jumps."""


def _net(k: int) -> int:
    return (SKF_NET_OFF + k) & 0xFFFFFFFF


def _ad(k: int) -> int:
    return (SKF_AD_OFF + k) & 0xFFFFFFFF


def _dispatch(asm: _Asm, v4: Label | None, v6: Label | None, other: Label) -> None:
    """Jump by ``skb->protocol`` to ``v4``/``v6`` (None: that family goes to ``other``)."""
    asm.op(BPF_LD_H_ABS, _ad(SKF_AD_PROTOCOL))
    asm.jump(BPF_JEQ_K, ETH_P_IP, other if v4 is None else v4, None)
    asm.jump(BPF_JEQ_K, ETH_P_IPV6, other if v6 is None else v6, other)


def _l4_v4(asm: _Asm, protos: Sequence[int], no: Label) -> None:
    """Fall through with X = the IPv4 header length when the packet is one of ``protos``
    and not a later fragment; else jump to ``no``."""
    _ip_proto(asm, 9, protos, no)
    asm.op(BPF_LD_H_ABS, _net(6))
    asm.jump(BPF_JSET_K, 0x1FFF, no, None)
    asm.op(BPF_LDX_B_MSH, _net(0))


def _ip_proto(asm: _Asm, at: int, protos: Sequence[int], no: Label) -> None:
    """Fall through when the protocol byte at ``at`` is one of ``protos``."""
    asm.op(BPF_LD_B_ABS, _net(at))
    ok = asm.label()
    for i, proto in enumerate(protos):
        asm.jump(BPF_JEQ_K, proto, ok, no if i == len(protos) - 1 else None)
    asm.place(ok)


def _l4_v6(asm: _Asm, protos: Sequence[int], no: Label) -> None:
    _ip_proto(asm, 6, protos, no)


def _range(asm: _Asm, lo: int, hi: int, yes: Label) -> None:
    """Jump to ``yes`` when ``lo <= A <= hi``, else fall through."""
    if lo == hi:
        asm.jump(BPF_JEQ_K, lo, yes, None)
        return
    skip = asm.label()
    asm.jump(BPF_JGE_K, lo, None, skip)
    asm.jump(BPF_JGT_K, hi, skip, yes)
    asm.place(skip)


def _emit_port(asm: _Asm, cond: PktPort, yes: Label, no: Label) -> None:
    v4, v6 = asm.label(), asm.label()
    _dispatch(asm, v4, v6, no)
    asm.place(v4)
    _l4_v4(asm, (IPPROTO_TCP, IPPROTO_UDP), no)
    for at in (0, 2):
        asm.op(BPF_LD_H_IND, _net(at))
        for lo, hi in cond.spans:
            _range(asm, lo, hi, yes)
    asm.goto(no)
    asm.place(v6)
    _l4_v6(asm, (IPPROTO_TCP, IPPROTO_UDP), no)
    for at in (40, 42):
        asm.op(BPF_LD_H_ABS, _net(at))
        for lo, hi in cond.spans:
            _range(asm, lo, hi, yes)
    asm.goto(no)


def _emit_flags(asm: _Asm, cond: PktTcpFlags, yes: Label, no: Label) -> None:
    v4, v6 = asm.label(), asm.label()
    _dispatch(asm, v4, v6, no)
    asm.place(v4)
    _l4_v4(asm, (IPPROTO_TCP,), no)
    asm.op(BPF_LD_B_IND, _net(13))
    asm.jump(BPF_JSET_K, cond.mask, yes, no)
    asm.place(v6)
    _l4_v6(asm, (IPPROTO_TCP,), no)
    asm.op(BPF_LD_B_ABS, _net(53))
    asm.jump(BPF_JSET_K, cond.mask, yes, no)


def _emit_proto(asm: _Asm, cond: PktProto, yes: Label, no: Label) -> None:
    if not cond.numbers:
        asm.goto(no)
        return
    v4, v6 = asm.label(), asm.label()
    _dispatch(asm, v4, v6, no)
    for place, at in ((v4, 9), (v6, 6)):
        asm.place(place)
        asm.op(BPF_LD_B_ABS, _net(at))
        for number in sorted(cond.numbers):
            asm.jump(BPF_JEQ_K, number, yes, None)
        asm.goto(no)


def _emit_host(asm: _Asm, cond: PktHost, yes: Label, no: Label) -> None:
    v4, v6 = asm.label(), asm.label()
    _dispatch(asm, v4 if cond.version == 4 else None, v6 if cond.version == 6 else None, no)
    asm.place(v4 if cond.version == 4 else v6)
    starts = (12, 16) if cond.version == 4 else (8, 24)
    for start in starts:
        miss = asm.label()
        _emit_prefix(asm, start, cond.addr, cond.prefix_len, miss)
        asm.goto(yes)
        asm.place(miss)
    asm.goto(no)


def _emit_prefix(asm: _Asm, start: int, addr: bytes, prefix_len: int, miss: Label) -> None:
    """Fall through when the address at ``start`` is in ``addr/prefix_len``."""
    for word in range(len(addr) // 4):
        bits = min(max(prefix_len - 32 * word, 0), 32)
        if not bits:
            break
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        value = int.from_bytes(addr[4 * word : 4 * word + 4], "big") & mask
        asm.op(BPF_LD_W_ABS, _net(start + 4 * word))
        if mask != 0xFFFFFFFF:
            asm.op(BPF_ALU_AND_K, mask)
        asm.jump(BPF_JEQ_K, value, None, miss)


def _emit(asm: _Asm, expr: PktExpr, yes: Label, no: Label) -> None:
    """Code that jumps to ``yes`` when ``expr`` holds and to ``no`` otherwise."""
    if isinstance(expr, PktAnd | PktOr):
        if not expr.items:
            asm.goto(yes if isinstance(expr, PktAnd) else no)
            return
        for item in expr.items[:-1]:
            nxt = asm.label()
            if isinstance(expr, PktAnd):
                _emit(asm, item, nxt, no)
            else:
                _emit(asm, item, yes, nxt)
            asm.place(nxt)
        _emit(asm, expr.items[-1], yes, no)
    elif isinstance(expr, PktNot):
        _emit(asm, expr.item, no, yes)
    elif isinstance(expr, PktFamily):
        _dispatch(asm, yes if 4 in expr.versions else None, yes if 6 in expr.versions else None, no)
    elif isinstance(expr, PktProto):
        _emit_proto(asm, expr, yes, no)
    elif isinstance(expr, PktPort):
        _emit_port(asm, expr, yes, no)
    elif isinstance(expr, PktHost):
        _emit_host(asm, expr, yes, no)
    else:
        _emit_flags(asm, expr, yes, no)


def _build(expr: PktExpr | bool, snaplen: int, skip_loopback_outgoing: bool, tail: bytes, far: bool) -> bytes:
    asm = _Asm(far)
    keep, drop = asm.label(), asm.label()
    if skip_loopback_outgoing:
        body = asm.label()
        asm.op(BPF_LD_H_ABS, _ad(SKF_AD_HATYPE))
        asm.jump(BPF_JEQ_K, ARPHRD_LOOPBACK, None, body)
        asm.op(BPF_LD_H_ABS, _ad(SKF_AD_PKTTYPE))
        asm.jump(BPF_JEQ_K, PACKET_OUTGOING, drop, body)
        asm.place(body)
    if expr is False:
        asm.goto(drop)
    elif expr is not True:
        _emit(asm, expr, keep, drop)
    asm.place(keep)
    if tail:
        # The tail's own returns end the run; the head's failures jump past it.
        asm.place(drop, len(asm.code) + len(tail) // SOCK_FILTER.size)
        return asm.assemble() + tail + SOCK_FILTER.pack(BPF_RET_K, 0, 0, 0)
    asm.op(BPF_RET_K, snaplen)
    asm.place(drop)
    asm.op(BPF_RET_K, 0)
    return asm.assemble()


def build_packet_filter(
    expr: PktExpr | bool, snaplen: int, *, skip_loopback_outgoing: bool = False, tail: bytes = b""
) -> bytes:
    """The program keeping, truncated to ``snaplen`` bytes, the packets ``expr`` holds for.

    ``skip_loopback_outgoing`` drops the outgoing copy of every loopback packet (an
    ``any`` capture sees each twice otherwise). ``tail`` is a program run on the packets
    ``expr`` keeps, deciding for them (``build_dispatch``'s, from libpcap).

    Raises:
        PacketFilterError: longer than the kernel accepts.
    """
    try:
        return _build(expr, snaplen, skip_loopback_outgoing, tail, far=False)
    except _TooFarError:
        return _build(expr, snaplen, skip_loopback_outgoing, tail, far=True)


def build_dispatch(ethernet: bytes, raw: bytes, snaplen: int) -> bytes:
    """One program from two libpcap compilations of the same expression: ``ethernet`` for
    Ethernet and loopback devices (a 14-byte link header), ``raw`` for the rest (the IP
    header first). Their accepting returns keep ``snaplen`` bytes."""
    ethernet, raw = _clamp_returns(ethernet, snaplen), _clamp_returns(raw, snaplen)
    n_ether = len(ethernet) // SOCK_FILTER.size
    head = b"".join(
        SOCK_FILTER.pack(*insn)
        for insn in (
            (BPF_LD_H_ABS, 0, 0, _ad(SKF_AD_HATYPE)),
            (BPF_JEQ_K, 2, 0, ARPHRD_ETHER),
            (BPF_JEQ_K, 1, 0, ARPHRD_LOOPBACK),
            (BPF_JA, 0, 0, n_ether),
        )
    )
    return head + ethernet + raw


def _clamp_returns(program: bytes, snaplen: int) -> bytes:
    out = bytearray(program)
    for at in range(0, len(out), SOCK_FILTER.size):
        code, jt, jf, k = SOCK_FILTER.unpack_from(out, at)
        if code == BPF_RET_K and k:
            SOCK_FILTER.pack_into(out, at, code, jt, jf, min(k, snaplen))
    return bytes(out)


def build_handshakes() -> PktTcpFlags:
    """SYN, FIN and RST segments: ports opening and closing."""
    return PktTcpFlags(TCP_SYN | TCP_FIN | TCP_RST)


def packet_filter_length(program: bytes) -> int:
    """How many instructions ``program`` holds (``struct sock_fprog.len``)."""
    return len(program) // SOCK_FILTER.size
