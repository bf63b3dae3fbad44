"""The eBPF source on the real kernel (root): loaded, self-tested and attached for a
namespace of the test's own, its records checked against ``ss`` and against what the
test did."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from sockscope.model.states import TcpState
from sockscope.sources import bpf_syscalls as sc
from sockscope.sources.bpf import BpfSource, bpf_available
from sockscope.sources.netns import entered_netns
from sockscope.wire.ebpf.records import (
    FLAG_LISTENER,
    FLAG_MIDLIFE,
    FLAG_NO_ENTRY,
    FLAG_PID,
    KIND_CLOSE,
    KIND_LISTEN,
    KIND_OPEN,
    BpfRecord,
)
from tests.conftest import IS_ROOT
from tests.helpers.netns import ss

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="loading eBPF programs needs root"),
    pytest.mark.skipif(
        IS_ROOT and bpf_available() is not None, reason=f"eBPF unavailable: {bpf_available()}"
    ),
]
SRC = Path(__file__).parents[2] / "src"
SO_COOKIE = 57


def inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


@pytest.fixture
def source(netns: str) -> Iterator[BpfSource]:
    with BpfSource(netns_inode=inode(netns), want_open=True) as src:
        yield src


def drain(src: BpfSource, until: int = 1, timeout: float = 2.0, kind: int = KIND_CLOSE) -> list[BpfRecord]:
    """Records read until ``until`` of ``kind`` have come (or the timeout)."""
    out: list[BpfRecord] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src.read(out)
        if sum(r.kind == kind for r in out) >= until:
            break
        time.sleep(0.01)
    time.sleep(0.02)
    src.read(out)
    return out


def cookie(s: socket.socket) -> int:
    value: int = struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
    return value


def pair(ns: str, family: socket.AddressFamily = socket.AF_INET, port: int = 0) -> tuple[socket.socket, ...]:
    """(listener, client, server end) of a fresh loopback connection inside ``ns``."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with entered_netns(ns):
        srv = socket.socket(family)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(8)
        cli = socket.create_connection((host, srv.getsockname()[1]))
    conn, _ = srv.accept()
    return srv, cli, conn


def exchange(cli: socket.socket, conn: socket.socket, up: int, down: int) -> None:
    cli.sendall(b"u" * up)
    conn.recv(up, socket.MSG_WAITALL)
    conn.sendall(b"d" * down)
    cli.recv(down, socket.MSG_WAITALL)


def ss_info(ns: str, family: str) -> dict[tuple[int, int], dict[str, str]]:
    """``ss -tinHe``'s numbers per (local port, remote port)."""
    out: dict[tuple[int, int], dict[str, str]] = {}
    key: tuple[int, int] | None = None
    for line in ss(ns, "-tinHe", family).splitlines():
        words = line.split()
        if not line[:1].isspace():
            key = (int(words[3].rsplit(":", 1)[1]), int(words[4].rsplit(":", 1)[1]))
            out[key] = {}
        assert key is not None
        out[key].update(w.split(":", 1) for w in words if ":" in w and not w.startswith(("[", "1", "*")))
    return out


def closes(records: list[BpfRecord], sport: int, dport: int) -> BpfRecord:
    (r,) = [r for r in records if r.kind == KIND_CLOSE and (r.sport, r.dport) == (sport, dport)]
    return r


@pytest.mark.parametrize(("family", "flag"), [(socket.AF_INET, "-4"), (socket.AF_INET6, "-6")])
def test_close_records_match_ss_field_by_field(
    netns: str, source: BpfSource, family: socket.AddressFamily, flag: str
) -> None:
    srv, cli, conn = pair(netns, family)
    exchange(cli, conn, 3000, 1234)
    time.sleep(0.05)  # the last ACKs
    before = ss_info(netns, flag)
    ends = {"client": cli.getsockname()[:2], "server": conn.getsockname()[:2]}
    peers = {"client": conn.getsockname()[1], "server": cli.getsockname()[1]}
    cookies = {"client": cookie(cli), "server": cookie(conn)}
    cli.close()
    conn.close()
    srv.close()
    records = drain(source, until=3)
    for end, (addr, port) in ends.items():
        r = closes(records, port, peers[end])
        info = before[(port, peers[end])]
        assert int(info["sk"], 16) == cookies[end] == r.cookie
        assert r.bytes_sent == int(info["bytes_sent"])
        assert r.bytes_acked - int(info["bytes_acked"]) in (0, 1)  # + the FIN, once acked
        assert r.bytes_received - int(info["bytes_received"]) in (0, 1)  # + the peer's FIN
        srtt_ss = float(info["rtt"].split("/")[0]) * 1000
        assert srtt_ss / 4 <= r.srtt_us <= srtt_ss * 4 + 200  # one more sample (the FIN's)
        assert (r.saddr, r.daddr) == (ip_address(addr), ip_address(addr))
        assert (r.family, r.netns, r.total_retrans) == (4 if family == socket.AF_INET else 6, inode(netns), 0)
        assert (r.pid, r.flags) == (os.getpid(), FLAG_PID)
        assert 0 < r.start_ns < r.ts_ns <= time.monotonic_ns()
    assert source.counters() == (0, 0, 0, 0, 0)


