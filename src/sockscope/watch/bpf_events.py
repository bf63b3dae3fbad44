"""Records of sockscope's eBPF program into events: pure, one record per fact.

The program keeps each connection in a kernel map and writes a record only when
something is to be reported: a close (always, with both times, the owner and the final
counters), a listen, and, when asked, the moment a connection is established (``OPEN``,
carrying its birth time) and every other transition (``STATE``). Its records are of the
watched namespace only and already filtered by port, so this is a straight translation,
plus what only user space knows: the owners and first sighting of sockets that existed
before the program was attached (its dumps saw them; the cookie links the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sockscope.model.endpoint import Endpoint, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.wire.ebpf.records import (
    FLAG_LISTENER,
    FLAG_MIDLIFE,
    FLAG_NO_ENTRY,
    FLAG_PID,
    KIND_CLOSE,
    KIND_LISTEN,
    KIND_OPEN,
    KIND_STATE,
    BpfRecord,
)

_new = tuple.__new__
_TCP, _BPF = Proto.TCP, Source.BPF
_OPENED, _CLOSED, _STATE, _LISTEN, _UNLISTEN = (
    EventKind.OPENED,
    EventKind.CLOSED,
    EventKind.STATE,
    EventKind.LISTEN,
    EventKind.UNLISTEN,
)
_LISTEN_STATE = TcpState.LISTEN

_UNSURE_START = FLAG_NO_ENTRY | FLAG_MIDLIFE
_NAMED = FLAG_PID | FLAG_LISTENER


#: A socket a dump has shown, by cookie: (its endpoint, when a dump first showed it).
Seen = Callable[[int], "tuple[Endpoint | None, float | None]"]


class BpfStats:
    """What the records could not say."""

    __slots__ = ("opens_missed", "preexisting")

    def __init__(self) -> None:
        self.preexisting = 0  # closes of sockets born before the program: named from a dump
        self.opens_missed = 0  # closes without an entry that no dump explains


class BpfMerger:
    """Turns the program's records into ``Event``s."""

    def __init__(self, *, netns: str, seen: Seen, listener_owner: Callable[[int, int], Owner | None]) -> None:
        self.netns = netns
        self.seen = seen
        self.listener_owner = listener_owner
        self.wall_offset = 0.0
        self.stats = BpfStats()
        self._owners: dict[tuple[int, str], tuple[Owner, tuple[Owner, ...]]] = {}
        #: Cookies of sockets the records closed (so a dump's view of them is not reported).
        self.closed_cookies: list[int] = []

    def on_records(self, records: Iterable[BpfRecord]) -> list[Event]:
        """The events of ``records``, in their order."""
        out: list[Event] = []
        append = out.append
        close = self._close
        for rec in records:
            kind = rec[0]
            if kind == KIND_CLOSE:
                append(close(rec))
            elif kind == KIND_OPEN:
                append(self._event(rec, _OPENED, rec.newstate, (rec.start_ns or rec.ts_ns) / 1e9))
            elif kind == KIND_STATE:
                append(self._event(rec, _STATE, rec.newstate, rec.ts_ns / 1e9, old=rec.oldstate))
            elif kind == KIND_LISTEN:
                append(self._event(rec, _LISTEN, _LISTEN_STATE, rec.ts_ns / 1e9))
        return out

    def _owner(self, rec: BpfRecord) -> tuple[Owner | None, tuple[Owner, ...]]:
        """The record's owner, and the owners tuple of its endpoint (made once per pid)."""
        if not rec[1] & _NAMED:
            return None, ()
        key = (rec[6], rec[8])  # pid, comm
        known = self._owners.get(key)
        if known is None:
            if len(self._owners) > 65536:
                self._owners.clear()
            owner = Owner(rec[6], rec[8], -1)
            known = self._owners[key] = (owner, (owner,))
        return known

    def _event(
        self,
        rec: BpfRecord,
        kind: EventKind,
        state: TcpState,
        mono: float,
        owners: tuple[Owner, ...] | None = None,
        info: TcpInfo | None = None,
        duration: float | None = None,
        lower_bound: bool = False,
        old: TcpState | None = None,
    ) -> Event:
        proc, named = self._owner(rec)
        if owners is None:
            owners = named
        elif proc is None and owners:
            proc = owners[0]
        listening = state is _LISTEN_STATE
        raddr = None if listening else rec.daddr
        # Built with tuple.__new__, field by field (see Endpoint and Event): this runs for
        # every record, and the keyword form costs twice as much.
        ep = _new(
            Endpoint,
            (
                _TCP, rec.family, state, rec.saddr, rec.sport, raddr,
                None if listening else rec.dport, 0, 0, None, 0, rec.cookie or None, 0, None, info,
                None, None, owners, self.netns, None, None, None,
            ),
        )  # fmt: skip
        return _new(
            Event, (kind, ep, mono, mono + self.wall_offset, _BPF, old, duration, None, proc, lower_bound)
        )

    def _close(self, rec: BpfRecord) -> Event:
        """A close: the common case (an owner, a known start) built in one go."""
        (_kind, flags, _sk, start, ts, cookie, _pid, _ns, _comm, family, sport, dport, old, _new_state,
         saddr, daddr, sent, acked, received, srtt, retrans) = rec  # fmt: skip
        if flags & _UNSURE_START or not flags & _NAMED or old is _LISTEN_STATE:
            return self._close_slowly(rec)
        if cookie:
            self.closed_cookies.append(cookie)
        proc, owners = self._owner(rec)
        end = ts / 1e9
        info = _new(
            TcpInfo, (srtt, 0, 0, 0, 0, 0, retrans, 0, 0, sent, acked, received, 0, 0, 0, 0, 0, 0, 0, 0)
        )
        ep = _new(
            Endpoint,
            (
                _TCP, family, old, saddr, sport, daddr, dport, 0, 0, None, 0, cookie or None, 0, None, info,
                None, None, owners, self.netns, None, None, None,
            ),
        )  # fmt: skip
        duration = end - start / 1e9 if start else None
        return _new(
            Event, (_CLOSED, ep, end, end + self.wall_offset, _BPF, None, duration, None, proc, False)
        )

    def _close_slowly(self, rec: BpfRecord) -> Event:
        """A close that needs what user space knows: a socket older than the program (its
        owner and first sighting from a dump), a listener, or one without an owner."""
        old = rec.oldstate
        kind = _UNLISTEN if old is _LISTEN_STATE else _CLOSED
        end = rec.ts_ns / 1e9
        info = _new(
            TcpInfo,
            (
                rec.srtt_us, 0, 0, 0, 0, 0, rec.total_retrans, 0, 0, rec.bytes_sent, rec.bytes_acked,
                rec.bytes_received, 0, 0, 0, 0, 0, 0, 0, 0,
            ),
        )  # fmt: skip
        owners = None
        duration: float | None = (end - rec.start_ns / 1e9) if rec.start_ns else None
        lower = False
        if rec.cookie:
            self.closed_cookies.append(rec.cookie)
        if rec.flags & _UNSURE_START:
            seen, first = self.seen(rec.cookie) if rec.cookie else (None, None)
            if seen is not None:
                self.stats.preexisting += 1
                owners = seen.owners or None
            elif rec.flags & FLAG_NO_ENTRY:
                self.stats.opens_missed += 1
            if first is not None and (duration is None or end - first > duration):
                duration = end - first
            lower = duration is not None
        ev = self._event(rec, kind, old, end, owners, info, duration, lower)
        if ev.process is None and rec.sport and kind is _CLOSED:
            # A connection accepted before the program knew its listener: the listener's
            # owner accepted it.
            proc = self.listener_owner(rec.sport, rec.family)
            if proc is not None:
                ev = ev._replace(process=proc)
        return ev
