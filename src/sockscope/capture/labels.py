"""Which socket, and so which process, sent or received a packet.

``LabelIndex`` holds the sockets of the captured namespace keyed by their 4-tuple as a
packet carries it (protocol, local address and port, peer address and port, addresses
packed as on the wire), plus listeners and unconnected UDP sockets by local address and
port. A packet is looked up from the end(s) that are ours: the source of an outgoing
packet, the destination of an incoming one, both on loopback. A socket no process holds
yet (a child waiting in its listener's accept queue) is named after its listener.

The watch engine's thread writes the index while the capture reads it; each operation
is one dict access, atomic under the interpreter lock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.states import Proto, TcpState
from sockscope.sources.process_info import ProcessInfo
from sockscope.wire.pcapng import build_comment, build_process_comments
from sockscope.wire.tpacket import PACKET_OTHERHOST, PACKET_OUTGOING, Flow

#: A closed socket keeps its entry this long, for its last packets (a capture reading
#: behind the watcher meets them after the close is known).
RETIRE_GRACE = 10.0
#: At most this many processes are named per socket (a listener shared by many workers).
MAX_OWNERS = 4
ANY = b""  # the local address of a socket bound to every address
_NUMBERS = {Proto.TCP: 6, Proto.UDP: 17}

_NOT_RECEIVED = frozenset({PACKET_OUTGOING, PACKET_OTHERHOST})

BoundKey = tuple[int, bytes, int]
K = TypeVar("K", Flow, BoundKey)


def _wire(addr: IPv4Address | IPv6Address | None) -> bytes:
    """An address as a packet carries it: a v4-mapped IPv6 peer travels as IPv4."""
    if addr is None:
        return ANY
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.packed
    return addr.packed


def flow_key(ep: Endpoint) -> Flow | None:
    """The 4-tuple of a connected TCP or UDP socket, as its outgoing packets carry it."""
    proto = _NUMBERS.get(ep.proto)
    if proto is None or ep.remote_port is None or ep.local_address is None:
        return None
    return proto, _wire(ep.local_address), ep.local_port, _wire(ep.remote_address), ep.remote_port


def bound_key(ep: Endpoint) -> BoundKey | None:
    """A listener's or unconnected UDP socket's protocol, local address and port."""
    proto = _NUMBERS.get(ep.proto)
    if proto is None or ep.local_address is None:
        return None
    addr = ep.local_address
    return proto, ANY if addr.is_unspecified else _wire(addr), ep.local_port


class Entry:
    """One socket: its endpoint (with the processes it is labelled with) and those
    processes' comments, encoded once."""

    __slots__ = ("blob", "endpoint", "verdict")

    def __init__(self, endpoint: Endpoint, blob: bytes) -> None:
        self.endpoint = endpoint
        self.blob = blob
        self.verdict: bool | None = None  # the per-packet filter's answer, once asked


