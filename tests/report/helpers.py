"""Recordings made with the real Recorder, from events with known values."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from sockscope.model.endpoint import Endpoint, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.listener import build_listeners
from sockscope.model.states import Proto, TcpState
from sockscope.record.sqlite import Recorder

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
LO = ip_address("127.0.0.1")
PEER = ip_address("10.0.0.7")


def info(sent: int, received: int, rtt_us: int) -> TcpInfo:
    return TcpInfo(rtt_us, 0, 0, 0, 0, 0, 0, 0, 0, sent, sent, received, 0, 0, 0, 0, 0, 0, 0, 0)


def conn_events(
    t: float, cport: int, duration: float, *, port: int = 2323, reset: bool = False, rtt_us: int = 50
) -> list[Event]:
    """The server end of one accepted connection from PEER: opened, state, closed."""
    owner = Owner(100, "server", 3)
    est = Endpoint(
        Proto.TCP, 4, TcpState.ESTABLISHED, LO, port, PEER, cport, 0, 0, 0, 1, cport, owners=(owner,)
    )
    last = TcpState.ESTABLISHED if reset else TcpState.LAST_ACK
    gone = est._replace(state=last, tcp_info=info(1000, 10, rtt_us))
    return [
        Event(EventKind.OPENED, est._replace(state=TcpState.SYN_RECV), t, t, Source.TRACE, process=owner),
        Event(EventKind.STATE, est, t, t, Source.TRACE, old_state=TcpState.SYN_RECV, process=owner),
        Event(
            EventKind.CLOSED,
            gone,
            t + duration,
            t + duration,
            Source.DESTROY,
            duration=duration,
            process=owner,
        ),
    ]


def listener_table(port: int, queued: int, backlog: int, drops: int) -> list[Endpoint]:
    lst = Endpoint(
        Proto.TCP,
        4,
        TcpState.LISTEN,
        ip_address("0.0.0.0"),
        port,
        None,
        None,
        queued,
        backlog,
        0,
        9,
        5000 + port,
    )
    lst = lst._replace(drops=drops, owners=(Owner(100, "server", 3),))
    kids = [
        Endpoint(Proto.TCP, 4, TcpState.ESTABLISHED, LO, port, PEER, 40000 + i, 0, 0, 0, 0, 7000 + i)
        for i in range(queued)
    ]
    return [lst, *kids]


def make_recording(path: Path, connections: int = 30, *, samples: bool = True) -> Path:
    """``connections`` accepted connections over 30 s (every third reset), with queue samples
    of two listeners each second; port 2323's queue fills at 10 s and drops twice."""
    rec = Recorder(path, {"host": "testhost", "netns": "ns1", "started": str(T0), "tool": "t"}, private=False)
    rec.set_meta("sources", "poll,destroy,trace")
    rec.set_meta("listening_ports", "2323")
    for i in range(connections):
        t = T0 + i
        for ev in conn_events(t, 50000 + i, 0.001 * (i + 1), reset=i % 3 == 0, rtt_us=50 + i):
            rec.write(ev)
    if samples:
        for s in range(31):
            full = 10 <= s < 13
            drops = 0 if s < 11 else 2 if s < 12 else 5
            table = listener_table(2323, 4 if full else 1, 3, drops) + listener_table(8080, 0, 128, 0)
            rec.write_queues(T0 + s, float(s), build_listeners(table, 4096))
    rec.close()
    return path
