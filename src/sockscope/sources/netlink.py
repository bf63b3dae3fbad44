"""Thin I/O: ``NETLINK_SOCK_DIAG`` dumps.

The socket comes from a factory so tests can replay recorded frames. Receives go into
one preallocated buffer (``recv_into``); the kernel hands back at most ~32 KiB a read.
"""

from __future__ import annotations

import _socket
import _thread
import errno
from collections.abc import Callable

from sockscope.model.endpoint import Endpoint
from sockscope.wire.dump import ChunkParser
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NLMSG_DONE, NLMSG_ERROR, NLMSGHDR, NetlinkError

NETLINK_SOCK_DIAG = 4
# The kernel fills a dump chunk up to 32 KiB less its overhead (netlink_recvmsg caps
# max_recvmsg_len at SKB_WITH_OVERHEAD(32768)). Receive buffers are four times that (a
# chunk that fills one is refused rather than decoded cut short); a larger one costs
# its zero-filling on every listing (~0.3 ms a MiB).
RECV_BUFFER = 128 << 10
RCVBUF_BYTES = 1 << 20
# Half the largest chunk counts as a full one: the dump is long (see read_dump).
_FULL_CHUNK = 16 << 10


TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see sockscope._namedtuple)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # DiagSocket only describes a shape for the type checker


class DiagSocket(Protocol):
    """What a dump needs from a socket; a real netlink socket or a replay."""

    def send(self, data: bytes, /) -> int: ...
    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int: ...
    def close(self) -> None: ...


def open_diag_socket() -> _socket.socket:
    """A ``NETLINK_SOCK_DIAG`` socket in the caller's current network namespace.

    Made with ``_socket``, the C module under ``socket``: ``socket`` itself builds its
    enums and imports ``selectors`` (~3 ms), a real share of a short listing's start-up,
    and a netlink socket needs none of it.
    """
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, RCVBUF_BYTES)
    return sock


def read_dump(
    sock: DiagSocket,
    request: bytes,
    parse_chunk: ChunkParser,
    buffer: bytearray | None = None,
) -> tuple[list[Endpoint], bool]:
    """Send one dump request; return every endpoint in the reply.

    The flag is True when the kernel set ``NLM_F_DUMP_INTR``: the table changed while it
    was dumped, so some sockets may be missing or doubled; the caller may dump again.

    A long dump is received by a second thread while this one decodes: the kernel
    builds each chunk inside ``recv`` (~0.6 µs a socket, some 40 ms at 60k sockets) and
    ``recv`` releases the GIL, so on two cores that time hides behind the decoding
    instead of adding to it. A dump is long when a chunk after the first comes full
    (the first is always small); a short one, like the listeners of ``-l``, is read
    here, as a thread would cost it more than it saves.

    Raises:
        NetlinkError: the kernel answered with an error.
        ParseError: a reply that does not follow the kernel's layout.
    """
    buf = buffer if buffer is not None else bytearray(RECV_BUFFER)
    out: list[Endpoint] = []
    sock.send(request)
    n = sock.recv_into(buf)
    reader: _Prefetcher | None = None
    first = True
    interrupted = False
    try:
        while True:
            if n == 0:
                raise ParseError("netlink socket closed before NLMSG_DONE")
            if n >= len(buf):
                raise ParseError(f"a netlink reply filled the {n}-byte receive buffer")
            if first:
                first = False
            elif reader is None and n >= _FULL_CHUNK and not _is_last_chunk(buf, n):
                reader = _Prefetcher(sock)  # it receives the next chunks
            done, intr, err = parse_chunk(buf, n, out)
            interrupted = interrupted or intr
            if err:
                raise NetlinkError(err)
            if done:
                return out, interrupted
            if reader is not None:
                chunk = reader.next_chunk(buf)
                if chunk is not None:
                    buf, n = chunk
                    continue
                # The thread stopped at a chunk that looked like the last but was not
                # (or the kernel was slow past the timeout): read on here.
                reader.close()
                reader = None
                buf = bytearray(RECV_BUFFER)
            n = sock.recv_into(buf)
    finally:
        if reader is not None:
            reader.close()


