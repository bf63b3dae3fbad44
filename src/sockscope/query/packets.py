"""Pure: the part of a filter a capture socket's packet filter can test.

A packet matches a filter when a socket it belongs to does (on loopback, both ends are
ours); a packet no socket is known for is seen from either end. The kernel's program
(``wire.packet_filter``) can test protocols, families, ports and addresses; it cannot
know which end of a packet is local, so ``lport``/``rport`` and ``laddr``/``raddr``
become tests of either end there: a superset. ``port``, ``addr``, ``proto`` and
``family`` are exact. Everything else (process, pid, user, state...) is "true" in the
kernel and tested per packet against the socket table.

``exact`` says whether the kernel's answer is the whole answer, so packets need no test
of their own; under ``not`` only exact parts are pushed, as in ``pushdown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from sockscope.model.filter.ast import And, Cmp, Item, Member, Node, Not, Or, Range
from sockscope.wire.packet_filter import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    PktAnd,
    PktExpr,
    PktFamily,
    PktHost,
    PktNot,
    PktOr,
    PktPort,
    PktProto,
)

PORT_MAX = 65535
_PROTO_NUMBERS = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
#: Fields that only watch's events have.
EVENT_FIELDS = frozenset({"event", "duration", "source"})
_PORT_FIELDS = {"port": True, "lport": False, "rport": False}  # field -> exact for packets
_ADDR_FIELDS = {"addr": True, "laddr": False, "raddr": False}
_MAPPED = IPv6Network("::ffff:0:0/96")

Kernel = PktExpr | bool  # True: no restriction; False: nothing passes


@dataclass(frozen=True, slots=True)
class PacketPushdown:
    """``kernel``: what the packet filter keeps (a superset of the matches); ``exact``:
    whether it keeps exactly the matches."""

    kernel: Kernel
    exact: bool


def compute_packet_pushdown(root: Node) -> PacketPushdown:
    """The packet filter's share of the filter whose tree is ``root``."""
    kernel, exact = _project(root)
    return PacketPushdown(kernel, exact)


def _project(node: Node) -> tuple[Kernel, bool]:
    if isinstance(node, And | Or):
        parts = [_project(item) for item in node.items]
        exact = all(e for _, e in parts)
        return _junction(isinstance(node, And), [k for k, _ in parts]), exact
    if isinstance(node, Not):
        inner, exact = _project(node.item)
        if not exact:
            return True, False
        if isinstance(inner, bool):
            return not inner, True
        return PktNot(inner), True
    if isinstance(node, Cmp | Member):
        return _atom(node)
    return True, False  # state tests, regular expressions: per packet only


def _junction(is_and: bool, parts: list[Kernel]) -> Kernel:
    # For And, False absorbs and True vanishes; for Or the other way round.
    absorbing = not is_and
    if absorbing in parts:
        return absorbing
    kept = [p for p in parts if not isinstance(p, bool)]
    if not kept:
        return not absorbing
    if len(kept) == 1:
        return kept[0]
    return PktAnd(tuple(kept)) if is_and else PktOr(tuple(kept))


def _values(atom: Cmp | Member) -> tuple[Item, ...] | None:
    """The values an equality test accepts; None for an ordering (<, >=...)."""
    if isinstance(atom, Member):
        return atom.items
    return (atom.value,) if atom.op == "==" else None


def _atom(atom: Cmp | Member) -> tuple[Kernel, bool]:
    if atom.field in _PORT_FIELDS:
        return _port(atom), _PORT_FIELDS[atom.field]
    if atom.field in _ADDR_FIELDS and isinstance(atom, Member):
        return _addr(atom)
    values = _values(atom)
    if atom.field == "proto" and values is not None:
        numbers = frozenset(_PROTO_NUMBERS[v] for v in values if isinstance(v, str) and v in _PROTO_NUMBERS)
        return (PktProto(numbers) if numbers else False), True
    if atom.field == "family" and values is not None:
        versions = frozenset(v for v in values if isinstance(v, int) and v in (4, 6))
        return (PktFamily(versions) if versions else False), True
    return True, False


def _port_ranges(atom: Cmp | Member) -> list[tuple[int, int]]:
    if isinstance(atom, Cmp):
        v = int(atom.value) if isinstance(atom.value, int | float) else 0
        spans = {"==": (v, v), "<": (0, v - 1), "<=": (0, v), ">": (v + 1, PORT_MAX), ">=": (v, PORT_MAX)}
        raw = [spans[atom.op]]
    else:
        raw = []
        for item in atom.items:
            if isinstance(item, int):
                raw.append((item, item))
            elif isinstance(item, Range):
                raw.append((int(item.lo), int(item.hi)))
    clipped = [(max(lo, 0), min(hi, PORT_MAX)) for lo, hi in raw]
    return [(lo, hi) for lo, hi in clipped if lo <= hi]


def _port(atom: Cmp | Member) -> Kernel:
    spans = tuple(sorted(set(_port_ranges(atom))))
    return PktPort(spans) if spans else False


def _addr(atom: Member) -> tuple[Kernel, bool]:
    """Either end in one of the networks. An IPv6 network holding v4-mapped addresses
    (``::ffff:0:0/96``) is left to the per-packet test: such peers travel as IPv4."""
    conds: list[PktExpr] = []
    for net in atom.items:
        if not isinstance(net, IPv4Network | IPv6Network):
            return True, False
        if isinstance(net, IPv6Network) and net.overlaps(_MAPPED):
            return True, False
        conds.append(PktHost(net.version, net.network_address.packed, net.prefixlen))
    if not conds:
        return False, True
    return (conds[0] if len(conds) == 1 else PktOr(tuple(conds))), _ADDR_FIELDS[atom.field]
