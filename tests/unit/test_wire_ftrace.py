"""Binary tracepoint pages: real ones (tests/fixtures/ftrace, tools/record_trace_pages.py)
and built ones for the ring buffer's rarer event types."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockscope.model.states import TcpState
from sockscope.wire.ftrace import (
    IPPROTO_TCP,
    FormatError,
    Layout,
    StateChange,
    decode_page,
    parse_format,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ftrace"
FORMAT = (FIXTURES / "format.txt").read_text()
HEX = (FIXTURES / "pages.hex").read_text().splitlines()
PAGES = [bytes.fromhex(ln) for ln in HEX if ln and not ln.startswith("#")]
PORTS = [
    int(w.rstrip(",."))
    for ln in HEX
    if ln.startswith("# IPv")
    for w in ln.split()
    if w.rstrip(",.").isdigit()
]
LAYOUT = parse_format(FORMAT)


def _records() -> list[StateChange]:
    return [r for page in PAGES for r in decode_page(page, LAYOUT).records]


def _connection(recs: list[StateChange], server: int, client: int) -> list[tuple[object, ...]]:
    return [
        (r.local_port, r.remote_port, r.old_state, r.new_state)
        for r in recs
        if {r.local_port, r.remote_port} & {server, client} or (r.local_port == 0 and r.remote_port == server)
    ]


def test_the_format_file_gives_the_layout() -> None:
    assert LAYOUT.event_id == int(FORMAT.split("ID:")[1].split()[0])
    assert LAYOUT.size == 72  # up to the end of daddr_v6 on this kernel


@pytest.mark.parametrize(("family", "address", "first"), [(4, "127.0.0.1", 0), (6, "::1", 2)])
def test_a_recorded_connection_decodes_transition_by_transition(
    family: int, address: str, first: int
) -> None:
    server, client = PORTS[first], PORTS[first + 1]
    recs = [r for r in _records() if r.family == family]
    S = TcpState  # noqa: N806 - short, in a table of transitions
    assert _connection(recs, server, client) == [
        (server, 0, S.CLOSE, S.LISTEN),
        (0, server, S.CLOSE, S.SYN_SENT),  # connect() before the port is chosen
        (client, server, S.SYN_SENT, S.ESTABLISHED),
        (server, client, S.LISTEN, S.SYN_RECV),
        (server, client, S.SYN_RECV, S.ESTABLISHED),
        (client, server, S.ESTABLISHED, S.FIN_WAIT1),
        (server, client, S.ESTABLISHED, S.CLOSE_WAIT),
        (server, client, S.CLOSE_WAIT, S.LAST_ACK),
        (client, server, S.FIN_WAIT1, S.FIN_WAIT2),
        (client, server, S.FIN_WAIT2, S.CLOSE),
        (server, client, S.LAST_ACK, S.CLOSE),
        (server, 0, S.LISTEN, S.CLOSE),
    ]
    mine = [r for r in recs if r.local_port in (server, client)]
    assert all(r.local_address == ip_address(address) for r in mine)
    assert all(r.proto == IPPROTO_TCP for r in mine)
    # The handshake's server side runs in softirq: its task is not the socket's owner.
    assert [r.in_irq for r in mine if r.new_state is S.SYN_RECV] == [True]
    assert not any(r.in_irq for r in mine if r.new_state in (S.LISTEN, S.SYN_SENT))


def test_times_never_go_back_within_a_page() -> None:
    for page in PAGES:
        times = [r.mono for r in decode_page(page, LAYOUT).records]
        assert times == sorted(times)
        assert times and times[0] > 0


# -- built pages: the ring buffer's other event types -------------------------------------


def _payload(layout: Layout, event_id: int, old: int, new: int, sport: int) -> bytes:
    values = (
        event_id,
        0,
        4242,
        0xFFFF8880DEADBEEF,
        old,
        new,
        sport,
        80,
        2,
        6,
        bytes([127, 0, 0, 1]),
        bytes([127, 0, 0, 2]),
        bytes(16),
        bytes(16),
    )
    return layout.record.pack(*values)


def _page(events: list[bytes], ts: int = 10_000_000_000, commit_extra: int = 0) -> bytes:
    data = b"".join(events)
    return struct.pack("<QQ", ts, len(data) + commit_extra) + data + bytes(64)


def _data(payload: bytes, delta: int) -> bytes:
    words = (len(payload) + 3) // 4
    return struct.pack("<I", (delta << 5) | words) + payload.ljust(words * 4, b"\0")


def test_time_extends_padding_and_long_records_are_followed() -> None:
    rec = _payload(LAYOUT, LAYOUT.event_id, 7, 10, 1)
    long = struct.pack("<II", 0 | (5 << 5), len(rec) + 4) + rec  # type_len 0: length word
    extend = struct.pack("<II", 30 | (3 << 5), 2)  # delta 3 + (2 << 27)
    padding = struct.pack("<II", 29 | (9 << 5), 8) + bytes(4)  # a discarded event: 4 + 8 bytes
    other = _data(_payload(LAYOUT, LAYOUT.event_id + 1, 7, 10, 9), 1)  # another event id
    page = _page(
        [_data(rec, 100), long, extend, padding, other, _data(_payload(LAYOUT, LAYOUT.event_id, 10, 7, 2), 7)]
    )
    res = decode_page(page, LAYOUT)
    t0 = 10_000_000_000
    assert [(r.local_port, round(r.mono * 1e9)) for r in res.records] == [
        (1, t0 + 100),
        (1, t0 + 105),
        (2, t0 + 105 + 3 + (2 << 27) + 1 + 7),
    ]
    assert res.records[0].remote_address == ip_address("127.0.0.2")
    assert not res.missed


def test_a_page_marked_missed_says_so() -> None:
    rec = _data(_payload(LAYOUT, LAYOUT.event_id, 7, 10, 1), 1)
    page = _page([rec])
    commit = struct.unpack_from("<Q", page, 8)[0] | (1 << 31)
    res = decode_page(page[:8] + struct.pack("<Q", commit) + page[16:], LAYOUT)
    assert res.missed and len(res.records) == 1


def test_a_length_past_the_page_is_an_error() -> None:
    rec = _data(_payload(LAYOUT, LAYOUT.event_id, 7, 10, 1), 1)
    with pytest.raises(ValueError, match="beyond"):
        decode_page(_page([rec], commit_extra=1 << 20), LAYOUT)
    cut = _page([rec])[: 16 + 20]
    with pytest.raises(ValueError):
        decode_page(cut[:8] + struct.pack("<Q", len(rec)) + cut[16:], LAYOUT)


@given(st.binary(min_size=0, max_size=600))
def test_random_pages_raise_nothing_but_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_page(data, LAYOUT)


def test_a_format_without_a_field_is_refused() -> None:
    with pytest.raises(FormatError, match="daddr_v6"):
        parse_format(FORMAT.replace("daddr_v6", "something_else"))
    with pytest.raises(FormatError, match="ID"):
        parse_format("not a format file")


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40))
def test_random_event_headers_raise_nothing_but_value_error(words: list[int]) -> None:
    body = struct.pack(f"<{len(words)}I", *words)
    with contextlib.suppress(ValueError):
        decode_page(struct.pack("<QQ", 1, len(body)) + body, LAYOUT)


def test_records_carry_the_socket_address() -> None:
    # One socket's records share its address: the recorded pages hold whole connections.
    recs = _records()
    assert all(r.skaddr for r in recs)
    by_sk: dict[int, set[int]] = {}
    for r in recs:
        if r.local_port:
            by_sk.setdefault(r.skaddr, set()).add(r.local_port)
    assert by_sk and all(len(ports) == 1 for ports in by_sk.values())