def _is_last_chunk(buf: bytearray, n: int) -> bool:
    """Whether the kernel will send nothing after this chunk.

    The kernel ends a dump with a 20-byte NLMSG_DONE as the last message of the last
    chunk (net/netlink/af_netlink.c, netlink_dump), and answers a refused request with
    one NLMSG_ERROR. A wrong "last" costs no correctness (``read_dump`` reads on itself);
    a wrong "not last" would leave the thread waiting, which its timeout ends.
    """
    if n >= 20:
        length, mtype = NLMSGHDR.unpack_from(buf, n - 20)[:2]
        if length == 20 and mtype == NLMSG_DONE:
            return True
    return n >= 16 and NLMSGHDR.unpack_from(buf, 0)[1] == NLMSG_ERROR


class _Prefetcher:
    """A thread that receives the chunks of one dump, a few ahead of the decoder.

    Plain ``_thread`` locks and lists rather than ``threading`` and ``queue``: those
    modules cost import time that every short listing would pay. List appends and pops
    are atomic under the GIL; each lock is only a wake-up signal, and both sides check
    their list before waiting on it, so a lost or extra wake-up does no harm.
    """

    DEPTH = 2  # buffers of its own: the decoder holds one more
    TIMEOUT_S = 1.0  # a recv this slow ends the thread; the decoder then reads on itself

    def __init__(self, sock: DiagSocket, size: int = RECV_BUFFER) -> None:
        self.sock = sock
        self.size = size
        self.stopping = False
        self.running = True
        self.free: list[bytearray] = [bytearray(size) for _ in range(self.DEPTH)]
        self.full: list[tuple[bytearray, int] | BaseException] = []
        self.free_signal = _thread.allocate_lock()
        self.full_signal = _thread.allocate_lock()
        self.full_signal.acquire()
        self.exited = _thread.allocate_lock()
        self.exited.acquire()
        # A timeout so that the thread cannot wait forever on a kernel that, against
        # its habit, sent no DONE where we looked for one. Replays have no timeouts.
        self.timed = hasattr(sock, "settimeout") and hasattr(sock, "gettimeout")
        self.timeout: float | None = None
        if self.timed:
            self.timeout = sock.gettimeout()  # type: ignore[attr-defined]
            sock.settimeout(self.TIMEOUT_S)  # type: ignore[attr-defined]
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            while not self.stopping:
                if not self.free:
                    self.free_signal.acquire()
                    continue
                buf = self.free.pop()
                n = self.sock.recv_into(buf)
                if n >= self.size:
                    self._put(ParseError(f"a netlink reply filled the {n}-byte receive buffer"))
                    break
                self._put((buf, n))
                if n == 0 or _is_last_chunk(buf, n):
                    break
        except TimeoutError:
            pass
        except BaseException as exc:  # handed to the decoding thread, which raises it
            self._put(exc)
        finally:
            self.running = False
            _signal(self.full_signal)
            self.exited.release()

    def _put(self, item: tuple[bytearray, int] | BaseException) -> None:
        self.full.append(item)
        _signal(self.full_signal)

    def next_chunk(self, done_with: bytearray) -> tuple[bytearray, int] | None:
        """The next chunk, once received; None if the thread stopped before it."""
        if len(done_with) == self.size:
            self.free.append(done_with)
            _signal(self.free_signal)
        while True:
            if self.full:
                item = self.full.pop(0)
                if isinstance(item, BaseException):
                    raise item
                return item
            if not self.running:
                return None
            self.full_signal.acquire()  # releases the GIL while it waits

    def close(self) -> None:
        """Stop the thread and wait for it, so the socket is the caller's alone again."""
        self.stopping = True
        _signal(self.free_signal)
        self.exited.acquire()
        if self.timed:
            self.sock.settimeout(self.timeout)  # type: ignore[attr-defined]


def _signal(lock: _thread.LockType) -> None:
    """Wake whoever waits on ``lock``; nothing if nobody does (it is already free)."""
    try:  # noqa: SIM105 - contextlib would be one more import at start-up
        lock.release()
    except RuntimeError:
        pass


def netlink_available(factory: Callable[[], DiagSocket] = open_diag_socket) -> bool:
    """Whether sock_diag can be opened here (it is missing in some sandboxes)."""
    sock = open_if_available(factory)
    if sock is None:
        return False
    sock.close()
    return True


def open_if_available(factory: Callable[[], DiagSocket] = open_diag_socket) -> DiagSocket | None:
    """A sock_diag socket, or None where sock_diag cannot be opened."""
    try:
        return factory()
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT, errno.EACCES, errno.EPERM):
            return None
        raise
