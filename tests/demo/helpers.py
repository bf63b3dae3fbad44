"""Talking to the demo server over plain sockets, with every wait bounded."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import time

PROMPT = b"sockscope> "


def connect(address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def read_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """Bytes up to and including ``marker``; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = b""
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s; got {seen[-300:]!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}; got {seen[-300:]!r}")
        seen += chunk
    return seen


def greet(address: tuple[str, int]) -> socket.socket:
    sock = connect(address)
    read_until(sock, PROMPT)
    return sock


def ask(sock: socket.socket, line: bytes, timeout: float = 5.0) -> bytes:
    """Send one line and read the answer up to the next prompt."""
    sock.sendall(line + b"\r\n")
    return read_until(sock, PROMPT, timeout)


def wait_for(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


class Pty:
    """A program on a pseudo-terminal; ``expect`` reads until a pattern, within a time."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "TERM": "dumb", "HOME": "/nonexistent"}  # no ~/.telnetrc
        self.proc = subprocess.Popen(
            ["setsid", "-c", *argv], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.seen = b""
        self.pos = 0  # where the last match ended: the next expect searches after it

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 10.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.seen, self.pos)
            if match:
                self.pos = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {self.seen[-500:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program exited and the pty closed
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {pattern!r}; got {self.seen[-500:]!r}")
                self.seen += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        os.close(self.master)
