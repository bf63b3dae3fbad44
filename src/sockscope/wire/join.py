"""Pure: wire records into ``Endpoint``s. The one place friendly names begin.

Addresses are decoded through a per-listing cache: a host has few distinct addresses
and an ``ipaddress`` object costs about a microsecond to build.
"""

from __future__ import annotations

from sockscope.model.endpoint import (
    Endpoint,
    InternedIPv4Address,
    InternedIPv6Address,
    IPAddress,
    Owner,
    Timer,
)
from sockscope.model.states import STATE_BY_NUMBER, Proto
from sockscope.wire.errors import ParseError
from sockscope.wire.inet_diag import INET_DIAG_INFO, INET_DIAG_MSG, INET_DIAG_PROTOCOL, InetDiagMsg
from sockscope.wire.netlink import RTATTR
from sockscope.wire.procnet import ProcNetInet, ProcNetUnix
from sockscope.wire.tcp_info import parse_tcp_info
from sockscope.wire.unix_diag import SOCK_TYPES, UnixDiagMsg

AF_INET = 2
AF_INET6 = 10
TIMER_KINDS = ("off", "on", "keepalive", "timewait", "probe")
# /proc/net prints timer expiry in clock ticks (USER_HZ = 100 on Linux).
MS_PER_TICK = 10
ZERO16 = bytes(16)
ZERO2 = bytes(2)
IPPROTO_UDP = 17
_new = tuple.__new__

AddressCache = dict[bytes, IPAddress]


def decode_address(raw: bytes, family: int, cache: AddressCache) -> IPAddress:
    """An ``ipaddress`` object for 16 raw network-order bytes (v4 uses the first 4)."""
    key = raw[:4] if family == 4 else raw
    addr = cache.get(key)
    if addr is None:
        addr = InternedIPv4Address(key) if family == 4 else InternedIPv6Address(key)
        cache[key] = addr
    return addr


def endpoint_from_inet_diag(msg: InetDiagMsg, proto: Proto, cache: AddressCache, netns: str = "") -> Endpoint:
    """Build the endpoint for one ``inet_diag_msg``."""
    family = 4 if msg.idiag_family == AF_INET else 6
    has_peer = msg.idiag_dport != 0 or msg.idiag_dst != ZERO16
    timer = None
    if msg.idiag_timer:
        kind = TIMER_KINDS[msg.idiag_timer] if msg.idiag_timer < len(TIMER_KINDS) else "on"
        timer = Timer(kind, msg.idiag_expires, msg.idiag_retrans)
    return Endpoint(
        proto,
        family,
        STATE_BY_NUMBER[msg.idiag_state],
        decode_address(msg.idiag_src, family, cache),
        msg.idiag_sport,
        decode_address(msg.idiag_dst, family, cache) if has_peer else None,
        msg.idiag_dport if has_peer else None,
        msg.idiag_rqueue,
        msg.idiag_wqueue,
        msg.idiag_uid,
        msg.idiag_inode,
        msg.idiag_cookie,
        msg.idiag_if,
        timer,
        parse_tcp_info(msg.info) if msg.info is not None else None,
        msg.sk_drops,
        msg.cgroup_id,
        (),
        netns,
    )


def endpoint_from_destroy_msg(
    buf: bytes | bytearray, start: int, end: int, cache: AddressCache, netns: str = ""
) -> Endpoint:
    """``endpoint_from_inet_diag(parse_inet_diag_msg(...))`` for a destroy broadcast.

    The same endpoint in one pass: a watcher decodes one of these for every closed
    socket, twenty thousand a second under load, and only the protocol and ``tcp_info``
    attributes matter there. Raises ``ParseError`` as the general decoder does.
    """
    if end - start < INET_DIAG_MSG.size:
        raise ParseError(f"truncated inet_diag_msg: {end - start} of {INET_DIAG_MSG.size} bytes")
    (
        fam,
        state,
        timer,
        retrans,
        sport,
        dport,
        src,
        dst,
        ifindex,
        cookie_lo,
        cookie_hi,
        expires,
        rqueue,
        wqueue,
        uid,
        inode,
    ) = INET_DIAG_MSG.unpack_from(buf, start)
    info = None
    proto = Proto.TCP
    off = start + INET_DIAG_MSG.size
    while off + 4 <= end:
        rta_len, rta_type = RTATTR.unpack_from(buf, off)
        if rta_len < 4 or off + rta_len > end:
            raise ParseError(f"truncated inet_diag attribute {rta_type} at offset {off}")
        if rta_type == INET_DIAG_INFO:
            info = parse_tcp_info(buf, off + 4, off + rta_len)
        elif rta_type == INET_DIAG_PROTOCOL and rta_len >= 5 and buf[off + 4] == IPPROTO_UDP:
            proto = Proto.UDP
        off += (rta_len + 3) & ~3
    family = 4 if fam == AF_INET else 6
    has_peer = dport != ZERO2 or dst != ZERO16
    return _new(
        Endpoint,
        (
            proto,
            family,
            STATE_BY_NUMBER[state],
            decode_address(src, family, cache),
            int.from_bytes(sport, "big"),
            decode_address(dst, family, cache) if has_peer else None,
            int.from_bytes(dport, "big") if has_peer else None,
            rqueue,
            wqueue,
            uid,
            inode,
            cookie_lo | (cookie_hi << 32),
            ifindex,
            Timer(TIMER_KINDS[timer] if timer < len(TIMER_KINDS) else "on", expires, retrans)
            if timer
            else None,
            info,
            None,
            None,
            (),
            netns,
            None,
            None,
            None,
        ),
    )


