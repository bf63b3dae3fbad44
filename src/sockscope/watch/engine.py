"""The watch engine: every connection's life, from three sources merged into one stream.

- Polling: sock_diag dumps every ``interval``, diffed by socket cookie. Sees accepts
  (inode 0 -> an inode), drops, UDP, and anything a faster source missed.
- Destroy broadcasts: every closed socket with its final counters, no root needed.
- The ``sock:inet_sock_set_state`` tracepoint (root): every TCP transition with its
  exact time, so connections shorter than a poll are seen opening too.

The tracepoint is host-wide. Its records are held until the connection is known to live
in the watched namespace: its owner process is in it, a dump of the namespace shows the
4-tuple, or the namespace's own destroy broadcast does. Unconfirmed records are left out
and counted as foreign.
"""

from __future__ import annotations

import select
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sockscope.model.diff import Key, diff
from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.query.dump import run_query
from sockscope.query.spec import KernelFilter, Query
from sockscope.sources.destroy import DestroySubscriber
from sockscope.sources.netns import entered_netns
from sockscope.sources.procfs import ProcFS, ephemeral_port_range
from sockscope.sources.tracefs import TraceSession, TraceUnavailableError
from sockscope.watch.aging import forget_before, touch
from sockscope.watch.owners import OwnerCache
from sockscope.watch.tracer import TKey, TraceMerger
from sockscope.watch.wiped import WIPED_WAIT, PeerIndex, is_wiped
from sockscope.wire.ftrace import filter_expression

#: A socket that vanished from a dump waits this long for its destroy message (the kernel
#: sends those from a workqueue, so they can trail the dump).
DESTROY_GRACE = 1.0
#: With the tracepoint on, a destroy broadcast waits until the tracepoint reader is past
#: it (see _destroy_due), at most this long; the select() timeout while one waits.
MAX_TRACE_LAG = 30.0
TRACE_LAG = 0.1
#: How long an accept waits for the owner scan before it is reported without an owner.
OWNER_WAIT = 3.0
#: What the tracepoint reports exactly; the poll's own view of these is dropped for
#: sockets the tracepoint covers (accepts and drops are the poll's alone).
TRACED_KINDS = frozenset({EventKind.OPENED, EventKind.STATE, EventKind.LISTEN})
#: Tracepoint pages (about 50 records each) handled between two reads of the destroy
#: messages.
TRACE_SLICE = 40
#: A dump that raced with a close can still show the socket; closed cookies are ignored
#: this long. (TIME_WAIT remnants, which keep the cookie, are never dumped.)
CLOSED_MEMORY = 10.0
#: The shortest time between two wake-ups: events are handled in batches at least this
#: far apart (a latency no one watching can see).
MIN_STEP = 0.01
#: The timeouts above are checked this often: each check walks tables that hold tens of
#: thousands of sockets under load, too many to walk on every wake-up.
SETTLE_EVERY = 0.2


@dataclass
class WatchStats:
    """What the watcher saw and what it could not see."""

    events: Counter[str] = field(default_factory=Counter)
    destroy_overruns: int = 0
    lost_closes: int = 0  # closes whose destroy message never came (found by a dump)
    closes_from_trace: int = 0  # closes whose destroy message never came (the tracepoint's)
    trace_overruns: int = 0
    foreign: int = 0  # tracepoint records left out: another namespace
    sources: tuple[str, ...] = ()
    #: Sources whose kernel side drops other ports' sockets (the filter's port spans).
    port_filtered: tuple[str, ...] = ()

    @property
    def lost(self) -> int:
        """Events known to be lost (0 when none)."""
        return self.destroy_overruns + self.trace_overruns


