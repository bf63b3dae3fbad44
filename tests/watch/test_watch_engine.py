"""The watch engine against real short connections: none missed, per source set."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.helpers.load import start_load

N = 300
PORT = 2323


def watch_jsonl(ns: str, *extra: str, seconds: float = 6.0) -> tuple[list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["watch", "--netns", ns, "--jsonl", "--duration", f"{seconds}s", *extra], Env(stdout=out, stderr=err)
    )
    assert code == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def run_with_load(ns: str, *extra: str) -> tuple[list[dict[str, object]], str, int]:
    load = start_load(ns, N, PORT, delay=1.5)
    events, err = watch_jsonl(ns, *extra)
    out, _ = load.communicate(timeout=30)
    return events, err, int(out.split()[0])


def ends(events: list[dict[str, object]], kind: str) -> Counter[str]:
    """How many client and server ends of the load's connections had ``kind``."""
    c: Counter[str] = Counter()
    for e in events:
        if e["event"] != kind:
            continue
        if e["local_port"] == PORT and e["remote_port"]:
            c["server"] += 1
        elif e["remote_port"] == PORT:
            c["client"] += 1
    return c


KERNEL_SOURCES = {"bpf": "bpf,destroy,poll", "trace": "trace,destroy,poll"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel-side sources need root")
@pytest.mark.parametrize("source", sorted(KERNEL_SOURCES))
def test_every_connection_opened_and_closed_with_its_process(netns: str, source: str) -> None:
    events, err, load_pid = run_with_load(netns, "--source", KERNEL_SOURCES[source])
    assert source in err.splitlines()[0]
    assert ends(events, "opened") == {"client": N, "server": N}
    assert ends(events, "closed") == {"client": N, "server": N}
    for e in events:
        if e["event"] in ("opened", "closed") and (e["local_port"] == PORT or e["remote_port"] == PORT):
            assert e["pid"] == load_pid, e  # the client connected, the server's listener accepted
    # Sub-millisecond lives are measured, not lost, and exactly: the kernel saw them open.
    closed = [e for e in events if e["event"] == "closed" and PORT in (e["local_port"], e["remote_port"])]
    assert all(e["duration"] is not None and not e["duration_lower_bound"] for e in closed)
    assert min(e["duration"] for e in closed) < 0.001  # type: ignore[type-var]
    # Events of other namespaces (this test's own traffic elsewhere) are never mixed in.
    assert all(e["local_address"] in ("127.0.0.1", "0.0.0.0") for e in events)
    assert "# lost events: 0" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel-side sources need root")
@pytest.mark.parametrize("source", sorted(KERNEL_SOURCES))
def test_a_port_filter_run_in_the_kernel_misses_nothing(netns: str, source: str) -> None:
    # The same load, watched through `port == PORT`: the kernel-side sources drop other
    # ports' sockets, never these.
    events, err, load_pid = run_with_load(netns, "--source", KERNEL_SOURCES[source], f"port == {PORT}")
    assert "ports filtered in the kernel for" in err and source in err.splitlines()[0].split("kernel for")[1]
    assert ends(events, "opened") == {"client": N, "server": N}
    assert ends(events, "closed") == {"client": N, "server": N}
    assert all(e["pid"] == load_pid for e in events if e["event"] in ("opened", "closed"))
    assert all(PORT in (e["local_port"], e["remote_port"]) for e in events)


@pytest.mark.skipif(os.geteuid() != 0, reason="the bpf source needs root")
def test_text_lines_of_every_connection_with_its_process(netns: str) -> None:
    """watch's default output takes the eBPF rows' direct way too: the same facts."""
    load = start_load(netns, N, PORT, delay=1.5)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["watch", "--netns", netns, "--source", "bpf,destroy,poll", "--duration", "6s"],
        Env(stdout=out, stderr=err),
    )
    load_pid = int(load.communicate(timeout=30)[0].split()[0])
    assert code == 0, err.getvalue()
    ends: Counter[tuple[str, str]] = Counter()
    for line in out.getvalue().splitlines():
        words = line.split()
        if len(words) < 7 or words[1] not in ("opened", "closed"):
            continue
        local, remote, who = words[3], words[4], words[6]
        end = "server" if local == f"127.0.0.1:{PORT}" else "client" if remote == f"127.0.0.1:{PORT}" else ""
        if end:
            assert who.endswith(f"/{load_pid}"), line
            ends[end, words[1]] += 1
    assert ends == {(e, k): N for e in ("server", "client") for k in ("opened", "closed")}
    assert "# lost events: 0" in out.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="the bpf source needs root")
