"""Telnet-like clients for the demo server: idle, downloading and short-lived, time-bounded.

Each client is one role, taken in turn from ``mix``: an *idle* client connects and sits
(one ESTABLISHED line that stays), a *download* client asks for large downloads one after
another (Send-Q and Recv-Q move), a *short* client connects, quits and connects again
(a new ephemeral port each time, and a TIME_WAIT behind each).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

ROLES = ("idle", "download", "short")
PROMPT = b"sockscope> "
_HEADER = re.compile(rb"downloading (\d+) bytes")


@dataclass(frozen=True)
class ClientsConfig:
    """What to run, against what, for how long."""

    count: int
    host: str = "127.0.0.1"
    port: int = 2323
    duration: float = 10.0
    mix: tuple[str, ...] = ROLES
    size: str = "10M"  # each download, as the server's 'download' command takes it
    rate: str | None = None  # each download's rate; None: the server's default
    connect_timeout: float = 3.0
    pause: float = 0.5  # between two short connections, and before a retry


@dataclass
class ClientStats:
    """What the clients did."""

    connections: int = 0
    refused: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)
    downloads: int = 0
    bytes_received: int = 0
    local_ports: list[int] = field(default_factory=list)  # every ephemeral port used

    def summary(self) -> str:
        """One line for people."""
        ports = len(set(self.local_ports))
        return (
            f"{self.connections} connections from {ports} ephemeral ports, "
            f"{self.downloads} downloads ({self.bytes_received} bytes), "
            f"{self.refused} refused, {self.timeouts} timed out, {len(self.errors)} errors"
        )


class _Client:
    def __init__(self, config: ClientsConfig, stats: ClientStats, deadline: float) -> None:
        self.config = config
        self.stats = stats
        self.deadline = deadline

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connected and past the banner, or None (refused, timed out: counted)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.config.host, self.config.port),
                min(self.config.connect_timeout, max(self.left(), 0.01)),
            )
        except TimeoutError:
            self.stats.timeouts += 1
            return None
        except ConnectionRefusedError:
            self.stats.refused += 1
            return None
        self.stats.connections += 1
        self.stats.local_ports.append(int(writer.get_extra_info("sockname")[1]))
        try:
            # A queued connection gets no banner until the server accept()s it.
            await asyncio.wait_for(reader.readuntil(PROMPT), max(self.left(), 0.01))
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def until_connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            conn = await self.connect()
            if conn is not None:
                return conn
            await asyncio.sleep(self.config.pause)

    async def idle(self) -> None:
        reader, writer = await self.until_connected()
        try:
            await asyncio.sleep(max(self.left(), 0))
        finally:
            await _quit(reader, writer)

    async def download(self) -> None:
        reader, writer = await self.until_connected()
        rate = f" {self.config.rate}" if self.config.rate else ""
        try:
            while self.left() > 0:
                writer.write(f"download {self.config.size}{rate}\r\n".encode())
                header = await reader.readuntil(b"\r\n")
                match = _HEADER.search(header)
                if match is None:
                    raise ValueError(f"the server refused the download: {header!r}")
                size = int(match.group(1))
                while size > 0:  # count as it arrives: a deadline mid-download still counts
                    chunk = await reader.read(min(size, 65536))
                    if not chunk:
                        raise ConnectionError("the server closed mid-download")
                    size -= len(chunk)
                    self.stats.bytes_received += len(chunk)
                await reader.readuntil(PROMPT)
                self.stats.downloads += 1
        finally:
            writer.close()  # leaving mid-download is part of the show

    async def short(self) -> None:
        while self.left() > 0:
            conn = await self.connect()
            if conn is not None:
                await _quit(*conn)
            await asyncio.sleep(self.config.pause)


async def _quit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        writer.write(b"quit\r\n")
        await asyncio.wait_for(reader.read(), 2.0)  # the server closes first: bye
    writer.close()


async def run_clients(config: ClientsConfig, log: Callable[[str], None] | None = None) -> ClientStats:
    """Run ``config.count`` clients until ``config.duration`` has passed."""
    stats = ClientStats()
    deadline = time.monotonic() + config.duration
    client = _Client(config, stats, deadline)
    roles: dict[str, Callable[[], Awaitable[None]]] = {
        "idle": client.idle,
        "download": client.download,
        "short": client.short,
    }

    async def one(index: int) -> None:
        role = config.mix[index % len(config.mix)]
        await asyncio.sleep(min(index * 0.05, config.duration / 2))  # one at a time, visibly
        try:
            await asyncio.wait_for(roles[role](), max(client.left(), 0.01))
        except TimeoutError:
            pass  # the run's time is up: every role ends this way
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            stats.errors.append(f"{role} client {index}: {exc}")
            if log is not None:
                log(f"{role} client {index}: {exc}")

    await asyncio.gather(*(one(i) for i in range(config.count)))
    return stats
