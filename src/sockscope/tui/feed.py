"""Where ``top``'s rows come from, run on a worker thread: a live ``Watcher`` or a recording.

A feed hands the app ``Batch``es: the events since the last batch and, after each poll,
what changed in the dump (computed here, off the UI thread, so a refresh at 20k sockets
applies only the difference), with the listeners and the counters for the status bar.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sockscope.model.diff import Key
from sockscope.model.endpoint import Endpoint, TcpInfo
from sockscope.model.event import Event
from sockscope.model.listener import Listener, build_listeners
from sockscope.model.states import Proto

if TYPE_CHECKING:
    from sockscope.watch import Watcher

#: Events are handed over at most this often (the screen refreshes less often anyway).
POST_EVERY = 0.1
#: After a poll, the watcher runs this much longer before its table is handed over.
POLL_SLACK = 0.01


@dataclass(frozen=True, slots=True)
class FeedStats:
    """The status bar's view of the feed."""

    sources: tuple[str, ...] = ()
    lost: int = 0  # events the kernel could not deliver
    lost_closes: int = 0  # closes found only by a dump
    foreign: int = 0
    events: int = 0  # events so far
    done: bool = False  # a recording that has been played to its end


@dataclass(slots=True)
class Batch:
    """What happened since the last batch."""

    events: list[Event]
    mono: float
    changed: dict[Key, Endpoint] = field(default_factory=dict)
    gone: set[Key] = field(default_factory=set)
    polled: bool = False  # changed/gone/listeners/counts come from a new dump
    listeners: tuple[Listener, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    stats: FeedStats = field(default_factory=FeedStats)
    initial: bool = False


Post = Callable[[Batch], None]
Stopped = Callable[[], bool]


class Feed(Protocol):
    """Runs on a worker thread until ``stopped()``; hands batches to ``post``."""

    tables: bool  # whether batches carry dumps (a live watch) or events only

    def run(self, post: Post, stopped: Stopped) -> None: ...


class _StoppedError(Exception):
    """Unwinds the watcher's event loop when the app stops."""


def state_counts(endpoints: Sequence[Endpoint] | Mapping[Key, Endpoint]) -> dict[str, int]:
    """Sockets per state (TCP) and per kind (UDP), for the status bar."""
    eps = endpoints.values() if isinstance(endpoints, Mapping) else endpoints
    counts: Counter[str] = Counter()
    for ep in eps:
        if ep.proto is Proto.TCP:
            counts[ep.state.ss_label] += 1
        else:
            counts[ep.proto.value.upper()] += 1
    return dict(counts)


_INFO = Endpoint._fields.index("tcp_info")
_CLOCKS = TcpInfo._fields.index("last_data_recv_ms")  # the last two fields: ms since...


def differs(old: Endpoint | None, new: Endpoint) -> bool:
    """Whether ``new`` shows anything ``old`` did not.

    tcp_info's "milliseconds since the last data/ack" tick on every idle connection;
    counting them would make every row of a busy host change on every poll.
    """
    if old is None:
        return True
    if old == new:
        return False
    a, b = old.tcp_info, new.tcp_info
    if a is None or b is None:
        return True
    return old[:_INFO] != new[:_INFO] or old[_INFO + 1 :] != new[_INFO + 1 :] or a[:_CLOCKS] != b[:_CLOCKS]


def table_delta(
    prev: Mapping[Key, Endpoint], cur: Mapping[Key, Endpoint]
) -> tuple[dict[Key, Endpoint], set[Key]]:
    """Endpoints new or different in ``cur``, and keys ``cur`` no longer has."""
    get = prev.get
    changed = {k: ep for k, ep in cur.items() if differs(get(k), ep)}
    gone = {k for k in prev if k not in cur}
    return changed, gone


class WatchFeed:
    """A live ``Watcher``; it is closed (tracefs instance removed) when ``run`` ends."""

    tables = True

    def __init__(
        self, watcher: Watcher, somaxconn: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.watcher = watcher
        self.somaxconn = somaxconn
        self.clock = clock

    def stats(self) -> FeedStats:
        """The watcher's counters now (tracepoint overruns read live)."""
        st = self.watcher.stats
        return FeedStats(st.sources, st.lost, st.lost_closes, st.foreign, sum(st.events.values()))

    def polled(self, events: list[Event], prev: Mapping[Key, Endpoint]) -> tuple[Batch, dict[Key, Endpoint]]:
        table = dict(self.watcher.table)  # a copy: the watcher keeps changing its own
        changed, gone = table_delta(prev, table)
        batch = Batch(
            events,
            self.clock(),
            changed,
            gone,
            True,
            tuple(build_listeners(table.values(), self.somaxconn)),
            state_counts(table),
            self.stats(),
        )
        return batch, table

    def run(self, post: Post, stopped: Stopped) -> None:
        """Watch until ``stopped()``; always closes the watcher."""
        w = self.watcher
        try:
            first, table = self.polled([], {})
            first.initial = True
            post(first)
            pump = _Pump(self, post, stopped, table)
            # Each round ends just after one poll, so its dump is handed over at once
            # (events() alone would hold it until the next wait for events ends).
            while not stopped():
                for ev in w.events(until=self.clock() + w.interval + POLL_SLACK, idle=pump.idle):
                    pump.pending.append(ev)
        except _StoppedError:
            pass
        finally:
            w.close()


class _Pump:
    """Hands the watcher's output over between its waits (called as its ``idle``)."""

    def __init__(self, feed: WatchFeed, post: Post, stopped: Stopped, table: dict[Key, Endpoint]) -> None:
        self.feed = feed
        self.post = post
        self.stopped = stopped
        self.prev = table
        self.seen = feed.watcher.table
        self.pending: list[Event] = []
        self.last_post = feed.clock()

    def idle(self) -> None:
        """Post the events so far, and the dump's difference after a poll."""
        if self.stopped():
            raise _StoppedError
        now = self.feed.clock()
        table = self.feed.watcher.table
        if table is not self.seen:
            self.seen = table
            batch, self.prev = self.feed.polled(self.pending[:], self.prev)
        elif self.pending and now - self.last_post >= POST_EVERY:
            batch = Batch(self.pending[:], now, stats=self.feed.stats())
        else:
            return
        self.pending.clear()
        self.last_post = now
        self.post(batch)


class ReplayFeed:
    """A recording played at its own pace (``speed`` times), or all at once (``speed=0``).

    Event times are moved to now, so ages and highlights behave as they did live.
    """

    tables = False

    def __init__(
        self,
        events: Sequence[Event],
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.events = list(events)
        self.speed = speed
        self.clock = clock
        self.sleep = sleep

    def run(self, post: Post, stopped: Stopped) -> None:
        """Post the events in batches of ``POST_EVERY`` seconds of recording."""
        start = self.clock()
        base = self.events[0].mono if self.events else 0.0
        sent = 0
        post(Batch([], start, initial=True, stats=FeedStats(("replay",))))
        i = 0
        while i < len(self.events) and not stopped():
            due = self.events[i].mono - base
            if self.speed > 0:
                wait = due / self.speed - (self.clock() - start)
                if wait > 0:
                    self.sleep(min(wait, POST_EVERY))
                    continue
            j = i
            while j < len(self.events) and self.events[j].mono - base <= due + POST_EVERY:
                j += 1
            chunk = [
                ev._replace(mono=start + (ev.mono - base) / (self.speed or 1.0)) for ev in self.events[i:j]
            ]
            sent += len(chunk)
            post(Batch(chunk, self.clock(), stats=FeedStats(("replay",), events=sent)))
            i = j
        post(Batch([], self.clock(), stats=FeedStats(("replay",), events=sent, done=True)))
        while not stopped():
            self.sleep(POST_EVERY)
