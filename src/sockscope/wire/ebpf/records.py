"""Pure: the records the tracepoint program writes to its ring buffer, and their decoder.

One fixed layout for every kind, 136 bytes (a multiple of 8, so records sit aligned in
the ring after its 8-byte header), little-endian, the program's own (not a kernel
struct):

======  =====  ==============  ===========================================================
offset  size   field           meaning
======  =====  ==============  ===========================================================
0       u32    kind            KIND_CLOSE, KIND_OPEN, KIND_STATE, KIND_LISTEN
4       u32    flags           FLAG_* (how much of the owner and start is known)
8       u64    skaddr          the ``struct sock`` address (the connection while it lives)
16      u64    start_ns        its birth (CLOCK_MONOTONIC); 0 if unknown; a lower bound
                               with FLAG_MIDLIFE
24      u64    ts_ns           this transition (``bpf_ktime_get_ns``: CLOCK_MONOTONIC,
                               the clock of ``time.monotonic()``)
32      u64    cookie          ``sk->__sk_common.skc_cookie``: 0 until someone asked for
                               it (sock_diag, SO_COOKIE), then the socket's cookie
40      u32    pid             owner's thread group id (0: unknown)
44      u32    netns           the network namespace's inode number
48      char   comm[16]        owner's command name, NUL-padded
64      u16    family          AF_INET (2) or AF_INET6 (10)
66      u16    sport           local port
68      u16    dport           remote port
70      u8     oldstate        the tracepoint's states (``include/net/tcp_states.h``)
71      u8     newstate
72      u8     saddr[16]       local address; IPv4 in the first 4 bytes, zeros after
88      u8     daddr[16]       remote address, the same way
104     u64    bytes_sent      ``tcp_sock`` counters at CLOSE (zero for other kinds)
112     u64    bytes_acked
120     u64    bytes_received
128     u32    srtt_us         smoothed RTT in microseconds (the kernel's ``srtt_us >> 3``)
132     u32    total_retrans
======  =====  ==============  ===========================================================

Kinds: CLOSE at every transition to TCP_CLOSE (also for sockets the program never saw
born: FLAG_NO_ENTRY); OPEN at ESTABLISHED from SYN_SENT or SYN_RECV (only when asked);
STATE at every other transition but the births (only when asked); LISTEN when a socket
starts listening. OPEN, CLOSE and LISTEN stand for their transition too: asked for both,
the ESTABLISHED transition gives one OPEN record, not an OPEN and a STATE.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from sockscope._namedtuple import NamedTuple
from sockscope.model.endpoint import InternedIPv4Address, InternedIPv6Address, IPAddress
from sockscope.model.states import TcpState

KIND_CLOSE = 1
KIND_OPEN = 2
KIND_STATE = 3
KIND_LISTEN = 4
KIND_NAMES = {KIND_CLOSE: "close", KIND_OPEN: "open", KIND_STATE: "state", KIND_LISTEN: "listen"}

#: pid and comm are the socket's process, taken in its own context (connect, listen,
#: close, shutdown).
FLAG_PID = 1 << 0
#: pid and comm are the listener's: the kernel accepted the connection, no process has
#: acted on it yet (cleared when its own process does, FLAG_PID set then).
FLAG_LISTENER = 1 << 1
#: first seen in mid-life (it existed before the program was attached): start_ns is
#: only a lower bound.
FLAG_MIDLIFE = 1 << 2
#: a CLOSE of a socket the program had no entry for: start, pid and comm unknown.
FLAG_NO_ENTRY = 1 << 3

AF_INET, AF_INET6 = 2, 10
RECORD = struct.Struct("<IIQQQQII16sHHHBB16s16sQQQII")
RECORD_SIZE = RECORD.size
#: A record as it lies in the ring, behind its 8-byte header (``ringbuf.py``): the ring is
#: a run of these, so one ``iter_unpack`` (in C) reads a whole batch into rows.
#: A row is the header's length word and page offset, then the record's fields as packed
#: (states as numbers, addresses and comm as bytes).
ROW = struct.Struct("<II" + RECORD.format[1:])
Row = tuple[Any, ...]
# Offsets the program writes at (the table above).
OFF_KIND = 0
OFF_FLAGS = 4
OFF_SKADDR = 8
OFF_START = 16
OFF_TS = 24
OFF_COOKIE = 32
OFF_PID = 40
OFF_NETNS = 44
OFF_COMM = 48
OFF_FAMILY = 64
OFF_SPORT = 66
OFF_DPORT = 68
OFF_OLDSTATE = 70
OFF_NEWSTATE = 71
OFF_SADDR = 72
OFF_DADDR = 88
OFF_BYTES_SENT = 104
OFF_BYTES_ACKED = 112
OFF_BYTES_RECEIVED = 120
OFF_SRTT = 128
OFF_RETRANS = 132


class BpfRecord(NamedTuple):
    """One decoded record. ``family`` is 4 or 6; times are CLOCK_MONOTONIC nanoseconds."""

    kind: int
    flags: int
    skaddr: int
    start_ns: int
    ts_ns: int
    cookie: int
    pid: int
    netns: int
    comm: str
    family: int
    sport: int
    dport: int
    oldstate: TcpState
    newstate: TcpState
    saddr: IPAddress
    daddr: IPAddress
    bytes_sent: int
    bytes_acked: int
    bytes_received: int
    srtt_us: int
    total_retrans: int


class RecordError(ValueError):
    """A record whose family or states are none the program writes."""


_STATES: list[TcpState | None] = [None] * 256
for _s in TcpState:
    _STATES[_s] = _s
_CACHE_MAX = 65536
_v4: dict[bytes, IPAddress] = {}
_v6: dict[bytes, IPAddress] = {}
_comms: dict[bytes, str] = {}
_new = tuple.__new__


def _address(cache: dict[bytes, IPAddress], family: int, raw: bytes) -> IPAddress:
    # A busy server repeats a few addresses and names thousands of times a second.
    addr = InternedIPv4Address(raw[:4]) if family == AF_INET else InternedIPv6Address(raw)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[raw] = addr
    return addr


def _comm(raw: bytes) -> str:
    name = raw.split(b"\0", 1)[0].decode(errors="replace")
    if len(_comms) >= _CACHE_MAX:
        _comms.clear()
    _comms[raw] = name
    return name


def parse_record(buf: bytes | memoryview, offset: int = 0) -> BpfRecord:
    """The record at ``offset`` of ``buf``.

    Written for speed (every connection's record passes here): caches instead of
    decoding, the tuple built positionally.
    """
    return _decode(RECORD.unpack_from(buf, offset))


def record_of_row(row: Row) -> BpfRecord:
    """The decoded record of a row (``ROW``: its ring header, then its raw fields)."""
    return _decode(row[2:])


def address_of(family: int, raw: bytes) -> IPAddress:
    """The (interned) address of a record's raw 16 bytes; ``family`` is AF_INET or AF_INET6."""
    cache = _v4 if family == AF_INET else _v6
    return cache.get(raw) or _address(cache, family, raw)


def comm_of(raw: bytes) -> str:
    """A record's command name, from its 16 raw bytes."""
    return _comms.get(raw) or _comm(raw)


def _decode(raw: tuple[Any, ...]) -> BpfRecord:
    (kind, flags, skaddr, start, ts, cookie, pid, netns, comm, family, sport, dport, old, new, saddr, daddr,
     sent, acked, received, srtt, retrans) = raw  # fmt: skip
    old_state, new_state = _STATES[old], _STATES[new]
    if old_state is None or new_state is None:
        raise RecordError(f"record with states {old} -> {new}")
    if family == AF_INET:
        cache, fam = _v4, 4
    elif family == AF_INET6:
        cache, fam = _v6, 6
    else:
        raise RecordError(f"record with address family {family}")
    laddr = cache.get(saddr) or _address(cache, family, saddr)
    raddr = cache.get(daddr) or _address(cache, family, daddr)
    return _new(
        BpfRecord,
        (
            kind, flags, skaddr, start, ts, cookie, pid, netns, _comms.get(comm) or _comm(comm), fam,
            sport, dport, old_state, new_state, laddr, raddr, sent, acked, received, srtt, retrans,
        ),
    )  # fmt: skip


def parse_records(buf: bytes | memoryview, offsets: Iterable[int], out: list[BpfRecord]) -> int:
    """Appends the record at each offset to ``out``; returns how many were appended."""
    before = len(out)
    out.extend(parse_record(buf, off) for off in offsets)
    return len(out) - before


def build_record(r: BpfRecord) -> bytes:
    """A record's bytes, as the program writes them (for tests and fixtures)."""
    af = AF_INET if r.family == 4 else AF_INET6
    return RECORD.pack(
        r.kind, r.flags, r.skaddr, r.start_ns, r.ts_ns, r.cookie, r.pid, r.netns,
        r.comm.encode()[:16], af, r.sport, r.dport, r.oldstate, r.newstate,
        r.saddr.packed.ljust(16, b"\0"), r.daddr.packed.ljust(16, b"\0"),
        r.bytes_sent, r.bytes_acked, r.bytes_received, r.srtt_us, r.total_retrans,
    )  # fmt: skip
