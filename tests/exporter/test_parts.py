"""The exporter's pure parts: cgroup paths, the series cap, the event counters, the
scrape sharing, the listen address and --ports parsing."""

from __future__ import annotations

import threading
import time
from ipaddress import IPv4Address

import pytest

from sockscope.exporter.cardinality import choose_ports, port_order
from sockscope.exporter.churn import Churn, rport_bucket
from sockscope.exporter.collector import SingleFlight
from sockscope.exporter.http import parse_listen
from sockscope.model.container import container_from_cgroup_paths
from sockscope.model.endpoint import Endpoint, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.wire.cgroup import parse_proc_pid_cgroup
from sockscope.wire.errors import ParseError

ID = "4f1d2c3b" * 8

# /proc/PID/cgroup as each runtime lays it out (cgroup v2 hosts: one "0::" line; the v1
# hybrid of this VM: one line per hierarchy). The paths follow the runtimes' cgroup
# naming: Docker's and containerd's systemd drivers (docker-ID.scope,
# cri-containerd-ID.scope under kubepods slices), CRI-O's crio-ID.scope next to its
# crio-conmon-ID.scope monitor, Podman's libpod-ID.scope, and the cgroupfs drivers.
CGROUP_SAMPLES = {
    "docker-systemd": (f"0::/system.slice/docker-{ID}.scope\n", "docker", None),
    "docker-cgroupfs-v1": (f"12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n0::/\n", "docker", None),
    "containerd-k8s": (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789"
        f".slice/cri-containerd-{ID}.scope\n",
        "containerd",
        "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
    ),
    "k8s-cgroupfs": (
        f"0::/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/{ID}\n",
        "containerd",
        "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
    ),
    "crio": (f"0::/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope\n", "cri-o", None),
    "podman": (
        f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n",
        "podman",
        None,
    ),
    "podman-cgroupfs": (f"0::/libpod_parent/libpod-{ID}\n", "podman", None),
    "nerdctl": (f"0::/default/{ID}\n", "containerd", None),
}


@pytest.mark.parametrize("name", sorted(CGROUP_SAMPLES))
def test_container_from_cgroup(name: str) -> None:
    text, runtime, pod = CGROUP_SAMPLES[name]
    lines = parse_proc_pid_cgroup(text)
    found = container_from_cgroup_paths(ln.path for ln in sorted(lines, key=lambda ln: ln.hierarchy_id != 0))
    assert found is not None
    assert (found.runtime, found.id, found.pod_uid) == (runtime, ID, pod)
    assert found.label == f"{runtime}://{ID}"


@pytest.mark.parametrize(
    "text",
    [
        "0::/\n",  # a plain host
        "0::/user.slice/user-0.slice/session-3.scope\n",
        f"0::/system.slice/crio-conmon-{ID}.scope\n",  # CRI-O's monitor, not the container
        f"0::/machine.slice/libpod-conmon-{ID}.scope\n",
        "4:memory:/process_api/55d625015f7a9b2986c5dd8a30696b01\n0::/\n",  # 32 hex digits: no runtime
    ],
)
def test_no_container(text: str) -> None:
    assert container_from_cgroup_paths(ln.path for ln in parse_proc_pid_cgroup(text)) is None


def test_cgroup_line_with_colons_and_named_hierarchy() -> None:
    (line,) = parse_proc_pid_cgroup("1:name=systemd:/a:b\n")
    assert line.hierarchy_id == 1 and line.controllers == ("name=systemd",) and line.path == "/a:b"
    with pytest.raises(ParseError):
        parse_proc_pid_cgroup("garbage\n")
    with pytest.raises(ParseError):
        parse_proc_pid_cgroup("x::/\n")


def test_ports_fold_named_first_and_in_turn_across_namespaces() -> None:
    named = frozenset({9000})
    assert port_order([443, 80, 9000, 80], named) == [9000, 80, 443]
    costs = [[(80, 10), (443, 10), (8080, 10)], [(22, 10)]]
    kept, folded = choose_ports(costs, budget=25)
    # Turn by turn: ns0's 80, ns1's 22, then nothing else fits.
    assert kept == [{80}, {22}] and folded == 20
    kept, folded = choose_ports(costs, budget=1000)
    assert kept == [{80, 443, 8080}, {22}] and folded == 0
    # A cheap port later in line still fits after an expensive one was folded.
    kept, folded = choose_ports([[(80, 30), (81, 5)]], budget=10)
    assert kept == [{81}] and folded == 30


def _ep(lport: int, rport: int | None, state: TcpState, info: TcpInfo | None = None) -> Endpoint:
    peer = IPv4Address("10.0.0.2") if rport is not None else None
    return Endpoint(
        Proto.TCP, 4, state, IPv4Address("10.0.0.1"), lport, peer, rport, 0, 0, 0, 1, None, tcp_info=info
    )


