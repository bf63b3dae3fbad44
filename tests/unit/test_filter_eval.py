"""Evaluating filters on hand-built endpoints: absent values, either ends, many owners."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from sockscope.model.endpoint import Endpoint, Owner, TcpInfo
from sockscope.model.fields import FIELDS
from sockscope.model.filter import parse_filter
from sockscope.model.filter.core import MEMORY_FIELDS, PROCESS_FIELDS, TCP_INFO_FIELDS
from sockscope.model.states import Proto, TcpState

SERVICES = {"ssh": 22, "telnet": 23, "http": 80}
USERS = {"root": 0, "alice": 1000}


def make(
    proto: Proto = Proto.TCP,
    state: TcpState = TcpState.ESTABLISHED,
    laddr: str | None = "127.0.0.1",
    lport: int = 22,
    raddr: str | None = "127.0.0.1",
    rport: int | None = 40000,
    family: int | None = None,
    **extra: object,
) -> Endpoint:
    local = ip_address(laddr) if laddr is not None else None
    if family is None:
        family = local.version if local is not None else 0
    base = Endpoint(
        proto,
        family,
        state,
        local,
        lport,
        ip_address(raddr) if raddr is not None else None,
        rport,
        0,
        0,
        1000,
        1234,
        99,
    )
    return base._replace(**extra)  # type: ignore[arg-type]


def tcp_info(**values: int) -> TcpInfo:
    """A TcpInfo with every counter 0 but ``values`` (robust to new fields)."""
    return TcpInfo._make([0] * len(TcpInfo._fields))._replace(**values)


LISTENER = make(state=TcpState.LISTEN, laddr="0.0.0.0", lport=23, raddr=None, rport=None)
CLIENT = make(lport=40000, rport=22, laddr="10.1.2.3", raddr="192.168.1.9")
V6 = make(laddr="::1", raddr="::1", lport=8080, rport=50000)
MAPPED = make(laddr="::ffff:127.0.0.1", raddr="::ffff:10.0.0.7", lport=443, rport=50001)
UDP = make(proto=Proto.UDP, state=TcpState.CLOSE, laddr="0.0.0.0", lport=53, raddr=None, rport=None)
UNIX = Endpoint(Proto.UNIX, 0, TcpState.LISTEN, None, 777, None, 0, 0, 0, 0, 777, 5, path="/run/docker.sock")
OWNED = make(owners=(Owner(10, "nginx", 3), Owner(11, "nginx-worker", 7)), netns="blue")
INFO = make(
    tcp_info=tcp_info(
        rtt_us=250_000, snd_cwnd=10, total_retrans=3, bytes_sent=20_000_000, bytes_received=5_000_000
    ),
    drops=4,
)
ALL = {
    "listener": LISTENER,
    "client": CLIENT,
    "v6": V6,
    "mapped": MAPPED,
    "udp": UDP,
    "unix": UNIX,
    "owned": OWNED,
    "info": INFO,
}


def matching(text: str) -> set[str]:
    f = parse_filter(text, SERVICES.get, USERS.get)
    return {name for name, ep in ALL.items() if f.matches(ep)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port == telnet", {"listener"}),
        ("lport == 22", {"owned", "info"}),
        ("port == 22", {"owned", "info", "client"}),
        ("rport == 22", {"client"}),
        # != is 'not ==': a listener has no remote port, so rport != 22 holds for it.
        ("rport != 22", set(ALL) - {"client"}),
        ("port != 22", set(ALL) - {"owned", "info", "client"}),
        # No remote port: every ordering comparison is false.
        ("rport < 100", {"client", "unix"}),  # a UNIX peer inode of 0 is a value
        ("rport >= 0", {"client", "v6", "mapped", "owned", "info", "unix"}),
        ("not rport >= 0", {"listener", "udp"}),
        ("rport in 40000..50000", {"owned", "info", "v6"}),
        ("port in {53 8080}", {"udp", "v6"}),
        ("state == listen", {"listener", "unix"}),
        ("state != listen", set(ALL) - {"listener", "unix"}),
        ("state == unconn", {"udp"}),
        ("state == connected", {"client", "v6", "mapped", "owned", "info"}),
        ("proto == udp", {"udp"}),
        ("proto != tcp", {"udp", "unix"}),
        ("proto in {udp, unix}", {"udp", "unix"}),
        ("tcp", set(ALL) - {"udp", "unix"}),
        ("family == 6", {"v6", "mapped"}),
        ("family == unix", {"unix"}),
        ("ipv6", {"v6", "mapped"}),
        ("laddr == 127.0.0.1", {"owned", "info", "mapped"}),  # v4-mapped reads as IPv4
        ("laddr == ::ffff:127.0.0.1", {"owned", "info", "mapped"}),
        ("raddr in 10.0.0.0/8", {"mapped"}),
        ("addr in 10.0.0.0/8", {"mapped", "client"}),
        ("addr == ::1", {"v6"}),
        ("laddr in ::/0", {"v6"}),  # a mapped address is IPv4 here, not in ::/0
        ("raddr in 0.0.0.0/0", {"owned", "info", "client", "mapped"}),  # no peer: no match
        ("raddr != 10.0.0.7", set(ALL) - {"mapped"}),
        ("src 10.1.2.3:40000", {"client"}),
        ("dst 192.168.0.0/16:22", {"client"}),
        ("pid == 11", {"owned"}),
        ("pid != 11", set(ALL) - {"owned"}),  # no owner is pid 11
        ("pid > 10", {"owned"}),
        ("process == nginx", {"owned"}),
        ("process ~ worker$", {"owned"}),
        ("process ~ '^ngi'", {"owned"}),
        ("netns == blue", {"owned"}),
        ("path ~ docker", {"unix"}),
        ("rtt > 200ms", {"info"}),
        ("rtt < 200ms", set()),
        ("not rtt < 200ms", set(ALL)),
        ("bytes_sent > 10MB and bytes_received >= 5MB", {"info"}),
        ("cwnd == 10 and retrans == 3", {"info"}),
        ("drops > 0", {"info"}),
        ("user == alice", set(ALL) - {"unix"}),
        ("uid == 0", {"unix"}),
        ("state established ( dport = :ssh or sport = :ssh )", {"client", "owned", "info"}),
        ("exclude established", {"listener", "udp", "unix"}),
        ("", set(ALL)),
    ],
)
def test_matches(text: str, expected: set[str]) -> None:
    assert matching(text) == expected


def test_new_syn_recv_reads_as_syn_recv() -> None:
    ep = make(state=TcpState.NEW_SYN_RECV)
    assert parse_filter("state == syn-recv").matches(ep)
    assert not parse_filter("state != syn_recv").matches(ep)
    assert parse_filter("state == connected").matches(ep)


@pytest.mark.parametrize(
    ("text", "processes", "tcp_info", "memory"),
    [
        ("port == 22", False, False, False),
        ("pid == 1 or port == 2", True, False, False),
        ("process ~ x", True, False, False),
        ("rtt > 1s", False, True, False),
        ("not bytes_received > 0", False, True, False),
        ("drops > 0 and program == x", True, False, True),
    ],
)
def test_needs(text: str, processes: bool, tcp_info: bool, memory: bool) -> None:
    f = parse_filter(text)
    assert (f.needs_processes, f.needs_tcp_info, f.needs_memory) == (processes, tcp_info, memory)


def test_needs_sets_cover_the_registry() -> None:
    """Every field that reads tcp_info, owners or drops is in the matching 'needs' set."""
    bare = make()
    full = make(owners=(Owner(1, "x", 1),), drops=1, tcp_info=INFO.tcp_info)
    for field in FIELDS:
        if field.either:
            continue
        reads_more = field.get(bare) != field.get(full)
        in_sets = field.name in TCP_INFO_FIELDS | PROCESS_FIELDS | MEMORY_FIELDS
        assert reads_more == in_sets, field.name


def test_filter_equality_is_structural() -> None:
    assert parse_filter("sport = :22") == parse_filter("lport == 22")
    assert parse_filter("sport = :22") != parse_filter("lport == 23")
    assert hash(parse_filter("sport = :22")) == hash(parse_filter("lport == 22"))
