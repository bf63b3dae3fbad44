"""Pure: ``watch``'s lines (JSON or text) straight from the eBPF program's raw records.

Most records need nothing from user space: a connection's open, a transition, and the
close of a connection the program saw born, named by its own or its listener's process.
For those, the line is formatted from the record's fields as they came out of the ring
(``wire.ebpf.records.ROW``), with no ``Event`` made on the way: the text is exactly what
``render_event_json`` (or ``render_event_line``) writes for the event the engine would
have made (tested), at half the cost. JSON lines are made in the loop itself, with no
call per row (the output under load); text lines with one. Every other record (a
listen, a socket older than the program, one without an owner) goes the engine's way,
through ``slow``, and is rendered in its place.

This runs only where nothing else needs the events: no recording, no count to stop at,
and no filter left to evaluate but one of ports alone, which is then a lookup by port
here and ``matches`` for the engine's events (``watch`` decides).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial

from sockscope.model.endpoint import IPAddress, Owner
from sockscope.model.event import Event, EventKind, EventView
from sockscope.model.states import Proto, TcpState
from sockscope.model.tally import Shown
from sockscope.render.addresses import Notation
from sockscope.render.events import (
    _KIND_COLUMN,
    _PROTO_COLUMN,
    _STATE_COLUMN,
    _bpf_actor,
    _bpf_owner,
    _local_second,
    _second_of,
    format_duration,
    format_size,
    render_event_json,
    render_event_line,
)
from sockscope.render.events import (
    _who as _who_text,
)
from sockscope.wire.ebpf.records import (
    AF_INET,
    AF_INET6,
    FLAG_LISTENER,
    FLAG_MIDLIFE,
    FLAG_NO_ENTRY,
    FLAG_PID,
    KIND_CLOSE,
    KIND_OPEN,
    KIND_STATE,
    Row,
    address_of,
    comm_of,
)

_NAMED = FLAG_PID | FLAG_LISTENER
_UNSURE_START = FLAG_NO_ENTRY | FLAG_MIDLIFE
_LISTEN = int(TcpState.LISTEN)
_TCP = Proto.TCP
_OPENED, _CLOSED, _STATE, _LOST = EventKind.OPENED, EventKind.CLOSED, EventKind.STATE, EventKind.LOST
_FAMILY = {AF_INET: 4, AF_INET6: 6}
#: '"STATE"' by the tracepoint's number; None for a number that is no state.
_LABEL: list[str | None] = [None] * 256
for _s in TcpState:
    _LABEL[_s] = f'"{_s.label(Proto.TCP)}"'
_OPEN_TEXT, _STATE_TEXT = '"opened"', '"state"'
_NOBODY = ('"owners":[],', '"pid":null,"process":null', "-")
_STATES: list[TcpState | None] = [None] * 256
for _s in TcpState:
    _STATES[_s] = _s
_KIND_COLUMNS = {
    KIND_OPEN: _KIND_COLUMN[EventKind.OPENED],
    KIND_CLOSE: _KIND_COLUMN[EventKind.CLOSED],
    KIND_STATE: _KIND_COLUMN[EventKind.STATE],
}
_MAX = 4096  # entries per text cache before it starts over


class BpfLines:
    """Turns rows into JSON or text lines (appended to ``out``), counted in ``shown``."""

    def __init__(
        self,
        out: list[str],
        shown: Shown,
        kinds: frozenset[EventKind] | None,
        ports: Sequence[tuple[bool, int, int]] | None = None,
        matches: Callable[[EventView], bool] | None = None,
        text: Notation | None = None,
    ) -> None:
        """``ports``: (local?, lo, hi) spans, one of which a row's local or remote port must
        be in, exactly what ``matches`` (for the engine's events) decides. ``text``: text
        lines in this notation (``render_event_line``) instead of JSON."""
        self.out = out
        self.text = text
        self.render: Callable[[Event], str] = (
            render_event_json if text is None else partial(render_event_line, nt=text)
        )
        self.shown = shown
        self.matches = matches
        # One flag per port number, local and remote: a test per row costs two indexings.
        self.local_ok: bytearray | None = None
        self.remote_ok = bytearray(65536)
        if ports is not None:
            self.local_ok = bytearray(65536)
            for local, lo, hi in ports:
                (self.local_ok if local else self.remote_ok)[lo : hi + 1] = b"\1" * (hi - lo + 1)
        self.closes = kinds is None or _CLOSED in kinds
        self.opens = kinds is None or _OPENED in kinds
        self.states = kinds is None or _STATE in kinds
        self._head: dict[tuple[int, bytes, int], tuple[str, IPAddress]] = {}
        self._addr: dict[tuple[int, bytes], tuple[str, IPAddress]] = {}
        self._who: dict[tuple[int, bytes], tuple[str, str, str]] = {}
        self._ends: dict[tuple[IPAddress, int], str] = {}

    def take(  # noqa: PLR0912, PLR0915 - one loop, no call per row: see the module doc
        self,
        rows: Sequence[Row],
        wall_offset: float,
        counted: Counter[EventKind],
        slow: Callable[[Row], list[Event]],
    ) -> list[int]:
        """Lines for ``rows``, in order; returns the cookies of the closes handled here
        (the engine remembers them, so no other source reports those sockets again)."""
        out, shown = self.out, self.shown
        append, seen = out.append, shown.open_keys
        head_of, addr_of, who_of, second_of = self._head, self._addr, self._who, _second_of
        closes, opens, states = self.closes, self.opens, self.states
        local_ok, remote_ok, nt = self.local_ok, self.remote_ok, self.text
        cookies: list[int] = []
        n_open = n_close = n_state = new_connections = 0
        for row in rows:
            (_h, _p, kind, flags, _sk, start, ts, cookie, pid, _ns, comm, family, sport, dport, old, new,
             saddr, daddr, sent, _acked, received, srtt, retrans) = row  # fmt: skip
            if kind == KIND_CLOSE:
                if flags & _UNSURE_START or not flags & _NAMED or old == _LISTEN:
                    self._slow(slow(row))
                    continue
                if cookie:
                    cookies.append(cookie)
                if not closes or (local_ok is not None and not (local_ok[sport] or remote_ok[dport])):
                    continue
                state = old
            elif kind == KIND_OPEN or (kind == KIND_STATE and _LABEL[old] is not None):
                if new == _LISTEN:
                    self._slow(slow(row))
                    continue
                if not (opens if kind == KIND_OPEN else states) or (
                    local_ok is not None and not (local_ok[sport] or remote_ok[dport])
                ):
                    continue
                state = new
            else:
                self._slow(slow(row))
                continue
            # The local part and the remote address, each made once and then looked up (a
            # miss checks the family and the state: a row that fails goes the engine's way).
            local = head_of.get((state, saddr, family)) or self._local(state, saddr, family)
            remote = addr_of.get((family, daddr)) or self._address(family, daddr)
            if local is None or remote is None:
                self._slow(slow(row))
                continue
            if flags & _NAMED:
                owners, actor, who = who_of.get((pid, comm)) or self._owner(pid, comm)
            else:
                owners, actor, who = _NOBODY
            key = (_TCP, local[1], sport, remote[1], dport)  # Shown's identity of a connection
            if nt is not None:
                append(self._text(row, state, local[1], remote[1], who, wall_offset, nt))
            elif kind == KIND_CLOSE:
                end = ts / 1e9
                wall = f"{end + wall_offset:.6f}"  # render.events._iso_time, inline
                duration = "null" if not start else f"{end - start / 1e9:.6f}"
                append(
                    f'{local[0]}{sport},"remote_address":{remote[0]},"remote_port":{dport},"recv_q":0,'
                    f'"send_q":0,"uid":null,"inode":0,"cookie":{cookie or "null"},"queued":false,'
                    f'{owners}"event":"closed","time":"{second_of[wall[:-7]]}.{wall[-6:]}+00:00",'
                    f'"mono":{end:.6f},"source":"bpf",{actor},"duration":{duration},'
                    f'"duration_lower_bound":false,"bytes_sent":{sent},"bytes_received":{received},'
                    f'"rtt":{srtt / 1000!r},"retrans":{retrans}}}'
                )
            else:
                mono = (start or ts) / 1e9 if kind == KIND_OPEN else ts / 1e9
                wall = f"{mono + wall_offset:.6f}"
                text = (
                    f'{local[0]}{sport},"remote_address":{remote[0]},"remote_port":{dport},"recv_q":0,'
                    f'"send_q":0,"uid":null,"inode":0,"cookie":{cookie or "null"},"queued":false,'
                    f'{owners}"event":{_OPEN_TEXT if kind == KIND_OPEN else _STATE_TEXT},'
                    f'"time":"{second_of[wall[:-7]]}.{wall[-6:]}+00:00","mono":{mono:.6f},"source":"bpf",{actor}'
                )
                append(f"{text}}}" if kind == KIND_OPEN else f'{text},"old_state":{_LABEL[old]}}}')
            if kind == KIND_CLOSE:
                n_close += 1
                if key in seen:
                    seen.discard(key)
                else:
                    new_connections += 1  # closed without being seen opening
            elif kind == KIND_OPEN:
                n_open += 1
                if key not in seen:
                    seen.add(key)
                    new_connections += 1
            else:
                n_state += 1
        shown.connections += new_connections
        for kind_, n in ((_OPENED, n_open), (_CLOSED, n_close), (_STATE, n_state)):
            if n:
                counted[kind_] += n
                shown.by_kind[kind_] += n
                shown.total += n
        return cookies

    def _slow(self, events: list[Event]) -> None:
        """Events the engine made (and counted): rendered in their place."""
        if events and self.matches is not None:
            matches = self.matches
            events = [ev for ev in events if ev.kind is _LOST or matches(EventView(ev))]
        if events:
            self.out += map(self.render, events)
            self.shown.add_all(events)

    def _address(self, family: int, raw: bytes) -> tuple[str, IPAddress] | None:
        if family not in _FAMILY:
            return None
        if len(self._addr) >= _MAX:
            self._addr.clear()
        addr = address_of(family, raw)
        known = self._addr[family, raw] = (f'"{addr}"', addr)
        return known

    def _local(self, state: int, raw: bytes, family: int) -> tuple[str, IPAddress] | None:
        """The line's start up to the local port's value, and the local address."""
        local = self._address(family, raw)
        label = _LABEL[state]
        if local is None or label is None:
            return None
        if len(self._head) >= _MAX:
            self._head.clear()
        known = self._head[state, raw, family] = (
            f'{{"proto":"tcp","family":{_FAMILY[family]},"state":{label},'
            f'"local_address":{local[0]},"local_port":',
            local[1],
        )
        return known

    def _owner(self, pid: int, comm: bytes) -> tuple[str, str, str]:
        if len(self._who) >= _MAX:
            self._who.clear()
        owner = Owner(pid, comm_of(comm), -1)
        known = self._who[pid, comm] = (_bpf_owner[owner], _bpf_actor[owner], _who_text[owner])
        return known

    def _text(
        self,
        row: Row,
        state: int,
        laddr: IPAddress,
        raddr: IPAddress,
        who: str,
        wall_offset: float,
        nt: Notation,
    ) -> str:
        """``render_event_line`` of the row's event: watch's text lines (which cost more
        than the JSON and are written less under load: a call per row is fine here)."""
        (_h, _p, kind, _f, _sk, start, ts, _c, _pid, _ns, _comm, family, sport, dport, old, _new, _sa, _da,
         sent, _acked, received, srtt, retrans) = row  # fmt: skip
        end = ts / 1e9
        mono = (start or ts) / 1e9 if kind == KIND_OPEN else end
        clock = f"{mono + wall_offset:.6f}"  # render.events._clock, inline
        ends = self._ends
        local = ends.get((laddr, sport)) or self._end(laddr, sport, nt)
        remote = ends.get((raddr, dport)) or self._end(raddr, dport, nt)
        column = _STATE_COLUMN[_STATES[state], _STATES[old] if kind == KIND_STATE else None, _TCP]
        line = (
            f"{_local_second[clock[:-7]]}.{clock[-6:-3]} {_KIND_COLUMNS[kind]} "
            f"{_PROTO_COLUMN[_TCP, _FAMILY[family]]} {local:<21} {remote:<21} {column} {who}"
        )
        if kind != KIND_CLOSE:
            return line
        if start:
            line += f" dur={format_duration(end - start / 1e9)}"
        line += f" sent={format_size(sent)} recv={format_size(received)} rtt={srtt / 1000:.2f}ms"
        return f"{line} retrans={retrans}" if retrans else line

    def _end(self, addr: IPAddress, port: int, nt: Notation) -> str:
        if len(self._ends) >= _MAX:
            self._ends.clear()
        text = self._ends[addr, port] = nt.join(nt.host(addr), nt.port(port, _TCP))
        return text