class Watcher:
    """An iterator of ``Event``s, plus the live table of current sockets (``table``)."""

    def __init__(
        self,
        query: Query,
        *,
        interval: float = 1.0,
        sources: Iterable[str] | None = None,
        procfs: ProcFS | None = None,
    ) -> None:
        # Two dumps a poll: everything but listeners on the fast path (no attributes), and
        # listeners alone with their memory counters (drops). TIME_WAIT remnants never
        # make an event (see _filter_poll) and a busy server has tens of thousands of
        # them, so they stay in the kernel.
        self.query = Query(
            protocols=query.protocols,
            families=query.families,
            kernel=KernelFilter(
                ALL_STATES - {TcpState.TIME_WAIT, TcpState.LISTEN}, query.kernel.bytecode, query.kernel.ports
            ),
            processes=False,
            tcp_info=query.tcp_info,
            netns=query.netns,
            source="netlink",
        )
        self.listen_query = Query(
            protocols=query.protocols,
            families=query.families,
            kernel=KernelFilter(frozenset({TcpState.LISTEN}), query.kernel.bytecode, query.kernel.ports),
            memory=True,
            netns=query.netns,
            source="netlink",
        )
        self.interval = interval
        wanted = set(sources) if sources is not None else {"poll", "destroy", "trace"}
        self.procfs = procfs or ProcFS()
        self.owners = OwnerCache(self.procfs) if query.processes else None
        self.stats = WatchStats()
        self.table: dict[Key, Endpoint] = {}
        self.first_seen: dict[Key, float] = {}
        self.closed: dict[Key, float] = {}
        self.vanished: dict[Key, tuple[Endpoint, float]] = {}
        self.destroyed: deque[tuple[Endpoint, float]] = deque()
        self.wiped: list[tuple[Endpoint, float]] = []
        self.awaiting_owner: list[Event] = []
        self.listeners: dict[tuple[int, int], Owner] = {}  # (family, port) -> owner
        self.peers = PeerIndex()
        self._next_settle = 0.0
        self._last_step = 0.0
        self.behind = False  # the last step left records unread
        #: Dumps taken so far; ``table`` holds the latest one's sockets (listeners with
        #: their drops, SYN_RECV children included).
        self.polls = 0
        self.destroy: DestroySubscriber | None = None
        self.trace: TraceMerger | None = None
        self.warnings: list[str] = []
        self._open(wanted)

    # -- setup ---------------------------------------------------------------------

    def _open(self, wanted: set[str]) -> None:
        active = ["poll"]
        if "destroy" in wanted:
            with entered_netns(self.query.netns):
                self.destroy = DestroySubscriber(
                    self.query.protocols, self.query.families, self.query.netns or "", self.query.kernel.ports
                )
            self.destroy.start()
            active.append("destroy")
        if "trace" in wanted and Proto.TCP in self.query.protocols:
            try:
                with entered_netns(self.query.netns):
                    ephemeral = ephemeral_port_range()
                self.trace = TraceMerger(
                    TraceSession(
                        event_filter=filter_expression(
                            self.query.kernel.ports, self.query.families, ephemeral
                        )
                    ),
                    self.query,
                    self,
                )
                active.append("trace")
            except TraceUnavailableError as exc:
                if "trace" in wanted and len(wanted) == 1:
                    raise
                self.warnings.append(
                    f"tracepoint source off: {exc}; opens shorter than the "
                    f"{self.interval:g}s poll are not seen"
                )
        self.stats.sources = tuple(active)
        self.stats.port_filtered = tuple(
            name
            for name, took in (
                ("destroy", self.destroy is not None and self.destroy.filtered),
                (
                    "trace",
                    self.trace is not None
                    and self.query.kernel.ports is not None
                    and self.trace.session.event_filter is not None,
                ),
            )
            if took
        )
        self._poll(emit=False)

    def close(self) -> None:
        """Release every source; safe to call twice."""
        if self.destroy is not None:
            self.destroy.close()
            self.destroy = None
        if self.trace is not None:
            self.stats.trace_overruns = self.trace.session.overruns()
            self.trace.session.close()
            self.trace = None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, until: float | None = None, idle: Callable[[], None] | None = None) -> Iterator[Event]:
        """Events as they happen, until the monotonic time ``until`` (forever with None).

        ``idle`` is called before every wait, once the events so far are handed out (a
        writer flushes there, a recorder commits).
        """
        next_poll = time.monotonic() + self.interval
        while until is None or time.monotonic() < until:
            if idle is not None:
                idle()
            wake = next_poll if until is None else min(next_poll, until)
            yield from self.step(max(0.0, wake - time.monotonic()))
            if time.monotonic() >= next_poll:
                yield from self._count(self._poll())
                next_poll += self.interval
                if next_poll < time.monotonic():
                    next_poll = time.monotonic() + self.interval

    def step(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` for the event sources and handle what they delivered."""
        fds = [
            *(self.destroy.fds() if self.destroy is not None else []),
            *(self.trace.fds() if self.trace is not None else []),
        ]
        if self.destroyed or self.wiped:
            timeout = min(timeout, TRACE_LAG)
        # Under load every source is ready all the time; waking for each message would
        # handle (and write out) a handful of events per wake-up. The kernel buffers
        # hold far more than one MIN_STEP's worth, so waiting costs nothing but latency.
        if self.behind:
            timeout = 0.0  # a backlog is waiting: no pause, no wait
        else:
            pause = min(self._last_step + MIN_STEP - time.monotonic(), timeout)
            if pause > 0:
                time.sleep(pause)
                timeout -= pause
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)
        self._last_step = time.monotonic()
        out: list[Event] = []
        if self.trace is not None:
            # Tracepoint records come in bursts of a hundred thousand; a step handles one
            # slice, so its events go out (and the destroy messages come in) in step
            # with the burst. What is left makes the next step start at once.
            out.extend(self.trace.read(TRACE_SLICE))
            if self.destroy is not None:
                out.extend(self._read_destroy())
            self.behind = self.trace.session.pending()
        elif self.destroy is not None:
            out.extend(self._read_destroy())
        now = time.monotonic()
        while self.destroyed and self._destroy_due(self.destroyed[0][1], now):
            ep = self.destroyed.popleft()[0]
            if is_wiped(ep) and ep.key not in self.table and self.trace is None:
                self.wiped.append((ep, now))
                continue
            out.extend(self.on_destroyed(ep))
        out.extend(self._rebuild_wiped(now))
        out.extend(self._settle(now))
        return self._count(out)

    # -- sources -------------------------------------------------------------------

    def _destroy_due(self, read_at: float, now: float) -> bool:
        """Whether a destroy message read at ``read_at`` can be handled now.

        With the tracepoint on, only once the tracepoint reader is past the moment it was
        received (the pipe found empty after it, or a record from after it read): the
        socket's last records, from another buffer, are then all in and are merged into
        its closed event. A watcher that lags behind a burst lags on both sources alike
        and keeps them in step; one that never catches up waits at most
        ``MAX_TRACE_LAG``.
        """
        if self.trace is None:
            return True
        return self.trace.read_upto() > read_at or now - read_at >= MAX_TRACE_LAG

    def destroy_horizon(self, now: float) -> float:
        """Every destroy message for a socket closed before this time has been handled.

        Tracepoint closes and vanished sockets wait for their destroy message until this
        horizon is past them by a grace period: measured on the horizon, not the clock, a
        watcher busy with a burst does not give up on messages it simply has not read yet.
        """
        if self.destroy is None:
            return now
        horizon = self.destroy.horizon
        if self.destroyed:
            horizon = min(horizon, self.destroyed[0][1])
        return horizon

    def _read_destroy(self) -> list[Event]:
        assert self.destroy is not None
        gone, overruns = self.destroy.read()
        out: list[Event] = []
        if overruns:
            self.stats.destroy_overruns += overruns
            now = time.monotonic()
            out.append(
                Event(
                    EventKind.LOST,
                    gone[0][0] if gone else _nothing(),
                    now,
                    _wall(now),
                    Source.DESTROY,
                    amount=overruns,
                )
            )
            out.extend(self._poll())  # resynchronise: find what vanished
        self.destroyed.extend(gone)
        return out

    def on_destroyed(self, ep: Endpoint) -> list[Event]:
        """A socket of the watched namespace is gone (a destroy broadcast)."""
        now = time.monotonic()
        key = ep.key
        prev = self.table.pop(key, None) or self.vanished.pop(key, (None, 0.0))[0]
        touch(self.closed, key, now)
        opened = self.first_seen.pop(key, None)
        if prev is not None and not ep.remote_port and prev.remote_port:
            ep = ep._replace(
                local_address=prev.local_address,
                remote_address=prev.remote_address,
                remote_port=prev.remote_port,
            )  # a reset wiped the addresses
        process = None
        last_state = prev.state if prev is not None else None
        flushed: list[Event] = []
        if self.trace is not None:
            tkey = tuple_key(ep)
            if prev is None and not ep.remote_port and ep.proto is Proto.TCP:
                wiped = self.trace.reset_close(ep.local_port)
                if wiped is not None:
                    tkey = wiped
                    ep = ep._replace(local_address=wiped[1], remote_address=wiped[3], remote_port=wiped[4])
            if self.trace.already_closed(tkey):
                return []  # reported from the tracepoint when this message was overdue
            flushed, opened, last_state, process, exact = self.trace.closed(tkey, opened, last_state)
            now = exact if exact is not None else now
        if (prev is not None and prev.state is TcpState.LISTEN) or (last_state is TcpState.LISTEN):
            kind = EventKind.UNLISTEN
        elif ep.proto is Proto.UDP and not ep.has_peer:
            kind = EventKind.UNBOUND
        else:
            kind = EventKind.CLOSED
        owners = prev.owners if prev is not None else ep.owners
        if process is None and not owners and ep.proto is Proto.TCP:
            # Without the tracepoint a short connection is never seen alive; the server
            # end still belongs to whoever holds the listener on its local port.
            process = self.listener_owner(ep.local_port, ep.family)
        state = last_state or ep.state
        shown = ep if state is ep.state and owners is ep.owners else ep._replace(state=state, owners=owners)
        if self.trace is None:  # (the tracepoint knows a reset socket's tuple itself)
            self.peers.remember(shown, now)
        return [
            *flushed,
            Event(
                kind,
                shown,
                now,
                _wall(now),
                Source.DESTROY,
                duration=None if opened is None else max(0.0, now - opened),
                process=process,
            ),
        ]

    def _rebuild_wiped(self, now: float) -> list[Event]:
        """Reset sockets whose other end is known now (or that waited long enough)."""
        out: list[Event] = []
        waiting = []
        for ep, since in self.wiped:
            fixed = self.peers.resolve(ep, self.table.values())
            if fixed is not None or now - since >= WIPED_WAIT:
                out.extend(self.on_destroyed(fixed or ep))
            else:
                waiting.append((ep, since))
        self.wiped = waiting
        return out

    def _poll(self, emit: bool = True) -> list[Event]:
        snap = run_query(self.query, procfs=self.procfs)
        self.polls += 1
        eps: list[Endpoint] = [*snap.endpoints]
        if Proto.TCP in self.query.protocols:
            eps += run_query(self.listen_query, procfs=self.procfs).endpoints
        if self.trace is not None:
            self.stats.trace_overruns = self.trace.session.overruns()
        if self.owners is not None:
            self.owners.refresh_for(
                [*(e.inode for e in eps), *(ev.endpoint.inode for ev in self.awaiting_owner)]
            )
            get = self.owners.get
            eps = [e._replace(owners=get(e.inode)) if e.inode else e for e in eps]
        now = snap.monotonic
        events, table = diff(self.table, eps, now, snap.taken_at, self.first_seen)
        self.table = table
        self.listeners = {
            (ep.family, ep.local_port): ep.owners[0]
            for ep in eps
            if ep.state is TcpState.LISTEN and ep.owners
        }
        # The tracepoint fires before a socket becomes visible to a dump, so reading it
        # after the dump yields every record of every socket the dump showed.
        traced = self.trace.read() if self.trace is not None else []
        confirmed = [*traced, *self.trace.confirm_table(table)] if self.trace is not None else []
        if not emit:
            for key in table:
                self.first_seen.setdefault(key, now)
            return []
        return [*confirmed, *self._with_owners(self._filter_poll(events, now), now)]

    def _with_owners(self, events: list[Event], now: float) -> list[Event]:
        """Hold ``accepted`` events until the owner scan has caught up with their inode.

        The scan is rate-limited; an accept is the moment a socket gains its owner, so
        reporting it without one would miss the point.
        """
        if self.owners is None:
            return events
        out: list[Event] = []
        waiting: list[Event] = []
        for ev in [*self.awaiting_owner, *events]:
            if ev.kind is not EventKind.ACCEPTED or ev.endpoint.owners:
                out.append(ev)
                continue
            held = self.owners.get(ev.endpoint.inode)
            if held:
                out.append(ev._replace(endpoint=ev.endpoint._replace(owners=held)))
            elif now - ev.mono < OWNER_WAIT:
                waiting.append(ev)
            else:
                out.append(ev)
        self.awaiting_owner = waiting
        return out

    def _filter_poll(self, events: list[Event], now: float) -> list[Event]:
        out = []
        traced = self.trace
        for ev in events:
            key = ev.endpoint.key
            if key in self.closed:
                continue  # a TIME_WAIT remnant of a socket already reported closed
            if ev.endpoint.state is TcpState.TIME_WAIT and ev.kind in (EventKind.OPENED, EventKind.CLOSED):
                # Remnants of connections that already closed: cookies are made lazily,
                # so one never dumped before its close gets a new one in TIME_WAIT.
                continue
            if ev.kind in (EventKind.OPENED, EventKind.LISTEN, EventKind.BOUND):
                self.first_seen.setdefault(key, ev.mono)
            if (
                ev.kind in (EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND)
                and self.destroy is not None
            ):
                self.vanished[key] = (ev.endpoint, now)  # wait for its destroy message
                continue
            if (
                traced is not None
                and ev.kind in TRACED_KINDS
                and ev.endpoint.proto is Proto.TCP
                and traced.covers(ev)
            ):
                continue  # the tracepoint reported this transition exactly
            out.append(ev)
        return out

    def _settle(self, now: float) -> list[Event]:
        """Sockets whose destroy message never came are closed now, and counted lost."""
        if now < self._next_settle:
            return []
        self._next_settle = now + SETTLE_EVERY
        self.peers.expire(now)
        out = []
        horizon = self.destroy_horizon(now)
        for key, (ep, since) in list(self.vanished.items()):
            if horizon - since >= DESTROY_GRACE:
                del self.vanished[key]
                self.stats.lost_closes += 1
                opened = self.first_seen.pop(key, None)
                out.append(
                    Event(
                        EventKind.CLOSED if ep.state is not TcpState.LISTEN else EventKind.UNLISTEN,
                        ep,
                        now,
                        _wall(now),
                        Source.POLL,
                        duration=None if opened is None else now - opened,
                    )
                )
                touch(self.closed, key, now)
        forget_before(self.closed, now - CLOSED_MEMORY, float)
        if self.trace is not None:
            out.extend(self.trace.expire(now, horizon))
        return out

    def _count(self, events: list[Event]) -> list[Event]:
        for ev in events:
            self.stats.events[ev.kind.value] += 1
        return events

    def listener_owner(self, port: int, family: int) -> Owner | None:
        """The process holding the listener on ``port``: who accepted connections there."""
        return self.listeners.get((family, port))


def tuple_key(ep: Endpoint) -> TKey:
    """The 4-tuple identity the tracepoint can match (``0.0.0.0``/0 for no peer)."""
    return (ep.proto.value, ep.local_address, ep.local_port, ep.remote_address, ep.remote_port or 0)


def _wall(mono: float) -> float:
    return time.time() - (time.monotonic() - mono)


def _nothing() -> Endpoint:
    return Endpoint(Proto.TCP, 0, TcpState.CLOSE, None, 0, None, None, 0, 0, None, 0, None)