def endpoint_from_procnet(rec: ProcNetInet, proto: Proto, cache: AddressCache, netns: str = "") -> Endpoint:
    """Build the endpoint for one ``/proc/net`` line.

    ``/proc`` has no cookie, so the endpoint's key falls back to its address tuple. For a
    listener ``rx_queue`` is the accept-queue length and ``tx_queue`` reads 0 (the
    backlog is not shown there).
    """
    has_peer = rec.dport != 0 or rec.dst != ZERO16
    timer = None
    if rec.timer:
        kind = TIMER_KINDS[rec.timer] if rec.timer < len(TIMER_KINDS) else "on"
        timer = Timer(kind, rec.expires_jiffies * MS_PER_TICK, rec.retransmits)
    return Endpoint(
        proto,
        rec.family,
        STATE_BY_NUMBER[rec.state],
        decode_address(rec.src, rec.family, cache),
        rec.sport,
        decode_address(rec.dst, rec.family, cache) if has_peer else None,
        rec.dport if has_peer else None,
        rec.rx_queue,
        rec.tx_queue,
        rec.uid,
        rec.inode,
        None,
        0,
        timer,
        netns=netns,
    )


def endpoint_from_unix_diag(msg: UnixDiagMsg, netns: str = "") -> Endpoint:
    """Build the endpoint for one ``unix_diag_msg``; ports are inodes, as ss shows them."""
    return Endpoint(
        Proto.UNIX,
        0,
        STATE_BY_NUMBER[msg.udiag_state],
        None,
        msg.udiag_ino,
        None,
        msg.peer,
        msg.rqueue,
        msg.wqueue,
        msg.uid,
        msg.udiag_ino,
        msg.udiag_cookie,
        netns=netns,
        path=msg.name,
        peer_inode=msg.peer,
        sock_type=SOCK_TYPES.get(msg.udiag_type, str(msg.udiag_type)),
    )


def endpoint_from_procnet_unix(rec: ProcNetUnix, netns: str = "") -> Endpoint:
    """Build the endpoint for one ``/proc/net/unix`` line (no peer or queue figures there)."""
    return Endpoint(
        Proto.UNIX,
        0,
        STATE_BY_NUMBER[rec.state],
        None,
        rec.inode,
        None,
        None,
        0,
        0,
        None,
        rec.inode,
        None,
        netns=netns,
        path=rec.path,
        sock_type=SOCK_TYPES.get(rec.sock_type, str(rec.sock_type)),
    )


def join_owners(endpoints: list[Endpoint], owners: dict[int, list[Owner]]) -> list[Endpoint]:
    """Attach every holder of each endpoint's inode; inode 0 has no holder by construction.

    At 60k sockets ``_replace`` (a Python-level rebuild through the field names) took
    ~90 ms; rebuilding the tuple around the new ``owners`` slot takes half that. (The
    netlink dump does better still: it attaches owners as it builds each endpoint.)
    """
    get = owners.get
    new = tuple.__new__
    out: list[Endpoint] = []
    add = out.append
    for ep in endpoints:
        inode = ep.inode
        held = get(inode) if inode else None
        if held:
            add(new(Endpoint, (*ep[:_OWNERS], tuple(held), *ep[_OWNERS + 1 :])))
        else:
            add(ep)
    return out


_OWNERS = Endpoint._fields.index("owners")


def parse_fd_link(target: str) -> int | None:
    """The inode in a ``socket:[12345]`` fd link, or None for anything else."""
    if target.startswith("socket:[") and target.endswith("]"):
        try:
            return int(target[8:-1])
        except ValueError:
            return None
    return None
