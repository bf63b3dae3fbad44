"""The ring reader's mmap side on a memfd laid out as the kernel lays out a ring
(consumer page, producer page, data twice): no root, no BPF needed."""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from sockscope.model.states import TcpState
from sockscope.sources.bpf_ring import RingReader
from sockscope.wire.ebpf.records import KIND_CLOSE, RECORD_SIZE, BpfRecord, build_record
from sockscope.wire.ebpf.ringbuf import build_header

PAGE = mmap.PAGESIZE
SIZE = 4 * PAGE
STEP = RECORD_SIZE + 8


def record(port: int) -> BpfRecord:
    return BpfRecord(
        KIND_CLOSE, 1, 0xFFFF_8880_0000_1000, 5, 9, 77, 42, 4026531840, "nginx", 4, port, 443,
        TcpState.LAST_ACK, TcpState.CLOSE, ip_address("10.0.0.1"), ip_address("10.0.0.2"), 1, 2, 3, 4, 5,
    )  # fmt: skip


@pytest.fixture
def ring_fd() -> Iterator[int]:
    fd = os.memfd_create("fake-ring")
    os.ftruncate(fd, 2 * PAGE + 2 * SIZE)
    try:
        yield fd
    finally:
        os.close(fd)


def produce(fd: int, cons: int, ports: list[int], busy_last: bool = False) -> int:
    """Write records from position ``cons`` into both copies of the data; the producer
    position after them."""
    pos = cons
    for i, port in enumerate(ports):
        entry = build_header(RECORD_SIZE, busy=busy_last and i == len(ports) - 1) + build_record(record(port))
        for copy in (0, SIZE):
            for j in range(STEP):  # byte by byte: the record may wrap
                os.pwrite(fd, entry[j : j + 1], 2 * PAGE + copy + (pos + j) % SIZE)
        pos += STEP
    os.pwrite(fd, struct.pack("Q", cons), 0)
    os.pwrite(fd, struct.pack("Q", pos), PAGE)
    return pos


def test_the_reader_decodes_wrapped_records_and_writes_back_the_consumer(ring_fd: int) -> None:
    cons = 7 * SIZE + SIZE - STEP // 2  # the first record straddles the end
    prod = produce(ring_fd, cons, [80, 81, 82])
    reader = RingReader(ring_fd, SIZE)
    try:
        assert reader.backlog() == 3 * STEP
        out: list[BpfRecord] = []
        assert reader.read(out) == 3
        assert [r.sport for r in out] == [80, 81, 82] and out[0] == record(80)
        assert struct.unpack("Q", os.pread(ring_fd, 8, 0))[0] == prod
        assert reader.read(out) == 0 and reader.backlog() == 0
        assert reader.max_backlog == 3 * STEP
    finally:
        reader.close()


def test_a_busy_record_is_left_for_the_next_read(ring_fd: int) -> None:
    produce(ring_fd, 0, [80, 81], busy_last=True)
    reader = RingReader(ring_fd, SIZE)
    try:
        out: list[BpfRecord] = []
        assert reader.read(out) == 1
        assert struct.unpack("Q", os.pread(ring_fd, 8, 0))[0] == STEP  # stopped at the busy one
    finally:
        reader.close()


def test_a_record_that_does_not_decode_is_counted_and_skipped(ring_fd: int) -> None:
    produce(ring_fd, 0, [80, 81])
    bad_family = 2 * PAGE + STEP + 8 + 64  # the second record's family field
    os.pwrite(ring_fd, b"\x07", bad_family)
    reader = RingReader(ring_fd, SIZE)
    try:
        out: list[BpfRecord] = []
        assert reader.read(out) == 1 and [r.sport for r in out] == [80]
        assert reader.malformed == 1
    finally:
        reader.close()
