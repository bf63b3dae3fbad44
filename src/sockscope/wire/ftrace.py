"""Pure: binary ``sock:inet_sock_set_state`` records from tracefs's ``trace_pipe_raw``.

Reading the ring buffer's own pages spares the kernel from printing every record as
text (``%pI6c`` and all) and us from parsing it back: at ten thousand connections a
second there are a hundred thousand records a second.

A page (``events/header_page``) is a u64 timestamp, a ``commit`` word (the data length in
its low bits, "events were lost here" flags in bits 30 and 31), then the data. Each event
starts with a u32 header (``events/header_event``): ``type_len`` in its low 5 bits, a
27-bit time delta above. ``type_len`` 1..28 is a data record of ``type_len * 4`` bytes;
0 a longer one whose length follows in the next u32; 29 padding; 30 a time extension;
31 an absolute timestamp. The record's fields sit at the offsets its ``format`` file
gives; this module reads them from there rather than assuming a layout.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection, Iterator, Sequence
from typing import NamedTuple

from sockscope.model.endpoint import (
    InternedIPv4Address,
    InternedIPv6Address,
    IPAddress,
)
from sockscope.model.states import TcpState

PAGE_HEADER = struct.Struct("<QQ")
PAGE_DATA = 16
COMMIT_LENGTH = (1 << 30) - 1  # bits 30 and 31 are RB_MISSED_STORED and RB_MISSED_EVENTS
MISSED_EVENTS = 1 << 31
U32 = struct.Struct("<I")
TYPE_PADDING, TYPE_TIME_EXTEND, TYPE_TIME_STAMP = 29, 30, 31
TS_SHIFT = 27
#: common_flags bits (enum trace_flag_type): the task in the record only happened to be
#: running when an interrupt changed the socket's state.
IRQ_FLAGS = 0x08 | 0x10 | 0x40  # HARDIRQ, SOFTIRQ, NMI
AF_INET, AF_INET6 = 2, 10
IPPROTO_TCP = 6
WANTED = (
    "common_type",
    "common_flags",
    "common_pid",
    "skaddr",
    "oldstate",
    "newstate",
    "sport",
    "dport",
    "family",
    "protocol",
    "saddr",
    "daddr",
    "saddr_v6",
    "daddr_v6",
)
_FIELD = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"\s*signed:(?P<signed>\d+);"
)
_CODES = {
    (1, False): "B",
    (1, True): "b",
    (2, False): "H",
    (2, True): "h",
    (4, False): "I",
    (4, True): "i",
    (8, False): "Q",
    (8, True): "q",
}


#: Port tests beyond this many are left to Python: the kernel caps a filter's predicates.
MAX_FILTER_SPANS = 64


def filter_expression(
    ports: Sequence[tuple[bool, int, int]] | None,
    families: Collection[int],
    ephemeral: tuple[int, int] = (1, 65535),
) -> str:
    """The event's ``filter``: what the kernel records at all, the rest never written.

    TCP (MPTCP and SCTP share the event) of the watched families and, given spans of
    ports as (local, lo, hi), a local or remote port in one of them, plus every new
    listener (its owner names the connections it accepts). ``connect()`` records its
    first transition before it picks the local port, from ``ephemeral``
    (``ip_local_port_range``): when a local span meets that range, those records (local
    port 0) pass, and so do all SYN_SENT exits, since the reader pairs each start with
    the next exit to the same peer. The reader still applies the whole filter.
    """
    terms = [f"protocol == {IPPROTO_TCP}"]
    wanted = [AF_INET if f == 4 else AF_INET6 for f in sorted(families) if f in (4, 6)]
    if len(wanted) == 1:
        terms.append(f"family == {wanted[0]}")
    if ports and len(ports) <= MAX_FILTER_SPANS:
        first, last = ephemeral
        tests = [f"newstate == {int(TcpState.LISTEN)}"]
        if any(local and lo <= last and hi >= first for local, lo, hi in ports):
            tests += ["sport == 0", f"oldstate == {int(TcpState.SYN_SENT)}"]
        for local, lo, hi in ports:
            field = "sport" if local else "dport"
            tests.append(f"{field} == {lo}" if lo == hi else f"({field} >= {lo} && {field} <= {hi})")
        terms.append("(" + " || ".join(tests) + ")")
    return " && ".join(terms)


class FormatError(ValueError):
    """The tracepoint's format file lacks a field we need, or is not a format file."""


class StateChange(NamedTuple):
    """One transition of one socket."""

    mono: float  # the instance's clock: "mono", so comparable with time.monotonic()
    pid: int  # the task running when it happened: the socket's process, or any in an irq
    family: int  # 4 or 6
    proto: int  # IPPROTO_TCP, or MPTCP/SCTP which share the tracepoint
    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    old_state: TcpState
    new_state: TcpState
    in_irq: bool  # the header's task only happened to be running: not the socket's owner
    #: The kernel's address of the socket: one socket's records share it, whatever its
    #: ports do (connect() picks the local port after its first transition). Reused only
    #: once the socket is freed, and a new socket always starts with a birth transition.
    skaddr: int = 0


class Layout(NamedTuple):
    """Where the fields we read are, from the event's ``format`` file."""

    event_id: int
    record: struct.Struct  # the WANTED fields, in that order, from the record's start
    size: int


