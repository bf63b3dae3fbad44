"""A recording summed up in SQL, for ``sockscope report``.

A million events must not become a million Python objects: every count, histogram and
table here is one ``GROUP BY`` over the file, and only the results (a few thousand rows)
come back. A filter is the exception: it is the same language every command uses,
evaluated on each candidate event once, and the ids that pass go into a temporary table
the queries join; its port spans narrow the candidates in SQL first.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import NamedTuple

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.event import Event, EventKind, EventView, Source
from sockscope.model.states import Proto, TcpState
from sockscope.record.schema import COLUMNS
from sockscope.record.sqlite import event_from_row
from sockscope.record.store import RecordingError, open_for_reading

Matches = Callable[[EventView], bool]
PortSpans = tuple[tuple[bool, int, int], ...]  # (local?, lo, hi): every match has one

#: The last state of a socket closed without an orderly exchange of FINs of its own.
RESET_STATES = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "CLOSE_WAIT")
#: Histogram bins per decade (log scale) for durations and RTTs.
BINS_PER_DECADE = 5
#: Most time buckets a plot gets; longer recordings get wider buckets.
MAX_BUCKETS = 1500
#: Bucket widths, in seconds; a short recording gets sub-second buckets (at least MIN_BUCKETS).
NICE_WIDTHS = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400,
)  # fmt: skip
MIN_BUCKETS = 20
TOP = 20


class ListenerRow(NamedTuple):
    """One listener seen by the queue sampler."""

    ident: int
    family: int
    address: str | None
    port: int
    cookie: int | None
    pid: int | None
    process: str | None


class QueueBucket(NamedTuple):
    """One listener's queue over one time bucket: the peaks, and the drop counter."""

    listener: int
    bucket: int
    accept_queue: int
    backlog: int
    capacity: int
    half_open: int
    drops: int | None


class RecordingData(NamedTuple):
    """Every row a report is built from."""

    path: str
    version: int
    meta: dict[str, str]
    filter_text: str
    total_events: int  # in the file, before the filter
    first: float | None  # first and last event shown (epoch seconds)
    last: float | None
    kinds: list[tuple[str, int]]
    sources: list[str]
    lost: int  # events the kernel could not deliver, whatever the filter
    width: float  # seconds per time bucket
    io: list[tuple[int, int, int, int]]  # bucket, opened, closed, reset
    listeners: list[ListenerRow]
    queues: list[QueueBucket]
    samples: int
    dropped: list[tuple[int, int, int]]  # bucket, local port, drops (dropped events)
    durations: list[tuple[int, int]]  # log bin, count
    duration_stats: tuple[int, float | None, float | None, float | None, float | None]
    rtts: list[tuple[int, int]]  # log bin (of microseconds), count
    conversations: list[tuple[str, int, int, int, int, float | None, float | None, float | None]]
    ports: list[tuple[int, int]]
    processes: list[tuple[str, int | None, int, int, int, int, int]]
    transitions: list[tuple[str, str, int]]
    connections: list[tuple[str, int, str, int, float, float | None, str, int | None, str | None]]
    warnings: list[str]


def read_recording(
    path: str | Path,
    matches: Matches | None = None,
    spans: PortSpans | None = None,
    filter_text: str = "",
    connections: bool = False,
) -> RecordingData:
    """Sum up the recording at ``path``, narrowed by ``matches``; with ``connections``,
    every closed TCP connection too (to be joined with a capture).

    Raises:
        RecordingError: a missing, foreign, damaged or too-new file.
    """
    rec = open_for_reading(path)
    db = rec.db
    try:
        _math_functions(db)
        db.execute("PRAGMA temp_store = MEMORY")
        total = db.execute("SELECT count(*) FROM events").fetchone()[0]
        _select(db, matches, spans)
        _listening_ports(db, rec.version)
        first, last = db.execute("SELECT min(time), max(time) FROM ev").fetchone()
        width = bucket_width(first, last)
        listeners, queues, samples = _queues(db, rec.version, width, matches)
        return RecordingData(
            str(path),
            rec.version,
            dict(db.execute("SELECT key, value FROM meta").fetchall()),
            filter_text,
            total,
            first,
            last,
            db.execute("SELECT event, count(*) FROM ev GROUP BY event ORDER BY 2 DESC").fetchall(),
            [r[0] for r in db.execute("SELECT DISTINCT source FROM events ORDER BY 1")],
            db.execute("SELECT coalesce(sum(amount), 0) FROM events WHERE event = 'lost'").fetchone()[0],
            width,
            _io(db, width),
            listeners,
            queues,
            samples,
            db.execute(
                "SELECT CAST(time / ? AS INTEGER), local_port, sum(coalesce(amount, 1)) FROM ev "
                "WHERE event = 'dropped' GROUP BY 1, 2 ORDER BY 1",
                (width,),
            ).fetchall(),
            _log_bins(db, "duration", "event = 'closed' AND duration > 0"),
            _duration_stats(db),
            _log_bins(db, "rtt_us", "event = 'closed' AND rtt_us > 0"),
            _conversations(db),
            db.execute(
                f"SELECT port, count(*) FROM closed GROUP BY port ORDER BY 2 DESC, 1 LIMIT {TOP}"  # noqa: S608
            ).fetchall(),
            _processes(db),
            db.execute(
                "SELECT old_state, state, count(*) FROM ev WHERE event = 'state' "
                "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
            ).fetchall(),
            _connections(db) if connections else [],
            rec.warnings,
        )
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: damaged recording ({exc})") from None
    finally:
        rec.close()


