"""Thin I/O: an ``AF_PACKET`` socket with a ``TPACKET_V3`` receive ring (``packet(7)``).

The socket is made with protocol 0, so it receives nothing until it is bound; the ring
and the filter are in place first, so no packet arrives unfiltered. A capture of one
loopback device sets ``PACKET_IGNORE_OUTGOING``: the kernel hands a packet socket each
loopback packet twice, once leaving and once arriving, and libpcap shows it once.

Kernel names and numbers are from ``include/uapi/linux/if_packet.h`` and
``include/uapi/asm-generic/socket.h``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import select
import socket
import struct
import time

from sockscope.sources.netns import entered_netns
from sockscope.wire.tpacket import (
    ARPHRD_LOOPBACK,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TPACKET_V3,
    Frame,
    parse_block,
    parse_block_header,
)

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
SIOCGIFHWADDR = 0x8927
#: struct tpacket_req3 { tp_block_size, tp_block_nr, tp_frame_size, tp_frame_nr,
#: tp_retire_blk_tov, tp_sizeof_priv, tp_feature_req_word } (all unsigned int)
TPACKET_REQ3 = struct.Struct("=7I")
#: struct tpacket_stats_v3 { tp_packets, tp_drops, tp_freeze_q_cnt }
TPACKET_STATS_V3 = struct.Struct("=3I")
#: struct sockaddr_ll, for bind(): family, protocol (network order), ifindex, the rest 0.
SOCKADDR_LL = struct.Struct("=HHiHBB8s")
#: struct sock_fprog { unsigned short len; struct sock_filter *filter; }
SOCK_FPROG = struct.Struct("@HP")
FRAME_SIZE = 2048  # TPACKET_V3 ignores frames, but the ring request must describe some
BLOCK_SIZE = 1 << 20
#: A block is handed over when full or after this long, so a quiet capture still
#: shows its packets within a tenth of a second.
RETIRE_MS = 100


class CaptureError(Exception):
    """The capture socket could not be set up (one line for the user)."""


class NoSuchInterfaceError(CaptureError):
    """The interface named does not exist (in the namespace captured)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """Put a classic BPF program on ``sock`` (``SO_ATTACH_FILTER``; the kernel copies it)."""
    insns = ctypes.create_string_buffer(program, len(program))
    fprog = SOCK_FPROG.pack(len(program) // 8, ctypes.addressof(insns))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise CaptureError(f"the kernel refused the packet filter: {os.strerror(exc.errno or 0)}") from None


def _bind_all(sock: socket.socket) -> None:
    # Python's bind() takes an interface name, and no name means every interface.
    addr = SOCKADDR_LL.pack(socket.AF_PACKET, socket.htons(ETH_P_ALL), 0, 0, 0, 0, b"")
    if _libc().bind(sock.fileno(), addr, len(addr)) != 0:
        err = ctypes.get_errno()
        raise CaptureError(f"could not bind the capture socket: {os.strerror(err)}")


def device_type(sock: socket.socket, name: str) -> int:
    """The ``ARPHRD_*`` type of interface ``name`` in the socket's namespace.

    Raises:
        NoSuchInterfaceError: there is no such interface.
    """
    ifreq = struct.pack("16s24x", name.encode()[:15])
    try:
        out = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, ifreq)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise NoSuchInterfaceError(f"no interface {name!r}") from None
        raise
    family: int = struct.unpack_from("=H", out, 16)[0]
    return family


def _open_socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureError("capturing packets needs CAP_NET_RAW (run as root)") from None