def parse_format(text: str) -> Layout:
    """The layout described by ``events/sock/inet_sock_set_state/format``."""
    match = re.search(r"^ID:\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise FormatError("no ID line")
    fields: dict[str, tuple[int, int, bool]] = {}
    for m in _FIELD.finditer(text):
        name = m["decl"].split()[-1].split("[")[0]
        fields[name] = (int(m["offset"]), int(m["size"]), m["signed"] == "1")
    missing = [f for f in WANTED if f not in fields]
    if missing:
        raise FormatError(f"no field {', '.join(missing)}")
    parts: list[tuple[int, str, int]] = []
    for order, name in enumerate(WANTED):
        offset, size, signed = fields[name]
        is_array = name in ("saddr", "daddr", "saddr_v6", "daddr_v6")
        code = f"{size}s" if is_array else _CODES.get((size, signed))
        if code is None:
            raise FormatError(f"field {name} has an unexpected size {size}")
        parts.append((offset, code, order))
    # struct reads in offset order, with pad bytes between; the decoder reorders.
    fmt, pos, order_by_offset = "<", 0, []
    for offset, code, order in sorted(parts):
        if offset < pos:
            raise FormatError("overlapping fields")
        fmt += f"{offset - pos}x{code}" if offset > pos else code
        pos = offset + struct.calcsize("<" + code)
        order_by_offset.append(order)
    if order_by_offset != list(range(len(WANTED))):
        raise FormatError("fields are not in the order this decoder expects")
    return Layout(int(match[1]), struct.Struct(fmt), pos)


_STATES = {int(s): s for s in TcpState}
_addresses: dict[bytes, IPAddress] = {}
_ADDRESS_CACHE_MAX = 65536


def _address(raw: bytes, family: int) -> IPAddress:
    # A busy host repeats a few addresses thousands of times a second. Bounded, so a
    # scan of many peers cannot grow it without limit.
    addr = _addresses.get(raw)
    if addr is None:
        addr = InternedIPv4Address(raw) if family == 4 else InternedIPv6Address(raw)
        if len(_addresses) >= _ADDRESS_CACHE_MAX:
            _addresses.clear()
        _addresses[raw] = addr
    return addr


class PageResult(NamedTuple):
    """What one page held."""

    records: list[StateChange]
    last_ns: int  # the time of the page's last event (its own timestamp when empty)
    missed: bool  # the kernel dropped events before this page (the reader was too slow)


def decode_page(page: bytes, layout: Layout) -> PageResult:
    """Every ``inet_sock_set_state`` record of one ``trace_pipe_raw`` page, in order.

    Raises ``ValueError`` for a page that does not parse (a length running off its end).
    """
    if len(page) < PAGE_DATA:
        return PageResult([], 0, False)
    ts, commit = PAGE_HEADER.unpack_from(page)
    end = PAGE_DATA + (commit & COMMIT_LENGTH)
    if end > len(page):
        raise ValueError(f"page data length {end} beyond its {len(page)} bytes")
    try:
        return _decode(page, ts, end, layout, commit)
    except struct.error as exc:  # a length word beyond the page's last bytes
        raise ValueError(f"page cut short: {exc}") from None


def _decode(page: bytes, ts: int, end: int, layout: Layout, commit: int) -> PageResult:
    out: list[StateChange] = []
    unpack_record = layout.record.unpack_from
    event_id, need = layout.event_id, layout.size
    states = _STATES
    last = ts
    for last, data, size in _walk(page, ts, end):
        if size < need:
            continue  # another event of the instance
        (
            etype,
            flags,
            pid,
            skaddr,
            old,
            new,
            sport,
            dport,
            family,
            protocol,
            saddr,
            daddr,
            saddr6,
            daddr6,
        ) = unpack_record(page, data)
        old_state, new_state = states.get(old), states.get(new)
        if etype != event_id or old_state is None or new_state is None:
            continue  # not ours, or a state this version does not know
        if family == AF_INET:
            fam, laddr, raddr = 4, _address(saddr, 4), _address(daddr, 4)
        elif family == AF_INET6:
            fam, laddr, raddr = 6, _address(saddr6, 6), _address(daddr6, 6)
        else:
            continue
        out.append(
            StateChange(
                last / 1e9,
                pid,
                fam,
                protocol,
                laddr,
                sport,
                raddr,
                dport,
                old_state,
                new_state,
                bool(flags & IRQ_FLAGS),
                skaddr,
            )
        )
    return PageResult(out, last, bool(commit & MISSED_EVENTS))


def _walk(page: bytes, ts: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(time in ns, data offset, data size) of each data record in ``page[16:end]``."""
    unpack_u32 = U32.unpack_from
    pos = PAGE_DATA
    while pos + 4 <= end:
        (head,) = unpack_u32(page, pos)
        type_len = head & 0x1F
        delta = head >> 5
        if type_len >= TYPE_PADDING:
            if type_len == TYPE_PADDING and delta == 0:
                return  # the rest of the page is unused
            (word,) = unpack_u32(page, pos + 4)
            if type_len == TYPE_PADDING:  # a discarded event: its time does not count
                pos += 4 + word
            elif type_len == TYPE_TIME_EXTEND:
                ts += delta + (word << TS_SHIFT)
                pos += 8
            else:  # an absolute stamp of the low 59 bits; the page's gives the rest
                ts = (ts & ~((1 << 59) - 1)) | (word << TS_SHIFT) | delta
                pos += 8
            continue
        if type_len == 0:
            (length,) = unpack_u32(page, pos + 4)
            data, size = pos + 8, length - 4
            pos += 4 + length
        else:
            data, size = pos + 4, type_len * 4
            pos += 4 + size
        if pos > end:
            raise ValueError(f"record at {data} runs past the page's data")
        ts += delta
        yield ts, data, size
