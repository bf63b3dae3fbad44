"""Recording events to SQLite and reading them back.

Writes are batched and committed at least once a second (WAL mode), so a watcher killed
with SIGKILL loses at most the last uncommitted second.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from sockscope.model.endpoint import Endpoint, IPAddress, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.listener import Listener
from sockscope.model.states import Proto, TcpState
from sockscope.record.schema import COLUMNS, LISTENER_COLUMNS, QUEUE_COLUMNS
from sockscope.record.store import RecordingError, open_for_append, open_for_reading, pragma, privileged

__all__ = ["Recorder", "RecordingError", "read_events", "read_meta"]

COMMIT_EVERY_S = 1.0
# Built from the fixed column list of the schema, never from input.
INSERT_SQL = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
QUEUE_SQL = (
    f"INSERT INTO queue_samples ({', '.join(QUEUE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(QUEUE_COLUMNS))})"
)


class Recorder:
    """Appends events (and listeners' queue samples) to a recording.

    ``close`` commits what is left, checkpoints, and leaves the file in rollback-journal
    mode, so no ``-wal``/``-shm`` file stays behind and a reader on a read-only mount
    needs none.
    """

    def __init__(
        self, path: str | Path, meta: dict[str, str] | None = None, *, private: bool | None = None
    ) -> None:
        if not str(path):  # Path("") would be the current directory
            raise RecordingError("the recording needs a file name (--record '' names none)")
        self.path = Path(path)
        self.private = privileged() if private is None else private
        self.db = open_for_append(self.path, self.private)
        for key, value in (meta or {}).items():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.batch: list[tuple[object, ...]] = []
        self.samples: list[tuple[object, ...]] = []
        self.listener_ids: dict[tuple[object, ...], int] = {}
        self.last_commit = time.monotonic()
        self.written = 0
        self.sql = INSERT_SQL
        self.closed = False

    def set_meta(self, key: str, value: str) -> None:
        """Store one header value."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def write(self, ev: Event) -> None:
        """Queue one event; commits when the batch is a second old."""
        self.batch.append(event_row(ev))
        if time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self.commit()

    def write_queues(self, when: float, mono: float, listeners: Iterable[Listener]) -> None:
        """Queue one poll's sample of every listener's queue."""
        for lst in listeners:
            ep = lst.endpoint
            key = (ep.family, ep.local_address, ep.local_port, ep.cookie)
            ident = self.listener_ids.get(key)
            if ident is None:
                ident = self._add_listener(lst)
                self.listener_ids[key] = ident
            half_open = len(lst.half_open)
            self.samples.append(
                (when, mono, ident, lst.accept_queue, lst.backlog, lst.capacity, half_open, lst.drops)
            )

    def _add_listener(self, lst: Listener) -> int:
        ep = lst.endpoint
        owner = ep.owners[0] if ep.owners else None
        cur = self.db.execute(
            f"INSERT INTO listeners ({', '.join(LISTENER_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                ep.family,
                None if ep.local_address is None else str(ep.local_address),
                ep.local_port,
                ep.cookie,
                owner.pid if owner else None,
                owner.name if owner else None,
            ),
        )
        return int(cur.lastrowid or 0)

    def tick(self) -> None:
        """Commit if the batch is due, even when no new event arrives."""
        if (self.batch or self.samples) and time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self.commit()

    def commit(self) -> None:
        """Write the batch in one transaction."""
        if self.batch or self.samples:
            self.db.execute("BEGIN")
            self.db.executemany(self.sql, self.batch)
            self.db.executemany(QUEUE_SQL, self.samples)
            self.db.execute("COMMIT")
            self.written += len(self.batch)
            self.batch.clear()
            self.samples.clear()
        self.last_commit = time.monotonic()

    def size(self) -> int:
        """Bytes on disk, with the write-ahead log."""
        total = 0
        for p in (self.path, Path(f"{self.path}-wal")):
            with contextlib.suppress(OSError):
                total += os.path.getsize(p)
        return total

    def close(self) -> None:
        """Commit, fold the write-ahead log into the file and remove it; idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.commit()
            # Leaving WAL mode checkpoints and deletes the -wal and -shm files; it needs
            # the only connection, so with a reader attached they stay until the last
            # one closes (and the checkpoint alone keeps the log short meanwhile).
            with contextlib.suppress(sqlite3.OperationalError):
                pragma(self.db, "wal_checkpoint(TRUNCATE)")
            with contextlib.suppress(sqlite3.OperationalError):
                pragma(self.db, "journal_mode = DELETE")
        finally:
            self.db.close()


def event_row(ev: Event) -> tuple[object, ...]:
    """The row for one event, in ``COLUMNS`` order."""
    ep = ev.endpoint
    owner = ev.owner
    info = ep.tcp_info
    return (
        ev.time,
        ev.mono,
        ev.kind.value,
        ev.source.value,
        ep.proto.value,
        ep.family,
        ep.state.name,
        ev.old_state.name if ev.old_state is not None else None,
        None if ep.local_address is None else str(ep.local_address),
        ep.local_port,
        None if ep.remote_address is None else str(ep.remote_address),
        ep.remote_port,
        ep.recv_q,
        ep.send_q,
        ep.uid,
        ep.inode,
        ep.cookie,
        owner.pid if owner else None,
        owner.name if owner else None,
        ev.duration,
        info.bytes_sent if info else None,
        info.bytes_received if info else None,
        info.rtt_us if info else None,
        info.total_retrans if info else None,
        ev.amount,
        None if ev.duration is None else int(ev.lower_bound),
    )


def read_events(path: str | Path, warnings: list[str] | None = None) -> Iterator[Event]:
    """Every recorded event, in recording order; the file is opened read-only.

    ``warnings`` collects what the user should be told (an unreadable write-ahead log).

    Raises:
        RecordingError: a missing, damaged, foreign or too-new file.
    """
    rec = open_for_reading(path)
    if warnings is not None:
        warnings.extend(rec.warnings)
    try:
        # A version 1 recording has no lower-bound column: its durations read as exact.
        present = {row[1] for row in rec.db.execute("PRAGMA table_info(events)")}
        columns = [c for c in COLUMNS if c in present]
        cur = rec.db.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY id")  # noqa: S608
        for row in cur:
            yield event_from_row(dict(zip(columns, row, strict=True)))
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: damaged recording ({exc})") from None
    finally:
        rec.close()


def read_meta(path: str | Path) -> dict[str, str]:
    """The recording's header (host, kernel, started...), read-only."""
    rec = open_for_reading(path)
    try:
        return dict(rec.db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: damaged recording ({exc})") from None
    finally:
        rec.close()


def _addr(text: str | None) -> IPAddress | None:
    return None if text is None else ip_address(text)


def event_from_row(r: dict[str, Any]) -> Event:
    """The event a row (a dict keyed by ``COLUMNS``) holds."""
    try:
        info = None
        if r["bytes_received"] is not None or r["rtt_us"] is not None:
            sent = r["bytes_sent"] or 0
            info = TcpInfo(
                r["rtt_us"] or 0,
                0,
                0,
                0,
                0,
                0,
                r["retrans"] or 0,
                0,
                0,
                sent,
                sent,
                r["bytes_received"] or 0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        owner = Owner(r["pid"], r["process"] or "?", -1) if r["pid"] is not None else None
        ep = Endpoint(
            Proto(r["proto"]),
            r["family"] or 0,
            TcpState[r["state"]],
            _addr(r["local_address"]),
            r["local_port"] or 0,
            _addr(r["remote_address"]),
            r["remote_port"],
            r["recv_q"] or 0,
            r["send_q"] or 0,
            r["uid"],
            r["inode"] or 0,
            r["cookie"],
            tcp_info=info,
            owners=(owner,) if owner else (),
        )
        return Event(
            EventKind(r["event"]),
            ep,
            float(r["mono"]),
            float(r["time"]),
            Source(r["source"]),
            old_state=TcpState[r["old_state"]] if r["old_state"] else None,
            duration=r["duration"],
            amount=r["amount"],
            process=owner,
            lower_bound=bool(r.get("duration_lower_bound")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise RecordingError(f"damaged recording: bad event row ({exc})") from None
