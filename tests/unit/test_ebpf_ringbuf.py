"""The ring buffer's consumer side and the record decoder: real ring pages
(tests/fixtures/ebpf/ring.*, tools/record_ring_pages.py) and built ones for the rarer
cases (wrap-around, busy and discarded records)."""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path

import pytest

from sockscope.model.states import TcpState
from sockscope.wire.ebpf.records import (
    FLAG_LISTENER,
    FLAG_PID,
    KIND_CLOSE,
    KIND_LISTEN,
    KIND_OPEN,
    KIND_STATE,
    RECORD,
    RECORD_SIZE,
    ROW,
    BpfRecord,
    RecordError,
    build_record,
    parse_record,
    parse_records,
    record_of_row,
)
from sockscope.wire.ebpf.ringbuf import BPF_RINGBUF_HDR_SZ, RingError, build_header, take_rows, walk_ring

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ebpf"
HEX = (FIXTURES / "ring.hex").read_text().splitlines()
FACTS = json.loads((FIXTURES / "ring.json").read_text())
_, CONS, _, PROD, _, SIZE = HEX[0].split(":")[0].split()[1:7]
CONS_POS, PROD_POS, RING_SIZE = int(CONS), int(PROD), int(SIZE)
DATA = bytes.fromhex("".join(HEX[1:]))
STEP = RECORD_SIZE + BPF_RINGBUF_HDR_SZ


def recorded() -> list[BpfRecord]:
    walk = walk_ring(DATA + DATA, CONS_POS, PROD_POS, RING_SIZE, RECORD_SIZE)  # mapped twice
    assert (walk.consumed, walk.busy, walk.discarded, walk.malformed) == (PROD_POS, False, 0, 0)
    out: list[BpfRecord] = []
    assert parse_records(DATA + DATA, walk.offsets, out) == len(walk.offsets)
    return out


def test_the_recorded_ring_wraps_and_every_record_decodes() -> None:
    walk = walk_ring(DATA + DATA, CONS_POS, PROD_POS, RING_SIZE, RECORD_SIZE)
    assert len(DATA) == RING_SIZE
    assert any(off < RING_SIZE < off + RECORD_SIZE for off in walk.offsets), "one record straddles the end"
    assert len(walk.offsets) == (PROD_POS - CONS_POS) // STEP == 20


@pytest.mark.parametrize("index", [0, 1])
def test_each_recorded_connection_reads_as_the_tool_made_it(index: int) -> None:
    c = FACTS["connections"][index]
    ports = {c["server_port"], c["client_port"]}
    mine = [r for r in recorded() if r.sport in ports]
    assert {r.netns for r in mine} == {FACTS["netns"]}
    assert {r.family for r in mine} == {c["family"]}
    assert [r.kind for r in mine if r.kind in (KIND_LISTEN, KIND_OPEN)] == [KIND_LISTEN, KIND_OPEN, KIND_OPEN]
    listen = next(r for r in mine if r.kind == KIND_LISTEN)
    assert (listen.pid, listen.flags, listen.dport) == (FACTS["pid"], FLAG_PID, 0)
    server_open = next(r for r in mine if r.kind == KIND_OPEN and r.sport == c["server_port"])
    assert (server_open.oldstate, server_open.flags) == (TcpState.SYN_RECV, FLAG_LISTENER)
    assert server_open.pid == FACTS["pid"]  # the listener's owner, until the worker acts
    states = [(r.oldstate.name, r.newstate.name) for r in mine if r.kind == KIND_STATE]
    assert ("ESTABLISHED", "FIN_WAIT1") in states and ("CLOSE_WAIT", "LAST_ACK") in states
    loopback = ip_address("127.0.0.1" if c["family"] == 4 else "::1")
    ends = (
        ("client", "server", "client_sends", "server_sends"),
        ("server", "client", "server_sends", "client_sends"),
    )
    for end, peer, sends, gets in ends:
        (r,) = [
            x
            for x in mine
            if x.kind == KIND_CLOSE and (x.sport, x.dport) == (c[f"{end}_port"], c[f"{peer}_port"])
        ]
        assert (r.saddr, r.daddr, r.cookie) == (loopback, loopback, c[f"{end}_cookie"])
        assert (r.bytes_sent, r.total_retrans) == (c[sends], 0)
        assert r.bytes_acked - c[sends] in (1, 2) and r.bytes_received - c[gets] in (0, 1)
        assert 0 < r.srtt_us < 1_000_000 and 0 < r.start_ns < r.ts_ns
        assert (r.pid, r.flags) == (FACTS["pid"], FLAG_PID)


# -- built rings ------------------------------------------------------------------------


def record(port: int) -> BpfRecord:
    return BpfRecord(
        KIND_CLOSE, FLAG_PID, 0xFFFF_8880_0000_1000 + port, 5, 9, 77, 42, 4026531840, "nginx", 6, port, 443,
        TcpState.LAST_ACK, TcpState.CLOSE, ip_address("2001:db8::1"), ip_address("2001:db8::2"),
        1, 2, 3, 4, 5,
    )  # fmt: skip