def test_a_reset_closes_both_ends_from_established(netns: str, source: BpfSource) -> None:
    srv, cli, conn = pair(netns)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cport, sport = cli.getsockname()[1], conn.getsockname()[1]
    cli.close()  # RST
    records = drain(source, until=2)
    client, server = closes(records, cport, sport), closes(records, sport, cport)
    assert client.oldstate == server.oldstate == TcpState.ESTABLISHED
    assert (client.flags, client.pid) == (FLAG_PID, os.getpid())
    assert server.flags == FLAG_LISTENER  # its own process never acted on it: the listener's owner
    conn.close()
    srv.close()


def test_a_connection_older_than_the_source_is_flagged(netns: str) -> None:
    srv, cli, conn = pair(netns)
    with BpfSource(netns_inode=inode(netns)) as src:
        loaded = time.monotonic_ns()
        cli.close()
        conn.close()
        records = drain(src, until=2)
    for r in records:
        assert r.flags & (FLAG_MIDLIFE | FLAG_NO_ENTRY), r
        assert r.start_ns == 0 or r.start_ns >= loaded  # unknown, or only a lower bound
    assert len([r for r in records if r.kind == KIND_CLOSE]) == 2
    srv.close()


def test_an_accepted_connection_is_named_by_its_listener_then_by_the_worker_closing_it(
    netns: str, source: BpfSource
) -> None:
    srv, cli, conn = pair(netns)
    sport, cport = conn.getsockname()[1], cli.getsockname()[1]
    opened = drain(source, until=2, kind=KIND_OPEN)
    server_open = next(r for r in opened if r.kind == KIND_OPEN and r.sport == sport)
    assert (server_open.pid, server_open.flags) == (os.getpid(), FLAG_LISTENER)
    worker = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys; socket.socket(fileno=3).close(); sys.stdin.read()"],
        pass_fds=[conn.fileno()],
        stdin=subprocess.PIPE,
    )
    conn.close()  # the worker holds the last reference: its close is the one that counts
    try:
        time.sleep(0.3)
        cli.close()
        records = drain(source, until=2)
    finally:
        worker.communicate(b"", timeout=10)
    server = closes(records, sport, cport)
    assert (server.pid, server.flags) == (worker.pid, FLAG_PID)
    assert server.start_ns == server_open.start_ns
    srv.close()


def test_a_seeded_listener_names_what_it_accepts(netns: str) -> None:
    with entered_netns(netns):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
    port = srv.getsockname()[1]
    with BpfSource(netns_inode=inode(netns), want_open=True) as src:
        src.seed_listener(inode(netns), 4, port, 4242, "seeded")
        with entered_netns(netns):
            cli = socket.create_connection(("127.0.0.1", port))
        records = drain(src, until=2, kind=KIND_OPEN)
        server = next(r for r in records if r.kind == KIND_OPEN and r.sport == port)
        assert (server.pid, server.comm, server.flags) == (4242, "seeded", FLAG_LISTENER)
    cli.close()
    srv.close()


def test_another_namespaces_sockets_never_come_out(netns: str, source: BpfSource) -> None:
    other = f"{netns}-b"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "-n", other, "link", "set", "lo", "up"], check=True)
        for _ in range(5):
            srv, cli, conn = pair(other)
            for s in (cli, conn, srv):
                s.close()
        srv, cli, conn = pair(netns)
        ours = {srv.getsockname()[1], cli.getsockname()[1]}
        for s in (cli, conn, srv):
            s.close()
        records = drain(source, until=3)
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)
    assert records
    assert {r.netns for r in records} == {inode(netns)}
    assert {r.sport for r in records} <= ours