def bucket_width(first: float | None, last: float | None) -> float:
    """Seconds per time bucket: one, or less for a recording shorter than MIN_BUCKETS
    seconds (so it still has that many), or more when one would make more than
    MAX_BUCKETS."""
    span = 0.0 if first is None or last is None else last - first
    if span <= 0:
        return 1
    if span < MIN_BUCKETS:
        short = [w for w in NICE_WIDTHS if w < 1 and span / w >= MIN_BUCKETS]
        return max(short, default=NICE_WIDTHS[0])
    for width in NICE_WIDTHS:
        if width >= 1 and span / width <= MAX_BUCKETS:
            return width
    return math.ceil(span / MAX_BUCKETS)


def _math_functions(db: sqlite3.Connection) -> None:
    # SQLite has log10 and floor only when built with its math functions.
    try:
        db.execute("SELECT log10(10), floor(1.5)").fetchall()
    except sqlite3.OperationalError:
        db.create_function("log10", 1, math.log10, deterministic=True)
        db.create_function("floor", 1, math.floor, deterministic=True)


def _select(db: sqlite3.Connection, matches: Matches | None, spans: PortSpans | None) -> None:
    """``ev``: the events the report shows (all of them, or those the filter passes)."""
    if matches is None:
        db.execute("CREATE TEMP VIEW ev AS SELECT * FROM main.events")
        return
    db.execute("CREATE TEMP TABLE chosen (id INTEGER PRIMARY KEY)")
    where, args = _span_sql(spans)
    cur = db.execute(f"SELECT id, {', '.join(COLUMNS)} FROM main.events{where}", args)  # noqa: S608
    lost = EventKind.LOST.value
    batch: list[tuple[int]] = []
    for row in cur:
        values = dict(zip(COLUMNS, row[1:], strict=True))
        # Losses are shown whatever the filter, as watch and replay show them.
        if values["event"] == lost or matches(EventView(event_from_row(values))):
            batch.append((row[0],))
            if len(batch) >= 10_000:
                db.executemany("INSERT INTO temp.chosen VALUES (?)", batch)
                batch.clear()
    db.executemany("INSERT INTO temp.chosen VALUES (?)", batch)
    db.execute("CREATE TEMP VIEW ev AS SELECT * FROM main.events WHERE id IN (SELECT id FROM temp.chosen)")


def _span_sql(spans: PortSpans | None) -> tuple[str, list[int]]:
    if not spans:
        return "", []
    parts, args = [], []
    for local, lo, hi in spans:
        parts.append(f"{'local_port' if local else 'remote_port'} BETWEEN ? AND ?")
        args += [lo, hi]
    return " WHERE event = 'lost' OR " + " OR ".join(parts), args


def _listening_ports(db: sqlite3.Connection, version: int) -> None:
    """Ports some listener used: a connection on one of them was accepted here."""
    db.execute("CREATE TEMP TABLE listening (port INTEGER PRIMARY KEY)")
    meta = db.execute("SELECT value FROM meta WHERE key = 'listening_ports'").fetchone()
    ports = {int(p) for p in (meta[0] if meta else "").split(",") if p.strip().isdigit()}
    ports.update(
        r[0] for r in db.execute("SELECT DISTINCT local_port FROM main.events WHERE event = 'listen'")
    )
    if version >= 2:
        ports.update(r[0] for r in db.execute("SELECT DISTINCT local_port FROM main.listeners"))
    db.executemany("INSERT OR IGNORE INTO temp.listening VALUES (?)", [(p,) for p in ports if p is not None])
    db.execute(
        "CREATE TEMP VIEW closed AS SELECT remote_address AS peer, "
        "CASE WHEN local_port IN (SELECT port FROM temp.listening) THEN local_port "
        "ELSE coalesce(remote_port, 0) END AS port, duration, bytes_sent, bytes_received "
        "FROM ev WHERE event = 'closed' AND remote_address IS NOT NULL"
    )


def _io(db: sqlite3.Connection, width: float) -> list[tuple[int, int, int, int]]:
    resets = ", ".join(f"'{s}'" for s in RESET_STATES)
    return db.execute(
        "SELECT CAST(time / ? AS INTEGER) AS b, sum(event = 'opened'), sum(event = 'closed'), "  # noqa: S608
        f"sum(event = 'closed' AND state IN ({resets})) FROM ev "  # constants only
        "WHERE event IN ('opened', 'closed') GROUP BY b ORDER BY b",
        (width,),
    ).fetchall()


