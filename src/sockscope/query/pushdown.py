"""Pure: the part of a filter the kernel can do for us (``pushdown(flt)``).

Every answer here is conservative: the kernel keeps a superset of what the filter
matches, and the caller re-applies ``Filter.matches``. The tree is first put in
negation normal form (``not`` only on atoms; ``port``/``addr`` split into their two
ends), then projected three ways:

- states, protocols and families: sets, intersected under ``and``, joined under ``or``;
- ports, addresses and interfaces: an ``INET_DIAG_REQ_BYTECODE`` program. An atom the
  kernel cannot test becomes "true" (the superset); under ``not`` an atom is pushed only
  when the kernel's answer equals ours for every socket (``exact``);
- ports alone: spans of local or remote ports one of which every match has, for sources
  that can only test ports (the tracepoint's filter, a socket filter on destroy messages).

Where the kernel and this package differ: with no peer, the kernel sees remote port 0
and address 0.0.0.0 or ::, where we see "absent" (never matching). An ``AF_INET6``
prefix match also sees v4-mapped addresses, which we read as IPv4. Atoms whose answer
could differ there are inexact and never pushed under ``not``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple, TypeVar

from sockscope.model.fields import FIELDS_BY_NAME
from sockscope.model.filter.ast import And, Cmp, Item, Member, Node, Not, Or, Range, StateIn
from sockscope.model.filter.core import Filter
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.wire.bytecode import (
    AF_INET,
    AF_INET6,
    BcAnd,
    BcExpr,
    BcNot,
    BcOr,
    BytecodeError,
    DevCond,
    HostCond,
    PortCond,
    build_bytecode,
    build_reject_all,
)

PORT_MAX = 65535
U32_MAX = 0xFFFFFFFF
ALL_PROTOS = frozenset(Proto)
ALL_FAMILIES = frozenset({0, 4, 6})
INET_FAMILIES = frozenset({4, 6})
_MAPPED = IPv6Network("::ffff:0:0/96")
_ZERO4, _ZERO6 = IPv4Address(0), IPv6Address(0)


class PortSpan(NamedTuple):
    """Local (or remote) ports ``lo..hi``."""

    local: bool
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class Pushdown:
    """What to ask the kernel for; ``None`` means no restriction.

    ``protocols`` and ``families`` say which dumps can hold a match (an empty set: none
    can, make no dump); ``states`` goes into ``idiag_states``; ``bytecode`` is an
    ``INET_DIAG_REQ_BYTECODE`` program for TCP and UDP dumps. ``ports``: every match has
    a port in one of these spans.
    """

    protocols: frozenset[Proto] | None
    families: frozenset[int] | None
    states: frozenset[TcpState] | None
    bytecode: bytes | None
    ports: tuple[PortSpan, ...] | None = None


def pushdown(flt: Filter) -> Pushdown:
    """The kernel-side part of ``flt``: a superset of its matches; re-apply ``matches`` after."""
    return compute_pushdown(flt.root)


def compute_pushdown(root: Node) -> Pushdown:
    """The kernel-side part of the filter whose tree is ``root``."""
    nnf = to_nnf(root)
    protos, families = _dumps(nnf)
    if 0 not in families:
        protos -= {Proto.UNIX}
    if not families & INET_FAMILIES:
        protos -= {Proto.TCP, Proto.UDP}
    inet = families & INET_FAMILIES
    states = _states(nnf)
    return Pushdown(
        protocols=None if protos == ALL_PROTOS else protos,
        families=None if inet == INET_FAMILIES else inet,
        states=None if states >= ALL_STATES else states,
        bytecode=_program(nnf),
        ports=_ports(nnf) or None,
    )


def to_nnf(node: Node, negate: bool = False) -> Node:
    """``node`` with ``not`` pushed down to atoms and ``port``/``addr`` split in two."""
    if isinstance(node, Not):
        return to_nnf(node.item, not negate)
    if isinstance(node, And | Or):
        items = tuple(to_nnf(item, negate) for item in node.items)
        return (Or if isinstance(node, And) == negate else And)(items)
    if isinstance(node, StateIn):
        return StateIn(ALL_STATES - node.states) if negate else node
    if isinstance(node, Cmp | Member):
        either = FIELDS_BY_NAME[node.field].either
        if either:
            halves = tuple(_with_field(node, name) for name in either)
            return to_nnf(Or(halves), negate)
    return Not(node) if negate else node


def _with_field(node: Cmp | Member, name: str) -> Node:
    if isinstance(node, Cmp):
        return Cmp(name, node.op, node.value)
    return Member(name, node.items)


# -- states, protocols, families -------------------------------------------------------


def _states(node: Node) -> frozenset[TcpState]:
    return _fold(node, lambda atom: atom.states if isinstance(atom, StateIn) else ALL_STATES, ALL_STATES)


T = TypeVar("T")


def _fold(node: Node, leaf: Callable[[Node], frozenset[T]], everything: frozenset[T]) -> frozenset[T]:
    """What ``leaf`` allows of every atom, intersected under ``and``, joined under ``or``."""
    if isinstance(node, And):
        out = everything
        for item in node.items:
            out &= _fold(item, leaf, everything)
        return out
    if isinstance(node, Or):
        found: frozenset[T] = frozenset()
        for item in node.items:
            found |= _fold(item, leaf, everything)
        return found
    return leaf(node)


def _dumps(node: Node) -> tuple[frozenset[Proto], frozenset[int]]:
    """Which protocols and families (0 for UNIX) can hold a match."""
    if isinstance(node, And):
        protos, fams = ALL_PROTOS, ALL_FAMILIES
        for item in node.items:
            p, f = _dumps(item)
            protos, fams = protos & p, fams & f
        return protos, fams
    if isinstance(node, Or):
        protos, fams = frozenset(), frozenset()
        for item in node.items:
            p, f = _dumps(item)
            protos, fams = protos | p, fams | f
        return protos, fams
    negate = isinstance(node, Not)
    atom = node.item if isinstance(node, Not) else node
    if isinstance(atom, Cmp | Member) and atom.field in ("proto", "family"):
        values = _equal_values(atom)
        if atom.field == "proto":
            chosen = frozenset(Proto(v) for v in values if isinstance(v, str))
            return (ALL_PROTOS - chosen if negate else chosen), ALL_FAMILIES
        fams = frozenset(v for v in values if isinstance(v, int))
        return ALL_PROTOS, (ALL_FAMILIES - fams if negate else fams)
    return ALL_PROTOS, ALL_FAMILIES


def _equal_values(atom: Cmp | Member) -> tuple[Item, ...]:
    return (atom.value,) if isinstance(atom, Cmp) else atom.items


# -- port spans -----------------------------------------------------------------------


def _ports(node: Node) -> tuple[PortSpan, ...] | None:
    """Spans one of which every match's local or remote port is in; None: any port."""
    if isinstance(node, And):
        known = [spans for spans in map(_ports, node.items) if spans is not None]
        return min(known, key=_width) if known else None  # each is a superset: the narrowest
    if isinstance(node, Or):
        out: dict[PortSpan, None] = {}  # in order, each once (a set of 16,000 ports is 16,000 spans)
        for item in node.items:
            spans = _ports(item)
            if spans is None:
                return None
            out.update(dict.fromkeys(spans))
        return tuple(out)
    if isinstance(node, Cmp | Member) and node.field in ("lport", "rport"):
        local = node.field == "lport"
        ranges = _port_ranges(node)
        if (0, PORT_MAX) in ranges:
            return None
        return tuple(PortSpan(local, lo, hi) for lo, hi in ranges)
    return None  # any other test, and any negated one, says nothing of ports


