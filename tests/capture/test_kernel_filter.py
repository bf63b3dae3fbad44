"""The compiled packet filters in the real kernel: a ring with the filter keeps exactly the
packets the interpreter (tests/helpers/bpf.py) says it keeps, of those an unfiltered
ring beside it sees."""

from __future__ import annotations

import socket

import pytest

from sockscope.model.filter import parse_filter
from sockscope.query.packets import compute_packet_pushdown
from sockscope.sources.netns import entered_netns
from sockscope.sources.packet import CaptureError, NoSuchInterfaceError, PacketRing
from sockscope.wire.packet_filter import PktAnd, build_handshakes, build_packet_filter
from sockscope.wire.tpacket import Frame, parse_flow
from tests.conftest import needs_root
from tests.helpers.bpf import Packet, run_classic_bpf

SNAP = 262144


def _traffic(netns: str) -> None:
    """UDP to five ports over IPv4 and IPv6, and two TCP connections."""
    with entered_netns(netns):
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            rx = socket.socket(family, socket.SOCK_DGRAM)
            rx.bind((host, 5002))
            tx = socket.socket(family, socket.SOCK_DGRAM)
            for port in range(5000, 5005):
                tx.sendto(b"x" * (port % 7 + 1), (host, port))
            rx.close()
            tx.close()
        for port in (5001, 5003):
            srv = socket.socket()
            srv.bind(("127.0.0.1", port))
            srv.listen()
            cli = socket.create_connection(("127.0.0.1", port))
            conn, _ = srv.accept()
            cli.sendall(b"hello")
            conn.recv(5)
            for s in (cli, conn, srv):
                s.close()


def _packet(frame: Frame) -> Packet:
    ethertype = int.from_bytes(frame.data[12:14], "big")
    return Packet(frame.data, frame.l3, ethertype, frame.pkttype, frame.hatype, frame.ifindex)


def _key(frame: Frame) -> tuple[int, bytes]:
    # Each socket stamps its own copy: the time differs by the few microseconds between
    # them; the bytes (IP ids, ports, sequence numbers) tell packets apart.
    return frame.ifindex, frame.data


@needs_root
@pytest.mark.parametrize(
    ("text", "handshakes", "interface"),
    [
        ("port == 5001", False, None),
        ("udp and port in {5001..5003}", False, "lo"),
        ("addr == ::1", False, None),
        ("not port == 5002", False, "lo"),
        ("", True, None),
        ("port == 5003", True, "lo"),
    ],
)
def test_the_kernel_keeps_what_the_interpreter_keeps(
    netns: str, text: str, handshakes: bool, interface: str | None
) -> None:
    parts = [compute_packet_pushdown(parse_filter(text).root).kernel] if text else []
    if handshakes:
        parts.append(build_handshakes())
    expr = parts[0] if len(parts) == 1 else PktAnd(tuple(parts))  # type: ignore[arg-type]
    any_iface = interface is None
    program = build_packet_filter(expr, SNAP, skip_loopback_outgoing=any_iface)
    everything = PacketRing(
        build_packet_filter(True, SNAP, skip_loopback_outgoing=any_iface), interface, netns
    )
    filtered = PacketRing(program, interface, netns)
    try:
        _traffic(netns)
        seen, kept = everything.drain(), filtered.drain()
    finally:
        everything.close()
        filtered.close()
    assert len(seen) >= 20
    flows = {parse_flow(f.data, f.l3) for f in seen}
    assert len({f[1] for f in flows if f}) >= 2  # IPv4 and IPv6 both there
    expected = [_key(f) for f in seen if run_classic_bpf(program, _packet(f)) == SNAP]
    assert [_key(f) for f in kept] == expected
    assert 0 < len(expected) < len(seen)


@needs_root
def test_each_loopback_packet_appears_once(netns: str) -> None:
    for interface in ("lo", None):
        ring = PacketRing(
            build_packet_filter(True, SNAP, skip_loopback_outgoing=interface is None), interface, netns
        )
        try:
            _traffic(netns)
            frames = ring.drain()
        finally:
            ring.close()
        keys = [_key(f) for f in frames]
        assert len(keys) == len(set(keys)) > 20
        # 5 datagrams x 2 families, and 2 connections of at least 8 segments each
        assert sum(1 for f in frames if (flow := parse_flow(f.data, f.l3)) and flow[0] == 17) == 10
        assert ring.statistics() == (len(frames), 0, 0)


@needs_root
def test_an_unknown_interface_is_named(netns: str) -> None:
    with pytest.raises(NoSuchInterfaceError, match="no interface 'nosuch0'"):
        PacketRing(build_packet_filter(True, SNAP), "nosuch0", netns)


@needs_root
def test_a_program_the_kernel_refuses_is_reported(netns: str) -> None:
    bad = bytes.fromhex("15000000 00000000")  # a jump as the last instruction: no return
    with pytest.raises(CaptureError, match="refused the packet filter"):
        PacketRing(bad, "lo", netns)
