"""The real Debian ``telnet`` client against ``sockscope demo serve``, through a pty.

The server is the real command (a subprocess, on 127.0.0.1 and a port the kernel picks);
the client runs on a pseudo-terminal that is its controlling terminal (``setsid -c``),
so Ctrl-C reaches it as a person's would.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.demo.helpers import Pty

pytestmark = pytest.mark.skipif(
    shutil.which("telnet") is None or shutil.which("setsid") is None,
    reason="needs the telnet client (apt-get install telnet) and setsid (util-linux)",
)


@pytest.fixture
def demo_server() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """``sockscope demo serve`` on 127.0.0.1, bounded to 60 s; its port."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockscope",
            "demo",
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--duration",
            "60",
            "--rate",
            "200k/s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    match = re.search(r"on 127\.0\.0\.1:(\d+)", first)
    assert match, first
    try:
        yield int(match.group(1)), proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_negotiation_banner_prompt_download(demo_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, server = demo_server
    tn = Pty(["telnet"])
    try:
        tn.expect(rb"telnet> ")
        tn.send(b"toggle options\r")  # the client prints every option it sends and receives
        tn.expect(rb"Will show option processing")
        tn.send(f"open 127.0.0.1 -{port}\r".encode())  # '-PORT': negotiate as on port 23
        tn.expect(rb"You are 127\.0\.0\.1:\d+; this end is 127\.0\.0\.1:" + str(port).encode())
        tn.expect(rb"sockscope> ")
        tn.expect(rb"RCVD WONT STATUS")  # the answer to the client's last request
        # Every request refused: DO -> WONT, WILL -> DONT; and nothing asked of the client.
        for line in (
            b"SENT DO SUPPRESS GO AHEAD",
            b"RCVD WONT SUPPRESS GO AHEAD",
            b"SENT WILL TERMINAL TYPE",
            b"RCVD DONT TERMINAL TYPE",
        ):
            assert line in tn.seen, line
        assert b"RCVD WILL" not in tn.seen and b"RCVD DO " not in tn.seen
        tn.send(b"download 3000\r")
        tn.expect(rb"downloading 3000 bytes at 200\.0 kB/s")
        done = tn.expect(rb"done: 3\.0 kB in [\d.]+s")
        assert tn.seen[: done.start()].count(b"one line after another") >= 3000 // 80
        tn.expect(rb"sockscope> ")
        tn.send(b"quit\r")
        tn.expect(rb"bye")
        tn.expect(rb"Connection closed by foreign host")
        assert tn.proc.wait(5) == 0
    finally:
        tn.close()
    server.send_signal(signal.SIGTERM)
    out, _ = server.communicate(timeout=10)
    assert "asked DO SUPPRESS-GO-AHEAD: refused" in out
    assert "quit after" in out and "stopped; 1 connections served" in out


def test_ctrl_c_stops_a_download(demo_server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = demo_server
    tn = Pty(["telnet", "127.0.0.1", str(port)])  # a plain port: no negotiation at all
    try:
        tn.expect(rb"sockscope> ")
        tn.send(b"ports\r")
        tn.expect(rb"you: 127\.0\.0\.1:\d+   me: 127\.0\.0\.1:" + str(port).encode())
        tn.send(b"download 100M\r")
        tn.expect(rb"downloading 100000000 bytes")
        tn.expect(rb"one line after another")
        tn.send(b"\x03")  # Ctrl-C: telnet sends Interrupt Process
        tn.expect(rb"interrupted", timeout=15)
        tn.send(b"ports\r")
        tn.expect(rb"you: 127\.0\.0\.1")
        tn.send(b"quit\r")
        tn.expect(rb"Connection closed by foreign host")
    finally:
        tn.close()