class PacketRing:
    """A capture socket on one interface (or all) of a namespace, with its mmap ring."""

    def __init__(
        self,
        program: bytes,
        interface: str | None = None,
        netns: str | None = None,
        buffer_bytes: int = 32 << 20,
    ) -> None:
        self.netns = netns
        self.interface = interface
        self.names: dict[int, str] = {}
        self._totals = [0, 0, 0]
        with entered_netns(netns):
            self.sock = _open_socket()
            try:
                self._setup(program, buffer_bytes)
                self.names = dict(socket.if_nameindex())
            except BaseException:
                self.sock.close()
                raise
        self._next = 0
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN | select.POLLERR)

    def _setup(self, program: bytes, buffer_bytes: int) -> None:
        sock = self.sock
        loopback = self.interface is not None and device_type(sock, self.interface) == ARPHRD_LOOPBACK
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        block = max(min(BLOCK_SIZE, buffer_bytes // 4), mmap.PAGESIZE)
        block -= block % mmap.PAGESIZE
        self.block_size, self.blocks = block, max(buffer_bytes // block, 2)
        req = TPACKET_REQ3.pack(
            block, self.blocks, FRAME_SIZE, block // FRAME_SIZE * self.blocks, RETIRE_MS, 0, 0
        )
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as exc:
            raise CaptureError(f"could not set up the capture ring: {os.strerror(exc.errno or 0)}") from None
        self.map = mmap.mmap(
            sock.fileno(), block * self.blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.view = memoryview(self.map)
        if loopback:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        attach_filter(sock, program)
        if self.interface is None:
            _bind_all(sock)
        else:
            sock.bind((self.interface, ETH_P_ALL))

    def wait(self, timeout: float) -> None:
        """Sleep until a block is ready or ``timeout`` seconds pass."""
        if not self._ready():
            self._poll.poll(max(0, int(timeout * 1000)))

    def _ready(self) -> bool:
        at = self._next * self.block_size + 8
        return bool(struct.unpack_from("=I", self.map, at)[0] & TP_STATUS_USER)

    def read(self, max_blocks: int = 8) -> list[Frame]:
        """The packets of the blocks the kernel has handed over (at most ``max_blocks``),
        in order; each block goes back to the kernel once copied."""
        frames: list[Frame] = []
        view = self.view
        for _ in range(max_blocks):
            start = self._next * self.block_size
            status, count, first = parse_block_header(view[start : start + 24])
            if not status & TP_STATUS_USER:
                break
            frames.extend(parse_block(view, start, count, first))
            struct.pack_into("=I", self.map, start + 8, TP_STATUS_KERNEL)
            self._next = (self._next + 1) % self.blocks
        return frames

    def drain(self, settle: float = RETIRE_MS / 1000 * 1.5) -> list[Frame]:
        """Every packet still in the ring, waiting for the block being filled to retire."""
        deadline = time.monotonic() + settle
        frames = self.read(self.blocks)
        while time.monotonic() < deadline:
            self.wait(deadline - time.monotonic())
            frames.extend(self.read(self.blocks))
        return frames

    def statistics(self) -> tuple[int, int, int]:
        """``(packets, drops, freezes)`` since the start: packets the filter accepted
        (dropped ones included), packets dropped because the ring was full, and how
        often it filled up. The kernel resets its counters on each read; we sum them."""
        if self.sock.fileno() >= 0:  # once closed, the totals read before closing
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS_V3.size)
            for i, value in enumerate(TPACKET_STATS_V3.unpack(raw)):
                self._totals[i] += value
        packets, drops, freezes = self._totals
        return packets, drops, freezes

    def interface_name(self, ifindex: int) -> str:
        """The name of interface ``ifindex`` in the captured namespace ("" if gone)."""
        name = self.names.get(ifindex)
        if name is None:
            with entered_netns(self.netns), contextlib.suppress(OSError):
                name = socket.if_indextoname(ifindex)
            self.names[ifindex] = name = name or ""
        return name

    def close(self) -> None:
        """Release the ring and the socket; safe to call twice."""
        if self.sock.fileno() < 0:
            return
        self.statistics()
        self._poll.unregister(self.sock.fileno())
        self.view.release()
        self.map.close()
        self.sock.close()


def namespace_identity(netns: str | None) -> tuple[int, str]:
    """``(inode, path)`` of the namespace captured, as ptcpdump writes them in an
    interface's comment (the inode is what ``ip netns identify`` and ``lsns`` show)."""
    from sockscope.sources.netns import resolve_netns  # noqa: PLC0415

    path = str(resolve_netns(netns)) if netns else "/proc/self/ns/net"
    try:
        return os.stat(path).st_ino, path
    except OSError:
        return 0, path
