"""INET_DIAG_REQ_BYTECODE programs: exact bytes, the kernel's audit, and push-down.

``run_bytecode``/``audit_bytecode`` mirror the kernel's ``inet_diag_bc_run`` and
``inet_diag_bc_audit``; the integration test checks the same programs on the real kernel.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint
from sockscope.model.filter import parse_filter
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.query.pushdown import Pushdown, pushdown
from sockscope.wire.bytecode import (
    AF_INET,
    AF_INET6,
    BcAnd,
    BcNot,
    BcOr,
    BytecodeError,
    DevCond,
    HostCond,
    PortCond,
    audit_bytecode,
    build_bytecode,
    build_reject_all,
    run_bytecode,
)

OP = struct.Struct("=BBH")
S_GE, S_LE, D_GE, D_LE, S_COND, D_COND, DEV_COND, S_EQ, D_EQ, JMP = 2, 3, 4, 5, 7, 8, 9, 11, 12, 1


def op(code: int, yes: int, no: int) -> bytes:
    return OP.pack(code, yes, no)


def port(value: int) -> bytes:
    return OP.pack(0, 0, value)


def program(text: str) -> bytes | None:
    return pushdown(parse_filter(text)).bytecode


# -- exact bytes ---------------------------------------------------------------------


def test_single_port_equality() -> None:
    assert program("lport == 22") == op(S_EQ, 8, 12) + port(22)
    assert program("dport = :22") == op(D_EQ, 8, 12) + port(22)


def test_port_ranges() -> None:
    assert program("lport >= 1024") == op(S_GE, 8, 12) + port(1024)
    assert program("lport > 1023") == op(S_GE, 8, 12) + port(1024)
    assert program("rport < 1024") == op(D_LE, 8, 12) + port(1023)
    # Both bounds: each failure jumps past the end (reject).
    assert program("lport in 1000..2000") == (op(S_GE, 8, 20) + port(1000) + op(S_LE, 8, 12) + port(2000))


def test_either_port_is_an_or() -> None:
    # S_EQ fails -> try D_EQ; S_EQ holds -> JMP to the end (accept).
    assert program("port == 22") == (op(S_EQ, 8, 12) + port(22) + op(JMP, 4, 12) + op(D_EQ, 8, 12) + port(22))


def test_not_jumps_over_a_reject() -> None:
    # S_EQ holds -> JMP past the end (reject); fails -> land on the end (accept).
    assert program("lport != 22") == op(S_EQ, 8, 12) + port(22) + op(JMP, 4, 8)


def test_host_conditions() -> None:
    hostcond_v4 = struct.pack("=BBxxi", AF_INET, 8, -1) + bytes([10, 0, 0, 0])
    assert program("src 10.0.0.0/8") == op(S_COND, 16, 20) + hostcond_v4
    hostcond_v6 = struct.pack("=BBxxi", AF_INET6, 128, -1) + IPv6Address("::1").packed
    assert program("dst ::1") == op(D_COND, 28, 32) + hostcond_v6
    # A v4-mapped address is sent as IPv4, which the kernel matches on both families.
    assert program("laddr == ::ffff:127.0.0.1") == program("laddr == 127.0.0.1")


def test_dev_cond_and_reject_all() -> None:
    assert program("iface == 3") == op(DEV_COND, 8, 12) + struct.pack("=I", 3)
    assert build_reject_all() == op(JMP, 4, 8)
    assert program("lport < 0 or lport > 65535") == build_reject_all()
    assert program("lport >= 0") is None  # always true: no program
    assert program("dport ge :0") is None  # the kernel refuses an empty program
    assert program("rport in 0..65535 and lport in 0..65535") is None
    assert program("not rport in 0..65535") is None  # not exact (no peer): not pushed
    assert program("not lport in 0..65535") == build_reject_all()


def test_built_programs_pass_the_audit_and_run() -> None:
    expr = BcOr(
        (
            BcAnd((PortCond(True, 1, 100), BcNot(PortCond(False, 5, 5)))),
            HostCond(False, AF_INET, 24, bytes([10, 1, 2, 0])),
            DevCond(2),
        )
    )
    prog = build_bytecode(expr)
    audit_bytecode(prog)
    v4 = IPv4Address("10.1.2.3").packed
    assert run_bytecode(prog, AF_INET, v4, v4, 50, 6)
    assert not run_bytecode(prog, AF_INET, v4, bytes(4), 50, 5)
    assert run_bytecode(prog, AF_INET, v4, v4, 500, 5)  # the host condition
    assert run_bytecode(prog, AF_INET, bytes(4), bytes(4), 500, 5, ifindex=2)
    mapped = IPv6Address("::ffff:10.1.2.9").packed
    assert run_bytecode(prog, AF_INET6, mapped, mapped, 500, 5)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        op(JMP, 4, 12),
        op(S_EQ, 4, 12) + port(1),
        op(S_EQ, 8, 6) + port(1),
        op(S_EQ, 8, 10) + port(1) + op(JMP, 4, 8),  # 'no' lands inside an op
        op(99, 4, 8),
        op(S_COND, 12, 16) + struct.pack("=BBxxi", 7, 0, -1),
        op(S_COND, 16, 20) + struct.pack("=BBxxi", AF_INET, 33, -1) + bytes(4),
    ],
)
def test_audit_refuses_what_the_kernel_refuses(bad: bytes) -> None:
    with pytest.raises(BytecodeError):
        audit_bytecode(bad)


def test_too_long_programs_are_not_pushed() -> None:
    many = " ".join(str(p) for p in range(1, 12_000, 2))
    f = parse_filter(f"port in {{{many}}}")
    assert pushdown(f).bytecode is None
    with pytest.raises(BytecodeError):
        build_bytecode(BcOr(tuple(PortCond(True, p, p) for p in range(6000))))


# -- push-down sets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "protocols", "families", "states"),
    [
        ("port == 22", None, None, None),
        ("proto == tcp", {Proto.TCP}, None, None),
        ("tcp or udp", {Proto.TCP, Proto.UDP}, None, None),
        ("not proto == unix", {Proto.TCP, Proto.UDP}, None, None),
        ("proto == tcp and proto == udp", set(), None, None),
        ("family == 6", {Proto.TCP, Proto.UDP}, {6}, None),
        ("family == unix", {Proto.UNIX}, set(), None),
        ("ipv6 or proto == udp", None, None, None),
        ("state == listen", None, None, {TcpState.LISTEN}),
        (
            "state established state syn-sent port == 22",
            None,
            None,
            {TcpState.ESTABLISHED, TcpState.SYN_SENT},
        ),
        (
            "not (state == listen or state == close)",
            None,
            None,
            ALL_STATES - {TcpState.LISTEN, TcpState.CLOSE},
        ),
        ("state == listen or port == 22", None, None, None),
        ("state == listen and (state == established or pid == 1)", None, None, {TcpState.LISTEN}),
        ("state == listen and (state == established or state == close)", None, None, set()),
    ],
)
def test_pushdown_sets(
    text: str, protocols: set[Proto] | None, families: set[int] | None, states: set[TcpState] | None
) -> None:
    pd = pushdown(parse_filter(text))
    assert pd.protocols == (None if protocols is None else frozenset(protocols))
    assert pd.families == (None if families is None else frozenset(families))
    assert pd.states == (None if states is None else frozenset(states))


@pytest.mark.parametrize(
    ("text", "pushed"),
    [
        ("pid == 1 or port == 22", False),  # an or with a side the kernel cannot test
        ("pid == 1 and port == 22", True),  # the and keeps the part it can
        ("rport < 100", True),  # superset: the kernel also keeps rport 0
        ("not rport < 100", False),  # ... so its negation is not exact
        ("not rport > 100", True),  # 0 > 100 is false both ways: exact
        ("not rport in 0..10", False),
        ("not lport < 100", True),
        ("not laddr == ::1", True),
        ("not laddr in ::/0", False),  # the kernel's ::/0 holds v4-mapped addresses
        ("not raddr in 0.0.0.0/0", False),  # no peer: the kernel sees 0.0.0.0
        ("not raddr in 10.0.0.0/8", True),
        ("process ~ x", False),
        ("not iface == 1", True),
    ],
)
def test_pushdown_bytecode_presence(text: str, pushed: bool) -> None:
    assert (program(text) is not None) == pushed


# -- property: the push-down keeps every match ------------------------------------

PORT_POOL = (0, 1, 22, 23, 80, 443, 1023, 1024, 5000, 8080, 40000, 65535)
PORTS = st.sampled_from(PORT_POOL)
ADDR_POOL = (
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.0/8",
    "0.0.0.0",
    "0.0.0.0/0",
    "0.0.0.0/1",
    "10.0.0.0/8",
    "::1",
    "::",
    "::/0",
    "::/1",
    "::ffff:127.0.0.1",
    "::ffff:0:0/96",
    "::ffff:127.0.0.0/104",
    "fe80::/10",
    "[::1]",
)
HOST_POOL = (
    "127.0.0.1",
    "127.0.0.1:22",
    "[::1]:8080",
    "*:443",
    ":22",
    "::ffff:127.0.0.1",
    "127.0.0.0/8:1024",
    "0.0.0.0/0",
    "[::]",
    "10.0.0.0/8:80",
)
STATES = st.sampled_from(
    [
        "listen",
        "established",
        "time-wait",
        "close",
        "connected",
        "synchronized",
        "syn-sent",
        "unconn",
        "bucket",
        "close_wait",
        "fin-wait-2",
        "close-wait",
    ]
)
PORT_FIELDS = st.sampled_from(["lport", "rport", "port", "sport", "dport", "tcp.port"])
ADDR_FIELDS = st.sampled_from(["laddr", "raddr", "addr", "src", "dst", "ip.addr"])
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
SS_OPS = st.sampled_from(["=", "==", "!=", "eq", "ne", "lt", "gt", "le", "ge", "<", ">="])


def _atoms(
    ports: st.SearchStrategy[int], addrs: st.SearchStrategy[str], hosts: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    port_cmp = st.builds("{} {} {}".format, PORT_FIELDS, OPS, ports)
    ss_port = st.builds("{} {} :{}".format, st.sampled_from(["sport", "dport"]), SS_OPS, ports)
    ranges = st.builds(lambda f, a, b: f"{f} in {min(a, b)}..{max(a, b)}", PORT_FIELDS, ports, ports)
    sets = st.builds(
        lambda f, ps: f"{f} in {{{' '.join(map(str, ps))}}}",
        PORT_FIELDS,
        st.lists(ports, min_size=1, max_size=3),
    )
    addr = st.builds("{} {} {}".format, ADDR_FIELDS, st.sampled_from(["==", "!=", "in"]), addrs)
    ss_host = st.builds("{} {}".format, st.sampled_from(["src", "dst"]), hosts)
    state = st.one_of(
        st.builds("state {}".format, STATES),
        st.builds("exclude {}".format, STATES),
        st.builds("state {} {}".format, st.sampled_from(["==", "!="]), STATES),
    )
    other = st.sampled_from(
        [
            "tcp",
            "udp",
            "ipv6",
            "proto == udp",
            "family == 4",
            "pid == 1",
            "process ~ x",
            "uid == 0",
            "inode != 0",
            "iface == 0",
            "iface == 1",
            "rtt > 1ms",
            "not proto == tcp",
        ]
    )
    return st.one_of(port_cmp, ss_port, ranges, sets, addr, ss_host, state, other)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("not {}".format, children),
        st.builds("! ( {} )".format, children),
        st.builds("( {} )".format, children),
        st.builds("{} {} {}".format, children, st.sampled_from(["and", "or", "&&", "||", ""]), children),
    )


def filters(
    ports: tuple[int, ...] = PORT_POOL,
    addrs: tuple[str, ...] = ADDR_POOL,
    hosts: tuple[str, ...] = HOST_POOL,
    max_leaves: int = 8,
) -> st.SearchStrategy[str]:
    """Filter texts in both syntaxes over these ports, addresses and ss host forms."""
    atoms = _atoms(st.sampled_from(ports), st.sampled_from(addrs), st.sampled_from(hosts))
    return st.recursive(atoms, _combine, max_leaves=max_leaves)


FILTERS = filters()


def _address(version: int, mapped: bool) -> st.SearchStrategy[IPv4Address | IPv6Address]:
    v4 = st.sampled_from(["127.0.0.1", "127.0.0.2", "10.1.2.3", "0.0.0.0", "192.0.2.1"])
    if version == 4:
        return v4.map(IPv4Address)
    if mapped:
        return v4.map(lambda a: IPv6Address(f"::ffff:{a}"))
    return st.sampled_from(["::1", "::", "fe80::1", "2001:db8::5"]).map(IPv6Address)


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    family = draw(st.sampled_from([4, 6]))
    mapped = family == 6 and draw(st.booleans())
    proto = draw(st.sampled_from([Proto.TCP, Proto.UDP]))
    has_peer = draw(st.booleans())
    return Endpoint(
        proto,
        family,
        draw(st.sampled_from(sorted(ALL_STATES))),
        draw(_address(family, mapped)),
        draw(PORTS),
        draw(_address(family, mapped)) if has_peer else None,
        draw(PORTS.filter(bool)) if has_peer else None,
        0,
        0,
        draw(st.sampled_from([0, 1000])),
        draw(st.sampled_from([0, 7])),
        1,
        iface=draw(st.sampled_from([0, 1])),
    )


def kernel_keeps(pd: Pushdown, ep: Endpoint) -> bool:
    """What the kernel would return for ``ep`` given this push-down."""
    if pd.protocols is not None and ep.proto not in pd.protocols:
        return False
    if pd.families is not None and ep.family not in pd.families:
        return False
    if pd.states is not None and ep.state not in pd.states:
        return False
    if pd.bytecode is None:
        return True
    af = AF_INET if ep.family == 4 else AF_INET6
    zero = bytes(4 if ep.family == 4 else 16)
    assert ep.local_address is not None
    return run_bytecode(
        pd.bytecode,
        af,
        ep.local_address.packed,
        ep.remote_address.packed if ep.remote_address else zero,
        ep.local_port,
        ep.remote_port or 0,
        ep.iface,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILTERS, st.lists(endpoints(), min_size=1, max_size=12))
def test_pushdown_keeps_every_match(text: str, eps: list[Endpoint]) -> None:
    f = parse_filter(text)
    pd = pushdown(f)
    if pd.bytecode is not None:
        audit_bytecode(pd.bytecode)
    for ep in eps:
        if f.matches(ep):
            assert kernel_keeps(pd, ep), (text, ep, pd)
