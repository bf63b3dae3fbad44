"""The tracepoint program's behaviour, run in the interpreter on fake sockets: births,
owners, records, filters and counters (tests/helpers/ebpf.py). The root tests load the
same program into the kernel."""

from __future__ import annotations

from ipaddress import ip_address

from sockscope.wire.ebpf import maps as m
from sockscope.wire.ebpf.codegen import BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP
from sockscope.wire.ebpf.program import ProgramConfig
from sockscope.wire.ebpf.records import (
    FLAG_LISTENER,
    FLAG_MIDLIFE,
    FLAG_NO_ENTRY,
    FLAG_PID,
    KIND_CLOSE,
    KIND_LISTEN,
    KIND_OPEN,
    KIND_STATE,
)
from tests.helpers.ebpf import NETNS, Harness

ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2 = 1, 2, 3, 4, 5
CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN = 7, 8, 9, 10
OPEN_AND_STATE = ProgramConfig(want_open=True, want_state=True)


def test_a_client_connection_gives_one_close_record_with_its_counters() -> None:
    h = Harness()
    s = h.sock(40000, 80)
    assert h.step(s, CLOSE, SYN_SENT, pid=100, comm="curl") == []
    born = h.conns()[s.addr].start_ns
    assert h.step(s, SYN_SENT, ESTABLISHED) == []  # no OPEN unless asked
    assert h.step(s, ESTABLISHED, FIN_WAIT1, pid=100, comm="curl") == []
    assert h.step(s, FIN_WAIT1, FIN_WAIT2) == []
    s.counters(sent=3000, acked=3002, received=1235, srtt8=8 * 37, retrans=2, cookie=4242)
    (r,) = h.step(s, FIN_WAIT2, CLOSE)
    assert (r.kind, r.flags, r.pid, r.comm, r.netns) == (KIND_CLOSE, FLAG_PID, 100, "curl", NETNS)
    assert (r.start_ns, r.skaddr, r.cookie) == (born, s.addr, 4242)
    assert r.ts_ns > r.start_ns
    assert (r.family, r.sport, r.dport, r.oldstate, r.newstate) == (4, 40000, 80, FIN_WAIT2, CLOSE)
    assert (r.saddr, r.daddr) == (ip_address("127.0.0.1"), ip_address("127.0.0.2"))
    assert (r.bytes_sent, r.bytes_acked, r.bytes_received, r.srtt_us, r.total_retrans) == (
        3000,
        3002,
        1235,
        37,
        2,
    )
    assert h.conns() == {}
    assert h.stats() == [0, 0, 0, 0]


def test_an_accepted_connection_is_named_by_its_listener_then_by_its_worker() -> None:
    h = Harness(OPEN_AND_STATE)
    listener = h.sock(8080)
    (listen,) = h.step(listener, CLOSE, LISTEN, pid=200, comm="nginx")
    assert (listen.kind, listen.pid, listen.comm, listen.flags) == (KIND_LISTEN, 200, "nginx", FLAG_PID)
    assert h.listeners() == {(NETNS, 8080, 2): (200, 1, "nginx")}
    child = h.sock(8080, 50000)
    assert h.step(child, LISTEN, SYN_RECV, pid=999, comm="swapper/1") == []  # softirq
    (opened,) = h.step(child, SYN_RECV, ESTABLISHED, pid=998, comm="ab")
    assert (opened.kind, opened.pid, opened.comm, opened.flags) == (KIND_OPEN, 200, "nginx", FLAG_LISTENER)
    (state,) = h.step(child, ESTABLISHED, FIN_WAIT1, pid=201, comm="nginx-worker")
    assert (state.kind, state.pid, state.comm, state.flags) == (KIND_STATE, 201, "nginx-worker", FLAG_PID)
    h.step(child, FIN_WAIT1, FIN_WAIT2, pid=5, comm="other")
    (closed,) = h.step(child, FIN_WAIT2, CLOSE, pid=6, comm="another")
    assert (closed.pid, closed.comm, closed.flags, closed.start_ns) == (
        201,
        "nginx-worker",
        FLAG_PID,
        opened.start_ns,
    )


def test_a_passive_close_takes_the_owner_at_last_ack() -> None:
    h = Harness()
    h.step(h.sock(8080), CLOSE, LISTEN, pid=200, comm="server")
    child = h.sock(8080, 50001)
    h.step(child, LISTEN, SYN_RECV)
    h.step(child, SYN_RECV, ESTABLISHED)
    h.step(child, ESTABLISHED, CLOSE_WAIT, pid=77, comm="irq-victim")  # the peer's FIN, in softirq
    assert h.conns()[child.addr].pid == 200
    h.step(child, CLOSE_WAIT, LAST_ACK, pid=201, comm="worker")
    (r,) = h.step(child, LAST_ACK, CLOSE)
    assert (r.pid, r.comm, r.flags) == (201, "worker", FLAG_PID)


