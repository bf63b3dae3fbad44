"""The watch engine: every connection's life, merged from its sources, as a state machine.

Pure: no clock, no I/O. The loop (``watch.loop.Watcher``) reads the sources and feeds
what they delivered, with the time it was read; events come back:

- ``on_dump``: a poll's sock_diag dump (diffed by socket cookie): accepts, drops, UDP,
  sockets that existed before the watch, anything a faster source missed;
- ``on_destroyed``: the kernel's destroy broadcasts (every closed socket with its final
  counters, no root needed);
- ``on_trace``: tracepoint records read through tracefs (every TCP transition);
- ``on_bpf``: records of sockscope's eBPF program (one per connection, in the kernel);
- ``settle``: time passed; closes that never came through their source are given up on.

Every close is reported once, whichever sources saw it (dedup by socket cookie), and a
duration counts from the socket's opening when a source saw it open, else from the first
sighting, flagged as a lower bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

from sockscope.model.diff import Key, diff
from sockscope.model.endpoint import Endpoint, Owner, TKey, tuple_key
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.watch.aging import forget_before, touch
from sockscope.watch.bpf_events import BpfMerger
from sockscope.watch.stats import WatchStats
from sockscope.watch.traced import Tasks, TraceMerger
from sockscope.watch.wiped import WIPED_WAIT, PeerIndex, is_wiped
from sockscope.wire.ebpf.records import BpfRecord
from sockscope.wire.ftrace import StateChange

#: A socket that vanished from a dump waits this long for its destroy message (the kernel
#: sends those from a workqueue, so they can trail the dump).
DESTROY_GRACE = 0.5
#: ... and this long (of eBPF records read after it vanished) for its eBPF close record,
#: which the kernel writes before the socket leaves the tables a dump walks.
BPF_GRACE = 0.25
#: With the tracepoint on, a destroy message waits until the tracepoint reader is past
#: it (see _destroy_due), at most this long.
MAX_TRACE_LAG = 30.0
#: How long an accept waits for the owner scan before it is reported without an owner.
OWNER_WAIT = 3.0
#: What the tracepoint and the eBPF program report exactly; the poll's own view of these
#: is dropped for sockets they follow (accepts and drops are the poll's alone).
TRACED_KINDS = frozenset({EventKind.OPENED, EventKind.STATE, EventKind.LISTEN})
CLOSING_KINDS = frozenset({EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND})
REMNANT_KINDS = frozenset({EventKind.OPENED, EventKind.CLOSED, EventKind.STATE, EventKind.ACCEPTED})
#: Closed cookies are remembered this long: a dump that raced with a close can still
#: show the socket, and late messages must not close it twice.
CLOSED_MEMORY = 10.0
#: States a connection leaves for CLOSE only when aborted (reset, ``ss -K``, SO_LINGER 0).
ABORTABLE = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECV})
#: How many closed-but-held sockets are remembered until their destroy message.
HELD_CLOSED_MAX = 65536
#: The timeouts above are checked this often: each check walks tables that hold tens of
#: thousands of sockets under load, too many to walk on every call.
SETTLE_EVERY = 0.2


class Tape(Protocol):
    """Where an engine writes its calls (``watch.tape.TapeRecorder``)."""

    def config(self, cfg: EngineConfig) -> None: ...
    def call(self, op: str, now: float, wall_offset: float, **args: object) -> None: ...
    def tasks(self, inner: Tasks) -> Tasks: ...


class EngineConfig(NamedTuple):
    """What the engine is fed and what it reports."""

    interval: float = 1.0  # between dumps
    netns: str = ""  # the watched namespace's name, for the endpoints
    families: tuple[int, ...] = (4, 6)
    destroy: frozenset[Proto] = frozenset()  # protocols whose destroy messages come
    trace: bool = False  # tracepoint records come (tracefs)
    bpf: bool = False  # eBPF records come (TCP)
    processes: bool = False  # dumps carry owners: accepts wait for theirs
    kinds: frozenset[EventKind] | None = None  # the kinds reported; None: every kind
    ns_inode: int = 0  # the watched namespace's inode (the tracepoint's records)


class Engine:
    """Events in the order their sources delivered them, each close once."""

    def __init__(self, config: EngineConfig, tasks: Tasks | None = None, tape: Tape | None = None) -> None:
        self.cfg = config
        #: Every call is written here first, when set (see ``watch.tape``).
        self.tape = tape
        if tape is not None:
            tape.config(config)
            if tasks is not None:
                tasks = tape.tasks(tasks)
        self.stats = WatchStats()
        self.wall_offset = 0.0  # wall time = monotonic + this; the loop keeps it current
        self.table: dict[Key, Endpoint] = {}
        self.first_seen: dict[Key, float] = {}
        self.closed: dict[Key, float] = {}  # reported closed, oldest first
        #: Sockets reported closed that a process still held: their destroy message comes
        #: when it closes them, however late (bounded: such aborts are rare).
        self.held_closed: dict[Key, float] = {}
        self._by_tuple: dict[TKey, Endpoint] = {}  # the last dump's sockets, for the tracepoint
        self.vanished: dict[Key, tuple[Endpoint, float]] = {}
        self.destroyed: deque[tuple[Endpoint, float]] = deque()
        self.wiped: list[tuple[Endpoint, float]] = []
        self.awaiting_owner: list[Event] = []
        self.listeners: dict[tuple[int, int], Owner] = {}  # (family, port) -> owner
        self.peers = PeerIndex()
        self.destroy_horizon = -1e18  # every destroy message sent before this was fed
        self.trace_upto = -1e18  # every tracepoint record before this was fed
        self.bpf_upto = -1e18  # every eBPF record before this was fed
        self.wants_dump = False  # a source lost messages: a dump resynchronises
        self._next_settle = 0.0
        self.trace: TraceMerger | None = None
        if config.trace:
            assert tasks is not None, "the tracepoint's records need a Tasks"
            self.trace = TraceMerger(
                families=config.families,
                netns=config.netns,
                ns_inode=config.ns_inode,
                tasks=tasks,
                listener_owner=self.listener_owner,
                interval=config.interval,
                awaits_destroy=Proto.TCP in config.destroy,
                held_open=self._aborted_while_held,
            )
        #: TCP destroy messages come beside the eBPF records: the safety net a loss of
        #: records engages (``engage_destroy_net``); they report only what eBPF missed.
        self.destroy_net = False
        self._bpf_closed: dict[tuple[object, ...], float] = {}  # (local port, peer) of eBPF closes
        self.bpf: BpfMerger | None = None
        if config.bpf:
            self.bpf = BpfMerger(netns=config.netns, seen=self._seen, listener_owner=self.listener_owner)

    # -- inputs ----------------------------------------------------------------------

    def on_dump(self, endpoints: Sequence[Endpoint], now: float, *, first: bool = False) -> list[Event]:
        """A poll's dump (owners attached when they are watched), read at ``now``.

        The first dump describes what existed before the watch: it makes no event.
        """
        if self.tape is not None:
            self.tape.call("dump", now, self.wall_offset, endpoints=endpoints, first=first)
        wall = now + self.wall_offset
        events, table = diff(self.table, endpoints, now, wall, self.first_seen)
        self.table = table
        self.listeners = {
            (ep.family, ep.local_port): ep.owners[0]
            for ep in table.values()
            if ep.state is TcpState.LISTEN and ep.owners
        }
        if first:
            for key in table:
                self.first_seen.setdefault(key, now)
            return []
        out: list[Event] = []
        if self.trace is not None:
            self._by_tuple = {tuple_key(ep): ep for ep in table.values()}
        if self.trace is not None and self.trace.undecided:
            first_seen = self.first_seen
            present = {tuple_key(ep): first_seen.get(key, now) for key, ep in table.items()}
            out += self.trace.confirm_present(present, now)
        out += self._with_owners(self._from_poll(events, now), now)
        return self._report(out)

    def on_destroyed(
        self, messages: Sequence[tuple[Endpoint, float]], overruns: int, horizon: float, now: float
    ) -> list[Event]:
        """Destroy messages, each with when it was read; ``overruns`` lost to ENOBUFS;
        every message sent before ``horizon`` has been read."""
        if self.tape is not None:
            self.tape.call(
                "destroyed", now, self.wall_offset, messages=messages, overruns=overruns, horizon=horizon
            )
        out: list[Event] = []
        if overruns:
            self.stats.destroy_overruns += overruns
            self.wants_dump = True  # what vanished meanwhile is found by the next dump
            first = messages[0][0] if messages else _NOTHING
            out.append(
                Event(EventKind.LOST, first, now, now + self.wall_offset, Source.DESTROY, amount=overruns)
            )
        self.destroy_horizon = max(self.destroy_horizon, horizon)
        self.destroyed.extend(messages)
        out += self._drain(now)
        return self._report(out)

    def on_trace(self, records: Sequence[StateChange], upto: float, now: float) -> list[Event]:
        """Tracepoint records, oldest first; every record before ``upto`` has been read."""
        if self.tape is not None:
            self.tape.call("trace", now, self.wall_offset, records=records, upto=upto)
        assert self.trace is not None
        self.trace.wall_offset = self.wall_offset
        out = self.trace.on_records(records)
        self.trace_upto = max(self.trace_upto, upto)
        out += self._drain(now)
        return self._report(out)

    def on_trace_overruns(self, total: int, now: float) -> list[Event]:
        """The tracepoint's ring buffer has dropped ``total`` records so far."""
        if self.tape is not None:
            self.tape.call("trace_overruns", now, self.wall_offset, total=total)
        new = total - self.stats.trace_overruns
        if new <= 0:
            return []
        self.stats.trace_overruns = total
        return self._report(
            [Event(EventKind.LOST, _NOTHING, now, now + self.wall_offset, Source.TRACE, amount=new)]
        )

    def on_bpf(self, records: Sequence[BpfRecord], now: float) -> list[Event]:
        """eBPF records, in the ring buffer's order, all read at ``now``."""
        assert self.bpf is not None
        if self.tape is not None:
            self.tape.call("bpf", now, self.wall_offset, records=records)
        bpf = self.bpf
        bpf.wall_offset = self.wall_offset
        out = bpf.on_records(records)  # the program writes only the kinds asked for...
        self.bpf_upto = now
        if self.destroy_net:
            for ev in out:
                if ev.kind is EventKind.CLOSED:
                    ep = ev.endpoint
                    touch(self._bpf_closed, (ep.local_port, ep.remote_address, ep.remote_port), now)
                    # A reset's destroy message has lost its peer's port: it is found by this.
                    touch(self._bpf_closed, (ep.local_port, ep.remote_address, 0), now)
        if bpf.closed_cookies:
            self._bpf_closed_cookies(bpf.closed_cookies, now)
            bpf.closed_cookies.clear()
        self.stats.opens_missed = bpf.stats.opens_missed
        return self._report(out)

    def on_bpf_closed(self, cookies: Iterable[int], now: float) -> list[Event]:
        """Sockets whose close an eBPF record reported, by cookie (from ``on_bpf``, or
        from records a consumer turned into output itself): no dump or destroy message
        reports them again."""
        if self.tape is not None:
            cookies = list(cookies)
            self.tape.call("bpf_closed", now, self.wall_offset, cookies=cookies)
        self._bpf_closed_cookies(cookies, now)
        self.bpf_upto = now
        return []

    def _bpf_closed_cookies(self, cookies: Iterable[int], now: float) -> None:
        closed, vanished = self.closed, self.vanished
        for cookie in cookies:
            key = (Proto.TCP, cookie)
            touch(closed, key, now)
            vanished.pop(key, None)

    def on_bpf_losses(self, lost: int, recursion: int, map_full: int, now: float) -> list[Event]:
        """The eBPF program's loss counters, as totals so far: increases are reported."""
        if self.tape is not None:
            self.tape.call(
                "bpf_losses", now, self.wall_offset, lost=lost, recursion=recursion, map_full=map_full
            )
        s = self.stats
        out = []
        for name, total, what in (
            ("bpf_lost", lost, "ring buffer full"),
            ("bpf_recursion", recursion, "program runs skipped"),
            ("bpf_map_full", map_full, "connection map full"),
        ):
            new = total - getattr(s, name)
            if new > 0:
                setattr(s, name, total)
                ev = Event(EventKind.LOST, _NOTHING, now, now + self.wall_offset, Source.BPF, amount=new)
                out.append(ev)
                self.wants_dump = self.wants_dump or what != "connection map full"
        return self._report(out)

    def engage_destroy_net(self) -> None:
        """TCP destroy messages come from now on: each one whose close the eBPF records
        did not report (they lost it) is reported from the message."""
        self.destroy_net = True

    def settle(self, now: float) -> list[Event]:
        """Give up on closes that never came through their source (counted)."""
        if self.tape is not None:
            self.tape.call("settle", now, self.wall_offset)
        if now < self._next_settle:
            return self._report(self._drain(now))
        self._next_settle = now + SETTLE_EVERY
        self.peers.expire(now)
        out = self._drain(now)
        for key, (ep, since) in list(self.vanished.items()):
            if self._close_overdue(ep, since):
                del self.vanished[key]
                self.stats.lost_closes += 1
                out.append(self._poll_close(ep, key, now))
                touch(self.closed, key, now)
        forget_before(self.closed, now - CLOSED_MEMORY, float)
        forget_before(self._bpf_closed, now - CLOSED_MEMORY, float)
        if self.trace is not None:
            out += self.trace.expire(now, self._horizon(now))
            self.stats.foreign = self.trace.stats.foreign
            self.stats.closes_from_trace = self.trace.stats.closes_from_trace
        return self._report(out)

    # -- the poll --------------------------------------------------------------------

    def _from_poll(self, events: list[Event], now: float) -> list[Event]:
        out = []
        trace, bpf = self.trace, self.bpf is not None
        for ev in events:
            ep = ev.endpoint
            key = ep.key
            kind = ev.kind
            if key in self.closed or key in self.held_closed:
                continue  # a remnant of a socket already reported closed
            if kind in REMNANT_KINDS and _remnant(ep):
                # Remnants of connections that already closed: cookies are made lazily,
                # so one never dumped before its close gets a new one as a remnant.
                continue
            if kind in (EventKind.OPENED, EventKind.LISTEN, EventKind.BOUND):
                self.first_seen.setdefault(key, ev.mono)
            tcp = ep.proto is Proto.TCP
            if kind in CLOSING_KINDS:
                if tcp and ep.inode and ep.state in ABORTABLE and not bpf:
                    # Aborted while a process holds it (reset, ss -K): its destroy message
                    # comes only when that process closes it. Reported now.
                    self._hold_closed(key, now)
                    self.stats.lost_closes += 1
                    out.append(self._poll_close(ep, key, now))
                    continue
                if (tcp and (bpf or trace is not None)) or ep.proto in self.cfg.destroy:
                    self.vanished[key] = (ep, now)  # wait for its close from its source
                    continue
                out.append(ev._replace(lower_bound=ev.duration is not None))  # poll only
                continue
            if tcp and kind in TRACED_KINDS and (bpf or (trace is not None and trace.covers(tuple_key(ep)))):
                continue  # reported exactly by the kernel-side source
            out.append(ev)
        return out

    def _with_owners(self, events: list[Event], now: float) -> list[Event]:
        """Hold ``accepted`` events until a dump shows their owner.

        The owner scan is rate-limited; an accept is the moment a socket gains its
        owner, so reporting it without one would miss the point.
        """
        if not self.cfg.processes:
            return events
        out: list[Event] = []
        waiting: list[Event] = []
        for ev in [*self.awaiting_owner, *events]:
            if ev.kind is not EventKind.ACCEPTED or ev.endpoint.owners:
                out.append(ev)
                continue
            now_ep = self.table.get(ev.endpoint.key)
            if now_ep is not None and now_ep.owners:
                out.append(ev._replace(endpoint=ev.endpoint._replace(owners=now_ep.owners)))
            elif now - ev.mono < OWNER_WAIT and now_ep is not None:
                waiting.append(ev)
            else:
                out.append(ev)
        self.awaiting_owner = waiting
        return out

    def owner_inodes(self) -> list[int]:
        """Inodes whose owners the engine waits for (the loop's owner scan includes them)."""
        return [ev.endpoint.inode for ev in self.awaiting_owner]

    def _poll_close(self, ep: Endpoint, key: Key, now: float) -> Event:
        """A close seen only as a socket missing from a dump."""
        opened = self.first_seen.pop(key, None)
        kind = EventKind.UNLISTEN if ep.state is TcpState.LISTEN else EventKind.CLOSED
        if ep.proto is Proto.UDP and not ep.has_peer:
            kind = EventKind.UNBOUND
        duration = None if opened is None else now - opened
        return Event(
            kind,
            ep,
            now,
            now + self.wall_offset,
            Source.POLL,
            duration=duration,
            lower_bound=duration is not None,
        )

    def _close_overdue(self, ep: Endpoint, since: float) -> bool:
        if ep.proto is Proto.TCP and self.bpf is not None:
            return self.bpf_upto - since >= BPF_GRACE
        return self._horizon(since) - since >= DESTROY_GRACE

    def _horizon(self, now: float) -> float:
        """Every destroy message for a socket closed before this time has been handled."""
        if not self.cfg.destroy:
            return now
        horizon = self.destroy_horizon
        if self.destroyed:
            horizon = min(horizon, self.destroyed[0][1])
        return horizon

    # -- destroy messages ------------------------------------------------------------

    def _drain(self, now: float) -> list[Event]:
        """Destroy messages that can be handled now, and reset sockets rebuilt since."""
        out: list[Event] = []
        destroyed = self.destroyed
        while destroyed and self._destroy_due(destroyed[0][1], now):
            ep = destroyed.popleft()[0]
            if is_wiped(ep) and self.trace is None and not self._known(ep.key):
                self.wiped.append((ep, now))  # its peer may tell its 4-tuple
                continue
            out += self._on_destroyed(ep, now)
        if self.wiped:
            out += self._rebuild_wiped(now)
        return out

    def _known(self, key: Key) -> bool:
        return key in self.table or key in self.vanished or key in self.closed

    def _destroy_due(self, read_at: float, now: float) -> bool:
        """Whether a destroy message read at ``read_at`` can be handled now.

        With the tracepoint on, only once its reader is past the moment the message was
        read: the socket's last records, from another buffer, are then all in and merge
        into its close. A watcher behind a burst lags on both sources alike and keeps
        them in step; one that never catches up waits at most ``MAX_TRACE_LAG``.
        """
        if self.destroy_net:  # the eBPF records of the same close are in by then
            return self.bpf_upto > read_at + BPF_GRACE or now - read_at >= MAX_TRACE_LAG
        if self.trace is None or not read_at:
            return True
        return self.trace_upto > read_at or now - read_at >= MAX_TRACE_LAG

    def _on_destroyed(self, ep: Endpoint, now: float) -> list[Event]:
        """A socket of the watched namespace is gone (a destroy broadcast)."""
        key = ep.key
        if key in self.closed or self.held_closed.pop(key, None) is not None:
            return []  # already reported, by the poll's patience or another source
        if self.destroy_net and ep.proto is Proto.TCP:
            if (ep.local_port, ep.remote_address, ep.remote_port or 0) in self._bpf_closed:
                return []  # the eBPF records reported it
            self.stats.closes_recovered += 1
        prev = self.table.pop(key, None) or self.vanished.pop(key, (None, 0.0))[0]
        touch(self.closed, key, now)
        opened = self.first_seen.pop(key, None)
        if prev is not None and is_wiped(ep):
            # A reset wiped its addresses; a dump knew them.
            ep = ep._replace(
                local_address=prev.local_address,
                remote_address=prev.remote_address,
                remote_port=prev.remote_port,
            )
        merged = None
        if self.trace is not None:
            ep, tkey = self._trace_tuple(ep, prev)
            if self.trace.already_closed(tkey):
                return []  # reported from the tracepoint when this message was overdue
            merged = self._merge_trace(tkey, ep)
        flushed: list[Event] = []
        process = None
        last_state = prev.state if prev is not None else None
        exact_open = False
        if merged is not None:
            flushed, ep, t_open, trace_state, process, closed_at = merged
            now = closed_at
            last_state = trace_state or last_state
            if t_open is not None:
                opened, exact_open = t_open, True
        kind = _closing_kind(ep, prev, last_state)
        owners = prev.owners if prev is not None else ep.owners
        if process is None and not owners and ep.proto is Proto.TCP:
            # Without the tracepoint a short connection is never seen alive; the server
            # end still belongs to whoever holds the listener on its local port.
            process = self.listener_owner(ep.local_port, ep.family)
        state = last_state or ep.state
        shown = ep if state is ep.state and owners is ep.owners else ep._replace(state=state, owners=owners)
        if self.trace is None:  # (the tracepoint knows a reset socket's tuple itself)
            self.peers.remember(shown, now)
        duration = None if opened is None else max(0.0, now - opened)
        close = Event(
            kind,
            shown,
            now,
            now + self.wall_offset,
            Source.DESTROY,
            duration=duration,
            process=process,
            lower_bound=duration is not None and not exact_open,
        )
        return [*flushed, close]

    def _trace_tuple(self, ep: Endpoint, prev: Endpoint | None) -> tuple[Endpoint, TKey]:
        """The destroyed socket's 4-tuple, rebuilt from the tracepoint after a reset."""
        assert self.trace is not None
        if prev is None and not ep.remote_port and ep.proto is Proto.TCP:
            wiped = self.trace.reset_close(ep.local_port)
            if wiped is not None:
                ep = ep._replace(local_address=wiped[1], remote_address=wiped[3], remote_port=wiped[4])
                return ep, wiped
        return ep, tuple_key(ep)

    def _merge_trace(
        self, tkey: TKey, ep: Endpoint
    ) -> tuple[list[Event], Endpoint, float | None, TcpState | None, Owner | None, float] | None:
        """What the tracepoint knows of a destroyed socket: the records it held, its open
        time, last state, process and exact close time; None if it knows nothing."""
        assert self.trace is not None
        taken = self.trace.take_close(tkey)
        if taken is None:
            return None
        held, closing = taken
        if closing.ours is False:
            return None  # another namespace's socket with the same 4-tuple closed too
        return held, ep, closing.opened, closing.state, closing.process, closing.event.mono

    def _rebuild_wiped(self, now: float) -> list[Event]:
        """Reset sockets whose other end is known now (or that waited long enough)."""
        out: list[Event] = []
        waiting = []
        for ep, since in self.wiped:
            fixed = self.peers.resolve(ep, self.table.values())
            if fixed is not None or now - since >= WIPED_WAIT:
                out += self._on_destroyed(fixed or ep, now)
            else:
                waiting.append((ep, since))
        self.wiped = waiting
        return out

    # -- shared ----------------------------------------------------------------------

    def _aborted_while_held(self, tkey: TKey) -> bool:
        """Whether the tracepoint's close of ``tkey`` is of a socket a process holds (the
        last dump showed an inode): then no destroy message comes until it lets go."""
        ep = self._by_tuple.get(tkey)
        if ep is None or not ep.inode:
            return False
        self._hold_closed(ep.key, 0.0)
        return True

    def _hold_closed(self, key: Key, now: float) -> None:
        touch(self.held_closed, key, now)
        while len(self.held_closed) > HELD_CLOSED_MAX:
            del self.held_closed[next(iter(self.held_closed))]

    def listener_owner(self, port: int, family: int) -> Owner | None:
        """The process holding the listener on ``port``: who accepted connections there."""
        return self.listeners.get((family, port))

    def _seen(self, cookie: int) -> tuple[Endpoint | None, float | None]:
        """A socket a dump showed, by cookie, and when a dump first showed it."""
        key = (Proto.TCP, cookie)
        ep = self.table.pop(key, None) or self.vanished.pop(key, (None, 0.0))[0]
        return ep, self.first_seen.pop(key, None)

    def _report(self, events: list[Event]) -> list[Event]:
        """The events of the kinds asked for, counted."""
        kinds = self.cfg.kinds
        if kinds is not None:
            events = [ev for ev in events if ev.kind in kinds or ev.kind is EventKind.LOST]
        counter = self.stats.events
        for ev in events:
            counter[ev.kind] += 1  # an EventKind is its name: no .value lookup per event
        return events


def _remnant(ep: Endpoint) -> bool:
    """A TIME_WAIT remnant: a closed connection's minisock, whatever state it shows. An
    orphaned FIN_WAIT2 becomes one at once and dumps as FIN_WAIT2 (its timer says
    "timewait"): its full socket's close was reported already."""
    return ep.state is TcpState.TIME_WAIT or (ep.timer is not None and ep.timer.kind == "timewait")


def _closing_kind(ep: Endpoint, prev: Endpoint | None, last_state: TcpState | None) -> EventKind:
    if (prev is not None and prev.state is TcpState.LISTEN) or last_state is TcpState.LISTEN:
        return EventKind.UNLISTEN
    if ep.proto is Proto.UDP and not ep.has_peer:
        return EventKind.UNBOUND
    return EventKind.CLOSED


_NOTHING = Endpoint(Proto.TCP, 0, TcpState.CLOSE, None, 0, None, None, 0, 0, None, 0, None)
