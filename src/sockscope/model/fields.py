"""Pure: the one field registry.

Every field an endpoint has is named once here, with its column header, unit, help text,
value type, getter and formatter. CLI columns, JSON keys, filter field names and later
the UI's columns all come from this table, so a field is called the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sockscope.model.endpoint import Endpoint


class Kind(StrEnum):
    """The type of a field's values; the filter language checks comparisons against it."""

    INT = "integer"
    PORT = "port"
    ADDR = "address"
    STATE = "state"
    TEXT = "text"
    PROTO = "protocol"
    FAMILY = "family"
    USER = "user"
    DURATION = "duration"
    SIZE = "size"


Getter = Callable[[Endpoint], object]


@dataclass(frozen=True, slots=True)
class Field:
    """One named property of an endpoint."""

    name: str
    header: str
    kind: Kind
    help: str
    get: Getter
    unit: str = ""
    example: str = ""
    #: Getters for fields that have two values per endpoint (``port``: local or remote).
    either: tuple[str, ...] = ()


def _info(attr: str, scale: float = 1.0) -> Getter:
    def get(ep: Endpoint) -> object:
        info = ep.tcp_info
        if info is None:
            return None
        value: int = getattr(info, attr)
        return value * scale if scale != 1.0 else value

    return get


def _owner(attr: str) -> Getter:
    def get(ep: Endpoint) -> object:
        return tuple(getattr(o, attr) for o in ep.owners)

    return get


