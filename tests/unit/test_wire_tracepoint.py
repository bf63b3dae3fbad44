"""Tracepoint lines (tests/fixtures/trace_set_state.txt, recorded from a real tracefs)."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sockscope.model.states import TcpState
from sockscope.wire.tracepoint import parse_state_change

LINES = [ln for ln in (Path(__file__).parents[1] / "fixtures" / "trace_set_state.txt")
         .read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_every_recorded_line_decodes() -> None:
    recs = [parse_state_change(ln) for ln in LINES]
    assert all(r is not None for r in recs)
    v4 = [r for r in recs if r and r.family == 4]
    v6 = [r for r in recs if r and r.family == 6]
    assert v4 and v6
    assert all(r.local_address == ip_address("::1") for r in v6 if r.local_port)


def test_a_connect_and_an_accept() -> None:
    recs = [r for r in map(parse_state_change, LINES) if r is not None and r.family == 4]
    listen, syn_sent, connected = recs[0], recs[1], recs[2]
    assert (listen.old_state, listen.new_state) == (TcpState.CLOSE, TcpState.LISTEN)
    # connect() enters SYN_SENT before it picks its source port: the port reads 0.
    assert syn_sent.new_state is TcpState.SYN_SENT and syn_sent.local_port == 0
    assert connected.old_state is TcpState.SYN_SENT and connected.local_port != 0
    assert not syn_sent.in_irq and syn_sent.comm == "python3" and syn_sent.pid > 0
    accepted = next(r for r in recs if r.old_state is TcpState.LISTEN)
    assert accepted.new_state is TcpState.SYN_RECV and accepted.in_irq  # softirq context
    assert accepted.local_port == listen.local_port


def test_other_events_and_garbage_are_ignored() -> None:
    assert parse_state_change("python-1 [000] ..... 1.0: sched_switch: prev=a next=b") is None
    assert parse_state_change(LINES[0].replace("TCP_LISTEN", "TCP_BOGUS")) is None
    assert parse_state_change(LINES[0].rsplit(" ", 2)[0]) is None  # cut short


@given(st.text(max_size=300))
def test_never_raises(text: str) -> None:
    parse_state_change(text)
    parse_state_change("x-1 [0] .... 1.0: inet_sock_set_state: " + text)