def _width(spans: tuple[PortSpan, ...]) -> int:
    return sum(s.hi - s.lo + 1 for s in spans)


# -- bytecode -------------------------------------------------------------------------

Kernel = BcExpr | bool  # True: no restriction, False: rejects everything


def _program(nnf: Node) -> bytes | None:
    expr = _kernel(nnf)
    if expr is True:
        return None
    if expr is False:
        return build_reject_all()
    try:
        program = build_bytecode(expr)
    except BytecodeError:
        return None  # too long for the kernel: filter in Python only
    # An empty program (every test always true) is refused by the kernel: send none.
    return program or None


def _kernel(node: Node) -> Kernel:
    if isinstance(node, And | Or):
        return _kernel_junction(node)
    if isinstance(node, Not):
        expr, exact = kernel_atom(node.item)
        if expr is None or not exact:
            return True
        return (not expr) if isinstance(expr, bool) else BcNot(expr)
    expr, _ = kernel_atom(node)
    return True if expr is None else expr


def _kernel_junction(node: And | Or) -> Kernel:
    # For And, False absorbs and True vanishes; for Or the other way round.
    absorbing = isinstance(node, Or)
    parts = [_kernel(item) for item in node.items]
    if absorbing in parts:
        return absorbing
    kept = [p for p in parts if not isinstance(p, bool)]
    if not kept:
        return not absorbing
    if len(kept) == 1:
        return kept[0]
    return BcOr(tuple(kept)) if absorbing else BcAnd(tuple(kept))


