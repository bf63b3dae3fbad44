"""``sockscope capture`` on real loopback traffic in a namespace, read back by tshark, with
dumpcap capturing the same traffic beside it as the count to match."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.capture import (
    Load,
    count,
    needs_capture,
    sockscope_cmd,
    start_capture,
    start_dumpcap,
    tshark_fields,
)
from tests.helpers.kernel_objects import left_behind, sockscope_programs, trace_instance
from tests.helpers.pcapng_blocks import blocks, isb_options

PORT = 2323
N = 25
SYN = "tcp.flags.syn == 1 && tcp.flags.ack == 0"


@dataclass
class Run:
    ours: Path
    dumpcap: Path
    pid: int
    stderr: str
    status: int


@pytest.fixture(scope="module")
def module_netns() -> Iterator[str]:
    import uuid  # noqa: PLC0415

    name = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def load_run(module_netns: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One bounded load captured by sockscope (labels on) and by dumpcap."""
    tmp = tmp_path_factory.mktemp("capture")
    ours, theirs = tmp / "ours.pcapng", tmp / "dumpcap.pcapng"
    load = Load(module_netns, "loadgen", N, PORT)
    cap = start_capture("--netns", module_netns, "-w", str(ours), f"port == {PORT}")
    dc = start_dumpcap(module_netns, f"tcp port {PORT}", theirs)
    load.go()
    pid = load.wait()
    time.sleep(0.5)
    status, err = cap.stop()
    _, dc_err = dc.stop()
    return Run(ours, theirs, pid, err + dc_err, status)


@needs_capture
def test_every_packet_dumpcap_saw_is_in_the_file(load_run: Run) -> None:
    assert load_run.status == 0, load_run.stderr
    theirs = count(load_run.dumpcap)
    assert theirs >= N * 8  # handshake, data both ways, acks, two FINs
    assert count(load_run.ours) == theirs
    assert count(load_run.ours, SYN) == N
    assert re.search(
        rf"sockscope: {theirs} packets written to .*ours.pcapng; .* dropped 0 \(ring full 0", load_run.stderr
    )


@needs_capture
def test_each_packet_names_the_process_that_sent_and_received_it(load_run: Run) -> None:
    total = count(load_run.ours)
    assert count(load_run.ours, f'frame.comment contains "PID: {load_run.pid}\\nCmd: loadgen"') == total
    assert count(load_run.ours, 'frame.comment contains "UserId: 0\\nUserName: root"') == total
    # The Lua post-dissector makes the comments fields.
    assert count(load_run.ours, f"sockscope.pid == {load_run.pid}", lua=True) == total
    rows = tshark_fields(load_run.ours, "sockscope.process", "sockscope.user", display="tcp", lua=True)
    assert {tuple(r) for r in rows} == {("loadgen", "root")}
    assert count(load_run.ours, "sockscope.pid == 1", lua=True) == 0


@needs_capture
def test_the_file_says_where_and_how_it_was_captured(load_run: Run) -> None:
    found, rest = blocks(load_run.ours.read_bytes())
    assert rest == 0
    out = subprocess.run(["capinfos", str(load_run.ours)], capture_output=True, text=True, check=True).stdout
    assert "Name = lo" in out
    assert f"Filter string = port == {PORT}" in out
    assert re.search(r"Comment = ifIndex: 1, netNsInode: \d+, netNsPath: /run/netns/sockscope-test-", out)
    stats = [isb_options(b) for b in found if b.kind == 5]
    assert len(stats) == 1
    assert stats[0][8] == count(load_run.ours)  # isb_usrdeliv: packets written
    assert stats[0][7] == 0  # isb_osdrop
    assert "dropped by the kernel" in str(stats[0][1])
    assert load_run.ours.stat().st_mode & 0o777 == 0o600


