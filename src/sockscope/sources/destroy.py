"""Thin I/O: the sock_diag destroy multicast groups: every closed socket, without root.

The kernel broadcasts each destroyed TCP/UDP socket with its final ``tcp_info``. A reader
that falls behind loses messages with ``ENOBUFS``; a 4 MiB buffer kept all 4,001 of a burst
that the default buffer lost 3,835 of, so the buffer is forced up (to 16 MiB) when we may.

At ten thousand connections a second (twenty thousand closes) even that lasts less than
a second while the watcher is busy elsewhere, so ``start()`` moves the reading
to a thread of its own: it only copies messages out of the kernel (the GIL is free while
it waits), and the watcher decodes them when it gets to them. A watcher that lags then
uses memory, up to ``BACKLOG_BYTES``, instead of losing closes.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from collections import deque

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources.netlink import NETLINK_SOCK_DIAG
from sockscope.wire.dump import walk_chunk
from sockscope.wire.inet_diag import parse_inet_diag_msg
from sockscope.wire.join import AddressCache, endpoint_from_inet_diag

# enum sknetlink_groups (include/uapi/linux/sock_diag.h)
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET_UDP_DESTROY = 2
SKNLGRP_INET6_TCP_DESTROY = 3
SKNLGRP_INET6_UDP_DESTROY = 4
RCVBUF_BYTES = 16 << 20  # asked for; without CAP_NET_ADMIN capped at net.core.rmem_max
#: Raw messages the reader thread keeps for a lagging watcher; beyond, the kernel's buffer
#: fills and overruns are counted as lost.
BACKLOG_BYTES = 256 << 20
#: How often the reader thread looks at its stop flag while nothing arrives.
STOP_CHECK = 0.2
#: The reader's pause after each batch of messages.
BATCH_PAUSE = 0.005
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
PROTOCOLS = {6: Proto.TCP, 17: Proto.UDP}


def _groups(protocols: tuple[Proto, ...], families: tuple[int, ...]) -> int:
    mask = 0
    for proto in protocols:
        for fam in families:
            group = {(Proto.TCP, 4): SKNLGRP_INET_TCP_DESTROY, (Proto.UDP, 4): SKNLGRP_INET_UDP_DESTROY,
                     (Proto.TCP, 6): SKNLGRP_INET6_TCP_DESTROY,
                     (Proto.UDP, 6): SKNLGRP_INET6_UDP_DESTROY}.get((proto, fam))
            if group:
                mask |= 1 << (group - 1)
    return mask


class DestroySubscriber:
    """A non-blocking subscription to destroyed sockets of the caller's namespace."""

    def __init__(self, protocols: tuple[Proto, ...], families: tuple[int, ...],
                 netns: str = "") -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK,
                                  NETLINK_SOCK_DIAG)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
        except PermissionError:
            # Unprivileged: the request is capped at net.core.rmem_max.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        self.sock.bind((0, _groups(protocols, families)))
        self.buf = bytearray(1 << 16)
        self.cache: AddressCache = {}
        self.netns = netns
        self.overruns = 0
        #: Monotonic time the kernel's queue was last found empty: every socket destroyed
        #: well before it (the kernel sends from a workqueue) has been received.
        self.drained_at = time.monotonic()
        # Filled by the reader thread: (received at, raw messages) or (at, None) for an
        # overrun; _wake tells select() that there is something.
        self._chunks: deque[tuple[float, bytearray | None]] = deque()
        self._backlog = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._woken = False  # a wake-up byte is in the pipe, not yet seen by read()
        self.error: OSError | None = None
        #: Every message the kernel sent before this monotonic time has been returned by
        #: ``read()`` (it is ``drained_at`` as of the last read).
        self.horizon = self.drained_at

    def start(self) -> None:
        """Read in a thread from now on (see the module's docstring)."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._reader, name="sockscope-destroy", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        """For select()."""
        return self._wake_r if self._thread is not None else self.sock.fileno()

    def _receive(self) -> bool:
        """Move what the kernel has queued into ``_chunks``; whether anything came."""
        got = False
        while self._backlog < BACKLOG_BYTES:
            try:
                n = self.sock.recv_into(self.buf)
            except BlockingIOError:
                self.drained_at = time.monotonic()
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._chunks.append((time.monotonic(), None))
            else:
                self._chunks.append((time.monotonic(), self.buf[:n]))
                self._backlog += n
            got = True
            if not self._woken and self._thread is not None:
                # At once, not when the queue runs dry: under steady load it never does.
                self._woken = True
                os.write(self._wake_w, b"!")
        return got

    def _reader(self) -> None:
        try:
            while not self._stop.is_set():
                if self._receive():
                    # Let a few more arrive: one wake-up per message would cost more
                    # than the messages (the kernel's buffer holds far more than this).
                    time.sleep(BATCH_PAUSE)
                if self._backlog >= BACKLOG_BYTES:
                    time.sleep(STOP_CHECK / 10)  # the watcher is far behind: let it catch up
                else:
                    select.select([self.sock], [], [], STOP_CHECK)
        except (OSError, ValueError) as exc:  # the socket was closed under us, or failed
            if not self._stop.is_set():
                self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
                os.write(self._wake_w, b"!")

    def read(self) -> tuple[list[tuple[Endpoint, float]], int]:
        """Every destroyed socket received so far, each with when it was received, and how
        many overruns (ENOBUFS) hit."""
        drained = self.drained_at  # before the chunks: all received before it are queued
        if self._thread is None:
            self._receive()
            drained = self.drained_at
        else:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            # After draining, before taking the chunks: whatever comes after them wakes
            # the next select().
            self._woken = False
            if self.error is not None:
                raise self.error
        out: list[tuple[Endpoint, float]] = []
        overruns = 0
        chunks = self._chunks
        eps: list[Endpoint] = []
        while chunks:
            at, chunk = chunks.popleft()
            if chunk is None:
                overruns += 1
                continue
            self._backlog -= len(chunk)
            walk_chunk(chunk, len(chunk), eps, self._parse)
            out.extend((ep, at) for ep in eps)
            eps.clear()
        self.overruns += overruns
        self.horizon = drained
        return out, overruns

    def _parse(self, buf: bytearray, start: int, end: int) -> Endpoint:
        msg = parse_inet_diag_msg(buf, start, end)
        proto = PROTOCOLS.get(msg.protocol or 6, Proto.TCP)
        return endpoint_from_inet_diag(msg, proto, self.cache, self.netns)

    def close(self) -> None:
        """Stop the reader thread and leave the groups; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_CHECK * 5)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self.sock.close()