def test_closes_only_are_asked_of_the_kernel_and_all_come(netns: str) -> None:
    events, _, load_pid = run_with_load(netns, "--source", "bpf,destroy,poll", "event == closed")
    assert {e["event"] for e in events} == {"closed"}
    assert ends(events, "closed") == {"client": N, "server": N}
    assert all(e["pid"] == load_pid for e in events if PORT in (e["local_port"], e["remote_port"]))


@pytest.mark.skipif(os.geteuid() != 0, reason="the bpf source needs root")
def test_state_events_on_request(netns: str) -> None:
    events, _, _ = run_with_load(netns, "--source", "bpf,destroy,poll", "--events", "all")
    server: dict[object, list[str]] = {}
    for e in events:
        if e["event"] == "state" and e["local_port"] == PORT and e["remote_port"]:
            server.setdefault(e["remote_port"], []).append(f"{e['old_state']}->{e['state']}")
    # The load closes two connections in three with FINs (the others with a reset, which
    # goes straight to CLOSE: a closed event, no state): each such server end is seen
    # taking the peer's FIN, then sending its own; establishing is its opened event.
    assert len(server) == N - (N + 2) // 3
    assert all(t == ["ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK"] for t in server.values()), server


def test_without_the_tracepoint_every_close_is_seen(netns: str) -> None:
    events, err, _ = run_with_load(netns, "--source", "poll,destroy")
    assert "trace" not in err.splitlines()[0]
    closed = ends(events, "closed")
    assert closed == {"client": N, "server": N}
    server = [e for e in events if e["event"] == "closed" and e["local_port"] == PORT]
    assert all(e["process"] for e in server)  # attributed to the listener's owner


def test_a_one_second_poll_misses_short_connections(netns: str) -> None:
    """The contrast that motivates the other sources: polling alone sees almost none."""
    events, _, _ = run_with_load(netns, "--source", "poll")
    assert sum(ends(events, "opened").values()) < N // 10


def test_other_namespaces_are_left_out(netns: str) -> None:
    other = f"{netns}-x"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "-n", other, "link", "set", "lo", "up"], check=True)
        noise = start_load(other, 50, 2424, delay=1.0)
        events, _ = watch_jsonl(netns, seconds=3.5)
        noise.communicate(timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)
    assert not [e for e in events if 2424 in (e["local_port"], e["remote_port"])]


def test_record_replay_stats_and_sigkill(netns: str, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    load = start_load(netns, 100, PORT, delay=0.5)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockscope",
            "watch",
            "--netns",
            netns,
            "--record",
            str(db),
            "--source",
            "poll,destroy",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    load.communicate(timeout=30)
    time.sleep(2.5)  # more than the one-second commit interval
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", str(db), "--jsonl", "event == closed"], Env(stdout=out, stderr=err)) == 0, (
        err.getvalue()
    )
    closed = [json.loads(x) for x in out.getvalue().splitlines()]
    assert ends(closed, "closed") == {"client": 100, "server": 100}
    out = io.StringIO()
    assert main(["stats", str(db)], Env(stdout=out, stderr=io.StringIO())) == 0
    text = out.getvalue()
    assert "Conversations" in text and "Busiest ports" in text
    row = next(line for line in text.splitlines() if line.startswith("127.0.0.1") and " 2323 " in line)
    assert row.split()[2] == "200"