def kernel_atom(atom: Node) -> tuple[Kernel | None, bool]:
    """The kernel's test for one atom (None: it has none) and whether it is exact."""
    if isinstance(atom, Cmp | Member):
        if atom.field in ("lport", "rport"):
            return _port_atom(atom)
        if atom.field in ("laddr", "raddr") and isinstance(atom, Member):
            return _addr_atom(atom)
        if atom.field == "iface":
            return _iface_atom(atom)
    return None, False


def _port_ranges(atom: Cmp | Member) -> list[tuple[int, int]]:
    """The atom's ports as ranges within 0..65535, empty ones left out."""
    return [
        (max(lo, 0), min(hi, PORT_MAX))
        for lo, hi in _raw_port_ranges(atom)
        if max(lo, 0) <= min(hi, PORT_MAX)
    ]


def _raw_port_ranges(atom: Cmp | Member) -> list[tuple[int, int]]:
    if isinstance(atom, Cmp):
        v = int(atom.value) if isinstance(atom.value, int) else 0
        spans = {"==": (v, v), "<": (0, v - 1), "<=": (0, v), ">": (v + 1, PORT_MAX), ">=": (v, PORT_MAX)}
        lo, hi = spans[atom.op]
        return [(lo, hi)] if lo <= hi else []
    out = []
    for item in atom.items:
        if isinstance(item, int):
            out.append((item, item))
        elif isinstance(item, Range):
            out.append((int(item.lo), int(item.hi)))
    return out


def _port_atom(atom: Cmp | Member) -> tuple[Kernel, bool]:
    local = atom.field == "lport"
    ranges = _port_ranges(atom)
    # With no peer the kernel compares remote port 0, where we see no port at all.
    exact = local or all(lo > 0 for lo, _ in ranges)
    if (0, PORT_MAX) in ranges:
        return True, exact
    conds: list[BcExpr] = [PortCond(local, lo, hi) for lo, hi in ranges]
    if not conds:
        return False, exact
    return (conds[0] if len(conds) == 1 else BcOr(tuple(conds))), exact


def _addr_atom(atom: Member) -> tuple[Kernel | None, bool]:
    local = atom.field == "laddr"
    conds: list[BcExpr] = []
    exact = True
    for net in atom.items:
        if not isinstance(net, IPv4Network | IPv6Network):
            return None, False
        if isinstance(net, IPv6Network) and net.overlaps(_MAPPED):
            exact = False  # the kernel matches v4-mapped addresses here; we do not
        if not local and (_ZERO4 in net or _ZERO6 in net):
            exact = False  # no peer: the kernel sees 0.0.0.0 or ::
        family = AF_INET if net.version == 4 else AF_INET6
        conds.append(HostCond(local, family, net.prefixlen, net.network_address.packed))
    if not conds:
        return False, True
    return (conds[0] if len(conds) == 1 else BcOr(tuple(conds))), exact


