"""Pure: walking a ``BPF_MAP_TYPE_RINGBUF``'s data area from the consumer's side.

The kernel's ring (``kernel/bpf/ringbuf.c``) has a consumer position the reader writes
and a producer position the kernel advances when it reserves space; both only grow, and
``position & (size - 1)`` is where they point. Each record starts with an 8-byte header
(``BPF_RINGBUF_HDR_SZ``): a u32 length with ``BPF_RINGBUF_BUSY_BIT`` set while the program
still fills it and ``BPF_RINGBUF_DISCARD_BIT`` set when it gave it up, then a u32 page
offset for the kernel's own use. Records are padded to 8 bytes. The data area is mapped
twice in a row, so a record that wraps past its end reads as one piece: an offset here
may run up to twice the size.

Records are consumed in order: a busy one stops the walk (those after it may be done,
but the consumer position cannot pass it).
"""

from __future__ import annotations

import struct
from typing import Any

from sockscope._namedtuple import NamedTuple

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
LENGTH_MASK = BPF_RINGBUF_DISCARD_BIT - 1
#: Native, not "<I": the struct module reads standard-size fields byte by byte, and a
#: header the kernel rewrites meanwhile (``xchg`` at commit) must be read in one load.
U32 = struct.Struct("I")


class RingError(ValueError):
    """Positions or a header that cannot be right: the reader must stop, not guess."""


class RingWalk(NamedTuple):
    """What lies between the consumer and the producer positions."""

    offsets: list[int]  # where each committed record's data starts in the data area
    consumed: int  # the consumer position after them (the next one to write back)
    busy: bool  # stopped at a record still being written
    discarded: int  # records the program gave up (skipped)
    malformed: int  # committed records of another length than expected (skipped)


def walk_ring(data: bytes | memoryview, cons: int, prod: int, size: int, record_size: int) -> RingWalk:
    """The committed records from position ``cons`` up to ``prod``.

    ``data`` is the data area mapped twice (``2 * size`` bytes); ``size`` a power of 2.
    """
    if size <= 0 or size & (size - 1):
        raise RingError(f"ring size {size} is not a power of 2")
    if not 0 <= prod - cons <= size:
        raise RingError(f"producer {prod} and consumer {cons} are more than the ring apart")
    mask, unpack = size - 1, U32.unpack_from
    offsets: list[int] = []
    discarded = malformed = 0
    busy = False
    while cons < prod:
        off = cons & mask
        (head,) = unpack(data, off)
        if head & BPF_RINGBUF_BUSY_BIT:
            busy = True
            break
        length = head & LENGTH_MASK
        step = (length + BPF_RINGBUF_HDR_SZ + 7) & ~7
        if cons + step > prod:
            raise RingError(f"record of {length} bytes at {cons} runs past the producer at {prod}")
        if head & BPF_RINGBUF_DISCARD_BIT:
            discarded += 1
        elif length != record_size:
            malformed += 1
        else:
            offsets.append(off + BPF_RINGBUF_HDR_SZ)
        cons += step
    return RingWalk(offsets, cons, busy, discarded, malformed)


def build_header(length: int, *, busy: bool = False, discard: bool = False, pg_off: int = 0) -> bytes:
    """A record header as the kernel writes it (for tests)."""
    word = length | (BPF_RINGBUF_BUSY_BIT if busy else 0) | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
    return struct.pack("<II", word, pg_off)


def take_rows(
    data: bytes | memoryview, cons: int, prod: int, size: int, row: struct.Struct, record_size: int
) -> tuple[list[tuple[Any, ...]], int]:
    """The committed records from ``cons`` as rows (``row``: the header, then the record),
    and the position after them: one ``iter_unpack`` over the span, for a span of whole
    rows. It stops before the first row that is not a plain committed record (busy,
    discarded, of another length; or a span that is not whole rows): ``walk_ring`` takes
    it from there.

    Each row's header is unpacked before its record, in the order the bytes lie: where
    loads keep their order (x86-64), a header found committed has its record complete.
    """
    span = prod - cons
    if span <= 0 or span % row.size or span > size:
        return [], cons
    start = cons & (size - 1)
    rows = list(row.iter_unpack(data[start : start + span]))
    heads = [r[0] for r in rows]
    if heads.count(record_size) != len(heads):
        good = next(i for i, head in enumerate(heads) if head != record_size)
        del rows[good:]
    return rows, cons + len(rows) * row.size
