"""Port spans from a filter, and the two kernel filters made of them: the tracepoint's
expression and the destroy messages' BPF program (run here by a small interpreter)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint
from sockscope.model.filter import parse_filter
from sockscope.model.states import Proto, TcpState
from sockscope.query.pushdown import PortSpan, pushdown
from sockscope.wire.ftrace import filter_expression
from sockscope.wire.socket_filter import (
    JEQ,
    JGE,
    JGT,
    LDH_ABS,
    MAX_SPANS,
    RET,
    SOCK_FILTER,
    port_filter,
)


def spans(text: str) -> tuple[PortSpan, ...] | None:
    return pushdown(parse_filter(text)).ports


def test_port_spans_are_what_every_match_must_have() -> None:
    assert spans("port == 23") == (PortSpan(True, 23, 23), PortSpan(False, 23, 23))
    assert spans("lport == 23 and duration < 1s") == (PortSpan(True, 23, 23),)
    assert spans("lport in {80, 8000..8100}") == (PortSpan(True, 80, 80), PortSpan(True, 8000, 8100))
    # Under "and" the narrowest; under "or" all of them, or none when one side has none.
    assert spans("rport > 1024 and lport == 80") == (PortSpan(True, 80, 80),)
    assert spans("lport == 80 or rport == 443") == (PortSpan(True, 80, 80), PortSpan(False, 443, 443))
    for unrestricted in (
        "not port == 80",
        "port == 80 or process ~ nginx",
        "state == listen",
        "lport >= 0",
        "event == closed",
    ):
        assert spans(unrestricted) is None, unrestricted


def test_the_tracepoint_filter_names_the_families_and_ports() -> None:
    assert filter_expression(None, (4, 6)) == "protocol == 6"
    assert filter_expression([(True, 80, 80), (False, 8000, 8100)], (6,)) == (
        "protocol == 6 && family == 10 && (newstate == 10 || sport == 0 || oldstate == 2 "
        "|| sport == 80 || (dport >= 8000 && dport <= 8100))"
    )
    assert "sport" not in filter_expression([(True, p, p) for p in range(100)], (4,))
    # connect()'s first record has local port 0: it passes when a local span may hold the
    # port connect() will pick, and need not otherwise (the remote port is known).
    ephemeral = (32768, 60999)
    assert "sport == 0" in filter_expression([(True, 40000, 40000)], (4,), ephemeral)
    assert "sport == 0" in filter_expression([(True, 1024, 65535)], (4,), ephemeral)
    assert "sport == 0" not in filter_expression([(True, 23, 23), (False, 23, 23)], (4,), ephemeral)
    # With port-0 records pass the SYN_SENT exits they are paired with, whatever the port.
    assert "oldstate == 2" in filter_expression([(True, 40000, 40000)], (4,), ephemeral)
    assert "oldstate == 2" not in filter_expression([(False, 40000, 40000)], (4,), ephemeral)


def run_bpf(program: bytes, packet: bytes) -> int:
    """Classic BPF, the instructions port_filter uses: what the kernel would keep."""
    code = [SOCK_FILTER.unpack_from(program, i) for i in range(0, len(program), SOCK_FILTER.size)]
    a, pc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == LDH_ABS:
            a = struct.unpack_from("!H", packet, k)[0]
            pc += 1
        elif op in (JEQ, JGT, JGE):
            hit = a == k if op == JEQ else a > k if op == JGT else a >= k
            pc += 1 + (jt if hit else jf)
        else:
            assert op == RET
            return k


def message(local: int, remote: int) -> bytes:
    return bytes(16) + struct.pack("!BBBBHH", 2, 1, 0, 0, local, remote) + bytes(64)


port = st.integers(0, 65535)
span = st.tuples(st.booleans(), port, port).map(lambda t: (t[0], min(t[1:]), max(t[1:])))


@given(st.lists(span, min_size=1, max_size=MAX_SPANS), port, port)
def test_the_destroy_filter_keeps_exactly_the_spans_ports(
    ports: list[tuple[bool, int, int]], local: int, remote: int
) -> None:
    program = port_filter(ports)
    assert program is not None
    # Either end: a reset socket's addresses are rebuilt from its peer's message.
    wanted = remote == 0 or any(lo <= local <= hi or lo <= remote <= hi for _is_local, lo, hi in ports)
    assert (run_bpf(program, message(local, remote)) != 0) == wanted


def test_too_many_spans_make_no_destroy_filter() -> None:
    assert port_filter([(True, p, p) for p in range(MAX_SPANS + 1)]) is None
    assert port_filter([]) is None


ATOMS = st.one_of(
    st.builds(
        lambda f, op, v: f"{f} {op} {v}",
        st.sampled_from(["port", "lport", "rport"]),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        port,
    ),
    st.builds(
        lambda f, a, b: f"{f} in {{{a}, {min(a, b)}..{max(a, b)}}}",
        st.sampled_from(["port", "lport", "rport"]),
        port,
        port,
    ),
    st.sampled_from(["state == established", "proto == tcp", "uid == 0", "laddr == 127.0.0.1"]),
)
FILTERS = st.recursive(
    ATOMS,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=6,
)


@given(FILTERS, port, st.one_of(st.none(), port), st.sampled_from(list(TcpState)))
def test_every_match_has_a_port_in_the_spans(
    text: str, local: int, remote: int | None, state: TcpState
) -> None:
    flt = parse_filter(text)
    ep = Endpoint(
        Proto.TCP,
        4,
        state,
        IPv4Address("127.0.0.1"),
        local,
        None if remote is None else IPv4Address("127.0.0.2"),
        remote,
        0,
        0,
        0,
        1,
        1,
    )
    ports = pushdown(flt).ports
    if ports is not None and flt.matches(ep):
        assert any(
            lo <= (local if s.local else remote if remote is not None else -1) <= hi
            for s in ports
            for lo, hi in [(s.lo, s.hi)]
        ), (text, ep)