def test_sigterm_removes_the_trace_instance_and_summarises(netns: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the tracepoint source needs root")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockscope", "watch", "--netns", netns, "--source", "trace,destroy,poll"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    instance = Path(f"/sys/kernel/tracing/instances/sockscope-{proc.pid}")
    deadline = time.monotonic() + 10
    while not instance.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert instance.exists()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not instance.exists()
    assert "# lost events: 0" in out and "sources: poll, trace, destroy" in out


@pytest.mark.parametrize("content", [b"garbage, not a database" * 100, b""])
def test_damaged_or_foreign_recordings_are_one_line_errors(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    if not content:  # an empty SQLite database that is not ours
        import sqlite3  # noqa: PLC0415

        sqlite3.connect(bad).execute("CREATE TABLE t (x)").connection.commit()
    err = io.StringIO()
    assert main(["replay", str(bad)], Env(stdout=io.StringIO(), stderr=err)) == 2
    assert err.getvalue().count("\n") == 1 and "not a sockscope recording" in err.getvalue()
    err = io.StringIO()
    assert main(["stats", str(tmp_path / "missing.db")], Env(stdout=io.StringIO(), stderr=err)) == 2


def test_bad_watch_arguments() -> None:
    for argv, needle in (
        (["watch", "--source", "magic"], "unknown source"),
        (["watch", "--max-size", "5MB"], "--record"),
        (["watch", "--interval", "1ms"], "at least 10ms"),
        (["watch", "--duration", "soon"], "not a duration"),
        (["watch", "prot == tcp"], "did you mean"),
    ):
        err = io.StringIO()
        assert main(argv, Env(stdout=io.StringIO(), stderr=err)) == 2, argv
        assert needle in err.getvalue(), (argv, err.getvalue())


REUSE = r"""
import socket, struct, sys, time, os
lst = socket.socket(); lst.bind(("127.0.0.1", 2323)); lst.listen(16)
time.sleep(float(sys.argv[1]))
for i in range(3):
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("127.0.0.1", 40404))  # the same 4-tuple every time
    c.connect(("127.0.0.1", 2323)); a, _ = lst.accept()
    time.sleep(0.01 * (i + 1))    # lives of 10, 20 and 30 ms
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close(); a.close()
print(os.getpid(), flush=True)
time.sleep(1)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the tracepoint source needs root")
def test_a_reused_four_tuple_keeps_its_connections_apart(netns: str) -> None:
    load = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", REUSE, "1.5"], stdout=subprocess.PIPE, text=True
    )
    events, _ = watch_jsonl(netns, seconds=4.5)
    pid = int(load.communicate(timeout=30)[0].split()[0])
    client = [e for e in events if e["event"] == "closed" and e["local_port"] == 40404]
    opened = [e for e in events if e["event"] == "opened" and e["local_port"] == 40404]
    assert len(client) == 3 and len(opened) == 3
    assert all(e["pid"] == pid for e in client + opened)
    durations = sorted(e["duration"] for e in client)  # type: ignore[type-var]
    assert durations[0] < durations[1] < durations[2] < 0.2, durations


def _start_traced_watch(netns: str, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockscope",
            "watch",
            "--netns",
            netns,
            "--source",
            "trace,destroy,poll",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    instance = Path(f"/sys/kernel/tracing/instances/sockscope-{proc.pid}")
    deadline = time.monotonic() + 10
    while not instance.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.exists()
    time.sleep(0.5)
    return proc, instance


@pytest.mark.skipif(os.geteuid() != 0, reason="the tracepoint source needs root")
def test_sigkill_leaves_no_trace_instance_behind(netns: str) -> None:
    proc, instance = _start_traced_watch(netns)
    proc.kill()
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while instance.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not instance.exists()  # its reaper removed it


@pytest.mark.skipif(os.geteuid() != 0, reason="the tracepoint source needs root")
def test_sighup_stops_cleanly_with_a_summary(netns: str, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    proc, instance = _start_traced_watch(netns, "--record", str(db))
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "# sources: poll, trace, destroy" in out
    assert not instance.exists()
    assert db.exists() and not list(tmp_path.glob("run.db-*"))  # no -wal or -shm left
