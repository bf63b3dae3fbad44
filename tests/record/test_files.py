"""Recording files: created safely, read read-only, refused when damaged or unusable."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.listener import build_listeners
from sockscope.model.states import Proto, TcpState
from sockscope.record.sqlite import Recorder, RecordingError, read_events, read_meta
from sockscope.record.store import open_for_reading

FIXTURE = Path(__file__).parents[1] / "fixtures" / "recordings" / "v1-watch.db"
SRC = Path(__file__).parents[2] / "src"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (other users' files, mounts)")


def closed_event(port: int = 40000, when: float = 1.7e9) -> Event:
    ep = Endpoint(Proto.TCP, 4, TcpState.FIN_WAIT2, None, port, None, 2323, 0, 0, 0, 0, 7)
    return Event(EventKind.CLOSED, ep, 1.0, when, Source.DESTROY, duration=0.01)


def listener(port: int = 2323, queued: int = 3) -> list[Endpoint]:
    from ipaddress import ip_address  # noqa: PLC0415

    lo = ip_address("127.0.0.1")
    owners = (Owner(5, "srv", 3),)
    lst = Endpoint(Proto.TCP, 4, TcpState.LISTEN, lo, port, None, None, queued, 4, 0, 99, 1234, owners=owners)
    kids = [
        Endpoint(Proto.TCP, 4, TcpState.ESTABLISHED, lo, port, lo, 50000 + i, 0, 0, 0, 0, 2000 + i)
        for i in range(queued)
    ]
    return [lst, *kids]


def companions(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))


def test_the_format_1_fixture_is_read_and_left_untouched() -> None:
    before = FIXTURE.read_bytes()
    events = list(read_events(FIXTURE))
    assert len(events) == 106
    kinds = {e.kind for e in events}
    assert {EventKind.OPENED, EventKind.CLOSED, EventKind.LISTEN, EventKind.UNLISTEN} <= kinds
    assert read_meta(FIXTURE)["tool"] == "sockscope 0.1.0"
    rec = open_for_reading(FIXTURE)
    assert rec.version == 1 and not rec.warnings
    rec.close()
    # Read-only: not a byte changed, no -wal or -shm left beside it.
    assert FIXTURE.read_bytes() == before and companions(FIXTURE) == []


def test_appending_to_a_format_1_file_upgrades_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    rec = Recorder(db, private=False)
    rec.write(closed_event())
    rec.write_queues(1.7e9, 1.0, build_listeners(listener()))
    rec.close()
    assert open_for_reading(db).version == 2
    events = list(read_events(db))
    assert len(events) == 107
    assert not any(e.lower_bound for e in events)  # format 1 rows read as exact
    con = sqlite3.connect(db)
    assert con.execute("SELECT accept_queue, backlog, capacity, half_open FROM queue_samples").fetchall() == [
        (3, 4, 5, 0)
    ]
    con.close()


def test_a_lower_bound_duration_is_recorded_as_such(tmp_path: Path) -> None:
    db = tmp_path / "bound.db"
    rec = Recorder(db, private=False)
    rec.write(closed_event(40000)._replace(lower_bound=True, duration=3.0))
    rec.write(closed_event(40001))
    rec.close()
    bounds = {e.endpoint.local_port: (e.duration, e.lower_bound) for e in read_events(db)}
    assert bounds == {40000: (3.0, True), 40001: (0.01, False)}


def test_close_checkpoints_and_removes_the_wal_and_shm(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    rec = Recorder(db, private=False)
    for i in range(50):
        rec.write(closed_event(40000 + i))
    rec.commit()
    assert companions(db) == ["run.db-shm", "run.db-wal"]  # live: in WAL mode
    rec.close()
    rec.close()  # twice is harmless (a signal may close it again)
    assert companions(db) == []
    assert len(list(read_events(db))) == 50
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_a_private_recording_and_its_companions_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        private = Recorder(tmp_path / "root.db", private=True)
        private.write(closed_event())
        private.commit()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        private.close()
        plain = Recorder(tmp_path / "user.db", private=False)
        plain.close()
    finally:
        os.umask(old)
    assert modes == {"root.db": 0o600, "root.db-wal": 0o600, "root.db-shm": 0o600}
    assert stat.S_IMODE((tmp_path / "user.db").stat().st_mode) == 0o644


def test_an_existing_own_file_is_made_owner_only_when_private(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    Recorder(db, private=False).close()
    db.chmod(0o644)
    Recorder(db, private=True).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    link = tmp_path / "run.db"
    link.symlink_to(target)
    with pytest.raises(RecordingError, match="symbolic link"):
        Recorder(link, private=True)
    link.unlink()
    (tmp_path / "run.db-wal").symlink_to(target)  # a planted log
    with pytest.raises(RecordingError, match=r"run\.db-wal: is a symbolic link"):
        Recorder(link, private=True)
    assert target.read_bytes() == b"keep me" and not link.exists()


@ROOT_ONLY
def test_root_refuses_to_write_into_another_users_file(tmp_path: Path) -> None:
    db = tmp_path / "planted.db"
    db.write_bytes(b"")
    os.chown(db, 65534, 65534)
    with pytest.raises(RecordingError, match="belongs to uid 65534"):
        Recorder(db, private=True)
    assert db.read_bytes() == b""


def damaged(path: Path) -> Path:
    """A recording that reads, but fails SQLite's integrity check: one index entry's
    timestamp changed under the row it points to."""
    rec = Recorder(path, private=False)
    for i in range(50):
        rec.write(closed_event(40000 + i, 1.7e9 + i * 0.1))
    rec.close()
    con = sqlite3.connect(path)
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_time'").fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with path.open("r+b") as f:  # the last cell of the index's only page: its REAL key
        f.seek(root * size - 5)
        byte = f.read(1)[0]
        f.seek(root * size - 5)
        f.write(bytes([byte ^ 0x55]))
    return path


def test_a_damaged_recording_is_not_appended_to(tmp_path: Path) -> None:
    db = damaged(tmp_path / "bad.db")
    assert len(list(read_events(db))) == 50  # it reads...
    before = db.read_bytes()
    with pytest.raises(RecordingError, match=r"damaged recording .*integrity check: row .* missing"):
        Recorder(db, private=False)  # ...but is not written to
    assert db.read_bytes() == before
    err = io.StringIO()
    assert main(["watch", "--record", str(db)], Env(stdout=io.StringIO(), stderr=err)) == 2
    assert err.getvalue().count("\n") == 1 and "not appending" in err.getvalue()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path


@pytest.mark.parametrize(
    "target", ["/proc/version", "/dev/null", "/dev/full", "DIR", "", "FIFO", "MISSING/run.db"]
)
def test_watch_record_to_an_unusable_path_is_one_line(target: str, tmp_path: Path, fifo: Path) -> None:
    path = {"DIR": str(tmp_path), "FIFO": str(fifo), "MISSING/run.db": str(tmp_path / "no" / "run.db")}.get(
        target, target
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["watch", "--record", path, "--duration", "0.2s"], Env(stdout=out, stderr=err)) == 2
    assert err.getvalue().count("\n") == 1 and err.getvalue().startswith("sockscope: "), err.getvalue()
    assert "Traceback" not in err.getvalue() and out.getvalue() == ""


# -- read-only readers: another user, a read-only mount --------------------------------


RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"


def python_for(user: str) -> str | None:
    """An interpreter ``user`` may run (the test's own may live in root's home)."""
    for exe in ("/usr/bin/python3", shutil.which("python3") or ""):
        if not exe:
            continue
        probe = subprocess.run(
            [RUNUSER, "-u", user, "--", exe, "-c", "import sys, sqlite3; assert sys.version_info >= (3, 11)"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return exe
    return None


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory (pytest's own tmp_path is 0700), with a copy of the
    package that another user can import."""
    path = Path(tempfile.mkdtemp(prefix="sockscope-test-"))
    try:
        path.chmod(0o755)
        shutil.copytree(SRC / "sockscope", path / "lib" / "sockscope")
        for p in (path / "lib").rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        (path / "lib").chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_as(user: str, exe: str, lib: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNUSER, "-u", user, "--", exe, "-S", "-m", "sockscope", *argv],
        env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@ROOT_ONLY