def _ev(kind: EventKind, ep: Endpoint, duration: float | None = None) -> Event:
    return Event(kind, ep, 1.0, 1.0, Source.DESTROY, duration=duration)


def _info(sent: int, received: int, retrans: int) -> TcpInfo:
    return TcpInfo(*([0] * 6), retrans, *([0] * 2), sent, 0, received, *([0] * 8))


def test_churn_counts_server_side_by_port_and_outgoing_by_bucket() -> None:
    churn = Churn(named_ports=[5432])
    churn.start(
        [_ep(80, None, TcpState.LISTEN), _ep(80, 40000, TcpState.ESTABLISHED)], ["poll", "destroy", "trace"]
    )
    churn.add_events(
        [
            _ev(EventKind.OPENED, _ep(80, 40001, TcpState.SYN_RECV)),
            _ev(EventKind.CLOSED, _ep(80, 40001, TcpState.FIN_WAIT2, _info(100, 7, 1)), duration=0.003),
            # Never seen open (shorter than a poll): its accept is counted at its close.
            _ev(EventKind.CLOSED, _ep(80, 40002, TcpState.ESTABLISHED, _info(0, 0, 0)), duration=None),
            # There before the watcher: closed, never accepted.
            _ev(EventKind.CLOSED, _ep(80, 40000, TcpState.LAST_ACK), duration=12.0),
            _ev(EventKind.CLOSED, _ep(41000, 5432, TcpState.TIME_WAIT)),
            _ev(EventKind.CLOSED, _ep(41001, 443, TcpState.SYN_SENT)),
            Event(EventKind.LOST, _ep(0, None, TcpState.CLOSE), 1.0, 1.0, Source.DESTROY, amount=3),
            _ev(EventKind.LISTEN, _ep(8080, None, TcpState.LISTEN)),
            _ev(EventKind.CLOSED, _ep(8080, 50000, TcpState.CLOSE_WAIT)),
        ]
    )
    snap = churn.snapshot()
    p80 = snap.ports[80]
    assert (p80.accepted, p80.closed, p80.resets) == (2, 3, 1)
    assert (p80.sent, p80.received, p80.retrans) == (100, 7, 1)
    # 0.003 lands in le=0.005, 12 s in le=60; the untimed close is not observed.
    assert sum(p80.buckets) == 2 and p80.buckets[2] == 1 and p80.buckets[10] == 1
    assert p80.duration_sum == pytest.approx(12.003)
    assert snap.ports[8080].resets == 1
    assert snap.outgoing == {"5432": (1, 0), "1-1023": (1, 1)}
    assert snap.lost == 3 and snap.resets_known


def test_churn_does_not_count_resets_without_exact_states() -> None:
    churn = Churn()
    churn.start([_ep(80, None, TcpState.LISTEN)], ["poll", "destroy"])
    churn.add_events([_ev(EventKind.CLOSED, _ep(80, 40001, TcpState.ESTABLISHED))])
    snap = churn.snapshot()
    assert snap.ports[80].closed == 1 and snap.ports[80].resets == 0 and not snap.resets_known


def test_rport_buckets() -> None:
    named = frozenset({8443})
    assert [rport_bucket(p, named) for p in (22, 1023, 1024, 8443, 49151, 49152, 65535, None)] == [
        "1-1023",
        "1-1023",
        "1024-49151",
        "8443",
        "1024-49151",
        "49152-65535",
        "49152-65535",
        "other",
    ]


def test_single_flight_shares_a_run_that_started_after_the_request() -> None:
    runs: list[float] = []
    gate = threading.Event()

    def read() -> int:
        runs.append(time.monotonic())
        if len(runs) == 1:
            gate.wait(5)  # the first run is slow: requests pile up behind it
        return len(runs)

    flight = SingleFlight(read)
    results: list[tuple[float, int]] = []

    def call() -> None:
        asked = time.monotonic()
        value = flight()
        results.append((asked, value))

    first = threading.Thread(target=call)
    first.start()
    while not runs:
        time.sleep(0.001)
    others = [threading.Thread(target=call) for _ in range(20)]
    for t in others:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert len(results) == 21
    # Twenty-one requests, two runs: the first, and one shared by all that waited.
    assert len(runs) == 2
    assert sorted(v for _, v in results) == [1] + [2] * 20
    # Every shared answer comes from a run that started after the request was made.
    assert all(runs[value - 1] >= asked for asked, value in results)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:10127", ("127.0.0.1", 10127)), (":9", ("::", 9)), ("[::1]:0", ("::1", 0))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "::1:80", "host:99999", "1.2.3.4:x"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
