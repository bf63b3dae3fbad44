"""Pure: Endpoint, its parts, and Snapshot.

``Endpoint`` is an immutable, slotted ``NamedTuple`` rather than a frozen dataclass: a
listing builds tens of thousands of them, and a frozen dataclass costs 2.5 µs to build
against 0.3 µs for a tuple (measured on the 2-core VM), which alone would spend most of
the budget that lets ``list -tan`` keep up with ``ss``.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from sockscope._namedtuple import NamedTuple
from sockscope.model.states import Proto, TcpState

IPAddress = IPv4Address | IPv6Address


class _Interned:
    """Computes the address's hash once (see InternedIPv4Address)."""

    __slots__ = ()
    _hash: int
    _plain: str  # the ipaddress class it stands for, in repr()

    def __init__(self, address: object) -> None:
        super().__init__(address)  # type: ignore[call-arg]
        self._hash = super().__hash__()  # type: ignore[misc]  # the slot is the subclass's

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{self._plain}('{self}')"


class InternedIPv4Address(_Interned, IPv4Address):
    """An ``IPv4Address`` that computes its hash once.

    The watch engine keys its tables by 4-tuples, and ``ipaddress`` hashes through
    ``hex(int(...))`` on every lookup: a dozen hashes a tracepoint record, a sixth of the
    record's cost. Decoders hand out one shared object per address, so equality is
    mostly identity, and the stored hash makes lookups cheap. Equal to, and hashing like,
    the plain ``IPv4Address``.
    """

    __slots__ = ("_hash",)
    _plain = "IPv4Address"


class InternedIPv6Address(_Interned, IPv6Address):
    """``InternedIPv4Address`` for IPv6."""

    __slots__ = ("_hash",)
    _plain = "IPv6Address"


class Owner(NamedTuple):
    """One process holding the socket through one file descriptor."""

    pid: int
    name: str
    fd: int


class Timer(NamedTuple):
    """The socket's pending timer, as ``ss -o`` and ``netstat -o`` show it."""

    kind: str  # off, on, keepalive, timewait, probe
    expires_ms: int
    retransmits: int


class TcpInfo(NamedTuple):
    """The subset of ``struct tcp_info`` that people read (``include/uapi/linux/tcp.h``)."""

    rtt_us: int
    rttvar_us: int
    rto_us: int
    snd_cwnd: int
    snd_mss: int
    retransmits: int
    total_retrans: int
    unacked: int
    lost: int
    bytes_sent: int
    bytes_acked: int
    bytes_received: int
    bytes_retrans: int
    segs_out: int
    segs_in: int
    delivery_rate: int  # bytes per second
    pacing_rate: int
    min_rtt_us: int
    last_data_recv_ms: int
    last_ack_recv_ms: int


class Endpoint(NamedTuple):
    """One socket as the kernel reports it.

    ``remote_address``/``remote_port`` are None when there is no peer (a listener, an
    unconnected UDP socket). ``inode`` 0 on an ESTABLISHED TCP socket means no process
    holds it yet: it waits in its listener's accept queue.
    """

    proto: Proto
    family: int  # 4 or 6; 0 for UNIX
    state: TcpState
    local_address: IPAddress | None
    local_port: int
    remote_address: IPAddress | None
    remote_port: int | None
    recv_q: int
    send_q: int
    uid: int | None
    inode: int
    cookie: int | None
    iface: int = 0
    timer: Timer | None = None
    tcp_info: TcpInfo | None = None
    drops: int | None = None
    cgroup_id: int | None = None
    owners: tuple[Owner, ...] = ()
    netns: str = ""
    path: str | None = None  # UNIX: bound path ("@name" for abstract)
    peer_inode: int | None = None  # UNIX: the peer socket's inode
    sock_type: str | None = None  # UNIX: stream, dgram, seqpacket

    @property
    def has_peer(self) -> bool:
        """Whether the endpoint is connected to a known peer."""
        return self.remote_port is not None

    @property
    def queued(self) -> bool:
        """Accepted by TCP, not yet taken by the application: no inode, no owner."""
        return (
            self.proto is Proto.TCP
            and self.inode == 0
            and self.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)
        )

    @property
    def key(self) -> tuple[object, ...]:
        """Identity across snapshots: the kernel cookie, else the address tuple."""
        if self.cookie is not None:
            return (self.proto, self.cookie)
        return (
            self.netns,
            self.proto,
            self.local_address,
            self.local_port,
            self.remote_address,
            self.remote_port,
            self.inode,
            self.path,
        )

    def with_owners(self, owners: tuple[Owner, ...]) -> Endpoint:
        """A copy holding ``owners``."""
        return self._replace(owners=owners)


#: A socket's identity as the tracepoint and eBPF records see it (no cookie): protocol,
#: local address and port, remote address (None without a peer) and port (0 without one).
TKey = tuple[str, IPAddress | None, int, IPAddress | None, int]


def tuple_key(ep: Endpoint) -> TKey:
    """The 4-tuple identity of ``ep``, as ``TKey``."""
    return (ep.proto.value, ep.local_address, ep.local_port, ep.remote_address, ep.remote_port or 0)


class Snapshot:
    """Every endpoint seen in one pass, with where and when they were read.

    Immutable. A plain slotted class, not a dataclass: importing ``dataclasses`` pulls in
    ``inspect`` and ``ast`` (~10 ms), a large share of a short listing's start-up.
    """

    __slots__ = ("endpoints", "host", "kernel", "monotonic", "netns", "source", "taken_at", "warnings")
    _FIELDS = ("endpoints", "taken_at", "monotonic", "source", "netns", "host", "kernel", "warnings")

    endpoints: tuple[Endpoint, ...]
    taken_at: float  # seconds since the epoch
    monotonic: float
    source: str  # "netlink" or "procfs"
    netns: str
    host: str
    kernel: str
    warnings: tuple[str, ...]

    def __init__(
        self,
        endpoints: tuple[Endpoint, ...],
        taken_at: float,
        monotonic: float,
        source: str,
        netns: str = "",
        host: str = "",
        kernel: str = "",
        warnings: tuple[str, ...] = (),
    ) -> None:
        values = (endpoints, taken_at, monotonic, source, netns, host, kernel, warnings)
        for name, value in zip(self._FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def _astuple(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"Snapshot({inner})"

    def __len__(self) -> int:
        return len(self.endpoints)
