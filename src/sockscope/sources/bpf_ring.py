"""Thin I/O: the consumer side of the program's ``BPF_MAP_TYPE_RINGBUF``, over mmap.

The map's fd maps as the kernel lays it out (``kernel/bpf/ringbuf.c``): a consumer page
we write the consumer position to, then (read-only) a producer page and the data area
twice in a row, so a record that wraps reads as one piece. The walk and the decoding
are pure (``wire/ebpf/ringbuf.py``, ``records.py``).

The two positions are read and written through ``memoryview(...).cast("Q")``: one
8-byte load or store each. ``struct.pack_into`` would not do: it zero-fills the field
before writing the value, and the kernel, reserving a record in that instant, reads a
consumer position of 0 and refuses the record as if the ring were full (that is how the
first version lost 1 record in 40,000 with the ring nearly empty). x86-64 keeps loads in
order; elsewhere a full barrier separates reading the producer position, the headers,
the records, and the consumer position's store.
"""

from __future__ import annotations

import mmap
import platform
from collections.abc import Callable

from sockscope.sources.bpf_syscalls import memory_barrier
from sockscope.wire.ebpf.records import (
    RECORD_SIZE,
    ROW,
    BpfRecord,
    RecordError,
    Row,
    parse_record,
    parse_records,
)
from sockscope.wire.ebpf.ringbuf import BPF_RINGBUF_HDR_SZ, take_rows, walk_ring


class RingReader:
    """Reads every committed record of one ring buffer map."""

    def __init__(self, fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError:
            self._cons.close()
            raise
        self._data = memoryview(self._prod)[page:]
        self._cons_pos = memoryview(self._cons)[:8].cast("Q")  # item access: one load/store
        self._prod_pos = memoryview(self._prod)[:8].cast("Q")
        ordered = platform.machine() == "x86_64"
        self._fence: Callable[[], None] = (lambda: None) if ordered else memory_barrier
        #: Rows are read in one pass only where loads keep their order (see take_rows).
        self._one_pass = ordered
        self.discarded = 0  # records the program gave up (it never does: counted anyway)
        self.malformed = 0  # records that did not decode (a layout mismatch: never seen)
        self.max_backlog = 0  # the most bytes found waiting at one read

    def backlog(self) -> int:
        """Bytes written and not yet consumed."""
        prod: int = self._prod_pos[0]
        cons: int = self._cons_pos[0]
        return prod - cons

    def snapshot(self) -> tuple[int, int, bytes]:
        """(consumer, producer, the data area once): the ring as it is, for fixtures."""
        cons: int = self._cons_pos[0]
        prod: int = self._prod_pos[0]
        return cons, prod, bytes(self._data[: self.size])

    def read(self, out: list[BpfRecord]) -> int:
        """Appends every record committed now to ``out``; returns how many."""
        cons: int = self._cons_pos[0]
        prod: int = self._prod_pos[0]
        if prod == cons:
            return 0
        self.max_backlog = max(self.max_backlog, prod - cons)
        self._fence()
        walk = walk_ring(self._data, cons, prod, self.size, RECORD_SIZE)
        self._fence()
        self.discarded += walk.discarded
        self.malformed += walk.malformed
        before = len(out)
        try:
            n = parse_records(self._data, walk.offsets, out)
        except RecordError:
            del out[before:]
            n = self._read_one_by_one(walk.offsets, out)
        self._fence()  # our reads are done before the kernel may reuse the space
        self._cons_pos[0] = walk.consumed
        return n

    def read_rows(self, out: list[Row]) -> int:
        """Appends every record committed now to ``out`` as a raw row (``records.ROW``), the
        cheapest form to read; returns how many."""
        cons: int = self._cons_pos[0]
        prod: int = self._prod_pos[0]
        if prod == cons:
            return 0
        self.max_backlog = max(self.max_backlog, prod - cons)
        n = 0
        if self._one_pass:
            rows, cons = take_rows(self._data, cons, prod, self.size, ROW, RECORD_SIZE)
            out += rows
            n = len(rows)
            if cons == prod:
                self._cons_pos[0] = cons
                return n
        self._fence()
        walk = walk_ring(self._data, cons, prod, self.size, RECORD_SIZE)
        self._fence()
        self.discarded += walk.discarded
        self.malformed += walk.malformed
        unpack = ROW.unpack_from
        out += [unpack(self._data, off - BPF_RINGBUF_HDR_SZ) for off in walk.offsets]
        self._fence()
        self._cons_pos[0] = walk.consumed
        return n + len(walk.offsets)

    def _read_one_by_one(self, offsets: list[int], out: list[BpfRecord]) -> int:
        n = 0
        for off in offsets:
            try:
                out.append(parse_record(self._data, off))
            except RecordError:
                self.malformed += 1
                continue
            n += 1
        return n

    def close(self) -> None:
        self._cons_pos.release()
        self._prod_pos.release()
        self._data.release()
        self._prod.close()
        self._cons.close()