class LabelIndex:
    """The live socket table, keyed for packets."""

    def __init__(self, info: ProcessInfo | None = None) -> None:
        self.info = info or ProcessInfo()
        self.exact: dict[Flow, Entry] = {}
        self.bound: dict[BoundKey, Entry] = {}
        self._retired: deque[tuple[float, Flow, Entry]] = deque()
        self._retired_bound: deque[tuple[float, BoundKey, Entry]] = deque()
        self._blobs: dict[tuple[object, ...], bytes] = {}

    # -- written by the watcher's thread -------------------------------------------

    def update(self, ep: Endpoint, owners: tuple[Owner, ...] = ()) -> None:
        """Add or refresh a socket; ``owners`` stand in when the endpoint has none."""
        if ep.remote_port is not None:
            key = flow_key(ep)
            if key is not None:
                self._put(self.exact, key, ep, ep.owners or owners)
        elif ep.state in (TcpState.LISTEN, TcpState.CLOSE):
            bkey = bound_key(ep)
            if bkey is not None:
                self._put(self.bound, bkey, ep, ep.owners or owners)

    def _put(self, table: dict[K, Entry], key: K, ep: Endpoint, owners: tuple[Owner, ...]) -> None:
        old = table.get(key)
        if old is not None and not owners:
            owners = old.endpoint.owners  # a state change does not forget who holds it
            if old.endpoint.state is ep.state:
                return
        shown = ep if owners is ep.owners else ep._replace(owners=owners)
        table[key] = Entry(shown, self._blob(owners, ep.uid))

    def _blob(self, owners: tuple[Owner, ...], uid: int | None) -> bytes:
        procs = tuple(dict.fromkeys((o.pid, o.name) for o in owners))[:MAX_OWNERS]
        cache_key = (procs, uid)
        blob = self._blobs.get(cache_key)
        if blob is None:
            parts = []
            for pid, name in procs:
                args, container, proc_uid = self.info.describe(pid, name)
                # The process's user, as ptcpdump writes it; the socket's when it is gone.
                who = proc_uid if proc_uid is not None else uid
                user = self.info.user(who) if who is not None else ""
                parts += build_process_comments(pid, name, args, who, user, container)
            blob = self._blobs[cache_key] = b"".join(map(build_comment, parts))
        return blob

    def retire(self, ep: Endpoint, now: float | None = None) -> None:
        """A socket closed: its entry goes after ``RETIRE_GRACE``."""
        due = (time.monotonic() if now is None else now) + RETIRE_GRACE
        key, bkey = flow_key(ep), bound_key(ep)
        if ep.remote_port is not None and key is not None and key in self.exact:
            self._retired.append((due, key, self.exact[key]))
        elif ep.remote_port is None and bkey is not None and bkey in self.bound:
            self._retired_bound.append((due, bkey, self.bound[bkey]))

    def expire(self, now: float | None = None) -> None:
        """Forget the sockets closed more than ``RETIRE_GRACE`` ago."""
        now = time.monotonic() if now is None else now
        _expire(self._retired, self.exact, now)
        _expire(self._retired_bound, self.bound, now)

    def sync(self, endpoints: Iterable[Endpoint]) -> None:
        """Take in a dump: sockets not indexed yet, and ones whose holders changed."""
        exact, bound = self.exact, self.bound
        for ep in endpoints:
            old: Entry | None = None
            if ep.remote_port is not None:
                key = flow_key(ep)
                old = exact.get(key) if key is not None else None
            else:
                bkey = bound_key(ep)
                old = bound.get(bkey) if bkey is not None else None
            if old is None or (ep.owners and old.endpoint.owners != ep.owners):
                self.update(ep)

    def seed(self, table: Mapping[Any, Endpoint]) -> None:
        """Index every socket of a first dump."""
        self.sync(table.values())

    # -- read by the capture ---------------------------------------------------------

    def sides(self, flow: Flow, pkttype: int, loopback: bool) -> tuple[list[Entry], bool]:
        """The sockets on this host that sent or received a packet of ``flow``, and
        whether every such socket is known (False: wait for the watcher)."""
        found: list[Entry] = []
        complete = True
        proto, src, sport, dst, dport = flow
        if loopback or pkttype == PACKET_OUTGOING:
            entry = self._side(flow, proto, src, sport)
            if entry is None:
                complete = False
            else:
                found.append(entry)
        if loopback or pkttype not in _NOT_RECEIVED:
            entry = self._side((proto, dst, dport, src, sport), proto, dst, dport)
            if entry is None:
                complete = False
            elif not found or entry is not found[0]:
                found.append(entry)
        return found, complete

    def _side(self, key: Flow, proto: int, addr: bytes, port: int) -> Entry | None:
        entry = self.exact.get(key)
        if entry is None or not entry.blob:
            bound = self.bound
            listener = bound.get((proto, addr, port)) or bound.get((proto, ANY, port))
            if listener is not None and (entry is None or listener.blob):
                return listener
        return entry


def _expire(retired: deque[tuple[float, K, Entry]], table: dict[K, Entry], now: float) -> None:
    while retired and retired[0][0] <= now:
        _, key, entry = retired.popleft()
        if table.get(key) is entry:  # not replaced by a new socket on the same 4-tuple
            del table[key]