FIELDS: tuple[Field, ...] = (
    Field(
        "proto",
        "Proto",
        Kind.PROTO,
        "transport protocol: tcp, udp or unix",
        lambda e: e.proto.value,
        example="proto == tcp",
    ),
    Field(
        "family",
        "Family",
        Kind.FAMILY,
        "address family: 4 or 6 (inet, inet6)",
        lambda e: e.family,
        example="family == 6",
    ),
    Field(
        "state",
        "State",
        Kind.STATE,
        "socket state, or a group: connected, synchronized",
        lambda e: e.state,
        example="state in {established, close_wait}",
    ),
    Field("lport", "Local Port", Kind.PORT, "local port", lambda e: e.local_port, example="lport == 23"),
    Field(
        "rport",
        "Peer Port",
        Kind.PORT,
        "remote (foreign) port; absent with no peer",
        lambda e: e.remote_port,
        example="rport in 1024..65535",
    ),
    Field(
        "port",
        "Port",
        Kind.PORT,
        "either port, local or remote",
        lambda e: e.local_port,
        example="port == telnet",
        either=("lport", "rport"),
    ),
    Field(
        "laddr",
        "Local Address",
        Kind.ADDR,
        "local address",
        lambda e: e.local_address,
        example="laddr == 127.0.0.1",
    ),
    Field(
        "raddr",
        "Peer Address",
        Kind.ADDR,
        "remote (foreign) address",
        lambda e: e.remote_address,
        example="raddr in 10.0.0.0/8",
    ),
    Field(
        "addr",
        "Address",
        Kind.ADDR,
        "either address, local or remote",
        lambda e: e.local_address,
        example="addr == ::1",
        either=("laddr", "raddr"),
    ),
    Field(
        "recv_q",
        "Recv-Q",
        Kind.SIZE,
        "bytes not yet read; on a listener, connections waiting in the accept queue",
        lambda e: e.recv_q,
        "bytes",
        "recv_q > 0",
    ),
    Field(
        "send_q",
        "Send-Q",
        Kind.SIZE,
        "bytes not yet acknowledged; on a listener, its backlog",
        lambda e: e.send_q,
        "bytes",
        "send_q > 10kB",
    ),
    Field("uid", "UID", Kind.INT, "owning user id", lambda e: e.uid, example="uid == 0"),
    Field("user", "User", Kind.USER, "owning user (name or id)", lambda e: e.uid, example="user == root"),
    Field(
        "inode",
        "Inode",
        Kind.INT,
        "socket inode; 0 while queued or in TIME_WAIT",
        lambda e: e.inode,
        example="inode == 0",
    ),
    Field(
        "cookie",
        "Cookie",
        Kind.INT,
        "kernel socket cookie, stable for the socket's life",
        lambda e: e.cookie,
        example="cookie == 4242",
    ),
    Field(
        "iface", "Iface", Kind.INT, "bound interface index (0: any)", lambda e: e.iface, example="iface == 1"
    ),
    Field(
        "netns",
        "Netns",
        Kind.TEXT,
        "network namespace name ('' for the current one)",
        lambda e: e.netns,
        example="netns == blue",
    ),
    Field("pid", "PID", Kind.INT, "a process holding the socket", _owner("pid"), example="pid == 1234"),
    Field(
        "process",
        "Program",
        Kind.TEXT,
        "name of a process holding the socket",
        _owner("name"),
        example="process ~ nginx",
    ),
    Field("path", "Path", Kind.TEXT, "UNIX socket path", lambda e: e.path, example="path ~ docker"),
    Field(
        "drops",
        "Drops",
        Kind.INT,
        "packets this socket dropped (sk_drops)",
        lambda e: e.drops,
        example="drops > 0",
    ),
    Field("rtt", "RTT", Kind.DURATION, "smoothed round-trip time", _info("rtt_us", 1e-6), "s", "rtt > 200ms"),
    Field("cwnd", "Cwnd", Kind.INT, "congestion window (segments)", _info("snd_cwnd"), example="cwnd < 10"),
    Field(
        "retrans",
        "Retrans",
        Kind.INT,
        "segments retransmitted over the connection's life",
        _info("total_retrans"),
        example="retrans > 0",
    ),
    Field(
        "bytes_sent",
        "Sent",
        Kind.SIZE,
        "bytes sent, retransmissions included",
        _info("bytes_sent"),
        "bytes",
        "bytes_sent > 10MB",
    ),
    Field(
        "bytes_acked",
        "Acked",
        Kind.SIZE,
        "bytes the peer acknowledged",
        _info("bytes_acked"),
        "bytes",
        "bytes_acked > 1MB",
    ),
    Field(
        "bytes_received",
        "Received",
        Kind.SIZE,
        "bytes received",
        _info("bytes_received"),
        "bytes",
        "bytes_received > 1MB",
    ),
    Field(
        "event",
        "Event",
        Kind.TEXT,
        "watch: the event (opened, accepted, state, closed, listen, unlisten, bound, unbound, dropped, lost)",
        lambda e: getattr(e, "event", None),
        example="event == closed",
    ),
    Field(
        "duration",
        "Duration",
        Kind.DURATION,
        "watch: how long the connection lived (closed events)",
        lambda e: getattr(e, "duration", None),
        "s",
        "duration < 1s",
    ),
    Field(
        "source",
        "Source",
        Kind.TEXT,
        "watch: which mechanism saw the event (poll, destroy, trace)",
        lambda e: getattr(e, "source", None),
        example="source == trace",
    ),
    Field(
        "delivery_rate",
        "Rate",
        Kind.SIZE,
        "delivery rate (bytes per second)",
        _info("delivery_rate"),
        "bytes/s",
        "delivery_rate > 1MB",
    ),
)

FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

#: Wireshark display-filter names people already know, mapped to ours.
ALIASES: dict[str, str] = {
    "tcp.port": "port",
    "udp.port": "port",
    "tcp.srcport": "lport",
    "tcp.dstport": "rport",
    "udp.srcport": "lport",
    "udp.dstport": "rport",
    "ip.addr": "addr",
    "ip.src": "laddr",
    "ip.dst": "raddr",
    "ipv6.addr": "addr",
    "ipv6.src": "laddr",
    "ipv6.dst": "raddr",
    "sport": "lport",
    "dport": "rport",
    "src": "laddr",
    "dst": "raddr",
    "local_port": "lport",
    "remote_port": "rport",
    "local_address": "laddr",
    "remote_address": "raddr",
    "program": "process",
    "comm": "process",
}


def lookup(name: str) -> Field | None:
    """The field called ``name`` or one of its aliases."""
    return FIELDS_BY_NAME.get(ALIASES.get(name, name))
