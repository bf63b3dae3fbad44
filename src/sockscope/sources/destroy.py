"""Thin I/O: the sock_diag destroy multicast groups: every closed socket, without root.

The kernel broadcasts each destroyed TCP/UDP socket with its final ``tcp_info``. A reader
that falls behind loses messages with ``ENOBUFS``; a 4 MiB buffer kept all 4,001 of a burst
that the default buffer lost 3,835 of, so the buffer is forced up (to 16 MiB) when we may.

At ten thousand connections a second (twenty thousand closes) even that lasts less than
a second, and without privileges the buffer is ``net.core.rmem_max``, often 208 KiB: a
few milliseconds. So ``start()`` adds a guard thread: whenever the watcher has not read
the socket for a while (busy with a burst, or its output blocked) the guard copies
the messages out of the kernel, and the watcher decodes them when it gets to them. A
watcher that lags then uses memory, up to ``BACKLOG_BYTES``, instead of losing closes.
The watcher reads the socket itself the rest of the time: a thread reading every message
would hand the GIL back and forth once per message, a sixth of the CPU under load.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources.netlink import NETLINK_SOCK_DIAG
from sockscope.wire.dump import walk_chunk
from sockscope.wire.join import AddressCache, endpoint_from_destroy_msg
from sockscope.wire.socket_filter import SOCK_FILTER, port_filter

# enum sknetlink_groups (include/uapi/linux/sock_diag.h)
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET_UDP_DESTROY = 2
SKNLGRP_INET6_TCP_DESTROY = 3
SKNLGRP_INET6_UDP_DESTROY = 4
RCVBUF_BYTES = 16 << 20  # asked for; without CAP_NET_ADMIN capped at net.core.rmem_max
#: Raw messages the guard thread keeps for a busy watcher; beyond, the kernel's buffer
#: fills and overruns are counted as lost.
BACKLOG_BYTES = 256 << 20
#: The guard thread reads the socket when the watcher has not for a tenth of the time
#: the kernel's buffer lasts at MESSAGES_PER_S (a message takes about BYTES_PER_MESSAGE
#: of it), between GUARD_AFTER and GUARD_AFTER_MAX; it looks every GUARD_TICK. Each
#: message it reads hands the GIL over and back, so the later it steps in the better.
GUARD_AFTER = 0.02
GUARD_AFTER_MAX = 0.2
GUARD_TICK = 0.01
BYTES_PER_MESSAGE = 1280
MESSAGES_PER_S = 30_000
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


def _groups(protocols: tuple[Proto, ...], families: tuple[int, ...]) -> int:
    mask = 0
    for proto in protocols:
        for fam in families:
            group = {
                (Proto.TCP, 4): SKNLGRP_INET_TCP_DESTROY,
                (Proto.UDP, 4): SKNLGRP_INET_UDP_DESTROY,
                (Proto.TCP, 6): SKNLGRP_INET6_TCP_DESTROY,
                (Proto.UDP, 6): SKNLGRP_INET6_UDP_DESTROY,
            }.get((proto, fam))
            if group:
                mask |= 1 << (group - 1)
    return mask


def _attach_filter(sock: socket.socket, program: bytes | None) -> bool:
    """Attach a classic BPF program (before bind, so no message skips it); whether it took."""
    if program is None:
        return False
    import ctypes  # noqa: PLC0415 - only a filtered watch needs it

    code = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog: the instruction count, then a pointer to them; the kernel
    # copies the program during the call.
    fprog = struct.pack("@HP", len(program) // SOCK_FILTER.size, ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False  # no socket filters here: every message comes, and is filtered after
    return True


class DestroySubscriber:
    """A non-blocking subscription to destroyed sockets of the caller's namespace."""

    def __init__(
        self,
        protocols: tuple[Proto, ...],
        families: tuple[int, ...],
        netns: str = "",
        ports: Sequence[tuple[bool, int, int]] | None = None,
    ) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, NETLINK_SOCK_DIAG
        )
        #: Whether the kernel drops messages of other ports (see wire/socket_filter).
        self.filtered = _attach_filter(self.sock, port_filter(ports)) if ports else False
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
        except PermissionError:
            # Unprivileged: the request is capped at net.core.rmem_max.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        self.sock.bind((0, _groups(protocols, families)))
        lasts = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) / BYTES_PER_MESSAGE / MESSAGES_PER_S
        self.guard_after = min(GUARD_AFTER_MAX, max(GUARD_AFTER, lasts / 10))
        self.buf = bytearray(1 << 16)
        self.cache: AddressCache = {}
        self.netns = netns
        self.overruns = 0
        #: Monotonic time the kernel's queue was last found empty: every socket destroyed
        #: well before it (the kernel sends from a workqueue) has been received.
        self.drained_at = time.monotonic()
        # Messages the guard thread took in while the watcher was busy: (received at,
        # raw messages), or (at, None) for an overrun. The lock keeps the two readers'
        # messages in the kernel's order.
        self._chunks: deque[tuple[float, bytearray | None]] = deque()
        self._backlog = 0
        self._lock = threading.Lock()
        self._last_read = time.monotonic()
        self._guard: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._stop_r, self._stop_w = -1, -1
        self.error: OSError | None = None
        #: Every message the kernel sent before this monotonic time has been returned by
        #: ``read()`` (it is ``drained_at`` as of the last read).
        self.horizon = self.drained_at

    def start(self) -> None:
        """Guard the kernel's buffer with a thread from now on (see the module's docstring)."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._guard = threading.Thread(target=self._guard_loop, name="sockscope-destroy", daemon=True)
        self._guard.start()

    def fds(self) -> list[int]:
        """For select(): the socket, and the guard's wake-up pipe."""
        return [self.sock.fileno(), *([self._wake_r] if self._guard is not None else [])]

    def _receive(self) -> bool:
        """Move what the kernel has queued into ``_chunks`` (under the lock); whether
        anything came."""
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
        return got

    def _guard_loop(self) -> None:
        # The watcher reads the socket itself (one thread, no hand-over of the GIL per
        # message); this thread steps in only when messages wait and the watcher has not
        # read for guard_after. It sleeps in select() otherwise: an idle watcher's guard
        # never wakes.
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.sock.fileno(), self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                unread_for = time.monotonic() - self._last_read
                if unread_for < self.guard_after:
                    self._stop.wait(max(GUARD_TICK, self.guard_after - unread_for))  # it may read them
                    continue
                with self._lock:
                    got = self._receive()
                if got:
                    os.write(self._wake_w, b"!")
        except (OSError, ValueError) as exc:  # the socket was closed under us, or failed
            if not self._stop.is_set():
                self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
                os.write(self._wake_w, b"!")

    def read(self) -> tuple[list[tuple[Endpoint, float]], int]:
        """Every destroyed socket received so far, each with when it was received, and how
        many overruns (ENOBUFS) hit."""
        with self._lock:
            if self._guard is not None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                if self.error is not None:
                    raise self.error
            self._receive()
            drained = self.drained_at
            self._last_read = time.monotonic()
            chunks = list(self._chunks)
            self._chunks.clear()
            self._backlog = 0
        out: list[tuple[Endpoint, float]] = []
        overruns = 0
        eps: list[Endpoint] = []
        for at, chunk in chunks:
            if chunk is None:
                overruns += 1
                continue
            walk_chunk(chunk, len(chunk), eps, self._parse)
            out.extend((ep, at) for ep in eps)
            eps.clear()
        self.overruns += overruns
        self.horizon = drained
        return out, overruns

    def _parse(self, buf: bytearray, start: int, end: int) -> Endpoint:
        return endpoint_from_destroy_msg(buf, start, end, self.cache, self.netns)

    def close(self) -> None:
        """Stop the guard thread and leave the groups; safe to call twice."""
        self._stop.set()
        if self._stop_w >= 0:
            os.write(self._stop_w, b"!")
        if self._guard is not None:
            self._guard.join(GUARD_TICK * 50)
            self._guard = None
        for fd in (self._wake_r, self._wake_w, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = self._stop_r = self._stop_w = -1
        self.sock.close()
