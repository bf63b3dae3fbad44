"""Thin I/O: the eBPF source's self-test, one loopback connection with known numbers.

A member offset read through ``bpf_probe_read_kernel`` that is wrong (a BTF the reader
misread, a kernel whose struct changed in a way we did not foresee) returns garbage
without any error. So before the user sees a record, the watcher makes a connection of
its own, sends known bytes each way, closes it, and checks both CLOSE records field by
field against what it knows: ports, addresses, namespace, cookie, byte counts, RTT and
owner. Any disagreement refuses the source.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

from sockscope._namedtuple import NamedTuple
from sockscope.wire.ebpf.records import FLAG_PID, KIND_CLOSE, BpfRecord

SO_COOKIE = 57  # include/uapi/asm-generic/socket.h
CLIENT_SENDS = 3000
SERVER_SENDS = 1234
WAIT_SECONDS = 2.0
#: The SYN and the FIN take a sequence number each: bytes_acked counts them when acked
#: (3002 for 3000 bytes sent by the client here), bytes_received the peer's FIN.
SEQ_EXTRA = (0, 1, 2)


class SelfTestError(Exception):
    """The program's records disagree with the connection the self-test made."""


class Probe(NamedTuple):
    """What the self-test knows of its connection."""

    server_port: int
    client_port: int
    client_cookie: int
    server_cookie: int
    pid: int


def _cookie(sock: socket.socket) -> int:
    value: int = struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
    return value


def _recv_exactly(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise SelfTestError("the self-test's peer closed early")
        got += len(chunk)


def make_connection() -> Probe:
    """A loopback connection with CLIENT_SENDS and SERVER_SENDS bytes, closed by the
    client first (so both ends pass FIN_WAIT1 or LAST_ACK in this process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(WAIT_SECONDS)
        cli = socket.create_connection(srv.getsockname(), timeout=WAIT_SECONDS)
        conn, _ = srv.accept()
        conn.settimeout(WAIT_SECONDS)
        with cli, conn:
            probe = Probe(
                srv.getsockname()[1], cli.getsockname()[1], _cookie(cli), _cookie(conn), os.getpid()
            )
            cli.sendall(b"c" * CLIENT_SENDS)
            _recv_exactly(conn, CLIENT_SENDS)
            conn.sendall(b"s" * SERVER_SENDS)
            _recv_exactly(cli, SERVER_SENDS)
            cli.close()
            if conn.recv(1):
                raise SelfTestError("the self-test's client sent more than expected")
    return probe


def is_probe_record(r: BpfRecord, probe: Probe, netns: int) -> bool:
    """Whether a record is of the self-test's own sockets (listener included)."""
    ports = {probe.server_port, probe.client_port}
    return r.netns == netns and r.sport in ports and (r.dport in ports or r.dport == 0)


def await_closes(read: Callable[[list[BpfRecord]], int], probe: Probe, netns: int) -> list[BpfRecord]:
    """Every record read until both ends' CLOSE records have come (or the wait ends)."""
    records: list[BpfRecord] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        read(records)
        ends = {
            (r.sport, r.dport) for r in records if r.kind == KIND_CLOSE and is_probe_record(r, probe, netns)
        }
        if {(probe.client_port, probe.server_port), (probe.server_port, probe.client_port)} <= ends:
            break
        time.sleep(0.005)
    return records


def check_closes(records: list[BpfRecord], probe: Probe, netns: int) -> None:
    """Raises ``SelfTestError`` naming the first field that disagrees."""
    ends = {
        "client": (probe.client_port, probe.server_port, probe.client_cookie, CLIENT_SENDS, SERVER_SENDS),
        "server": (probe.server_port, probe.client_port, probe.server_cookie, SERVER_SENDS, CLIENT_SENDS),
    }
    for end, (sport, dport, cookie, sent, received) in ends.items():
        found = [r for r in records if r.kind == KIND_CLOSE and (r.sport, r.dport) == (sport, dport)]
        if not found:
            raise SelfTestError(f"no CLOSE record for the {end} end of the test connection")
        _check_end(end, found[-1], netns, cookie, sent, received, probe.pid)


def _check_end(end: str, r: BpfRecord, netns: int, cookie: int, sent: int, received: int, pid: int) -> None:
    problems = []
    if str(r.saddr) != "127.0.0.1" or str(r.daddr) != "127.0.0.1":
        problems.append(f"addresses {r.saddr} -> {r.daddr}")
    if r.netns != netns:
        problems.append(f"netns {r.netns}, not {netns}")
    if r.cookie != cookie:
        problems.append(f"cookie {r.cookie}, not {cookie}")
    if r.bytes_received - received not in SEQ_EXTRA:
        problems.append(f"bytes_received {r.bytes_received}, not {received}")
    if r.bytes_acked - sent not in SEQ_EXTRA:
        problems.append(f"bytes_acked {r.bytes_acked}, not {sent}")
    if r.bytes_sent != sent and not (r.total_retrans and sent < r.bytes_sent <= 2 * sent):
        problems.append(f"bytes_sent {r.bytes_sent}, not {sent}")  # data only, retransmits included
    if not 0 < r.srtt_us < 1_000_000:
        problems.append(f"srtt {r.srtt_us} us")
    if r.pid != pid or not r.flags & FLAG_PID:
        problems.append(f"owner pid {r.pid} (flags {r.flags:#x}), not {pid}")
    if not 0 < r.start_ns <= r.ts_ns:
        problems.append(f"times {r.start_ns} -> {r.ts_ns}")
    if problems:
        raise SelfTestError(f"the {end} end's CLOSE record has " + ", ".join(problems))
