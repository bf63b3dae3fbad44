"""Record and replay netlink sockets, so decoders are tested on real kernel bytes.

A fixture file holds one hex line per ``recv`` the kernel answered, after ``#`` comments
that say how it was recorded; ``>`` lines hold the requests that were sent.
"""

from __future__ import annotations

import socket
from pathlib import Path


class RecordingSocket:
    """Wraps a real sock_diag socket and keeps every request and reply chunk."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: list[bytes] = []
        self.chunks: list[bytes] = []

    def send(self, data: bytes, /) -> int:
        self.sent.append(bytes(data))
        return self.sock.send(data)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int:
        n = self.sock.recv_into(buffer, nbytes)
        self.chunks.append(bytes(buffer[:n]))
        return n

    def close(self) -> None:
        self.sock.close()

    def dump(self, path: Path, comment: str) -> None:
        lines = [f"# {line}" for line in comment.splitlines()]
        lines += [f"> {s.hex()}" for s in self.sent]
        lines += [c.hex() for c in self.chunks]
        path.write_text("\n".join(lines) + "\n")


class ReplaySocket:
    """Answers ``recv_into`` with recorded chunks, in order; ``send`` is kept for asserts."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []

    @classmethod
    def from_file(cls, path: Path) -> ReplaySocket:
        chunks = [
            bytes.fromhex(line)
            for line in path.read_text().splitlines()
            if line and not line.startswith(("#", ">"))
        ]
        return cls(chunks)

    def send(self, data: bytes, /) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int:
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        pass


def requests_in(path: Path) -> list[bytes]:
    """The requests a fixture file says were sent, in order."""
    return [bytes.fromhex(line[2:]) for line in path.read_text().splitlines() if line.startswith("> ")]