def test_port_spans_filter_in_the_kernel(netns: str) -> None:
    with entered_netns(netns):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
        probe.close()
    spans = ((True, wanted, wanted), (False, wanted, wanted))  # `port == wanted`, pushed down
    with BpfSource(netns_inode=inode(netns), want_open=True, ports=spans) as src:
        assert src.port_filtered
        socks = [*pair(netns, port=wanted), *pair(netns)]
        other = socks[3].getsockname()[1]
        for s in socks:
            s.close()
        records = drain(src, until=3)  # the wanted port's listener, client and server
    assert (KIND_LISTEN, other) in {(r.kind, r.sport) for r in records}  # LISTEN: never filtered
    rest = [r for r in records if r.kind != KIND_LISTEN]
    assert all(wanted in (r.sport, r.dport) for r in rest)
    ends = {(r.kind, r.sport == wanted) for r in rest}
    assert ends == {(KIND_OPEN, True), (KIND_OPEN, False), (KIND_CLOSE, True), (KIND_CLOSE, False)}


def test_run_statistics_count_the_programs_runs(netns: str) -> None:
    with BpfSource(netns_inode=inode(netns), enable_stats=True) as src:
        srv, cli, conn = pair(netns)
        for s in (cli, conn, srv):
            s.close()
        drain(src, until=3)
        stats = src.run_stats()
        assert stats is not None and stats[1] >= 7 and stats[0] > 0  # ~10 transitions here


def test_close_and_sigkill_leave_no_program_behind(netns: str) -> None:
    with BpfSource(netns_inode=inode(netns)) as src:
        prog_id = sc.prog_info(src.prog_fd).id
        assert prog_id in sc.prog_ids() and _name(prog_id) == "sockscope"
    src.close()  # idempotent
    assert _gone(prog_id)
    code = (
        "import sys; from sockscope.sources.bpf import BpfSource; from sockscope.sources import bpf_syscalls;"
        f"s = BpfSource(netns_inode={inode(netns)}); print(bpf_syscalls.prog_info(s.prog_fd).id, flush=True);"
        "sys.stdin.read()"
    )
    env = os.environ | {"PYTHONPATH": str(SRC)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        child_id = int(child.stdout.readline())
        assert child_id in sc.prog_ids()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _gone(child_id)


def _gone(prog_id: int) -> bool:
    """The kernel frees a program after an RCU grace period: give it a moment."""
    deadline = time.monotonic() + 5
    while prog_id in sc.prog_ids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_wrong_btf_offset_is_caught_by_the_self_test(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage read through a wrong offset raises no error in the kernel: the self-test
    is what notices it, and the source is refused with a line saying which field."""
    import sockscope.sources.bpf as bpf_module  # noqa: PLC0415

    real = bpf_module.kernel_offsets
    monkeypatch.setattr(bpf_module, "kernel_offsets", lambda btf: real(btf)._replace(bytes_acked=8))
    before = set(sc.prog_ids())
    with pytest.raises(bpf_module.BpfUnavailableError, match=r"self-test failed.*bytes_acked") as caught:
        BpfSource(netns_inode=inode(netns))
    assert "\n" not in str(caught.value)
    assert _settled(before)


def test_a_refused_program_reports_the_verifiers_words() -> None:
    """r0 left unset at exit: the verifier's log says so, and so does the error."""
    with pytest.raises(sc.BpfSyscallError) as caught:
        sc.prog_load(sc.BPF_PROG_TYPE_TRACEPOINT, bytes.fromhex("9500000000000000"), "Dual MIT/GPL", "bad")
    assert "R0 !read_ok" in caught.value.log
    import sockscope.sources.bpf as bpf_module  # noqa: PLC0415

    line = bpf_module._refusal(caught.value)
    assert line.startswith("the kernel's verifier refused the eBPF program:") and "R0" in line
    assert "\n" not in line


def _settled(before: set[int]) -> bool:
    """No program of ours is left beyond those loaded before (others' may come and go)."""
    deadline = time.monotonic() + 5
    while True:
        ours = [p for p in set(sc.prog_ids()) - before if _name(p) == "sockscope"]
        if not ours:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _name(prog_id: int) -> str:
    info = sc.prog_info_by_id(prog_id)
    return info.name if info is not None else ""