def ring(entries: list[bytes], start: int, size: int = 1024) -> tuple[bytes, int, int]:
    """A data area (mapped twice) holding ``entries`` (header + body) from ``start``."""
    area = bytearray(size)
    pos = start
    for entry in entries:
        padded = entry + bytes(-len(entry) % 8)
        for i, byte in enumerate(padded):
            area[(pos + i) % size] = byte
        pos += len(padded)
    return bytes(area) * 2, start, pos


def entry(port: int, **kind: bool) -> bytes:
    return build_header(RECORD_SIZE, **kind) + build_record(record(port))


def test_a_record_split_by_the_end_reads_whole_from_the_double_mapping() -> None:
    data, cons, prod = ring([entry(1), entry(2), entry(3)], start=1024 * 5 + 1024 - 200)
    walk = walk_ring(data, cons, prod, 1024, RECORD_SIZE)
    out: list[BpfRecord] = []
    parse_records(data, walk.offsets, out)
    assert [r.sport for r in out] == [1, 2, 3]
    assert out[1] == record(2)  # the one that crosses the end
    assert walk.consumed == prod


def test_a_busy_record_stops_the_walk_where_it_is() -> None:
    data, cons, prod = ring([entry(1), entry(2, busy=True), entry(3)], start=0)
    walk = walk_ring(data, cons, prod, 1024, RECORD_SIZE)
    assert walk.busy and walk.consumed == STEP and len(walk.offsets) == 1


def test_discarded_and_foreign_length_records_are_skipped_and_counted() -> None:
    odd = build_header(12) + bytes(12)  # padded to 24 bytes
    data, cons, prod = ring([entry(1, discard=True), odd, entry(3)], start=64)
    walk = walk_ring(data, cons, prod, 1024, RECORD_SIZE)
    out: list[BpfRecord] = []
    parse_records(data, walk.offsets, out)
    assert [r.sport for r in out] == [3]
    assert (walk.discarded, walk.malformed, walk.consumed) == (1, 1, prod)


def test_impossible_positions_are_refused() -> None:
    data, cons, prod = ring([entry(1)], start=0)
    with pytest.raises(RingError, match="apart"):
        walk_ring(data, prod, cons, 1024, RECORD_SIZE)  # producer behind the consumer
    with pytest.raises(RingError, match="apart"):
        walk_ring(data, 0, 2048, 1024, RECORD_SIZE)
    with pytest.raises(RingError, match="power of 2"):
        walk_ring(data, 0, 0, 1000, RECORD_SIZE)
    with pytest.raises(RingError, match="runs past"):
        walk_ring(data, cons, prod - 8, 1024, RECORD_SIZE)


def test_an_empty_ring_reads_nothing() -> None:
    assert walk_ring(bytes(2048), 4096, 4096, 1024, RECORD_SIZE) == ([], 4096, False, 0, 0)


def test_records_round_trip_and_keep_their_layout() -> None:
    assert RECORD_SIZE == RECORD.size == 136 and RECORD_SIZE % 8 == 0
    r = record(8080)
    assert parse_record(build_record(r)) == r
    v4 = r._replace(family=4, saddr=ip_address("10.0.0.1"), daddr=ip_address("10.0.0.2"))
    raw = build_record(v4)
    assert raw[72:88] == bytes([10, 0, 0, 1]) + bytes(12)  # IPv4 in the first 4 bytes
    assert parse_record(raw) == v4


def test_records_the_program_never_writes_are_refused() -> None:
    raw = bytearray(build_record(record(1)))
    raw[64] = 7  # family 7
    with pytest.raises(RecordError, match="family"):
        parse_record(bytes(raw))
    raw = bytearray(build_record(record(1)))
    raw[71] = 99  # newstate 99
    with pytest.raises(RecordError, match="states"):
        parse_record(bytes(raw))


def test_rows_of_the_recorded_ring_in_one_pass_are_its_records() -> None:
    """take_rows reads the whole span (which wraps) in one unpack: the same records."""
    rows, upto = take_rows(DATA + DATA, CONS_POS, PROD_POS, RING_SIZE, ROW, RECORD_SIZE)
    assert upto == PROD_POS
    assert [record_of_row(r) for r in rows] == recorded()


def test_rows_stop_before_a_busy_record_and_leave_the_rest_to_the_walk() -> None:
    data, cons, prod = ring([entry(1), entry(2), entry(3, busy=True), entry(4)], start=1024 - 200)
    rows, upto = take_rows(data, cons, prod, 1024, ROW, RECORD_SIZE)
    assert [record_of_row(r).sport for r in rows] == [1, 2] and upto == cons + 2 * STEP
    walk = walk_ring(data, upto, prod, 1024, RECORD_SIZE)
    assert walk.busy and walk.consumed == upto


def test_rows_leave_a_span_of_other_lengths_to_the_walk() -> None:
    odd = build_header(12) + bytes(12)
    data, cons, prod = ring([entry(1), odd, entry(3)], start=0)
    assert take_rows(data, cons, prod, 1024, ROW, RECORD_SIZE) == ([], cons)  # not whole rows
    data, cons, prod = ring([entry(1), entry(2, discard=True), entry(3)], start=0)
    rows, upto = take_rows(data, cons, prod, 1024, ROW, RECORD_SIZE)
    assert [record_of_row(r).sport for r in rows] == [1] and upto == cons + STEP
