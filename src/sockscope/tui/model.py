"""The live table behind ``top``: one ``Row`` per socket, updated by key, never rebuilt.

Events make rows appear (green), change (yellow) and close (red, kept ``linger``
seconds, so a connection that opened and closed between two refreshes is still seen).
Each poll's dump refreshes the figures of the rows it shows without highlighting them.

A socket can first be seen through the tracepoint, which knows only its 4-tuple (no
cookie): such a row is found again by its 4-tuple and takes the cookie identity when a
dump shows it. Time is passed in (``now``, monotonic seconds): nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from sockscope.model.diff import Key
from sockscope.model.endpoint import Endpoint, Owner, TKey, tuple_key
from sockscope.model.event import Event, EventKind
from sockscope.tui.view import Entry, View

HISTORY = 32  # events kept per row for the detail pane
#: A row missing from the dumps this long without a close event is closed by us: the
#: engine waits 1 s for a destroy message, so this only catches what it never reports
#: (TIME_WAIT remnants expiring).
GONE_GRACE = 3.0
#: A row known only from the tracepoint that no dump has shown this long is closed.
STALE_AFTER = 10.0
#: Keys of removed rows are remembered this long, so a TIME_WAIT remnant that keeps the
#: cookie of a connection already shown closed does not come back as a new row.
CLOSED_MEMORY = 120.0

#: A dump with more new or changed rows than this (and than the view has) is sorted
#: in one go: inserting 20k rows one by one moves the list 20k times.
BULK = 2000

OPENING = frozenset({EventKind.OPENED, EventKind.LISTEN, EventKind.BOUND})
CLOSING = frozenset({EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND})


def is_queued(ep: Endpoint) -> bool:
    """Accepted by TCP, not by the application, as a dump shows it.

    A tracepoint endpoint has no inode either (it is not known), so without a cookie
    (no dump has shown the socket yet) nothing can be said.
    """
    return ep.cookie is not None and ep.queued


class Status(IntEnum):
    """How a row is highlighted."""

    NORMAL = 0
    NEW = 1  # green
    CHANGED = 2  # yellow
    CLOSED = 3  # red, until it lingered long enough


@dataclass(eq=False, slots=True)
class Row:
    """One socket on screen."""

    key: Key
    endpoint: Endpoint
    first_seen: float  # monotonic
    seq: int  # creation order: unique, breaks sort ties
    status: Status = Status.NORMAL
    since: float = 0.0  # when the status was set (screen time)
    process: Owner | None = None  # the process that acted, when an event said so
    closed_at: float | None = None
    duration: float | None = None  # open to close, from the closing event
    history: deque[Event] = field(default_factory=lambda: deque(maxlen=HISTORY))
    in_table: bool = False  # a dump showed it (it has its cookie identity)
    missing_since: float | None = None
    entry: Entry | None = None  # the view's handle on it
    #: First seen by a dump, not opening: it may be older than ``first_seen`` says.
    age_lower_bound: bool = False

    @property
    def closed(self) -> bool:
        """The socket is gone; the row lingers in red."""
        return self.status is Status.CLOSED

    @property
    def queued(self) -> bool:
        """Waiting in its listener's accept queue, as the latest dump showed it.

        A closed row is not: the socket a close (``c``, a reset) leaves behind has no
        inode either (it is orphaned), which would read as queued.
        """
        return not self.closed and is_queued(self.endpoint)

    @property
    def owner(self) -> Owner | None:
        """The process to show: the first holder, else the one that acted.

        A queued connection has no holder yet (the application has not accepted it),
        so it shows none, as ``list`` does; the detail pane names who acted.
        """
        owners = self.endpoint.owners
        if owners:
            return owners[0]
        return None if self.queued else self.process

    @property
    def last_event(self) -> str | None:
        """The kind of the newest event, for filters on ``event``."""
        return self.history[-1].kind.value if self.history else None


def merge(old: Endpoint, new: Endpoint, *, dump: bool = False) -> Endpoint:
    """``new``, with what it lacks taken from ``old``.

    A tracepoint endpoint has only the 4-tuple and the state (its "owner" is the process
    that acted, kept in ``Row.process``): a dump replaces it whole. A destroy message has
    no owners: the last known stay. A dump's owners are the truth, except for the same
    inode just after it appeared (the owner scan runs at most once a second).
    """
    if new.cookie is None and old.cookie is not None:
        return old._replace(state=new.state)
    if old.cookie is None:
        return new
    keep_owners = (
        not new.owners and bool(old.owners) and (not dump or (new.inode != 0 and new.inode == old.inode))
    )
    if keep_owners or (new.tcp_info is None and old.tcp_info is not None):
        return new._replace(
            owners=old.owners if keep_owners else new.owners,
            tcp_info=new.tcp_info if new.tcp_info is not None else old.tcp_info,
        )
    return new


def _skip(_row: Row) -> None:
    pass


class Board:
    """Every row by socket key, with the view of the ones shown.

    ``tables`` says whether dumps will come (a live watch); a replayed recording has
    only events, so rows never close by being missing from a dump.
    """

    def __init__(
        self, view: View, *, linger: float = 5.0, highlight: float = 3.0, tables: bool = True
    ) -> None:
        self.view = view
        self.linger = linger
        self.highlight = highlight
        self.tables = tables
        self.rows: dict[Key, Row] = {}
        self.by_tuple: dict[TKey, Key] = {}
        self.closed_keys: dict[Key, float] = {}
        self.hot: dict[int, Row] = {}  # rows with a status, a grace or a stale timer
        self._seq = 0

    def __len__(self) -> int:
        return len(self.rows)

    # -- events --------------------------------------------------------------------

    def apply_events(self, events: Iterable[Event], now: float) -> int:
        """Apply events in order; returns how many touched a row."""
        n = 0
        for ev in events:
            if ev.kind is not EventKind.LOST:
                self.apply_event(ev, now)
                n += 1
        return n

    def apply_event(self, ev: Event, now: float) -> Row:
        """One event: a row appears, changes or closes."""
        ep = ev.endpoint
        if ep.cookie is None and ep.owners:
            # A tracepoint endpoint's "owner" is the process that acted (Row.process),
            # not a holder of the socket.
            ep = ep._replace(owners=())
        row = self.find(ep)
        kind = ev.kind
        if kind in OPENING and (row is None or row.closed):
            if row is not None:
                self.remove(row)
            row = self._add(ep, ev.mono, Status.NEW, now)
        elif kind in CLOSING:
            if row is None:
                # Opened and closed between two refreshes: it still flashes red.
                row = self._add(ep, ev.mono - (ev.duration or 0.0), Status.NORMAL, now)
                row.age_lower_bound = ev.lower_bound or ev.duration is None
            elif ev.duration is not None and not ev.lower_bound:
                row.first_seen, row.age_lower_bound = ev.mono - ev.duration, False  # the exact opening
            if not row.closed:
                self._close(row, merge(row.endpoint, ep), now, ev.mono, ev.duration)
        elif row is None:
            row = self._add(ep, ev.mono, Status.NEW, now)  # a socket we had not seen yet
        elif not row.closed:
            row.endpoint = merge(row.endpoint, ep)
            if kind not in OPENING and row.status is not Status.NEW:
                self._mark(row, Status.CHANGED, now)
        if ev.process is not None:
            row.process = ev.process
        row.history.append(ev)
        self.view.update(row)
        return row

    def find(self, ep: Endpoint) -> Row | None:
        """The row of ``ep``: by key, else (tracepoint rows) by 4-tuple."""
        row = self.rows.get(ep.key)
        if row is not None:
            return row
        key = self.by_tuple.get(tuple_key(ep))
        cand = self.rows.get(key) if key is not None else None
        # A cookie identifies exactly: match by 4-tuple only when one side has none.
        if cand is not None and (ep.cookie is None or cand.endpoint.cookie is None):
            return cand
        return None

    # -- dumps ---------------------------------------------------------------------

    def apply_delta(
        self, changed: Mapping[Key, Endpoint], gone: Iterable[Key], now: float, mono: float
    ) -> None:
        """A poll's dump: new figures for ``changed``, ``gone`` left the dump.

        Rows updated this way are not highlighted: state changes come as events. A dump
        that brings many rows at once (the first one) is sorted once, not row by row.
        """
        bulk = len(changed) > max(BULK, len(self.view))
        update = self.view.update if not bulk else _skip
        for key, ep in changed.items():
            row = self.rows.get(key)
            if row is None:
                row = self._adopt(key, ep)
            if row is None:
                if key in self.closed_keys:
                    continue  # a remnant of a connection already shown closed
                row = self._add(ep, mono, Status.NORMAL, now)
                row.age_lower_bound = True  # a dump shows it: it opened before, by how much unknown
            elif row.closed:
                continue
            else:
                row.endpoint = merge(row.endpoint, ep, dump=True)
            row.in_table = True
            if row.missing_since is not None:
                row.missing_since = None
                self._cool(row)
            update(row)
        if bulk:
            self.view.rebuild(self.rows.values())
        for key in gone:
            row = self.rows.get(key)
            if row is not None and not row.closed and row.missing_since is None:
                row.missing_since = now
                self.hot[row.seq] = row

    def _adopt(self, key: Key, ep: Endpoint) -> Row | None:
        """A tracepoint row that a dump now shows takes its cookie identity."""
        old = self.by_tuple.get(tuple_key(ep))
        row = self.rows.get(old) if old is not None else None
        if row is None or row.closed or row.endpoint.cookie is not None:
            return None
        del self.rows[row.key]
        row.key = key
        self.rows[key] = row
        self.by_tuple[tuple_key(ep)] = key
        row.endpoint = merge(row.endpoint, ep, dump=True)
        self._cool(row)
        return row

    # -- time ----------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Fade highlights, drop rows that lingered, close rows the dumps lost."""
        for row in list(self.hot.values()):
            if row.closed:
                if now - row.since >= self.linger:
                    self.remove(row)
                continue
            if row.status is not Status.NORMAL and now - row.since >= self.highlight:
                row.status = Status.NORMAL
                self.view.generation += 1
            if self.tables and self._lost(row, now):
                self._close(row, row.endpoint, now, None, None)
            else:
                self._cool(row)
        for key, when in list(self.closed_keys.items()):
            if now - when > CLOSED_MEMORY:
                del self.closed_keys[key]

    @staticmethod
    def _lost(row: Row, now: float) -> bool:
        """Gone from the dumps without a close event, or never in one (tracepoint only)."""
        if row.missing_since is not None:
            return now - row.missing_since >= GONE_GRACE
        return not row.in_table and row.endpoint.cookie is None and now - row.since >= STALE_AFTER

    # -- rows ----------------------------------------------------------------------

    def _add(self, ep: Endpoint, first_seen: float, status: Status, now: float) -> Row:
        self._seq += 1
        row = Row(ep.key, ep, first_seen, self._seq, status, now)
        self.rows[row.key] = row
        self.by_tuple[tuple_key(ep)] = row.key
        self.closed_keys.pop(row.key, None)
        if status is not Status.NORMAL or (self.tables and ep.cookie is None):
            self.hot[row.seq] = row
        return row

    def _mark(self, row: Row, status: Status, now: float) -> None:
        row.status = status
        row.since = now
        self.hot[row.seq] = row
        self.view.generation += 1

    def _cool(self, row: Row) -> None:
        """Forget a row that needs no timer any more."""
        if (
            row.status is Status.NORMAL
            and row.missing_since is None
            and (row.in_table or row.endpoint.cookie is not None or not self.tables)
        ):
            self.hot.pop(row.seq, None)

    def _close(self, row: Row, ep: Endpoint, now: float, mono: float | None, duration: float | None) -> None:
        row.endpoint = ep
        row.closed_at = mono if mono is not None else now
        row.duration = duration if duration is not None else row.closed_at - row.first_seen
        row.missing_since = None
        self._mark(row, Status.CLOSED, now)
        tkey = tuple_key(row.endpoint)
        if self.by_tuple.get(tkey) == row.key:
            del self.by_tuple[tkey]
        self.view.update(row)

    def remove(self, row: Row) -> None:
        """Take a row away for good."""
        self.view.discard(row)
        if self.rows.get(row.key) is row:
            del self.rows[row.key]
        tkey = tuple_key(row.endpoint)
        if self.by_tuple.get(tkey) == row.key:
            del self.by_tuple[tkey]
        self.hot.pop(row.seq, None)
        if row.closed:
            self.closed_keys[row.key] = row.since

    def refilter(self) -> None:
        """Apply the view's (new) filter and sort to every row."""
        self.view.rebuild(self.rows.values())