def _iface_atom(atom: Cmp | Member) -> tuple[Kernel | None, bool]:
    values: tuple[Item, ...]
    if isinstance(atom, Cmp):
        if atom.op != "==":
            return None, False
        values = (atom.value,)
    else:
        values = atom.items
    if not all(isinstance(v, int) for v in values):
        return None, False
    conds: list[BcExpr] = [DevCond(v) for v in values if isinstance(v, int) and v <= U32_MAX]
    if not conds:
        return False, True
    return (conds[0] if len(conds) == 1 else BcOr(tuple(conds))), True


# -- event kinds (watch) ---------------------------------------------------------------

#: Every kind of event ``watch`` reports, by name (``model.event.EventKind``).
EVENT_KINDS = frozenset(
    {"opened", "accepted", "state", "closed", "listen", "unlisten", "bound", "unbound", "dropped", "lost"}
)
#: Kinds that carry a duration: a test of ``duration`` holds on no other.
_TIMED = frozenset({"closed", "unlisten", "unbound"})


def event_kinds(flt: Filter) -> frozenset[str] | None:
    """The event kinds a match can have (None: any), so a source need not produce the
    others at all (the eBPF program writes no ``state`` records unless one can match)."""
    kinds = _kinds(to_nnf(flt.root))
    return None if kinds >= EVENT_KINDS else kinds


def _kinds(node: Node) -> frozenset[str]:
    return _fold(node, _atom_kinds, EVENT_KINDS)


def _atom_kinds(node: Node) -> frozenset[str]:
    negate = isinstance(node, Not)
    atom = node.item if isinstance(node, Not) else node
    if isinstance(atom, Cmp | Member) and atom.field == "event":
        named = frozenset(v for v in _equal_values(atom) if isinstance(v, str)) & EVENT_KINDS
        if isinstance(atom, Cmp) and atom.op != "==":
            return EVENT_KINDS
        return EVENT_KINDS - named if negate else named
    if not negate and isinstance(atom, Cmp | Member) and atom.field == "duration":
        return _TIMED
    return EVENT_KINDS


def tests_only_kinds(flt: Filter) -> bool:
    """Whether ``flt`` tests nothing but equality of the event's kind: ``event_kinds`` is
    then its whole answer, and the events of those kinds need no matching."""
    return _kind_equality(flt.root)


def _kind_equality(node: Node) -> bool:
    if isinstance(node, And | Or):
        return all(_kind_equality(item) for item in node.items)
    if isinstance(node, Not):
        return _kind_equality(node.item)
    if isinstance(node, Cmp):
        return node.field == "event" and node.op == "=="
    return isinstance(node, Member) and node.field == "event"


# -- ports alone (watch's direct lines) ---------------------------------------------------


def exact_port_spans(flt: Filter) -> tuple[PortSpan, ...] | None:
    """For a filter of port tests alone, joined by ``or`` (``port == 443``, ``lport in
    {80, 443} or rport == 53``): spans such that a connection matches exactly when its
    local port is in a local span or its remote port in a remote one. None for any other
    filter (a negation, an ``and``, another field), which must be evaluated as it is."""
    spans: list[PortSpan] = []
    pending = [to_nnf(flt.root)]
    while pending:
        node = pending.pop()
        if isinstance(node, Or):
            pending += node.items
            continue
        if not isinstance(node, Cmp | Member) or node.field not in ("lport", "rport"):
            return None
        if isinstance(node, Cmp) and (node.op not in _PORT_OPS or not isinstance(node.value, int)):
            return None
        if isinstance(node, Member) and not all(isinstance(i, int | Range) for i in node.items):
            return None
        if not _port_atom(node)[1]:
            return None
        spans += (PortSpan(node.field == "lport", lo, hi) for lo, hi in _port_ranges(node))
    return tuple(spans)


_PORT_OPS = frozenset({"==", "<", "<=", ">", ">="})
