"""One telnet session of the demo server: commands, the large download, and its defences.

A session never takes the server down: a client that leaves mid-download, sends garbage
or a line over the limit costs only itself (an error line, or its own connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sockscope.demo.telnet import (
    GA,
    IAC,
    Line,
    LineAssembler,
    TelnetDecoder,
    nvt_text,
    option_name,
    printable,
)
from sockscope.demo.units import UnitError, format_rate, format_size, parse_rate, parse_size

PROMPT = "sockscope> "
# The prompt is followed by GO AHEAD: this server never agrees to SUPPRESS-GO-AHEAD, and
# RFC 854's NVT signals "your turn" with GA. Clients ignore it, as they should.
PROMPT_BYTES = nvt_text(PROMPT) + bytes((IAC, GA))
HELP = """\
commands:
  help                  this text
  ports                 both ends of this connection: your ephemeral port, my port
  download SIZE [RATE]  send SIZE bytes (10M, 512k, 1GiB) at RATE (1MB/s, unlimited);
                        Ctrl-C (telnet's Interrupt Process) stops it
  quit                  close the connection
"""
_LINE = b"sockscope demo: the primer's large download, one line after another....\r\n"
BLOCK = (_LINE * (65536 // len(_LINE) + 1))[:65536]  # what a download sends, repeated
MAX_DOWNLOAD = 10 * 10**9


@dataclass(frozen=True)
class SessionConfig:
    """What each session allows."""

    rate: int | None = 1_000_000  # bytes per second for downloads; None: unlimited
    line_limit: int = 1024  # longest accepted input line
    max_download: int = MAX_DOWNLOAD


@dataclass
class ServerStats:
    """What the server did, for the log, the tour and the tests."""

    accepted: int = 0
    closed: int = 0
    bytes_sent: int = 0
    downloads_done: int = 0
    downloads_cut: int = 0  # the client left or interrupted
    long_lines: int = 0
    unknown_commands: int = 0
    refused: Counter[tuple[str, int]] = field(default_factory=Counter)  # ("DO", 3): times
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> int:
        """Sessions open now."""
        return self.accepted - self.closed


class Session:
    """Reads, decodes and answers one client until it quits, leaves or the server stops."""

    def __init__(
        self, conn: socket.socket, config: SessionConfig, stats: ServerStats, log: Callable[[str], None]
    ) -> None:
        self.conn = conn
        self.config = config
        self.stats = stats
        self.log = log
        self.decoder = TelnetDecoder()
        self.lines = LineAssembler(config.line_limit)
        self.download: asyncio.Task[None] | None = None
        self.pending: deque[Line] = deque()  # lines typed during a download, run after it
        peer, here = conn.getpeername(), conn.getsockname()
        self.peer = f"{peer[0]}:{peer[1]}"
        self.here = f"{here[0]}:{here[1]}"

    async def run(self) -> None:
        """The session, start to end; every failure stays inside it."""
        started = time.monotonic()
        sent_before = self.stats.bytes_sent
        try:
            reader, writer = await asyncio.open_connection(sock=self.conn)
        except OSError as exc:  # reset before it could be served
            self.conn.close()
            self.stats.closed += 1
            self.log(f"{self.peer} was gone before it was served: {exc}")
            return
        how = "closed"  # by the server
        try:
            writer.write(nvt_text(self._banner()) + PROMPT_BYTES)
            how = await self._loop(reader, writer)
        except OSError as exc:  # reset, broken pipe, timed out: the client is gone
            how = f"left ({type(exc).__name__})"
        except asyncio.CancelledError:
            how = "stopped with the server"
            raise
        except Exception as exc:  # one client's bug must not stop the server
            how = f"failed: {exc!r}"
            self.stats.errors.append(f"{self.peer}: {exc!r}")
        finally:
            with contextlib.suppress(Exception):
                await self._cancel_download()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self.stats.closed += 1
            sent = format_size(self.stats.bytes_sent - sent_before)
            self.log(f"{self.peer} {how} after {time.monotonic() - started:.1f}s, {sent} sent")

    def _banner(self) -> str:
        return (
            f"sockscope demo telnet server. You are {self.peer}; this end is {self.here}.\n"
            "Type 'help' for the commands.\n"
        )

    async def _loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Read and answer until the client quits or leaves.

        Reading never stops during a download: a line typed meanwhile waits in
        ``pending`` to run after it (one command at a time), and an interrupt that
        follows it still stops the download at once.
        """
        read: asyncio.Future[bytes] | None = None
        try:
            while True:
                if self.download is None and self.pending:
                    if not self._answer(self.pending.popleft(), writer):
                        return "quit"
                    continue
                if self.download is None:
                    await writer.drain()  # a running download drains for both
                if read is None:
                    read = asyncio.ensure_future(reader.read(4096))
                waiting: set[asyncio.Future[Any]] = {read}
                if self.download is not None:
                    waiting.add(self.download)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if self.download is not None and self.download.done():
                    self._reap()
                if not read.done():
                    continue
                chunk, read = read.result(), None
                if not chunk:
                    return "closed the connection" if self.download is None else "left mid-download"
                await self._take(chunk, writer)
        finally:
            if read is not None:
                read.cancel()

    async def _take(self, chunk: bytes, writer: asyncio.StreamWriter) -> None:
        """Decode what the client sent: answer negotiation, act on an interrupt, queue lines."""
        decoded = self.decoder.feed(chunk)
        if decoded.received:
            self._note_refusals(decoded.received)
        if decoded.reply:
            writer.write(decoded.reply)
        if decoded.interrupted and self.download is not None:
            await self._cancel_download()
            writer.write(nvt_text("\ninterrupted\n") + PROMPT_BYTES)
        self.pending.extend(self.lines.feed(decoded.data))

    def _answer(self, line: Line, writer: asyncio.StreamWriter) -> bool:
        """Answer one line; False when the client asked to quit."""
        if line.too_long:
            self.stats.long_lines += 1
            writer.write(
                nvt_text(f"error: line longer than {self.config.line_limit} bytes, ignored\n") + PROMPT_BYTES
            )
            return True
        return self._command(printable(line.text).strip(), writer)

    def _note_refusals(self, received: list[tuple[str, int]]) -> None:
        for verb, option in received:
            if verb in ("DO", "WILL"):
                self.stats.refused[verb, option] += 1
                self.log(f"{self.peer} asked {verb} {option_name(option)}: refused")

    def _command(self, line: str, writer: asyncio.StreamWriter) -> bool:
        """Answer one line; False when the client asked to quit."""
        words = line.split()
        verb = words[0].lower() if words else ""
        reply: str | None
        if verb in ("quit", "exit", "logout", "bye"):
            writer.write(nvt_text("bye\n"))
            return False
        if verb == "download":
            reply = self._start_download(words[1:], writer)
        elif verb in ("help", "?"):
            reply = HELP
        elif verb == "ports":
            reply = f"you: {self.peer}   me: {self.here}\n"
        elif verb:
            self.stats.unknown_commands += 1
            reply = f"unknown command {line[:40]!r}; type 'help'\n"
        else:
            reply = ""
        if reply is not None:
            writer.write(nvt_text(reply) + PROMPT_BYTES)
        return True

    def _start_download(self, args: list[str], writer: asyncio.StreamWriter) -> str | None:
        if not 1 <= len(args) <= 2:
            return "usage: download SIZE [RATE], e.g. download 10M 1MB/s\n"
        try:
            size = parse_size(args[0])
            rate = parse_rate(args[1]) if len(args) == 2 else self.config.rate
        except UnitError as exc:
            return f"error: {exc}\n"
        if size > self.config.max_download:
            return f"error: at most {format_size(self.config.max_download)} per download\n"
        writer.write(nvt_text(f"downloading {size} bytes at {format_rate(rate)}\n"))
        self.download = asyncio.create_task(self._send(size, rate, writer))
        return None  # the download writes its own end and prompt

    async def _send(self, size: int, rate: int | None, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        step = len(BLOCK) if rate is None else max(1024, min(len(BLOCK), rate // 20))
        try:
            while sent < size:
                n = min(step, size - sent)
                writer.write(BLOCK[:n])
                await writer.drain()
                sent += n
                self.stats.bytes_sent += n
                if rate is not None:
                    await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
        except (ConnectionError, asyncio.CancelledError):
            self.stats.downloads_cut += 1
            raise
        took = max(loop.time() - start, 1e-6)
        self.stats.downloads_done += 1
        writer.write(
            nvt_text(f"\ndone: {format_size(size)} in {took:.1f}s ({format_size(size / took)}/s)\n")
            + PROMPT_BYTES
        )

    async def _cancel_download(self) -> None:
        if self.download is not None:
            self.download.cancel()
            await asyncio.wait({self.download})
            self._reap()

    def _reap(self) -> None:
        task, self.download = self.download, None
        if task is None or task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, OSError):  # the client left: not an error
            raise exc