@needs_capture
def test_connections_older_than_the_capture_are_named(netns: str, tmp_path: Path) -> None:
    script = (
        "import os, socket, sys\n"
        "open('/proc/self/comm', 'w').write('oldconn')\n"
        "l = socket.socket(); l.bind(('127.0.0.1', 2424)); l.listen()\n"
        "c = socket.create_connection(('127.0.0.1', 2424)); a, _ = l.accept()\n"
        "print(os.getpid(), flush=True); sys.stdin.readline()\n"
        "c.sendall(b'late'); a.recv(4); a.sendall(b'reply'); c.recv(5)\n"
    )
    old = subprocess.Popen(
        ["ip", "netns", "exec", netns, "python3", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert old.stdout is not None and old.stdin is not None
    pid = int(old.stdout.readline())
    out = tmp_path / "old.pcapng"
    cap = start_capture("--netns", netns, "-w", str(out), "port == 2424")
    old.stdin.write("go\n")
    old.stdin.flush()
    old.wait(timeout=10)
    time.sleep(0.3)
    status, err = cap.stop()
    assert status == 0, err
    data = tshark_fields(out, "tcp.len", "frame.comment", display="tcp.len > 0")
    assert [r[0] for r in data] == ["4", "5"]
    assert all(f"PID: {pid}\\nCmd: oldconn" in r[1] for r in data)


@needs_capture
def test_a_udp_flow_shorter_than_the_poll_is_named(netns: str, tmp_path: Path) -> None:
    """UDP sockets are known from dumps alone: the first packet of one not known yet asks
    for a dump at once, so a flow of half a second (half the poll interval) is named."""
    script = (
        "import os, socket, time\n"
        "open('/proc/self/comm', 'w').write('udpburst')\n"
        "rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(('127.0.0.1', 2626))\n"
        "tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.connect(('127.0.0.1', 2626))\n"
        "print(os.getpid(), flush=True)\n"
        "for i in range(25):\n"
        "    tx.send(b'%02d' % i); rx.recv(2); time.sleep(0.02)\n"
    )
    out = tmp_path / "udp.pcapng"
    cap = start_capture("--netns", netns, "-w", str(out), "udp and port == 2626")
    burst = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(burst.stdout.split()[0])
    time.sleep(2.0)  # past the packets' wait for a label
    status, err = cap.stop()
    assert status == 0, err
    rows = tshark_fields(out, "udp.dstport", "frame.comment")
    assert len(rows) == 25
    assert all(f"PID: {pid}\\nCmd: udpburst" in r[1] for r in rows), rows


@needs_capture
def test_handshakes_only_with_headers_only(netns: str, tmp_path: Path) -> None:
    out = tmp_path / "hs.pcapng"
    load = Load(netns, "hsload", 20, 2525)
    cap = start_capture("--netns", netns, "--handshakes", "-w", str(out))
    load.go()
    load.wait()
    time.sleep(0.3)
    status, err = cap.stop()
    assert status == 0, err
    rows = tshark_fields(out, "tcp.flags.syn", "tcp.flags.fin", "tcp.flags.reset", "frame.cap_len")
    assert len(rows) >= 20 * 4
    assert all("1" in r[:3] for r in rows)  # every packet is a SYN, FIN or RST
    assert all(int(r[3]) <= 134 for r in rows)
    assert count(out, SYN) == 20


@needs_capture
def test_a_process_filter_keeps_that_process_s_packets(netns: str, tmp_path: Path) -> None:
    out, theirs = tmp_path / "a.pcapng", tmp_path / "dc.pcapng"
    a, b = Load(netns, "procA", 10, 2601), Load(netns, "procB", 10, 2602)
    cap = start_capture("--netns", netns, "-w", str(out), "process == procA")
    dc = start_dumpcap(netns, "tcp port 2601", theirs)
    a.go()
    b.go()
    a.wait()
    b.wait()
    time.sleep(0.5)
    status, err = cap.stop()
    dc.stop()
    assert status == 0, err
    assert count(out) == count(theirs) > 0
    assert count(out, "tcp.port == 2601") == count(out)
    assert re.search(r"; \d+ left out by the per-packet filter", err)


@needs_capture
def test_a_ring_of_files_of_at_most_the_size_asked(netns: str, tmp_path: Path) -> None:
    load = Load(netns, "ringload", 60, 2626)
    cap = start_capture("--netns", netns, "-w", str(tmp_path / "ring.pcapng"), "-b", "filesize:8,files:3")
    load.go()
    load.wait()
    time.sleep(0.3)
    status, err = cap.stop()
    assert status == 0, err
    files = sorted(tmp_path.glob("ring_*.pcapng"))
    assert len(files) == 3, err
    for f in files:
        assert re.fullmatch(r"ring_\d{5}_\d{14}\.pcapng", f.name)
        assert f.stat().st_size <= 8000
        assert count(f) > 0
        assert blocks(f.read_bytes())[1] == 0
    numbers = [int(f.name.split("_")[1]) for f in files]
    assert numbers == list(range(numbers[0], numbers[0] + 3)) and numbers[0] > 1  # the oldest went


@needs_capture
def test_until_stops_on_the_named_close(netns: str, tmp_path: Path) -> None:
    out = tmp_path / "until.pcapng"
    server = (
        "import socket, time\n"
        "l = socket.socket(); l.bind(('127.0.0.1', 2727)); l.listen()\n"
        "c = socket.create_connection(('127.0.0.1', 2727)); a, _ = l.accept()\n"
        "time.sleep(2); c.sendall(b'bye'); a.recv(3); a.close(); c.close(); time.sleep(5)\n"
    )
    cap = start_capture("--netns", netns, "-w", str(out), "--until", "event == closed and lport == 2727")
    started = time.monotonic()
    peer = subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-c", server])
    try:
        status = cap.proc.wait(timeout=15)
    finally:
        peer.kill()
        peer.wait()
    _, err = cap.stop()
    assert status == 0, err
    assert 1.5 < time.monotonic() - started < 12
    assert "stopped on closed tcp 127.0.0.1:2727" in err
    assert count(out, "tcp.port == 2727 && tcp.flags.fin == 1") == 2


@needs_capture
def test_a_killed_capture_leaves_a_readable_file(netns: str, tmp_path: Path) -> None:
    out = tmp_path / "killed.pcapng"
    load = Load(netns, "killload", 15, 2828)
    cap = start_capture("--netns", netns, "-w", str(out), "--no-labels")
    load.go()
    load.wait()
    time.sleep(1.0)  # past the flush timer
    cap.proc.send_signal(signal.SIGKILL)
    cap.proc.wait(timeout=10)
    found, rest = blocks(out.read_bytes())
    assert rest == 0
    packets = sum(1 for b in found if b.kind == 6)
    assert packets >= 15 * 8
    assert count(out) == packets


@needs_capture
def test_standard_output_feeds_tshark(netns: str, tmp_path: Path) -> None:
    load = Load(netns, "pipeload", 5, 2929)
    cap = subprocess.Popen(
        sockscope_cmd("--netns", netns, "-w", "-", "-c", "20", "port == 2929"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)  # no start line to wait for on a pipe we read ourselves: give it time
    load.go()
    load.wait()
    data, err = cap.communicate(timeout=20)
    assert cap.returncode == 0, err
    path = tmp_path / "stdout.pcapng"
    path.write_bytes(data)
    assert count(path) == 20
    assert b"20 packets written to -" in err


@needs_capture
def test_files_are_never_overwritten_or_followed_unless_asked(netns: str, tmp_path: Path) -> None:
    existing = tmp_path / "there.pcapng"
    existing.write_text("keep me")
    link = tmp_path / "link.pcapng"
    link.symlink_to(tmp_path / "target")
    for path, message in ((existing, "exists; not overwritten without --force"), (link, "symbolic link")):
        done = subprocess.run(
            sockscope_cmd("--netns", netns, "-w", str(path), "-a", "duration:1"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert existing.read_text() == "keep me"
    assert not (tmp_path / "target").exists()
    done = subprocess.run(
        sockscope_cmd("--netns", netns, "-w", str(existing), "-a", "duration:0.5", "--force", "-q"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert existing.read_bytes()[:4] == b"\n\r\r\n"


@needs_capture
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_cleanly_and_leaves_nothing_behind(netns: str, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "sig.pcapng"
    load = Load(netns, "sigload", 5, 3030)
    before = sockscope_programs()
    cap = start_capture("--netns", netns, "-w", str(out))
    load.go()
    load.wait()
    time.sleep(0.3)
    # Labels come from the watch engine: its program (or tracefs instance) is in the
    # kernel now, so the check after the stop is not vacuous.
    assert sockscope_programs() - before or trace_instance(cap.proc.pid).exists()
    status, err = cap.stop(sig)
    assert status == 0, err
    assert re.search(r"sockscope: \d+ packets written", err)
    found, rest = blocks(out.read_bytes())
    assert rest == 0 and found[-1].kind == 5  # ends with its statistics
    assert count(out, "tcp.port == 3030") >= 5 * 8
    assert not left_behind(before, cap.proc.pid)  # the watch engine's eBPF program or tracefs instance


@pytest.fixture
def veth_peer(netns: str) -> Iterator[str]:
    """A second namespace joined to ``netns`` by a veth pair: 10.99.0.1 here, .2 there."""
    import uuid  # noqa: PLC0415

    peer = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", peer], check=True)
    try:
        run = ["ip", "-n", netns]
        subprocess.run(
            [*run, "link", "add", "vcap0", "type", "veth", "peer", "name", "vcap1", "netns", peer], check=True
        )
        subprocess.run([*run, "addr", "add", "10.99.0.1/24", "dev", "vcap0"], check=True)
        subprocess.run([*run, "link", "set", "vcap0", "up"], check=True)
        subprocess.run(["ip", "-n", peer, "addr", "add", "10.99.0.2/24", "dev", "vcap1"], check=True)
        subprocess.run(["ip", "-n", peer, "link", "set", "vcap1", "up"], check=True)
        yield peer
    finally:
        subprocess.run(["ip", "netns", "del", peer], check=False)


@needs_capture
def test_every_interface_with_directions_and_the_local_end_named(
    netns: str, veth_peer: str, tmp_path: Path
) -> None:
    server = (
        "import socket\n"
        "l = socket.socket(); l.bind(('10.99.0.2', 3131)); l.listen(); print('up', flush=True)\n"
        "a, _ = l.accept(); a.sendall(a.recv(5) * 2); a.close()\n"
    )
    client = (
        "import os, socket, time\n"
        "open('/proc/self/comm', 'w').write('vethcli')\n"
        "c = socket.create_connection(('10.99.0.2', 3131)); c.sendall(b'hello'); c.recv(10); c.close()\n"
        "time.sleep(0.5); print(os.getpid())\n"
    )
    out = tmp_path / "veth.pcapng"
    srv = subprocess.Popen(
        ["ip", "netns", "exec", veth_peer, "python3", "-c", server], stdout=subprocess.PIPE, text=True
    )
    assert srv.stdout is not None and srv.stdout.readline().strip() == "up"
    cap = start_capture("--netns", netns, "-w", str(out), "tcp and port == 3131")
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", client], capture_output=True, text=True, check=True
    )
    srv.wait(timeout=10)
    pid = int(done.stdout)
    time.sleep(0.3)
    status, err = cap.stop()
    assert status == 0, err
    info = subprocess.run(["capinfos", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Name = vcap0" in info
    rows = tshark_fields(out, "ip.src", "frame.p2p_dir", "frame.comment", "frame.interface_name")
    assert len(rows) >= 8
    for src, direction, comment, iface in rows:
        assert iface == "vcap0"
        assert direction == ("0" if src == "10.99.0.1" else "1")  # sent, received
        assert f"PID: {pid}\\nCmd: vethcli" in comment  # our end, whichever way it went
