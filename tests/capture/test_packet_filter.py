"""The capture socket's BPF program against the filter language's own answer.

A classic BPF interpreter with the kernel's negative offsets (tests/helpers/bpf.py)
runs the compiled programs on built packets; tests/capture/test_kernel_filter.py checks
the same programs in the real kernel.
"""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.capture.session import flow_endpoints
from sockscope.model.filter import parse_filter
from sockscope.query.packets import compute_packet_pushdown
from sockscope.wire.packet_filter import (
    ARPHRD_LOOPBACK,
    PACKET_OUTGOING,
    PktHost,
    PktOr,
    build_dispatch,
    build_handshakes,
    build_packet_filter,
    packet_filter_length,
)
from sockscope.wire.tpacket import parse_flow
from tests.helpers.bpf import Packet, ipv4_packet, ipv6_packet, run_classic_bpf

SNAP = 262144
V4 = ["10.0.0.1", "10.0.0.200", "192.168.1.7", "127.0.0.1"]
V6 = ["::1", "2001:db8::5", "2001:db8:1::9", "fe80::1"]
PORTS = [22, 80, 443, 1023, 1024, 8080, 40000, 65535]


def _packet(
    version: int, proto: int, src: str, dst: str, sport: int, dport: int, flags: int = 0x10
) -> Packet:
    build = ipv4_packet if version == 4 else ipv6_packet
    data = build(ip_address(src).packed, ip_address(dst).packed, proto, sport, dport, flags)
    return Packet(data, 14, 0x0800 if version == 4 else 0x86DD)


def _python_says(text: str, pkt: Packet) -> bool:
    flow = parse_flow(pkt.data, pkt.net)
    assert flow is not None
    flt = parse_filter(text)
    return any(flt.matches(ep) for ep in flow_endpoints(flow, (), None))


def _kernel_says(text: str, pkt: Packet) -> bool:
    push = compute_packet_pushdown(parse_filter(text).root)
    return run_classic_bpf(build_packet_filter(push.kernel, SNAP), pkt) == SNAP


atoms = st.one_of(
    st.sampled_from(PORTS).map(lambda p: f"port == {p}"),
    st.sampled_from(PORTS).map(lambda p: f"lport == {p}"),
    st.sampled_from(PORTS).map(lambda p: f"rport >= {p}"),
    st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS)).map(
        lambda t: f"port in {{{t[0]} {min(t)}..{max(t)}}}"
    ),
    st.sampled_from(["10.0.0.0/24", "192.168.1.7", "2001:db8::/32", "::1", "0.0.0.0/0"]).map(
        lambda n: f"addr in {n}"
    ),
    st.sampled_from(["10.0.0.1", "2001:db8::5"]).map(lambda a: f"laddr == {a}"),
    st.sampled_from(["tcp", "udp", "family == 4", "family == 6", "proto == udp"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda c: f"not ({c})"),
    )


filters = st.recursive(atoms, _combine, max_leaves=6)
packets = st.one_of(
    st.tuples(st.just(4), st.sampled_from([6, 17]), st.sampled_from(V4), st.sampled_from(V4)),
    st.tuples(st.just(6), st.sampled_from([6, 17]), st.sampled_from(V6), st.sampled_from(V6)),
).flatmap(
    lambda t: st.tuples(st.just(t), st.sampled_from(PORTS), st.sampled_from(PORTS)).map(
        lambda u: _packet(u[0][0], u[0][1], u[0][2], u[0][3], u[1], u[2])
    )
)


@settings(max_examples=300, deadline=None)
@given(filters, packets)
def test_the_kernel_keeps_every_match_and_exactly_the_matches_when_exact(text: str, pkt: Packet) -> None:
    push = compute_packet_pushdown(parse_filter(text).root)
    kept = run_classic_bpf(build_packet_filter(push.kernel, SNAP), pkt) == SNAP
    wanted = _python_says(text, pkt)
    if push.exact:
        assert kept == wanted, text
    else:
        assert kept or not wanted, text  # a superset: never drops a match


def test_what_is_exact_and_what_is_tested_per_packet() -> None:
    exact = ["port == 80", "not port == 22", "tcp and addr in 10.0.0.0/8", "family == 6 or udp"]
    per_packet = ["lport == 80", "process ~ nginx", "port == 80 and pid == 1", "not lport == 80"]
    for text in exact:
        assert compute_packet_pushdown(parse_filter(text).root).exact, text
    for text in per_packet:
        assert not compute_packet_pushdown(parse_filter(text).root).exact, text
    # The kernel still narrows what it can: lport becomes "either port" there.
    narrowed = compute_packet_pushdown(parse_filter("lport == 80 and process ~ nginx").root)
    assert run_classic_bpf(build_packet_filter(narrowed.kernel, SNAP), _packet(4, 6, V4[0], V4[1], 1, 2)) == 0
    assert (
        run_classic_bpf(build_packet_filter(narrowed.kernel, SNAP), _packet(4, 6, V4[0], V4[1], 1, 80))
        == SNAP
    )


def test_packets_without_ports_match_addresses_but_no_ports() -> None:
    icmp = _packet(4, 1, "10.0.0.1", "10.0.0.2", 0, 0)
    assert _kernel_says("addr == 10.0.0.2", icmp)
    assert not _kernel_says("port == 0", icmp)
    assert not _kernel_says("tcp or udp", icmp)
    assert _kernel_says("not port == 22", icmp)  # as pcap-filter's "not port 22"


