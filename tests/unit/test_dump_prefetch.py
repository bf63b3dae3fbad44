"""read_dump's receiving thread, on replayed chunks as long as a large dump's.

The integration tests' dumps fit in a chunk or two, so they never start the thread; these
replays are long enough to, and check it changes nothing: same rows, same order, same
errors, and the socket is the caller's alone again afterwards.
"""

from __future__ import annotations

import struct

import pytest

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources import netlink
from sockscope.sources.netlink import read_dump
from sockscope.wire.dump import inet_chunk_parser
from sockscope.wire.errors import ParseError
from sockscope.wire.inet_diag import INET_DIAG_MSG
from sockscope.wire.netlink import (
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    NetlinkError,
    build_nlmsg,
)
from tests.helpers.replay import ReplaySocket

PER_CHUNK = 300  # 300 * 88 bytes: a "full" chunk, as the kernel's are


def _socket_msg(port: int, flags: int = NLM_F_MULTI) -> bytes:
    body = INET_DIAG_MSG.pack(
        2,
        1,
        0,
        0,
        port.to_bytes(2, "big"),
        b"\0\x50",
        bytes([127, 0, 0, 1]) + bytes(12),
        bytes([10, 0, 0, 2]) + bytes(12),
        0,
        port,
        0,
        0,
        0,
        0,
        0,
        1000 + port,
    )
    return build_nlmsg(SOCK_DIAG_BY_FAMILY, flags, 1, body)


def _done() -> bytes:
    return build_nlmsg(NLMSG_DONE, NLM_F_MULTI, 1, struct.pack("=i", 0))


def _chunks(count: int, done: bool = True) -> list[bytes]:
    chunks = [b"".join(_socket_msg(c * PER_CHUNK + i) for i in range(PER_CHUNK)) for c in range(count)]
    if done:
        chunks[-1] += _done()
    return chunks


def _dump(chunks: list[bytes]) -> tuple[list[Endpoint], bool]:
    return read_dump(ReplaySocket(chunks), b"", inet_chunk_parser(Proto.TCP, {}, "", attrs=False))


@pytest.fixture(autouse=True)
def started(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every receiving thread started, so each test can show it ran through one."""
    made: list[object] = []
    real = netlink._Prefetcher

    def counted(*args: object) -> object:
        made.append(real(*args))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(netlink, "_Prefetcher", counted)
    return made


def test_a_long_dump_comes_out_whole_and_in_order(started: list[object]) -> None:
    rows, interrupted = _dump(_chunks(40))
    assert [e.local_port for e in rows] == list(range(40 * PER_CHUNK))
    assert not interrupted
    (reader,) = started
    assert reader.stopping and not reader.running  # type: ignore[attr-defined]


def test_a_short_dump_starts_no_thread(started: list[object]) -> None:
    rows, _ = read_dump(
        ReplaySocket([_socket_msg(1), _socket_msg(2) + _done()]),
        b"",
        inet_chunk_parser(Proto.TCP, {}, "", attrs=False),
    )
    assert [e.local_port for e in rows] == [1, 2] and not started


def test_done_in_a_chunk_of_its_own() -> None:
    rows, _ = _dump([*_chunks(12, done=False), _done()])
    assert len(rows) == 12 * PER_CHUNK


def test_interrupted_late_in_the_dump_is_reported() -> None:
    chunks = _chunks(10)
    chunks[7] = _socket_msg(99, NLM_F_MULTI | NLM_F_DUMP_INTR) + chunks[7]
    rows, interrupted = _dump(chunks)
    assert interrupted and len(rows) == 10 * PER_CHUNK + 1


def test_an_error_late_in_the_dump_raises() -> None:
    chunks = _chunks(10, done=False)
    chunks.append(build_nlmsg(NLMSG_ERROR, 0, 1, struct.pack("=i", -16) + bytes(16)))
    with pytest.raises(NetlinkError) as info:
        _dump(chunks)
    assert info.value.errno == 16


def test_a_cut_message_late_in_the_dump_raises() -> None:
    chunks = _chunks(10)
    chunks[6] = chunks[6][:-30]
    with pytest.raises(ParseError, match="truncated"):
        _dump(chunks)


def test_a_socket_closed_before_done_raises() -> None:
    with pytest.raises(ParseError, match="NLMSG_DONE"):
        _dump(_chunks(10, done=False))


def test_a_chunk_that_fills_the_buffer_is_refused() -> None:
    chunks = _chunks(5)
    chunks.insert(3, _socket_msg(1) * (netlink.RECV_BUFFER // 88 + 1))
    with pytest.raises(ParseError, match="filled"):
        _dump(chunks)
