"""Decoders over recorded kernel bytes (see the '#' lines of each fixture for provenance)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from sockscope.api import snapshot
from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.render.records import endpoint_record
from sockscope.sources.netlink import read_dump
from sockscope.wire.dump import ChunkParser, inet_chunk_parser
from sockscope.wire.errors import ParseError
from sockscope.wire.inet_diag import INET_DIAG_MSG, build_inet_diag_req
from sockscope.wire.netlink import (
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    NetlinkError,
    build_nlmsg,
    build_rtattr,
)
from tests.helpers.replay import ReplaySocket

FIXTURES = Path(__file__).parents[1] / "fixtures" / "netlink"


def replay(name: str) -> ReplaySocket:
    return ReplaySocket.from_file(FIXTURES / f"{name}.nlhex")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_recorded_dump_decodes_to_expected(proto: str) -> None:
    sock = replay(f"primer-{proto}")
    snap = snapshot(
        protocols=[proto], socket_factory=lambda: sock, source="netlink", tcp_info=proto == "tcp", memory=True
    )
    expected = json.loads((FIXTURES / f"primer-{proto}.expected.json").read_text())
    assert [endpoint_record(e) for e in snap.endpoints] == expected
    # The requests we send are byte-identical to the recorded ones.
    recorded = [
        bytes.fromhex(line[2:])
        for line in (FIXTURES / f"primer-{proto}.nlhex").read_text().splitlines()
        if line.startswith("> ")
    ]
    assert sock.sent == recorded


def test_tcp_fixture_holds_the_primer_states() -> None:
    snap = snapshot(
        protocols=["tcp"],
        socket_factory=lambda: replay("primer-tcp"),
        source="netlink",
        tcp_info=True,
        memory=True,
    )
    labels = {e.state.name for e in snap.endpoints}
    assert {"LISTEN", "ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "FIN_WAIT2"} <= labels
    listener = next(e for e in snap.endpoints if e.state.name == "LISTEN" and e.family == 4)
    assert (str(listener.local_address), listener.local_port) == ("0.0.0.0", 2323)
    assert listener.send_q == 16 and listener.drops == 0
    est = [e for e in snap.endpoints if e.state.name == "ESTABLISHED" and e.tcp_info]
    assert est and all(e.tcp_info.rtt_us > 0 for e in est)  # type: ignore[union-attr]
    tw = next(e for e in snap.endpoints if e.state.name == "TIME_WAIT")
    assert tw.inode == 0 and tw.cookie is not None


def _msg(payload: bytes, flags: int = NLM_F_MULTI, mtype: int = SOCK_DIAG_BY_FAMILY) -> bytes:
    return build_nlmsg(mtype, flags, 1, payload)


def _diag_payload(sport: int = 23, extra: bytes = b"") -> bytes:
    body = INET_DIAG_MSG.pack(
        2, 10, 0, 0, sport.to_bytes(2, "big"), b"\0\0", bytes(16), bytes(16), 0, 7, 0, 0, 0, 5, 0, 1234
    )
    return body + extra


def _done() -> bytes:
    return _msg(struct.pack("=i", 0), mtype=NLMSG_DONE)


def parser(attrs: bool) -> ChunkParser:
    return inet_chunk_parser(Proto.TCP, {}, "", attrs=attrs)


def parse_all(data: bytes, attrs: bool) -> list[Endpoint]:
    out: list[Endpoint] = []
    parser(attrs)(bytearray(data), len(data), out)
    return out


@pytest.mark.parametrize("attrs", [False, True])
def test_unknown_attributes_are_skipped(attrs: bool) -> None:
    payload = _diag_payload(extra=build_rtattr(99, b"\x01\x02\x03") + build_rtattr(100, b""))
    (ep,) = parse_all(_msg(payload), attrs)
    assert ep.local_port == 23 and ep.send_q == 5 and ep.tcp_info is None and ep.inode == 1234


@pytest.mark.parametrize("attrs", [False, True])
def test_truncated_message_is_a_parse_error(attrs: bool) -> None:
    good = _msg(_diag_payload())
    with pytest.raises(ParseError, match="truncated netlink message"):
        parse_all(good[:-10], attrs)
    with pytest.raises(ParseError, match="truncated inet_diag_msg"):
        parse_all(_msg(_diag_payload()[:40]), attrs)


def test_truncated_attribute_is_a_parse_error() -> None:
    bad_attr = struct.pack("=HH", 40, 2) + b"\0" * 4  # claims 40 bytes, has 8
    with pytest.raises(ParseError, match="attribute"):
        parse_all(_msg(_diag_payload(extra=bad_attr)), attrs=True)


def test_nlmsg_error_raises_with_errno() -> None:
    err = _msg(struct.pack("=i", -13) + bytes(16), mtype=NLMSG_ERROR)
    with pytest.raises(NetlinkError) as info:
        read_dump(ReplaySocket([err]), build_inet_diag_req(2, 6, 0), parser(False))
    assert info.value.errno == 13


def test_dump_intr_is_reported_and_retried() -> None:
    chunk = _msg(_diag_payload(), flags=NLM_F_MULTI | NLM_F_DUMP_INTR) + _done()
    clean = _msg(_diag_payload(sport=24)) + _done()
    rows, interrupted = read_dump(ReplaySocket([chunk]), b"", parser(False))
    assert interrupted and rows[0].local_port == 23
    # snapshot() retries and keeps the consistent second dump, with no warning.
    sock = ReplaySocket([chunk, clean])
    snap = snapshot(protocols=["tcp"], families=[4], socket_factory=lambda: sock, source="netlink")
    assert [e.local_port for e in snap.endpoints] == [24]
    assert snap.warnings == ()
    # Always interrupted: the last dump is kept and the user is warned.
    sock = ReplaySocket([chunk, chunk, chunk])
    snap = snapshot(protocols=["tcp"], families=[4], socket_factory=lambda: sock, source="netlink")
    assert len(snap.endpoints) == 1
    assert any("NLM_F_DUMP_INTR" in w for w in snap.warnings)


def test_fast_and_attribute_paths_agree_on_the_recording() -> None:
    data = [
        bytes.fromhex(line)
        for line in (FIXTURES / "primer-tcp.nlhex").read_text().splitlines()
        if line and not line.startswith(("#", ">"))
    ]
    for chunk in data:
        fast, full = parse_all(chunk, False), parse_all(chunk, True)
        assert [e._replace(tcp_info=None, drops=None, cgroup_id=None) for e in full] == fast


def test_socket_closed_before_done_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="NLMSG_DONE"):
        read_dump(ReplaySocket([_msg(_diag_payload())]), b"", parser(False))