def _log_bins(db: sqlite3.Connection, column: str, where: str) -> list[tuple[int, int]]:
    return db.execute(
        f"SELECT CAST(floor(log10({column}) * {BINS_PER_DECADE}) AS INTEGER) AS b, count(*) "  # noqa: S608
        f"FROM ev WHERE {where} GROUP BY b ORDER BY b"
    ).fetchall()


def _duration_stats(
    db: sqlite3.Connection,
) -> tuple[int, float | None, float | None, float | None, float | None]:
    """Closed connections with a duration: count, median, 90th and 99th percentile, max."""
    n = db.execute("SELECT count(*) FROM ev WHERE event = 'closed' AND duration IS NOT NULL").fetchone()[0]
    if not n:
        return 0, None, None, None, None

    def nth(q: float) -> float:
        row = db.execute(
            "SELECT duration FROM ev WHERE event = 'closed' AND duration IS NOT NULL "
            "ORDER BY duration LIMIT 1 OFFSET ?",
            (min(n - 1, int(n * q)),),
        ).fetchone()
        return float(row[0])

    return n, nth(0.5), nth(0.9), nth(0.99), nth(1.0)


def _conversations(
    db: sqlite3.Connection,
) -> list[tuple[str, int, int, int, int, float | None, float | None, float | None]]:
    # The median as `stats` takes it: the middle value, the upper one of an even count.
    return db.execute(
        "WITH top AS (SELECT peer, port, count(*) AS n, coalesce(sum(bytes_sent), 0) AS sent, "  # noqa: S608
        "coalesce(sum(bytes_received), 0) AS recv, avg(duration) AS mean, max(duration) AS longest "
        f"FROM closed GROUP BY peer, port ORDER BY n DESC, peer, port LIMIT {TOP}), "
        "ranked AS (SELECT c.peer, c.port, c.duration, row_number() OVER "
        "(PARTITION BY c.peer, c.port ORDER BY c.duration) AS rn, count(*) OVER "
        "(PARTITION BY c.peer, c.port) AS k FROM closed c JOIN top USING (peer, port) "
        "WHERE c.duration IS NOT NULL) "
        "SELECT top.peer, top.port, n, sent, recv, mean, "
        "(SELECT duration FROM ranked r WHERE r.peer = top.peer AND r.port = top.port "
        "AND r.rn = r.k / 2 + 1), longest FROM top ORDER BY n DESC, top.peer, top.port"
    ).fetchall()


def _processes(db: sqlite3.Connection) -> list[tuple[str, int | None, int, int, int, int, int]]:
    return db.execute(
        "SELECT process, pid, count(*), sum(event = 'opened'), sum(event = 'closed'), "  # noqa: S608
        "coalesce(sum(bytes_sent), 0), coalesce(sum(bytes_received), 0) FROM ev "
        f"WHERE process IS NOT NULL GROUP BY process, pid ORDER BY 3 DESC, 1 LIMIT {TOP}"
    ).fetchall()


def _connections(
    db: sqlite3.Connection,
) -> list[tuple[str, int, str, int, float, float | None, str, int | None, str | None]]:
    """Closed connections, for the join with a capture (local, remote, close time...)."""
    return db.execute(
        "SELECT local_address, local_port, remote_address, remote_port, time, duration, state, "
        "pid, process FROM ev WHERE event = 'closed' AND remote_address IS NOT NULL "
        "AND proto = 'tcp' ORDER BY time"
    ).fetchall()


def _queues(
    db: sqlite3.Connection, version: int, width: float, matches: Matches | None
) -> tuple[list[ListenerRow], list[QueueBucket], int]:
    if version < 2:
        return [], [], 0
    listeners = [ListenerRow(*r) for r in db.execute("SELECT * FROM main.listeners ORDER BY id")]
    if matches is not None:
        listeners = [x for x in listeners if matches(EventView(_listen_event(x)))]
    keep = {x.ident for x in listeners}
    rows = db.execute(
        "SELECT listener, CAST(time / ? AS INTEGER) AS b, max(accept_queue), max(backlog), "
        "max(capacity), max(half_open), max(drops) FROM main.queue_samples "
        "GROUP BY listener, b ORDER BY listener, b",
        (width,),
    ).fetchall()
    samples = db.execute("SELECT count(*) FROM main.queue_samples").fetchone()[0]
    return listeners, [QueueBucket(*r) for r in rows if r[0] in keep], samples


def _listen_event(x: ListenerRow) -> Event:
    """A listener as an event a filter can match (event == listen, state LISTEN)."""
    owners = (Owner(x.pid, x.process or "?", -1),) if x.pid is not None else ()
    addr = None if x.address is None else ip_address(x.address)
    ep = Endpoint(
        Proto.TCP, x.family, TcpState.LISTEN, addr, x.port, None, None, 0, 0, None, 0, x.cookie, owners=owners
    )
    return Event(EventKind.LISTEN, ep, 0.0, 0.0, Source.POLL, process=owners[0] if owners else None)
