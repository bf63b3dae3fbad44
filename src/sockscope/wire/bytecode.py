"""Pure: ``INET_DIAG_REQ_BYTECODE`` filter programs (``include/uapi/linux/inet_diag.h``).

A program is a row of ``struct inet_diag_bc_op``; the kernel runs it on every socket
(``inet_diag_bc_run`` in ``net/ipv4/inet_diag.c``). Each op tests one condition: when it
holds, execution moves on by ``yes`` bytes, otherwise by ``no`` bytes. Reaching exactly
the end of the program accepts the socket; any other way out (we use end + 4) rejects it.
``inet_diag_bc_audit`` checks every offset before the dump starts: ``yes`` and ``no``
are multiples of 4, at least the op's own length, at most 4 past the end, and a ``no``
that lands inside the program must land on an op reachable through ``yes`` steps.

This module builds programs from a small boolean tree (``PortCond``, ``HostCond``,
``DevCond`` under ``BcAnd``/``BcOr``/``BcNot``). Every op here falls through on success
(``yes`` is its own length), so every op boundary is on the ``yes`` chain and any forward
``no`` is valid. ``run_bytecode`` and ``audit_bytecode`` mirror the kernel's two functions
so programs can be checked without a kernel.
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass

# enum { INET_DIAG_BC_NOP, INET_DIAG_BC_JMP, ... } in include/uapi/linux/inet_diag.h
INET_DIAG_BC_NOP = 0
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
INET_DIAG_BC_D_GE = 4
INET_DIAG_BC_D_LE = 5
INET_DIAG_BC_AUTO = 6
INET_DIAG_BC_S_COND = 7
INET_DIAG_BC_D_COND = 8
INET_DIAG_BC_DEV_COND = 9
INET_DIAG_BC_MARK_COND = 10
INET_DIAG_BC_S_EQ = 11
INET_DIAG_BC_D_EQ = 12
INET_DIAG_BC_CGROUP_COND = 13

AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10
ADDR_LEN = {AF_UNSPEC: 0, AF_INET: 4, AF_INET6: 16}

# struct inet_diag_bc_op { __u8 code; __u8 yes; __u16 no; };
INET_DIAG_BC_OP = struct.Struct("=BBH")
# struct inet_diag_hostcond { __u8 family; __u8 prefix_len; int port; __be32 addr[0]; };
INET_DIAG_HOSTCOND = struct.Struct("=BBxxi")
U32 = struct.Struct("=I")
U16_MAX = 0xFFFF
PORT_MAX = 0xFFFF


class BytecodeError(ValueError):
    """A program that cannot be encoded (too long) or that the kernel would refuse."""


@dataclass(frozen=True, slots=True)
class PortCond:
    """``lo <= port <= hi`` on the local (``idiag_sport``) or remote (``idiag_dport``) side."""

    local: bool
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class HostCond:
    """Address prefix match (``S_COND``/``D_COND``); ``port`` -1 means any port.

    An ``AF_INET`` condition also matches v4-mapped addresses of ``AF_INET6`` sockets.
    """

    local: bool
    family: int
    prefix_len: int
    addr: bytes  # network order, 4 or 16 bytes
    port: int = -1


@dataclass(frozen=True, slots=True)
class DevCond:
    """The socket is bound to interface ``ifindex`` (``sk_bound_dev_if``)."""

    ifindex: int


@dataclass(frozen=True, slots=True)
class BcAnd:
    """Every item holds (an empty ``BcAnd`` always holds)."""

    items: tuple[BcExpr, ...]


@dataclass(frozen=True, slots=True)
class BcOr:
    """Some item holds (an empty ``BcOr`` never holds)."""

    items: tuple[BcExpr, ...]


@dataclass(frozen=True, slots=True)
class BcNot:
    """The item does not hold."""

    item: BcExpr


BcExpr = PortCond | HostCond | DevCond | BcAnd | BcOr | BcNot

# Jump targets: a label number, or one of these two.
_ACCEPT = -1  # the end of the program
_REJECT = -2  # 4 past the end


@dataclass(slots=True)
class _Op:
    code: int
    payload: bytes
    target: int  # label jumped to when the condition fails


class _Emitter:
    """Lays out ops and labels, then resolves labels into ``no`` offsets."""

    def __init__(self) -> None:
        self.items: list[_Op | int] = []  # an int is a label placed at that point
        self._labels = itertools.count()

    def label(self) -> int:
        return next(self._labels)

    def op(self, code: int, payload: bytes, on_false: int) -> None:
        self.items.append(_Op(code, payload, on_false))

    def place(self, label: int) -> None:
        self.items.append(label)

    def assemble(self) -> bytes:
        where: dict[int, int] = {}
        size = 0
        for item in self.items:
            if isinstance(item, int):
                where[item] = size
            else:
                size += INET_DIAG_BC_OP.size + len(item.payload)
        where[_ACCEPT], where[_REJECT] = size, size + 4
        out = bytearray()
        for item in self.items:
            if isinstance(item, int):
                continue
            length = INET_DIAG_BC_OP.size + len(item.payload)
            no = where[item.target] - len(out)
            if no > U16_MAX or length > 0xFF:
                raise BytecodeError("filter program too long for the kernel")
            out += INET_DIAG_BC_OP.pack(item.code, length, no) + item.payload
        if len(out) > U16_MAX - 4:
            raise BytecodeError("filter program too long for the kernel")
        return bytes(out)


def _port_payload(port: int) -> bytes:
    # The port sits in the ``no`` field of a second, otherwise empty op.
    return INET_DIAG_BC_OP.pack(0, 0, port)


def _emit_port(em: _Emitter, cond: PortCond, on_false: int) -> None:
    lo, hi = max(cond.lo, 0), min(cond.hi, PORT_MAX)
    if lo > hi:
        em.op(INET_DIAG_BC_JMP, b"", on_false)
    elif lo == hi:
        code = INET_DIAG_BC_S_EQ if cond.local else INET_DIAG_BC_D_EQ
        em.op(code, _port_payload(lo), on_false)
    else:
        if lo > 0:
            code = INET_DIAG_BC_S_GE if cond.local else INET_DIAG_BC_D_GE
            em.op(code, _port_payload(lo), on_false)
        if hi < PORT_MAX:
            code = INET_DIAG_BC_S_LE if cond.local else INET_DIAG_BC_D_LE
            em.op(code, _port_payload(hi), on_false)


def _emit(em: _Emitter, expr: BcExpr, on_false: int) -> None:
    """Code that falls through when ``expr`` holds and jumps to ``on_false`` otherwise."""
    if isinstance(expr, PortCond):
        _emit_port(em, expr, on_false)
    elif isinstance(expr, HostCond):
        if len(expr.addr) != ADDR_LEN[expr.family] or expr.prefix_len > 8 * len(expr.addr):
            raise BytecodeError(f"bad host condition {expr}")
        code = INET_DIAG_BC_S_COND if expr.local else INET_DIAG_BC_D_COND
        hostcond = INET_DIAG_HOSTCOND.pack(expr.family, expr.prefix_len, expr.port)
        em.op(code, hostcond + expr.addr, on_false)
    elif isinstance(expr, DevCond):
        em.op(INET_DIAG_BC_DEV_COND, U32.pack(expr.ifindex), on_false)
    elif isinstance(expr, BcAnd):
        for item in expr.items:
            _emit(em, item, on_false)
    elif isinstance(expr, BcOr):
        _emit_or(em, expr.items, on_false)
    else:
        ok = em.label()
        _emit(em, expr.item, ok)
        em.op(INET_DIAG_BC_JMP, b"", on_false)
        em.place(ok)


def _emit_or(em: _Emitter, items: tuple[BcExpr, ...], on_false: int) -> None:
    if not items:
        em.op(INET_DIAG_BC_JMP, b"", on_false)
        return
    done = em.label()
    for item in items[:-1]:
        nxt = em.label()
        _emit(em, item, nxt)
        em.op(INET_DIAG_BC_JMP, b"", done)
        em.place(nxt)
    _emit(em, items[-1], on_false)
    em.place(done)


def build_bytecode(expr: BcExpr) -> bytes:
    """The program accepting exactly the sockets for which ``expr`` holds.

    An always-true ``expr`` (an empty ``BcAnd``) gives an empty program, which the kernel
    refuses: send no bytecode attribute at all in that case.

    Raises:
        BytecodeError: the program would not fit the kernel's 16-bit offsets.
    """
    em = _Emitter()
    _emit(em, expr, _REJECT)
    return em.assemble()


def build_reject_all() -> bytes:
    """A one-op program that rejects every socket (a ``JMP`` past the end)."""
    return INET_DIAG_BC_OP.pack(INET_DIAG_BC_JMP, 4, 8)


def _hostcond_ok(program: bytes, off: int, end: int) -> int:
    """Length of a valid hostcond op at ``off``, or 0 (``valid_hostcond``)."""
    need = off + INET_DIAG_BC_OP.size + INET_DIAG_HOSTCOND.size
    if need > end:
        return 0
    family, prefix_len, _ = INET_DIAG_HOSTCOND.unpack_from(program, off + 4)
    if family not in ADDR_LEN:
        return 0
    need += ADDR_LEN[family]
    if need > end or prefix_len > 8 * ADDR_LEN[family]:
        return 0
    return need - off


def _min_len(program: bytes, off: int) -> int:
    """The op's minimum length at ``off`` as the kernel's audit computes it, or 0 if bad."""
    code = program[off]
    end = len(program)
    if code in (INET_DIAG_BC_S_COND, INET_DIAG_BC_D_COND):
        return _hostcond_ok(program, off, end)
    extra = {
        INET_DIAG_BC_DEV_COND: 4,
        INET_DIAG_BC_MARK_COND: 8,
        INET_DIAG_BC_CGROUP_COND: 8,
        INET_DIAG_BC_S_EQ: 4,
        INET_DIAG_BC_S_GE: 4,
        INET_DIAG_BC_S_LE: 4,
        INET_DIAG_BC_D_EQ: 4,
        INET_DIAG_BC_D_GE: 4,
        INET_DIAG_BC_D_LE: 4,
        INET_DIAG_BC_AUTO: 0,
        INET_DIAG_BC_JMP: 0,
        INET_DIAG_BC_NOP: 0,
    }.get(code)
    if extra is None or off + 4 + extra > end:
        return 0
    return 4 + extra


def audit_bytecode(program: bytes) -> None:
    """Check ``program`` the way ``inet_diag_bc_audit`` does.

    Raises:
        BytecodeError: the kernel would answer EINVAL.
    """
    if len(program) < INET_DIAG_BC_OP.size:
        raise BytecodeError("program shorter than one op")
    chain = _yes_chain(program)
    off = 0
    while off < len(program):
        if off + 4 > len(program):
            raise BytecodeError(f"truncated op at {off}")
        code, yes, no = INET_DIAG_BC_OP.unpack_from(program, off)
        min_len = _min_len(program, off)
        remaining = len(program) - off
        if not min_len:
            raise BytecodeError(f"bad op {code} at {off}")
        if code != INET_DIAG_BC_NOP and (no < min_len or no > remaining + 4 or no & 3):
            raise BytecodeError(f"bad 'no' offset {no} at {off}")
        if code != INET_DIAG_BC_NOP and no < remaining and off + no not in chain:
            raise BytecodeError(f"'no' at {off} lands inside an op")
        if yes < min_len or yes > remaining + 4 or yes & 3:
            raise BytecodeError(f"bad 'yes' offset {yes} at {off}")
        off += yes
    if off != len(program):
        raise BytecodeError("program does not end on an op boundary")


def _yes_chain(program: bytes) -> set[int]:
    """Offsets reachable from the start by ``yes`` steps (the kernel's ``valid_cc``)."""
    offs, off = set(), 0
    while off + 1 < len(program):
        offs.add(off)
        yes = program[off + 1]
        if yes < 4 or yes & 3:
            break
        off += yes
    return offs


def _prefix_match(a: bytes, b: bytes, bits: int) -> bool:
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    if rest:
        mask = (0xFF << (8 - rest)) & 0xFF
        return (a[whole] ^ b[whole]) & mask == 0
    return True


_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def _host_holds(program: bytes, off: int, family: int, addr: bytes, port: int) -> bool:
    cond_family, prefix_len, cond_port = INET_DIAG_HOSTCOND.unpack_from(program, off + 4)
    cond_addr = program[off + 12 : off + 12 + ADDR_LEN.get(cond_family, 0)]
    if cond_port not in (-1, port):
        return False
    if cond_family not in (AF_UNSPEC, family):
        return (
            family == AF_INET6
            and cond_family == AF_INET
            and addr[:12] == _MAPPED_PREFIX
            and _prefix_match(addr[12:16], cond_addr, prefix_len)
        )
    return prefix_len == 0 or _prefix_match(addr, cond_addr, prefix_len)


def run_bytecode(
    program: bytes, family: int, saddr: bytes, daddr: bytes, sport: int, dport: int, ifindex: int = 0
) -> bool:
    """Whether the kernel would keep this socket (mirrors ``inet_diag_bc_run``).

    ``saddr``/``daddr`` are network-order, 4 bytes for ``AF_INET`` and 16 for
    ``AF_INET6``; ``dport`` is 0 for a socket with no peer, as in the kernel.
    """
    off, remaining = 0, len(program)
    while remaining > 0:
        code, yes, no = INET_DIAG_BC_OP.unpack_from(program, off)
        ok = True
        if code == INET_DIAG_BC_JMP:
            ok = False
        elif code in _PORT_TESTS:
            local, test = _PORT_TESTS[code]
            (_, _, value) = INET_DIAG_BC_OP.unpack_from(program, off + 4)
            ok = test(sport if local else dport, value)
        elif code in (INET_DIAG_BC_S_COND, INET_DIAG_BC_D_COND):
            local = code == INET_DIAG_BC_S_COND
            ok = _host_holds(program, off, family, saddr if local else daddr, sport if local else dport)
        elif code == INET_DIAG_BC_DEV_COND:
            ok = U32.unpack_from(program, off + 4)[0] == ifindex
        step = yes if ok else no
        off += step
        remaining -= step
    return remaining == 0


_PORT_TESTS: dict[int, tuple[bool, Callable[[int, int], bool]]] = {
    INET_DIAG_BC_S_EQ: (True, operator.eq),
    INET_DIAG_BC_S_GE: (True, operator.ge),
    INET_DIAG_BC_S_LE: (True, operator.le),
    INET_DIAG_BC_D_EQ: (False, operator.eq),
    INET_DIAG_BC_D_GE: (False, operator.ge),
    INET_DIAG_BC_D_LE: (False, operator.le),
}
