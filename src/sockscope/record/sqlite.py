"""Recording events to SQLite and reading them back.

Writes are batched and committed at least once a second (WAL mode), so a watcher killed
with SIGKILL loses at most the last uncommitted second.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from sockscope.model.endpoint import Endpoint, IPAddress, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.record.schema import APPLICATION_ID, COLUMNS, SCHEMA, SCHEMA_VERSION

COMMIT_EVERY_S = 1.0
# Built from the fixed column list of the schema, never from input.
INSERT_SQL = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
SELECT_SQL = f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY id"  # noqa: S608


class RecordingError(Exception):
    """The file is not a sockscope recording, or one this version cannot read."""


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    if not create and not path.exists():
        raise RecordingError(f"{path}: no such recording")
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: not a sockscope recording ({exc})") from None
    if app_id == 0 and not tables and create:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.executescript(SCHEMA)
    elif app_id != APPLICATION_ID:
        raise RecordingError(f"{path}: not a sockscope recording (a foreign SQLite database)")
    elif version > SCHEMA_VERSION:
        raise RecordingError(
            f"{path}: recording format {version} is newer than this "
            f"sockscope reads ({SCHEMA_VERSION}); upgrade sockscope"
        )
    return db


class Recorder:
    """Appends events to a recording; ``close`` commits what is left."""

    def __init__(self, path: str | Path, meta: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.db = _connect(self.path, create=True)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        for key, value in (meta or {}).items():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.batch: list[tuple[object, ...]] = []
        self.last_commit = time.monotonic()
        self.written = 0
        self.sql = INSERT_SQL

    def set_meta(self, key: str, value: str) -> None:
        """Store one header value."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def write(self, ev: Event) -> None:
        """Queue one event; commits when the batch is a second old."""
        self.batch.append(event_row(ev))
        if time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self.commit()

    def tick(self) -> None:
        """Commit if the batch is due, even when no new event arrives."""
        if self.batch and time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self.commit()

    def commit(self) -> None:
        """Write the batch in one transaction."""
        if self.batch:
            self.db.execute("BEGIN")
            self.db.executemany(self.sql, self.batch)
            self.db.execute("COMMIT")
            self.written += len(self.batch)
            self.batch.clear()
        self.last_commit = time.monotonic()

    def size(self) -> int:
        """Bytes on disk, with the write-ahead log."""
        total = 0
        for p in (self.path, Path(f"{self.path}-wal")):
            with contextlib.suppress(OSError):
                total += os.path.getsize(p)
        return total

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
    )


def read_events(path: str | Path) -> Iterator[Event]:
    """Every recorded event, in recording order.

    Raises:
        RecordingError: a missing, damaged, foreign or too-new file.
    """
    db = _connect(Path(path), create=False)
    try:
        cur = db.execute(SELECT_SQL)
        for row in cur:
            yield _event(dict(zip(COLUMNS, row, strict=True)))
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: damaged recording ({exc})") from None
    finally:
        db.close()


def read_meta(path: str | Path) -> dict[str, str]:
    """The recording's header (host, kernel, started...)."""
    db = _connect(Path(path), create=False)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def _addr(text: str | None) -> IPAddress | None:
    return None if text is None else ip_address(text)


def _event(r: dict[str, Any]) -> Event:
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
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise RecordingError(f"damaged recording: bad event row ({exc})") from None
