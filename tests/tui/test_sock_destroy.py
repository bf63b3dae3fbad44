"""SOCK_DESTROY: the request bytes, the acknowledgement, and closing real connections."""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from ipaddress import ip_address

import pytest

from sockscope.api import snapshot
from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto, TcpState
from sockscope.sources.kill import CloseError, SignalError, destroy_socket, signal_process, sock_id
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NLMSG_ERROR, NLMSGHDR, SOCK_DESTROY
from sockscope.wire.sock_destroy import NLM_F_ACK, SockId, build_sock_destroy, parse_ack
from tests.helpers.netns import socket_in
from tests.tui.helpers import ep


def test_request_layout_matches_inet_diag_h() -> None:
    sid = SockId(4, 6, ip_address("127.0.0.1"), 45082, ip_address("10.1.2.3"), 2323, 7, 0x1122334455667788)
    msg = build_sock_destroy(sid, seq=9)
    length, mtype, flags, seq, pid = NLMSGHDR.unpack_from(msg, 0)
    assert (length, mtype, flags, seq, pid) == (len(msg), SOCK_DESTROY, 0x01 | NLM_F_ACK, 9, 0)
    assert len(msg) == 16 + 56  # nlmsghdr + inet_diag_req_v2
    body = msg[16:]
    assert body[:4] == bytes([2, 6, 0, 0])  # AF_INET, IPPROTO_TCP, no ext, pad
    assert struct.unpack_from("=I", body, 4)[0] == 0xFFFFFFFF
    assert body[8:10] == (45082).to_bytes(2, "big") and body[10:12] == (2323).to_bytes(2, "big")
    assert body[12:16] == bytes([127, 0, 0, 1]) and body[16:28] == bytes(12)
    assert body[28:32] == bytes([10, 1, 2, 3]) and body[32:44] == bytes(12)
    assert struct.unpack_from("=III", body, 44) == (7, 0x55667788, 0x11223344)


def test_ipv6_and_no_peer() -> None:
    sid = SockId(6, 17, ip_address("::ffff:127.0.0.1"), 53, None, 0, 0, 5)
    body = build_sock_destroy(sid)[16:]
    assert body[0] == 10 and body[1] == 17
    assert body[12:28] == ip_address("::ffff:127.0.0.1").packed
    assert body[28:44] == bytes(16) and body[10:12] == b"\0\0"


def _ack(seq: int, err: int) -> bytes:
    return NLMSGHDR.pack(36, NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -err) + bytes(16)


def test_ack_parsing() -> None:
    assert parse_ack(_ack(3, 0), 36, 3) == 0
    assert parse_ack(_ack(3, errno.EPERM), 36, 3) == errno.EPERM
    assert parse_ack(_ack(2, 0), 36, 3) is None  # another request's answer
    short = NLMSGHDR.pack(18, NLMSG_ERROR, 0, 3, 0) + b"\0\0"
    with pytest.raises(ParseError, match="NLMSG_ERROR"):
        parse_ack(short, len(short), 3)
    with pytest.raises(ParseError, match="truncated"):
        parse_ack(_ack(3, 0), 30, 3)  # runs past what was received


class FakeDiag:
    """Answers every request with NLMSG_ERROR ``err`` for the sequence it was sent."""

    def __init__(self, err: int) -> None:
        self.err = err
        self.sent: list[bytes] = []

    def send(self, data: bytes, /) -> int:
        self.sent.append(data)
        return len(data)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int:
        seq = NLMSGHDR.unpack_from(self.sent[-1], 0)[3]
        reply = _ack(seq, self.err)
        buffer[: len(reply)] = reply
        return len(reply)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("err", "words"),
    [
        (errno.EPERM, "CAP_NET_ADMIN"),
        (errno.EOPNOTSUPP, "CONFIG_INET_DIAG_DESTROY"),
        (errno.ENOENT, "already gone"),
        (errno.ESTALE, "already gone"),
        (errno.EINVAL, "EINVAL"),
    ],
)
def test_refusals_say_why(err: int, words: str) -> None:
    fake = FakeDiag(err)
    with pytest.raises(CloseError, match=words) as info:
        destroy_socket(ep(40000, 2323), socket_factory=lambda: fake)
    assert info.value.errno == err
    assert len(fake.sent) == 1