def test_a_connection_older_than_the_program_is_adopted_midlife() -> None:
    h = Harness()
    s = h.sock(22, 40022)
    h.step(s, ESTABLISHED, FIN_WAIT1, pid=300, comm="sshd")
    entry = h.conns()[s.addr]
    assert (entry.pid, entry.comm, entry.flags) == (300, "sshd", FLAG_MIDLIFE | FLAG_PID)
    (r,) = h.step(s, FIN_WAIT1, CLOSE)
    assert r.flags == FLAG_MIDLIFE | FLAG_PID
    assert r.start_ns == entry.start_ns > 0  # a lower bound: when it was first seen


def test_a_close_of_a_socket_never_seen_is_still_recorded_and_counted() -> None:
    h = Harness()
    s = h.sock(22, 40023)
    (r,) = h.step(s, LAST_ACK, CLOSE, pid=4, comm="kworker")
    assert (r.flags, r.start_ns, r.pid, r.comm) == (FLAG_NO_ENTRY, 0, 0, "")
    assert h.stats()[m.STAT_CLOSE_WITHOUT_ENTRY] == 1
    assert h.conns() == {}


def test_a_birth_replaces_a_stale_entry_at_a_reused_address() -> None:
    h = Harness()
    s = h.sock(40000, 80)
    h.step(s, CLOSE, SYN_SENT, pid=100, comm="old")
    first = h.conns()[s.addr]  # its CLOSE is never seen (a missed run)
    h.step(s, CLOSE, SYN_SENT, pid=101, comm="new")
    second = h.conns()[s.addr]
    assert (second.pid, second.comm) == (101, "new")
    assert second.start_ns > first.start_ns
    assert second.flags == FLAG_PID
    h.step(s, ESTABLISHED, FIN_WAIT1, pid=101)
    h.step(s, CLOSE, LISTEN, pid=102, comm="listener")  # reused again, as a listener
    assert (h.conns()[s.addr].comm, len(h.conns())) == ("listener", 1)


def test_only_the_watched_namespace_is_recorded_and_compared_on_32_bits() -> None:
    h = Harness(netns=0xF000_0001)
    other = h.sock(80, 1234, netns=0x7000_0001)  # the same low 31 bits
    h.step(other, CLOSE, SYN_SENT, pid=1)
    assert h.step(other, SYN_SENT, CLOSE) == []
    assert h.conns() == {}
    assert h.stats() == [0, 0, 0, 0]
    ours = h.sock(80, 1235, netns=0xF000_0001)
    h.step(ours, CLOSE, SYN_SENT, pid=1)
    assert len(h.step(ours, SYN_SENT, CLOSE)) == 1


def test_every_namespace_with_0_and_entries_dropped_when_the_filter_changes() -> None:
    h = Harness(netns=0)
    a, b = h.sock(1, 2, netns=111), h.sock(3, 4, netns=222)
    h.step(a, CLOSE, SYN_SENT, pid=1)
    h.step(b, CLOSE, SYN_SENT, pid=1)
    assert {e.netns for e in h.conns().values()} == {111, 222}
    h.set_netns(222)
    assert h.step(a, SYN_SENT, CLOSE) == []  # its entry goes with it
    assert [e.netns for e in h.conns().values()] == [222]
    (r,) = h.step(b, SYN_SENT, CLOSE)
    assert r.netns == 222


def test_port_spans_filter_records_but_never_the_bookkeeping() -> None:
    h = Harness(ProgramConfig(want_open=True, ports=((True, 80, 80), (False, 1000, 2000))))
    assert h.program.port_filtered
    listener = h.sock(9)
    (listen,) = h.step(listener, CLOSE, LISTEN, pid=9, comm="other-port")  # LISTEN: never filtered
    assert listen.sport == 9
    kept, dropped = [], []
    for sport, dport in ((80, 5), (5, 1000), (5, 2000), (5, 1500), (81, 999), (5, 2001), (1000, 5)):
        s = h.sock(sport, dport)
        h.step(s, CLOSE, SYN_SENT, pid=1)
        opened = h.step(s, SYN_SENT, ESTABLISHED)
        closed = h.step(s, ESTABLISHED, CLOSE)
        (kept if closed else dropped).append((sport, dport))
        assert len(opened) == len(closed)
    assert kept == [(80, 5), (5, 1000), (5, 2000), (5, 1500)]
    assert dropped == [(81, 999), (5, 2001), (1000, 5)]
    assert list(h.conns()) == [listener.addr]  # every filtered connection's entry came and went
    assert h.listeners() == {(NETNS, 9, 2): (9, 1, "other-port")}


