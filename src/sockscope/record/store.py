"""Opening recordings: created safely for writing, opened read-only for reading.

A recording made as root holds what only root could see (every user's process names and
pids), so it is created owner-only, as dumpcap creates its captures. It is never opened
through a symbolic link, never written into another user's file, and a file that fails
SQLite's integrity check is not appended to. Readers open the file read-only: a user can
read root's 0644 recording, and one on a read-only mount.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sockscope.record.schema import (
    APPLICATION_ID,
    EVENTS_V2,
    OLDEST_VERSION,
    SCHEMA,
    SCHEMA_V2,
    SCHEMA_VERSION,
)

#: SQLite's companion files; each is refused when it is a symbolic link.
COMPANIONS = ("-wal", "-shm", "-journal")


class RecordingError(Exception):
    """The file is not a sockscope recording, or one this version cannot read or write."""


def unreadable(path: Path, exc: sqlite3.DatabaseError) -> RecordingError:
    """The error for a file SQLite could not read: foreign, or a recording damaged."""
    what = "damaged recording" if "malformed" in str(exc) else "not a sockscope recording"
    return RecordingError(f"{path}: {what} ({exc})")


def privileged() -> bool:
    """Whether what is recorded may hold what only root could see."""
    return os.geteuid() == 0


def _refuse_links(path: Path) -> None:
    for name in (str(path), *(f"{path}{s}" for s in COMPANIONS)):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RecordingError(f"{name}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise RecordingError(f"{name}: is a symbolic link; refusing to follow it")


def _prepare(path: Path, private: bool) -> None:
    """Create the file (exclusively, owner-only when private) or vet the existing one."""
    _refuse_links(path)
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    except FileExistsError:
        _vet_existing(path, flags, private)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot create the recording: {exc.strerror}") from None
    else:
        os.close(fd)


def _vet_existing(path: Path, flags: int, private: bool) -> None:
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot write to it: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecordingError(f"{path}: not a regular file; a recording needs one")
        if private and st.st_uid != os.geteuid():
            raise RecordingError(
                f"{path}: belongs to uid {st.st_uid}; refusing to write what only root "
                "could see into another user's file"
            )
        if private and st.st_mode & 0o077:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)  # owner-only, like a new one
    finally:
        os.close(fd)


def open_for_append(path: Path, private: bool) -> sqlite3.Connection:
    """A connection to a new or existing recording, upgraded to the current format.

    Raises:
        RecordingError: the path is unusable (a symbolic link, a directory, a device,
            another user's file, unwritable), or the file is foreign, damaged or newer.
    """
    _prepare(path, private)
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise RecordingError(f"{path}: cannot open the recording ({exc})") from None
    try:
        _upgrade(db, path)
        pragma(db, "journal_mode = WAL")
        pragma(db, "synchronous = NORMAL")
    except sqlite3.Error as exc:
        db.close()
        raise RecordingError(f"{path}: cannot write the recording ({exc})") from None
    except RecordingError:
        db.close()
        raise
    return db


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    try:
        app_id, version, tables = _header(db)
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from None
    if app_id == 0 and not tables:
        pragma(db, f"application_id = {APPLICATION_ID}")
        db.executescript(SCHEMA + SCHEMA_V2)
        pragma(db, f"user_version = {SCHEMA_VERSION}")
        return
    _check_header(path, app_id, version)
    try:
        problems = [r[0] for r in pragma(db, "integrity_check(5)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise RecordingError(
            f"{path}: damaged recording (SQLite's integrity check: {problems[0]}); not appending to it"
        )
    if version < SCHEMA_VERSION:
        db.executescript(SCHEMA_V2)
        if "duration_lower_bound" not in {row[1] for row in pragma(db, "table_info(events)")}:
            db.execute(EVENTS_V2)
        pragma(db, f"user_version = {SCHEMA_VERSION}")


def pragma(db: sqlite3.Connection, text: str) -> list[Any]:
    """Run one PRAGMA and reset its statement: one left pending (journal_mode's, even
    after its row was read) keeps a lock that makes a later checkpoint fail."""
    cur = db.cursor()
    try:
        return cur.execute(f"PRAGMA {text}").fetchall()
    finally:
        cur.close()


def _header(db: sqlite3.Connection) -> tuple[int, int, set[str]]:
    app_id = pragma(db, "application_id")[0][0]
    version = pragma(db, "user_version")[0][0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return app_id, version, tables


def _check_header(path: Path, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise RecordingError(f"{path}: not a sockscope recording (a foreign SQLite database)")
    if version > SCHEMA_VERSION:
        raise RecordingError(
            f"{path}: recording format {version} is newer than this "
            f"sockscope reads ({SCHEMA_VERSION}); upgrade sockscope"
        )
    if version < OLDEST_VERSION:
        raise RecordingError(f"{path}: recording format {version} is unknown")


class Opened:
    """A recording opened read-only, with its format version and what to tell the user."""

    def __init__(self, db: sqlite3.Connection, version: int, warnings: list[str]) -> None:
        self.db = db
        self.version = version
        self.warnings = warnings

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


def open_for_reading(path: str | Path) -> Opened:
    """The recording, read-only: nothing is written, not even its write-ahead log.

    Raises:
        RecordingError: a missing, foreign, damaged or newer file.
    """
    if not str(path):  # Path("") would be the current directory
        raise RecordingError("no recording named (an empty file name)")
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording" if not path.exists() else f"{path}: not a file")
    uri = f"file:{quote(str(path.absolute()))}"
    warnings: list[str] = []
    wal = Path(f"{path}-wal")
    try:
        # Without a write-ahead log nothing is being written and everything is in the
        # file itself: read it as immutable, so no -shm file is left beside it.
        db = _open_wal(uri, wal, warnings) if wal.exists() else _open_ro(f"{uri}?immutable=1")
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from None
    try:
        app_id, version, _ = _header(db)
        _check_header(path, app_id, version)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise unreadable(path, exc) from None
    except RecordingError:
        db.close()
        raise
    return Opened(db, version, warnings)


def _open_wal(uri: str, wal: Path, warnings: list[str]) -> sqlite3.Connection:
    """A recording being written, or left with its log by a watcher that was killed."""
    shm = Path(str(wal)[: -len("-wal")] + "-shm")
    if shm.exists() or os.access(wal.parent, os.W_OK):
        with contextlib.suppress(sqlite3.OperationalError):
            return _open_ro(f"{uri}?mode=ro")
    # Its -shm can be neither opened nor created (another user's file, a read-only
    # mount), and SQLite then reads the main file alone without a word. Say what that
    # leaves out.
    db = _open_ro(f"{uri}?immutable=1")
    if wal.stat().st_size > 0:
        warnings.append(f"{wal} could not be read; its last uncheckpointed events are not shown")
    return db


def _open_ro(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        db.close()
        raise
    return db