def test_another_user_reads_roots_0644_recordings(public_dir: Path) -> None:
    exe = python_for("nobody")
    if exe is None:
        pytest.skip("no Python 3.11 that user nobody may run")
    made = public_dir / "made.db"
    rec = Recorder(made, private=False)
    rec.write(closed_event())
    rec.close()
    v1 = public_dir / "v1.db"
    shutil.copy(FIXTURE, v1)  # in WAL mode, as format 1 left it
    for db in (made, v1):
        db.chmod(0o644)
        for cmd in ("replay", "stats"):
            done = run_as("nobody", exe, public_dir / "lib", cmd, str(db))
            assert done.returncode == 0, (db.name, cmd, done.stderr)
            assert done.stdout.strip() and not done.stderr
    assert sorted(p.name for p in public_dir.iterdir()) == ["lib", "made.db", "v1.db"]


@ROOT_ONLY
def test_a_recording_on_a_read_only_mount_is_read(public_dir: Path) -> None:
    exe = python_for("nobody") or "/usr/bin/python3"
    data = public_dir / "data"
    data.mkdir(mode=0o755)
    shutil.copy(FIXTURE, data / "v1.db")
    rec = Recorder(data / "killed.db", private=False)  # a watcher killed: its log stays
    rec.write(closed_event())
    rec.commit()
    shutil.copy(data / "killed.db", data / "left.db")
    shutil.copy(data / "killed.db-wal", data / "left.db-wal")
    rec.close()
    ro = public_dir / "ro"
    ro.mkdir(mode=0o755)
    script = (
        f"mount --bind {data} {ro} && mount -o remount,bind,ro {ro} && "
        f"PYTHONPATH={public_dir / 'lib'} {exe} -S -m sockscope stats {ro}/v1.db && "
        f"PYTHONPATH={public_dir / 'lib'} {exe} -S -m sockscope replay {ro}/left.db"
    )
    # A mount namespace of its own: the bind mount vanishes with it, whatever happens.
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "106 events" in done.stdout
    # The killed watcher's log could not be opened there: said, not hidden.
    assert "could not be read" in done.stderr and done.stderr.count("\n") == 1
