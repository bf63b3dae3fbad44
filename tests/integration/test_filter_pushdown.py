"""Push-down on the real kernel: kernel-filtered + matches == matches over everything.

One network namespace per module holds a fixed socket set (listeners on 127.0.0.1,
0.0.0.0, ::1 and a dual-stack ::, established pairs including a v4-mapped one, FIN-WAIT-2
and CLOSE-WAIT halves, a TIME-WAIT, UDP sockets bound and connected, a socket bound to
``lo``). Hypothesis then generates filters in both syntaxes; for each, the dump made
with the filter's push-down (dumps, ``idiag_states``, bytecode), filtered by
``matches``, must equal ``matches`` over the unfiltered dump.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings

from sockscope.api import KernelFilter, Query, run_query
from sockscope.model.endpoint import Endpoint
from sockscope.model.filter import Filter, parse_filter
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.query.pushdown import pushdown
from tests.helpers.netns import socket_in
from tests.unit.test_filter_bytecode import ADDR_POOL, filters

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating network namespaces needs root")

SERVICES = {"ssh": 22, "http": 80, "https": 443, "domain": 53}.get
PORTS = (0, 22, 53, 80, 443, 1023, 1024, 5353, 6000, 7000, 8080, 40000, 40001, 65535)
ADDRS = (*ADDR_POOL, "127.0.0.3", "127.0.0.0/31")
HOSTS = (
    "127.0.0.1",
    "127.0.0.1:22",
    "[::1]:8080",
    "*:443",
    ":22",
    "::ffff:127.0.0.1",
    "127.0.0.0/8:40000",
    "0.0.0.0/0",
    "[::]",
    "[::1]",
    "127.0.0.1:53",
    "*:6000",
)
INET = (Proto.TCP, Proto.UDP)


@dataclass
class World:
    """The namespace and every socket we keep open in it."""

    netns: str
    sockets: list[socket.socket] = field(default_factory=list)

    def sock(
        self,
        family: int = socket.AF_INET,
        kind: int = socket.SOCK_STREAM,
    ) -> socket.socket:
        s = socket_in(self.netns, family, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sockets.append(s)
        return s

    def listener(
        self, family: int, addr: str, port: int, *, v6only: bool = True, device: bytes | None = None
    ) -> socket.socket:
        s = self.sock(family)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        if device is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
        s.bind((addr, port))
        s.listen(8)
        return s

    def connect(
        self,
        family: int,
        addr: str,
        port: int,
        local_port: int = 0,
    ) -> socket.socket:
        c = self.sock(family)
        if local_port:
            c.bind(("127.0.0.1" if family == socket.AF_INET else "::1", local_port))
        c.connect((addr, port))
        return c

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def _build(world: World) -> None:
    v4, v6 = socket.AF_INET, socket.AF_INET6
    ssh = world.listener(v4, "127.0.0.1", 22)
    web = world.listener(v4, "0.0.0.0", 80)
    world.listener(v6, "::1", 8080)
    world.listener(v6, "::", 443, v6only=False)
    world.listener(v4, "127.0.0.2", 1023)
    world.listener(v4, "127.0.0.1", 7000, device=b"lo")
    # A TIME-WAIT: the client closes first, then the server.
    tw_client = world.connect(v4, "127.0.0.1", 22, local_port=40001)
    tw_served, _ = ssh.accept()
    tw_client.close()
    time.sleep(0.05)
    tw_served.close()
    world.connect(v4, "127.0.0.1", 22)  # stays in ssh's accept queue
    world.connect(v6, "::1", 8080)
    world.connect(v4, "127.0.0.1", 443)  # v4-mapped on the :: side
    client = world.connect(v4, "127.0.0.1", 80, local_port=40000)
    served, _ = web.accept()
    world.sockets.append(served)
    client.shutdown(socket.SHUT_WR)  # FIN-WAIT-2 / CLOSE-WAIT
    udp = world.sock(v4, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 53))
    world.sock(v4, socket.SOCK_DGRAM).bind(("127.0.0.1", 5353))
    world.sock(v6, socket.SOCK_DGRAM).bind(("::1", 5353))
    connected = world.sock(v4, socket.SOCK_DGRAM)
    connected.bind(("127.0.0.1", 6000))
    connected.connect(("127.0.0.1", 53))
    time.sleep(0.1)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    name = f"sockscope-filter-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    w = World(name)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        _build(w)
        yield w
    finally:
        w.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


def everything(netns: str) -> list[Endpoint]:
    return list(run_query(Query(protocols=INET, families=(4, 6), netns=netns)).endpoints)


def pushed_down(f: Filter, netns: str) -> list[Endpoint]:
    """The dump the push-down asks for, as the CLI makes it, then ``matches``."""
    pd = pushdown(f)
    protocols = tuple(p for p in INET if pd.protocols is None or p in pd.protocols)
    families = tuple(x for x in (4, 6) if pd.families is None or x in pd.families)
    states = ALL_STATES if pd.states is None else pd.states
    if not protocols or not families or not states:
        return []
    query = Query(
        protocols=protocols,
        families=families,
        netns=netns,
        kernel=KernelFilter(states=states, bytecode=pd.bytecode),
    )
    return [ep for ep in run_query(query).endpoints if f.matches(ep)]


def keys(eps: list[Endpoint]) -> list[tuple[object, ...]]:
    return sorted(
        (
            e.proto.value,
            e.family,
            int(e.state),
            str(e.local_address),
            e.local_port,
            str(e.remote_address),
            e.remote_port,
        )
        for e in eps
    )


def assert_equivalent(text: str, netns: str) -> list[Endpoint]:
    f = parse_filter(text, SERVICES)
    expected = [ep for ep in everything(netns) if f.matches(ep)]
    got = pushed_down(f, netns)
    assert keys(got) == keys(expected), (text, pushdown(f))
    return got


def test_the_world_has_every_kind_of_socket(world: World) -> None:
    eps = everything(world.netns)
    states = {(ep.proto, ep.state) for ep in eps}
    for want in [
        (Proto.TCP, TcpState.LISTEN),
        (Proto.TCP, TcpState.ESTABLISHED),
        (Proto.TCP, TcpState.TIME_WAIT),
        (Proto.TCP, TcpState.FIN_WAIT2),
        (Proto.TCP, TcpState.CLOSE_WAIT),
        (Proto.UDP, TcpState.CLOSE),
        (Proto.UDP, TcpState.ESTABLISHED),
    ]:
        assert want in states, want
    assert any(ep.family == 6 and getattr(ep.local_address, "ipv4_mapped", None) for ep in eps)
    assert any(ep.iface == 1 for ep in eps)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("sport = :ssh", 2),  # the listener and the queued child
        ("lport == 22 and state == listen", 1),
        ("port == 80", 3),  # listener, server half, client half
        ("dport = :53", 1),
        ("laddr == 127.0.0.1 and lport == 443", 1),  # the v4-mapped accepted child
        ("src [::1]:8080", 2),
        ("iface == 1", 1),
        ("not iface == 1 and lport == 7000", 0),
        ("state time-wait", 1),
        ("state established '( dport = :ssh or sport = :ssh )'", 2),
    ],
)
def test_known_filters(world: World, text: str, count: int) -> None:
    got = assert_equivalent(text, world.netns)
    assert len(got) == count, keys(got)
    assert pushdown(parse_filter(text, SERVICES)).bytecode is not None or "state" in text


def test_the_kernel_really_filters(world: World) -> None:
    f = parse_filter("lport == 22")
    pd = pushdown(f)
    assert pd.bytecode is not None
    raw = run_query(
        Query(protocols=INET, families=(4, 6), netns=world.netns, kernel=KernelFilter(bytecode=pd.bytecode))
    ).endpoints
    assert raw and all(ep.local_port == 22 for ep in raw)
    assert len(raw) < len(everything(world.netns))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=filters(PORTS, ADDRS, HOSTS, max_leaves=6))
def test_pushdown_equals_pure_evaluation(world: World, text: str) -> None:
    assert_equivalent(text, world.netns)