def test_later_fragments_have_no_ports() -> None:
    pkt = _packet(4, 17, "10.0.0.1", "10.0.0.2", 80, 80)
    data = bytearray(pkt.data)
    data[14 + 6 : 14 + 8] = (0x00B9).to_bytes(2, "big")  # fragment offset 185
    frag = Packet(bytes(data), 14, 0x0800)
    assert _kernel_says("port == 80", pkt)
    assert not _kernel_says("port == 80", frag)
    assert parse_flow(frag.data, 14) is None


def test_handshakes_keep_syn_fin_rst_only_and_headers_only() -> None:
    program = build_packet_filter(build_handshakes(), 134)
    for version, src, dst in ((4, V4[0], V4[1]), (6, V6[1], V6[2])):
        for flags, kept in (
            (0x02, True),
            (0x12, True),
            (0x11, True),
            (0x04, True),
            (0x10, False),
            (0x18, False),
        ):
            pkt = _packet(version, 6, src, dst, 1234, 80, flags)
            assert run_classic_bpf(program, pkt) == (134 if kept else 0), (version, hex(flags))
        assert run_classic_bpf(program, _packet(version, 17, src, dst, 1234, 80, 0x02)) == 0  # UDP


def test_loopback_outgoing_copies_are_dropped_on_an_any_capture() -> None:
    program = build_packet_filter(True, SNAP, skip_loopback_outgoing=True)
    pkt = _packet(4, 6, "127.0.0.1", "127.0.0.1", 1, 2)
    assert run_classic_bpf(program, Packet(pkt.data, 14, 0x0800, PACKET_OUTGOING, ARPHRD_LOOPBACK)) == 0
    assert run_classic_bpf(program, Packet(pkt.data, 14, 0x0800, 0, ARPHRD_LOOPBACK)) == SNAP
    assert run_classic_bpf(program, Packet(pkt.data, 14, 0x0800, PACKET_OUTGOING, 1)) == SNAP  # eth0's


def test_long_programs_use_far_jumps_and_still_agree() -> None:
    nets = tuple(PktHost(4, bytes([10, i, 0, 0]), 16) for i in range(120))
    program = build_packet_filter(PktOr(nets), SNAP)
    assert packet_filter_length(program) > 256  # too far for 8-bit jumps
    assert run_classic_bpf(program, _packet(4, 6, "10.119.3.4", "1.2.3.4", 1, 2)) == SNAP
    assert run_classic_bpf(program, _packet(4, 6, "10.120.3.4", "1.2.3.4", 1, 2)) == 0


def test_a_libpcap_program_runs_after_ours_and_keeps_the_snap_length() -> None:
    # "ip": ldh [12]; jeq #0x800 jt 0 jf 1; ret #262144; ret #0 (tcpdump -dd, DLT_EN10MB)
    ether = bytes.fromhex("28000000 0c000000 15000001 00080000 06000000 00000400 06000000 00000000")
    # the same for raw IP: ldb [0]; and #0xf0; jeq #0x40 jt 0 jf 1; ret #262144; ret #0
    raw = bytes.fromhex(
        "30000000 00000000 54000000 f0000000 15000001 40000000 06000000 00000400 06000000 00000000"
    )
    tail = build_dispatch(ether, raw, 200)
    program = build_packet_filter(build_handshakes(), 200, tail=tail)
    syn4 = _packet(4, 6, V4[0], V4[1], 1, 2, 0x02)
    assert run_classic_bpf(program, syn4) == 200
    assert run_classic_bpf(program, _packet(4, 6, V4[0], V4[1], 1, 2, 0x10)) == 0  # ours says no
    assert run_classic_bpf(program, _packet(6, 6, V6[0], V6[1], 1, 2, 0x02)) == 0  # libpcap's says no
    tun = Packet(syn4.data[14:], 0, 0x0800, hatype=0xFFFE)  # a tunnel: no link header
    assert run_classic_bpf(program, tun) == 200


def test_port_ranges_at_their_edges() -> None:
    text = "port in {80 1000..2000} or port >= 65000"
    for version, src, dst in ((4, V4[0], V4[1]), (6, V6[1], V6[2])):
        for port, kept in ((79, False), (80, True), (81, False), (999, False), (1000, True), (2000, True)):
            for sport, dport in ((port, 5), (5, port)):
                pkt = _packet(version, 17, src, dst, sport, dport)
                assert _kernel_says(text, pkt) == kept == _python_says(text, pkt), (version, sport, dport)
        for port, kept in ((2001, False), (64999, False), (65000, True), (65535, True)):
            pkt = _packet(version, 6, src, dst, 7, port)
            assert _kernel_says(text, pkt) == kept, (version, port)


def test_address_prefixes_at_their_edges() -> None:
    for text, inside, outside in (
        ("addr in 10.1.2.128/25", "10.1.2.128", "10.1.2.127"),
        ("addr in 10.1.2.128/25", "10.1.2.255", "10.1.3.0"),
        ("addr in 2001:db8:0:8000::/49", "2001:db8:0:8000::1", "2001:db8:0:7fff::1"),
        ("addr == 2001:db8::5", "2001:db8::5", "2001:db8::4"),
    ):
        version = 6 if ":" in inside else 4
        other = "10.9.9.9" if version == 4 else "2001:db8:9::9"
        for src, dst in ((inside, other), (other, inside)):
            assert _kernel_says(text, _packet(version, 6, src, dst, 1, 2)), (text, src, dst)
        assert not _kernel_says(text, _packet(version, 6, outside, other, 1, 2)), (text, outside)
