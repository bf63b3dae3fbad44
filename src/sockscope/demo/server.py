"""The demo's telnet server: banner, prompt, ``help``, ``ports``, ``download SIZE``, ``quit``.

Python's ``asyncio.start_server`` calls ``accept()`` in a loop as soon as a connection
waits, which would hide the queue the primer talks about. This server owns its listening
socket and decides when ``accept()`` runs: at once, at most every ``accept_delay`` seconds,
or never (``accept=False``) until ``accept_waiting()`` is called (the tour, or SIGUSR1).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sockscope.demo.session import ServerStats, Session, SessionConfig

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and accepts."""

    port: int = 2323
    bind: str = "0.0.0.0"  # every interface  # noqa: S104 - the primer's *.23 is the point
    backlog: int = 5
    accept: bool = True  # False: never accept() by itself (the queue fills and stays full)
    accept_delay: float = 0.0  # seconds between two accept() calls
    session: SessionConfig = field(default_factory=SessionConfig)


def open_listener(bind: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket on ``bind``:``port`` (IPv6 when ``bind`` has a colon).

    Raises:
        OSError: the address is in use, not local, or the port needs privileges.
    """
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted server must not wait for its old connections' TIME_WAIT to expire.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DemoServer:
    """Serves telnet sessions on one listening socket until stopped or its time runs out."""

    def __init__(
        self, config: ServerConfig, sock: socket.socket | None = None, log: LogFn | None = None
    ) -> None:
        self.config = config
        self.sock = sock if sock is not None else open_listener(config.bind, config.port, config.backlog)
        self.sock.setblocking(False)
        self.stats = ServerStats()
        self._log = log
        self._sessions: set[asyncio.Task[None]] = set()
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (host, port)."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def log(self, message: str) -> None:
        """One line to the log, if there is one."""
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} {message}")

    async def serve(self, duration: float | None = None) -> None:
        """Run until ``request_stop()`` or ``duration`` seconds; then close every socket."""
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        acceptor = asyncio.create_task(self._accept_loop()) if self.config.accept else None
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), duration)
        finally:
            if acceptor is not None:
                acceptor.cancel()
                await asyncio.gather(acceptor, return_exceptions=True)
            await self._close_all()

    def request_stop(self) -> None:
        """Stop serving (call from the server's own loop)."""
        if self._stop is not None:
            self._stop.set()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.config.accept_delay > 0:
                await asyncio.sleep(self.config.accept_delay)
            try:
                conn, peer = await loop.sock_accept(self.sock)
            except OSError as exc:  # EMFILE, ECONNABORTED: log, breathe, go on
                self.stats.errors.append(f"accept: {exc}")
                self.log(f"accept failed: {exc}")
                await asyncio.sleep(0.1)
                continue
            self._start_session(conn, peer)

    async def accept_waiting(self, limit: int = 1) -> list[tuple[str, int]]:
        """``accept()`` up to ``limit`` connections that already wait; their peers."""
        peers = []
        for _ in range(limit):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            self._start_session(conn, peer)
            peers.append((str(peer[0]), int(peer[1])))
        return peers

    def _start_session(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        self.log(f"accepted {peer[0]}:{peer[1]}")
        try:
            session = Session(conn, self.config.session, self.stats, self.log)
        except OSError as exc:  # reset while it waited in the queue
            self.log(f"{peer[0]}:{peer[1]} was gone before it was served: {exc}")
            conn.close()
            return
        self.stats.accepted += 1
        task = asyncio.create_task(session.run())
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _close_all(self) -> None:
        # Connections still in the accept queue are reset when the listener closes.
        self.sock.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)


async def serve_with_signals(server: DemoServer, duration: float | None) -> None:
    """``serve`` for the command line: SIGTERM stops, SIGUSR1 accepts one waiting connection."""
    import signal  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[list[tuple[str, int]]]] = set()

    def accept_one() -> None:
        task = loop.create_task(server.accept_waiting(1))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGTERM, server.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, accept_one)
    try:
        await server.serve(duration)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGUSR1)


class ServerThread:
    """A ``DemoServer`` on its own event loop in a thread, for the tour and the tests."""

    def __init__(self, server: DemoServer, duration: float | None = None) -> None:
        import threading  # noqa: PLC0415 - only the tour and tests run a server in a thread

        self.server = server
        self._duration = duration
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sockscope-demo-server", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            task = asyncio.create_task(self.server.serve(self._duration))
            await asyncio.sleep(0)
            self._ready.set()
            await task

        try:
            asyncio.run(main())
        finally:
            self._ready.set()

    def start(self) -> ServerThread:
        """Start serving; returns once the loop runs."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def accept_waiting(self, limit: int = 1, timeout: float = 5.0) -> list[tuple[str, int]]:
        """Have the server accept up to ``limit`` waiting connections (see DemoServer)."""
        loop = self.server.loop
        if loop is None or not self._thread.is_alive():
            return []
        fut = asyncio.run_coroutine_threadsafe(self.server.accept_waiting(limit), loop)
        return fut.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its sockets to close."""
        loop = self.server.loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.server.request_stop)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.server.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
