"""JSON and text lines made straight from the eBPF program's rows are exactly the lines of the
events the engine makes of the same records, and the summary counts them the same."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.model.event import Event, EventKind, EventView
from sockscope.model.filter import parse_filter
from sockscope.model.states import TcpState
from sockscope.model.tally import Shown
from sockscope.query.pushdown import exact_port_spans
from sockscope.render.addresses import Notation
from sockscope.render.bpf_lines import BpfLines
from sockscope.render.events import render_event_json, render_event_line
from sockscope.watch.bpf_events import BpfMerger
from sockscope.wire.ebpf.records import (
    AF_INET,
    AF_INET6,
    FLAG_LISTENER,
    FLAG_MIDLIFE,
    FLAG_NO_ENTRY,
    FLAG_PID,
    KIND_CLOSE,
    KIND_LISTEN,
    KIND_OPEN,
    KIND_STATE,
    RECORD_SIZE,
    ROW,
    Row,
    record_of_row,
)

V4 = [bytes([127, 0, 0, n]) + bytes(12) for n in (1, 2, 9)]
V6 = [bytes(15) + b"\x01", b"\xfe\x80" + bytes(13) + b"\x07", bytes(10) + b"\xff\xff\x7f\x00\x00\x01"]
STATES = [int(s) for s in TcpState]
PORTS = st.one_of(st.sampled_from([0, 5, 53, 80, 443, 1025]), st.integers(0, 65535))
FLAGS = [0, FLAG_PID, FLAG_LISTENER, FLAG_PID | FLAG_MIDLIFE, FLAG_NO_ENTRY, FLAG_LISTENER | FLAG_MIDLIFE]


@st.composite
def rows(draw: st.DrawFn) -> Row:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    pool = V4 if family == AF_INET else V6
    kind = draw(st.sampled_from([KIND_CLOSE, KIND_OPEN, KIND_STATE, KIND_LISTEN]))
    old, new = draw(st.sampled_from(STATES)), draw(st.sampled_from(STATES))
    if kind == KIND_CLOSE:
        new = int(TcpState.CLOSE)
    ts = draw(st.integers(10**9, 10**13))
    start = draw(st.one_of(st.just(0), st.integers(1, ts)))
    comm = draw(st.sampled_from([b"nginx", b"ab", b'we"ird\\', "n\u00e9".encode(), b"x" * 16]))
    fields = (
        kind, draw(st.sampled_from(FLAGS)), draw(st.integers(1, 2**64 - 1)), start, ts,
        draw(st.one_of(st.just(0), st.integers(1, 2**64 - 1))), draw(st.integers(1, 2**22)),
        4026531840, comm.ljust(16, b"\0")[:16], family, draw(PORTS), draw(PORTS), old, new,
        draw(st.sampled_from(pool)), draw(st.sampled_from(pool)),
        *draw(st.tuples(*[st.integers(0, 2**40)] * 3)), draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**20)),
    )  # fmt: skip
    row: Row = ROW.unpack(ROW.pack(RECORD_SIZE, 0, *fields))  # as the ring gives it
    return row


def _merger() -> BpfMerger:
    return BpfMerger(netns="", seen=lambda cookie: (None, None), listener_owner=lambda port, family: None)


KINDS = [None, frozenset(EventKind) - {EventKind.STATE}, frozenset({EventKind.CLOSED})]


class EngineWay:
    """The engine's events for a batch (``expected``), and a second merger that makes the
    events of the rows the direct way hands back (``slow``)."""

    def __init__(self, batch: list[Row], kinds: frozenset[EventKind] | None, wall: float) -> None:
        self.kinds = kinds
        self.merger, self.slow_merger = _merger(), _merger()
        self.merger.wall_offset = self.slow_merger.wall_offset = wall
        made = self.merger.on_records([record_of_row(r) for r in batch])
        self.expected = [ev for ev in made if kinds is None or ev.kind in kinds]

    def slow(self, row: Row) -> list[Event]:
        made = self.slow_merger.on_records([record_of_row(row)])
        return [ev for ev in made if self.kinds is None or ev.kind in self.kinds]


@settings(max_examples=300)
@given(st.lists(rows(), max_size=12), st.sampled_from(KINDS), st.floats(1e9, 2e9))
def test_each_line_is_the_engines_line(
    batch: list[Row], kinds: frozenset[EventKind] | None, wall: float
) -> None:
    way = EngineWay(batch, kinds, wall)
    want_shown = Shown()
    want_shown.add_all(way.expected)
    out: list[str] = []
    shown = Shown()
    counted: Counter[EventKind] = Counter()
    cookies = BpfLines(out, shown, kinds).take(batch, wall, counted, way.slow)

    assert out == [render_event_json(ev) for ev in way.expected]
    for line in out:
        json.loads(line)
    assert shown.by_kind == want_shown.by_kind and shown.total == want_shown.total
    assert shown.connections == want_shown.connections
    assert sorted(cookies + way.slow_merger.closed_cookies) == sorted(way.merger.closed_cookies)


@settings(max_examples=200)
@given(st.lists(rows(), max_size=12), st.sampled_from(KINDS), st.floats(1e9, 2e9), st.booleans())
def test_each_text_line_is_the_engines_text_line(
    batch: list[Row], kinds: frozenset[EventKind] | None, wall: float, bsd: bool
) -> None:
    """``watch`` without ``--jsonl``: the same, in the text columns, Linux or BSD style."""
    nt = Notation(bsd=bsd)
    way = EngineWay(batch, kinds, wall)
    out: list[str] = []
    BpfLines(out, Shown(), kinds, text=nt).take(batch, wall, Counter(), way.slow)
    assert out == [render_event_line(ev, nt) for ev in way.expected]


def test_an_owned_close_and_its_open_are_made_here_and_the_rest_by_the_engine() -> None:
    """A listen, and a close of a socket older than the program, need user space: they go
    the engine's way, in their place among the others."""
    common = (4026531840, b"nginx".ljust(16, b"\0"), AF_INET, 80, 5555)
    addrs = (V4[0], V4[1], 10, 20, 30, 40, 1)
    est, close, listen = int(TcpState.ESTABLISHED), int(TcpState.CLOSE), int(TcpState.LISTEN)
    batch = [
        (RECORD_SIZE, 0, KIND_LISTEN, FLAG_PID, 1, 0, 5 * 10**9, 0, 7, *common, close, listen, *addrs),
        (RECORD_SIZE, 0, KIND_OPEN, FLAG_LISTENER, 2, 10**9, 2 * 10**9, 0, 7, *common, 3, est, *addrs),
        (RECORD_SIZE, 0, KIND_CLOSE, FLAG_PID, 2, 10**9, 3 * 10**9, 99, 7, *common, est, close, *addrs),
        (RECORD_SIZE, 0, KIND_CLOSE, FLAG_MIDLIFE, 3, 10**9, 4 * 10**9, 98, 7, *common, est, close, *addrs),
    ]
    handed: list[int] = []
    merger = _merger()

    def slow(row: Row) -> list:  # type: ignore[type-arg]
        handed.append(row[2])
        return merger.on_records([record_of_row(row)])

    out: list[str] = []
    counted: Counter[EventKind] = Counter()
    cookies = BpfLines(out, Shown(), None).take(batch, 0.0, counted, slow)
    assert handed == [KIND_LISTEN, KIND_CLOSE]
    assert [json.loads(line)["event"] for line in out] == ["listen", "opened", "closed", "closed"]
    assert [json.loads(line)["process"] for line in out] == ["nginx", "nginx", "nginx", None]
    assert json.loads(out[2])["duration"] == 2.0
    assert cookies == [99] and merger.closed_cookies == [98]
    assert counted == Counter({EventKind.OPENED: 1, EventKind.CLOSED: 1})  # the engine counts its own


