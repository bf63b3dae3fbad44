"""The capture reader against tshark: the same frames, flags and connections."""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from sockscope.report.streams import build_streams
from sockscope.wire.pcapng_read import CaptureError, Packet, parse_capture, parse_segment

TRAFFIC = r"""
import socket, struct, time
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    lst = socket.socket(family); lst.bind((host, 2323)); lst.listen(8)
    for i in range(4):
        c = socket.create_connection((host, 2323)); a, _ = lst.accept()
        if i == 3:  # a reset
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            a.sendall(b"x" * 3000 * (i + 1)); c.recv(65536)
        c.close(); a.close()
        time.sleep(0.05)
    lst.close()
"""

needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("dumpcap") is None, reason="needs tshark and dumpcap"
)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real loopback capture by dumpcap, in a namespace of its own (IPv4 and IPv6)."""
    import os  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    if os.geteuid() != 0:
        pytest.skip("capturing in a namespace needs root")
    if shutil.which("dumpcap") is None:
        pytest.skip("needs dumpcap (tshark)")
    out = tmp_path_factory.mktemp("cap") / "lo.pcapng"
    ns = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        dumpcap = subprocess.Popen(
            ["ip", "netns", "exec", ns, "dumpcap", "-q", "-i", "lo", "-f", "tcp", "-w", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", TRAFFIC], check=True, timeout=30)
            time.sleep(0.5)
        finally:
            dumpcap.send_signal(signal.SIGINT)
            dumpcap.wait(timeout=10)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return out


def tshark_fields(path: Path) -> list[list[str]]:
    fields = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.stream"]
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", *(x for f in fields for x in ("-e", f))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line.split("\t") for line in done.stdout.splitlines()]


@needs_tshark
@pytest.mark.parametrize("fmt", ["pcapng", "pcap", "nsecpcap"])
def test_every_segment_as_tshark_reads_it(capture: Path, fmt: str, tmp_path: Path) -> None:
    path = capture
    if fmt != "pcapng":  # the same packets rewritten by tshark in the classic formats
        path = tmp_path / f"lo.{fmt}"
        subprocess.run(["tshark", "-r", str(capture), "-F", fmt, "-w", str(path)], check=True, timeout=60)
    theirs = tshark_fields(path)
    ours = [s for s in map(parse_segment, parse_capture(path.read_bytes())) if s is not None]
    assert len(theirs) >= 8 * 6  # 8 connections, a handshake and a close each at least
    assert [(str(s.frame), str(s.src), str(s.sport), str(s.dport), f"0x{s.flags:04x}") for s in ours] == [
        (f[0], f[1] or f[2], f[3], f[4], f[5]) for f in theirs
    ]
    assert {str(s.src) for s in ours} == {"127.0.0.1", "::1"}


@needs_tshark
def test_connections_and_their_frames_match_tshark_streams(capture: Path) -> None:
    theirs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for f in tshark_fields(capture):
        theirs[f[6]].append((int(f[0]), int(f[5], 16)))
    segments = [s for s in map(parse_segment, parse_capture(capture.read_bytes())) if s is not None]
    streams = [s for group in build_streams(segments).values() for s in group]
    assert len(streams) == len(theirs) == 8
    by_first = {frames[0][0]: frames for frames in theirs.values()}
    for s in streams:
        frames = by_first[s.first_frame]
        assert s.packets == len(frames)
        assert s.syn_frame == next(n for n, fl in frames if fl & 0x12 == 0x02)
        assert s.fin_frames == tuple(sorted({n for n, fl in frames if fl & 0x01})[:2]) or s.rst_frame
    resets = [s for s in streams if s.rst_frame is not None]
    assert len(resets) == 2  # one per family


def test_bad_captures_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not a pcapng or pcap"):
        list(parse_capture(b"GIF89a" + bytes(64)))
    with pytest.raises(CaptureError, match="too short"):
        list(parse_capture(b"\x0a\x0d"))
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    with pytest.raises(CaptureError, match="runs past the end"):
        list(parse_capture(shb + struct.pack("<II", 6, 400) + bytes(20)))
    with pytest.raises(CaptureError, match="never described"):
        epb = struct.pack("<IIIIIII", 6, 32, 0, 0, 0, 0, 0) + struct.pack("<I", 32)
        list(parse_capture(shb + epb))


def _block(end: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(end + "II", btype, n) + body + struct.pack(end + "I", n)


def test_big_endian_pcapng_with_vlan_ethernet_and_tsresol() -> None:
    """A section written big-endian, an Ethernet frame with an 802.1Q tag, and an
    interface with nanosecond timestamps (if_tsresol 9)."""
    end = ">"
    shb = _block(end, 0x0A0D0D0A, struct.pack(end + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(end, 1, struct.pack(end + "HHI", 1, 0, 0) + struct.pack(end + "HHB", 9, 1, 9) + bytes(3))
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 1024, 0, 0)
    frame = bytes(12) + struct.pack("!HHH", 0x8100, 5, 0x0800) + ip + tcp
    ts = 1_700_000_000_123_456_789
    epb = _block(
        end, 6, struct.pack(end + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame
    )
    (pkt,) = list(parse_capture(shb + idb + epb))
    assert pkt == Packet(1, pytest.approx(1_700_000_000.123456789), 1, frame)
    seg = parse_segment(pkt)
    assert seg is not None and (str(seg.src), seg.sport, str(seg.dst), seg.dport, seg.flags) == (
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
        0x02,
    )
