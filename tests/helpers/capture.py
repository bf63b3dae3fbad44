"""Running ``sockscope capture``, dumpcap and tshark around a bounded load."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT

TSHARK = shutil.which("tshark")
DUMPCAP = shutil.which("dumpcap")
LUA = str(Path(__file__).resolve().parents[2] / "contrib" / "wireshark" / "sockscope.lua")
needs_capture = pytest.mark.skipif(
    not IS_ROOT or TSHARK is None or DUMPCAP is None,
    reason="needs root and tshark/dumpcap (scripts/test installs them)",
)
READY_TIMEOUT = 20.0
DUMPCAP_SETTLE = 0.3

# Connections that each send a few bytes both ways and close, in a process named NAME
# (its comm), after a line on stdin; prints its pid when done.
LOAD = r"""
import os, socket, sys, time
name, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
open("/proc/self/comm", "w").write(name)
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", port)); lst.listen(128)
print("ready", flush=True); sys.stdin.readline()
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port)); a, _ = lst.accept()
    c.sendall(b"q" * 100); a.recv(100); a.sendall(b"r" * 200); c.recv(200)
    c.close(); a.close()
lst.close()
print(os.getpid(), flush=True)
"""


def sockscope_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sockscope", "capture", *args]


class Load:
    """A load process in a namespace, started and then released."""

    def __init__(self, netns: str | None, name: str, n: int, port: int) -> None:
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", LOAD, name, str(n), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid if netns is None else 0

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        out, _ = self.proc.communicate(timeout=60)
        self.pid = int(out.split()[-1])
        return self.pid


class Running:
    """A capture (or dumpcap) started in the background, ready once it says so."""

    def __init__(self, cmd: list[str], ready: str) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT
        self.head = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.head += line
            if ready in line:
                return
        self.proc.kill()
        raise AssertionError(f"not ready: {cmd} said {self.head!r}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, self.head + err


def start_capture(*args: str) -> Running:
    return Running(sockscope_cmd(*args), "sockscope: capturing")


def start_dumpcap(netns: str, pcap_filter: str, out: Path) -> Running:
    running = Running(
        ["ip", "netns", "exec", netns, str(DUMPCAP), "-q", "-i", "lo", "-f", pcap_filter, "-w", str(out)],
        "Capturing on",
    )
    # dumpcap says "Capturing on" a few milliseconds before its socket sees packets
    # (measured: traffic 50 ms later is all there, traffic at once is lost).
    time.sleep(DUMPCAP_SETTLE)
    return running


def tshark_fields(path: Path, *fields: str, display: str = "", lua: bool = False) -> list[list[str]]:
    """One row per packet of ``path`` (after the display filter), the fields asked for."""
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(path), "-T", "fields"]
    if lua:
        cmd += ["-X", f"lua_script:{LUA}"]
    if display:
        cmd += ["-Y", display]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def count(path: Path, display: str = "", lua: bool = False) -> int:
    return len(tshark_fields(path, "frame.number", display=display, lua=lua))


def wait_for_size(path: Path, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed empty")


def no_stray_files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))