PORT_FILTERS = ["port == 80", "lport in {80, 443}", "rport > 1024 or lport == 5", "rport == 53"]


@settings(max_examples=300)
@given(st.lists(rows(), max_size=12), st.sampled_from(PORT_FILTERS), st.sampled_from(KINDS))
def test_a_filter_of_ports_alone_is_a_lookup_with_the_filters_answer(
    batch: list[Row], text: str, kinds: frozenset[EventKind] | None
) -> None:
    """``watch --jsonl 'port == 443'`` takes the direct way too: the port spans decide
    exactly what the filter decides on each event."""
    flt = parse_filter(text)
    spans = exact_port_spans(flt)
    assert spans is not None
    merger = _merger()
    expected = [
        ev
        for ev in merger.on_records([record_of_row(r) for r in batch])
        if (kinds is None or ev.kind in kinds) and flt.matches(EventView(ev))
    ]
    slow_merger = _merger()

    def slow(row: Row) -> list:  # type: ignore[type-arg]
        made = slow_merger.on_records([record_of_row(row)])
        return [ev for ev in made if kinds is None or ev.kind in kinds]

    out: list[str] = []
    spans_ = [(s.local, s.lo, s.hi) for s in spans]
    BpfLines(out, Shown(), kinds, spans_, flt.matches).take(batch, 0.0, Counter(), slow)
    assert out == [render_event_json(ev) for ev in expected]


def test_only_port_tests_joined_by_or_are_exact() -> None:
    assert exact_port_spans(parse_filter("port == 443")) is not None
    for text in ("port != 443", "lport == 80 and rport == 53", "port == 80 or state == listen", "rport < 5"):
        assert exact_port_spans(parse_filter(text)) is None, text