def test_the_config_can_open_the_port_filter_for_the_self_test() -> None:
    h = Harness(ProgramConfig(ports=((True, 80, 80),)))
    assert h.step(h.sock(5, 6), ESTABLISHED, CLOSE) == []
    h.set_netns(NETNS, all_ports=True)
    assert len(h.step(h.sock(5, 6), ESTABLISHED, CLOSE)) == 1
    h.set_netns(NETNS)
    assert h.step(h.sock(5, 6), ESTABLISHED, CLOSE) == []


def test_64_spans_run_in_the_program_and_65_do_not() -> None:
    spans = tuple((i % 2 == 0, 1000 + 10 * i, 1000 + 10 * i + i % 3) for i in range(64))
    h = Harness(ProgramConfig(ports=spans))
    assert h.program.port_filtered
    local, _, hi = spans[-1]
    s = h.sock(hi if local else 7, 7 if local else hi)
    assert len(h.step(s, ESTABLISHED, CLOSE)) == 1
    assert h.step(h.sock(7, 7), ESTABLISHED, CLOSE) == []
    wide = Harness(ProgramConfig(ports=(*spans, (True, 5, 5))))
    assert not wide.program.port_filtered
    assert len(wide.step(wide.sock(7, 7), ESTABLISHED, CLOSE)) == 1


def test_state_records_when_asked_and_one_open_record_at_established() -> None:
    h = Harness(OPEN_AND_STATE)
    s = h.sock(40000, 80)
    h.step(s, CLOSE, SYN_SENT, pid=1)
    kinds = [r.kind for r in h.step(s, SYN_SENT, ESTABLISHED)]
    kinds += [r.kind for r in h.step(s, ESTABLISHED, FIN_WAIT1, pid=1)]
    kinds += [r.kind for r in h.step(s, FIN_WAIT1, CLOSE)]
    assert kinds == [KIND_OPEN, KIND_STATE, KIND_CLOSE]
    quiet = Harness(ProgramConfig(want_state=True))
    q = quiet.sock(40000, 80)
    quiet.step(q, CLOSE, SYN_SENT, pid=1)
    assert [r.kind for r in quiet.step(q, SYN_SENT, ESTABLISHED)] == [KIND_STATE]


def test_one_family_only_and_tcp_only() -> None:
    h = Harness(ProgramConfig(families=frozenset({4})))
    v6 = h.sock(80, 1, family=6)
    h.step(v6, CLOSE, SYN_SENT, pid=1)
    assert h.step(v6, SYN_SENT, CLOSE) == []
    mptcp = h.sock(80, 2)
    assert h.step(mptcp, ESTABLISHED, CLOSE, protocol=262) == []
    assert h.conns() == {}


def test_ipv6_addresses_fill_16_bytes() -> None:
    h = Harness()
    (r,) = h.step(h.sock(443, 50000, family=6), ESTABLISHED, CLOSE)
    assert (r.family, r.saddr, r.daddr) == (6, ip_address("2001:db8::1"), ip_address("2001:db8::2"))


def test_wakeups_only_when_the_ring_is_a_quarter_full() -> None:
    h = Harness(ProgramConfig(ring_bytes=1 << 20))
    h.vm.ring_avail = (1 << 18) - 1
    h.step(h.sock(1, 2), ESTABLISHED, CLOSE)
    h.vm.ring_avail = (1 << 18) + 1
    h.step(h.sock(3, 4), ESTABLISHED, CLOSE)
    assert [flags for _, flags in h.vm.submitted] == [BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP]


def test_losses_are_counted_not_silent() -> None:
    h = Harness(max_conns=1)
    h.step(h.sock(1, 2), CLOSE, SYN_SENT, pid=1)
    h.step(h.sock(3, 4), CLOSE, SYN_SENT, pid=1)  # conns is full
    h.vm.ring_full = True
    assert h.step(h.sock(5, 6), ESTABLISHED, CLOSE) == []
    reserve_failed, map_full, listener_full, without_entry = h.stats()
    assert (reserve_failed, map_full, listener_full, without_entry) == (1, 1, 0, 1)


def test_listeners_sharing_a_port_are_counted_and_the_last_close_forgets_it() -> None:
    h = Harness()
    a, b = h.sock(8080), h.sock(8080)
    h.step(a, CLOSE, LISTEN, pid=10, comm="w1")
    h.step(b, CLOSE, LISTEN, pid=11, comm="w2")
    assert h.listeners() == {(NETNS, 8080, 2): (11, 2, "w2")}
    h.step(a, LISTEN, CLOSE)
    assert h.listeners() == {(NETNS, 8080, 2): (11, 1, "w2")}
    h.step(b, LISTEN, CLOSE)
    assert h.listeners() == {}