def test_success_and_what_cannot_be_closed() -> None:
    destroy_socket(ep(40000, 2323), socket_factory=lambda: FakeDiag(0))
    # A connection known only from the kernel-side sources (no cookie yet) is named by
    # its whole 4-tuple, as ss -K names it; a UDP socket or a listener without one is not.
    assert sock_id(ep(40000, 2323)._replace(cookie=None)).cookie == (1 << 64) - 1
    with pytest.raises(CloseError, match="cookie"):
        sock_id(ep(40000, 2323)._replace(cookie=None, remote_port=None, remote_address=None))
    unix = Endpoint(Proto.UNIX, 0, TcpState.ESTABLISHED, None, 1, None, 2, 0, 0, 0, 1, 9)
    with pytest.raises(CloseError, match="only TCP and UDP"):
        sock_id(unix)


HOLDER = """
import os, socket, sys, time
s = socket.socket()
print(os.fstat(s.fileno()).st_ino, flush=True)
time.sleep(30)
"""


def holder() -> tuple[subprocess.Popen[str], int]:
    """A process holding one socket, and that socket's inode."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_signal_errors() -> None:
    with pytest.raises(SignalError, match="refusing"):
        signal_process(1, 5)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    with pytest.raises(SignalError, match="already gone"):
        signal_process(child.pid, 5)  # reaped: no such process
    proc, inode = holder()
    try:
        signal_process(proc.pid, inode, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_only_the_process_holding_the_socket_shown_is_signalled() -> None:
    """A pid whose process no longer holds the socket (it exited, and the pid went to a
    stranger) gets nothing."""
    shown, inode = holder()
    stranger, _ = holder()
    try:
        with pytest.raises(SignalError, match="no longer holds the socket shown"):
            signal_process(stranger.pid, inode, signal.SIGTERM)  # as if the pid were reused
        with pytest.raises(SignalError, match="no inode"):
            signal_process(stranger.pid, 0, signal.SIGTERM)
        time.sleep(0.2)
        assert stranger.poll() is None and shown.poll() is None  # both untouched
    finally:
        for proc in (shown, stranger):
            proc.kill()
            proc.wait()


def _pair(ns: str, port: int) -> tuple[socket.socket, socket.socket, socket.socket]:
    lst = socket_in(ns)
    lst.bind(("127.0.0.1", port))
    lst.listen(4)
    cli = socket_in(ns)
    cli.connect(("127.0.0.1", port))
    srv, _ = lst.accept()
    return lst, cli, srv


def _client_end(ns: str, port: int) -> Endpoint:
    snap = snapshot(protocols=["tcp"], netns=ns)
    return next(e for e in snap.endpoints if e.remote_port == port)


def test_destroy_a_real_connection(netns: str) -> None:
    lst, cli, srv = _pair(netns, 4100)
    try:
        target = _client_end(netns, 4100)
        destroy_socket(target._replace(netns=netns))
        cli.settimeout(5)
        with pytest.raises(ConnectionAbortedError):
            cli.recv(1)  # the owner sees ECONNABORTED
        srv.settimeout(5)
        with pytest.raises(ConnectionResetError):
            srv.recv(1)  # the peer got a reset
        # The same socket again: it is gone, and the message says so.
        with pytest.raises(CloseError, match="already gone"):
            destroy_socket(target._replace(netns=netns))
    finally:
        for s in (lst, cli, srv):
            s.close()


def test_a_stale_cookie_never_hits_another_socket(netns: str) -> None:
    lst, cli, srv = _pair(netns, 4101)
    try:
        target = _client_end(netns, 4101)
        with pytest.raises(CloseError, match="already gone"):
            destroy_socket(target._replace(netns=netns, cookie=(target.cookie or 0) + 1))
        cli.sendall(b"x")
        srv.settimeout(5)
        assert srv.recv(1) == b"x"  # still connected
    finally:
        for s in (lst, cli, srv):
            s.close()


UNPRIVILEGED = r"""
import socket, os, sys
from sockscope.api import snapshot
from sockscope.sources.kill import CloseError, destroy_socket
import ctypes, ctypes.util
ns = sys.argv[1]
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
assert libc.setns(fd, 0x40000000) == 0
lst = socket.socket(); lst.bind(("127.0.0.1", 4102)); lst.listen(4)
cli = socket.create_connection(("127.0.0.1", 4102)); srv, _ = lst.accept()
target = next(e for e in snapshot(protocols=["tcp"]).endpoints if e.remote_port == 4102)
os.setgroups([]); os.setgid(65534); os.setuid(65534)   # drops CAP_NET_ADMIN
try:
    destroy_socket(target)
except CloseError as exc:
    print(exc)
"""


def test_without_the_privilege_the_message_says_so(netns: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", UNPRIVILEGED, netns],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    assert "CAP_NET_ADMIN" in out.stdout, out.stderr
