"""Pure: a snapshot as netstat-, BSD- or ss-style text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.states import Proto, TcpState
from sockscope.render.addresses import Notation
from sockscope.render.table import Column, render_columns

QUEUED_MARK = "(queued)"  # no blank: the state stays one field for awk


@dataclass(slots=True)
class ListingStyle:
    """What a listing shows and in which layout."""

    layout: str = "netstat"  # netstat, bsd, ss
    notation: Notation = field(default_factory=Notation)
    processes: bool = False
    extended: bool = False
    timers: bool = False
    info: bool = False
    header: bool = True
    explain: bool = False


def proto_label(ep: Endpoint, layout: str) -> str:
    """``tcp``/``tcp6`` as netstat writes it, ``tcp4``/``tcp6`` as BSD, ``tcp`` as ss."""
    if ep.proto is Proto.UNIX:
        return "unix" if layout != "ss" else _UNIX_NETID.get(ep.sock_type or "", "u_str")
    if layout == "ss":
        return ep.proto.value
    if ep.family == 6:
        return f"{ep.proto.value}6"
    return f"{ep.proto.value}4" if layout == "bsd" else ep.proto.value


_UNIX_NETID = {"stream": "u_str", "dgram": "u_dgr", "seqpacket": "u_seq"}


def state_label(ep: Endpoint, layout: str) -> str:
    """The state, with ``(queued)`` when TCP accepted it and the application has not."""
    if layout == "ss":
        text = ep.state.ss_label_for(ep.proto)
    elif ep.proto is Proto.UDP and ep.state is TcpState.CLOSE and layout == "netstat":
        text = ""  # netstat leaves an unconnected UDP socket's state blank
    else:
        text = ep.state.label(ep.proto)
    return text + QUEUED_MARK if ep.queued else text


def format_owners(owners: Sequence[Owner], layout: str) -> str:
    """``1234/nginx`` (netstat) or ``users:(("nginx",pid=1234,fd=6))`` (ss); ``-`` when none."""
    if not owners:
        return "" if layout == "ss" else "-"
    if layout == "ss":
        inner = ",".join(f'("{o.name}",pid={o.pid},fd={o.fd})' for o in owners)
        return f"users:({inner})"
    seen: dict[int, str] = {}
    for o in owners:
        seen.setdefault(o.pid, o.name)
    return ",".join(f"{pid}/{name}" for pid, name in seen.items())


def format_timer(ep: Endpoint) -> str:
    """netstat's ``-o`` timer: ``keepalive (7194.59/0/0)``."""
    t = ep.timer
    if t is None:
        return "off (0.00/0/0)"
    return f"{t.kind} ({t.expires_ms / 1000:.2f}/{t.retransmits}/0)"


def format_info(ep: Endpoint) -> str:
    """The ``-i`` TCP info summary, in ss's ``key:value`` form."""
    i = ep.tcp_info
    if i is None:
        return ""
    parts = [
        f"rtt:{i.rtt_us / 1000:.3f}/{i.rttvar_us / 1000:.3f}", f"rto:{i.rto_us / 1000:g}",
        f"cwnd:{i.snd_cwnd}", f"retrans:{i.retransmits}/{i.total_retrans}",
        f"bytes_sent:{i.bytes_sent}", f"bytes_acked:{i.bytes_acked}",
        f"bytes_received:{i.bytes_received}",
    ]
    if i.delivery_rate:
        parts.append(f"delivery_rate:{_rate(i.delivery_rate * 8)}")
    return " ".join(parts)


def _rate(bits_per_s: int) -> str:
    for unit, scale in (("Gbps", 1e9), ("Mbps", 1e6), ("Kbps", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:.1f}{unit}"
    return f"{bits_per_s}bps"


def render_listing(endpoints: Sequence[Endpoint], style: ListingStyle) -> list[str]:
    """The listing's lines, header included when the style asks for it."""
    layout = style.layout
    if layout == "ss":
        columns = [Column("Netid", 5), Column("State", 6), Column("Recv-Q", 6, right=True),
                   Column("Send-Q", 6, right=True), Column("Local Address:Port", 18),
                   Column("Peer Address:Port", 17)]
    else:
        columns = [Column("Proto", 5), Column("Recv-Q", 6, right=True),
                   Column("Send-Q", 6, right=True), Column("Local Address", 23),
                   Column("Foreign Address", 23),
                   Column("(state)" if layout == "bsd" else "State", 11)]
    protos, states, recv_q, send_q, local, remote = _base_cells(endpoints, style)
    cells = ([protos, states, recv_q, send_q, local, remote] if layout == "ss"
             else [protos, recv_q, send_q, local, remote, states])
    extras = _extra_columns(style)
    if extras:
        rows = [_extra_cells(ep, style) for ep in endpoints]
        cells.extend([row[i] for row in rows] for i in range(len(extras)))
        columns.extend(extras)
    return render_columns(columns, cells, header=style.header)


def _base_cells(endpoints: Sequence[Endpoint], style: ListingStyle) -> tuple[list[str], ...]:
    """The six base columns, built with per-listing caches.

    The caches are keyed by object identity: addresses come from the decoder's shared
    cache, and ``ipaddress``/``Enum`` hashing runs Python code, which at 60k rows would
    cost more than all the rest of the rendering.
    """
    layout, nt = style.layout, style.notation
    text: dict[int, str] = {}
    labels: dict[tuple[int, int, int, bool], tuple[str, str]] = {}
    protos, states, recv_q, send_q, local, remote = [], [], [], [], [], []
    sep = "." if nt.bsd else ":"
    numeric = nt.port_name is None
    for ep in endpoints:
        key = (id(ep.proto), ep.family, int(ep.state), ep.inode == 0)
        lab = labels.get(key)
        if lab is None:
            lab = labels[key] = (proto_label(ep, layout), state_label(ep, layout))
        protos.append(lab[0])
        states.append(lab[1])
        recv_q.append(str(ep.recv_q))
        send_q.append(str(ep.send_q))
        la, ra = ep.local_address, ep.remote_address
        if la is None or (ra is None and ep.remote_port is not None):
            local.append(nt.local(ep))
            remote.append(nt.remote(ep))
            continue
        lh = text.get(id(la))
        if lh is None:
            lh = text[id(la)] = nt.host(la)
        local.append(f"{lh}{sep}{ep.local_port}" if numeric
                     else nt.join(lh, nt.port(ep.local_port, ep.proto)))
        if ra is None:
            remote.append(nt.remote(ep))
        else:
            rh = text.get(id(ra))
            if rh is None:
                rh = text[id(ra)] = nt.host(ra)
            remote.append(f"{rh}{sep}{ep.remote_port}" if numeric
                          else nt.join(rh, nt.port(ep.remote_port, ep.proto)))  # type: ignore[arg-type]
    return protos, states, recv_q, send_q, local, remote


def _extra_columns(style: ListingStyle) -> list[Column]:
    cols = []
    if style.extended:
        cols += [Column("User", 4, right=True), Column("Inode", 8, right=True),
                 Column("Cookie", 6, right=True)]
    if style.processes:
        cols.append(Column("Process" if style.layout == "ss" else "PID/Program name", 16))
    if style.timers:
        cols.append(Column("Timer", 14))
    if style.info:
        cols.append(Column("TCP info", 8))
    if style.explain:
        cols.append(Column("Meaning", 7))
    return cols


def _extra_cells(ep: Endpoint, style: ListingStyle) -> list[str]:
    cells = []
    if style.extended:
        cells += ["-" if ep.uid is None else str(ep.uid), str(ep.inode),
                  "-" if ep.cookie is None else str(ep.cookie)]
    if style.processes:
        cells.append(format_owners(ep.owners, style.layout))
    if style.timers:
        cells.append(format_timer(ep))
    if style.info:
        cells.append(format_info(ep))
    if style.explain:
        cells.append(explain(ep, style.notation))
    return cells


def explain(ep: Endpoint, nt: Notation) -> str:
    """A short plain-language note on what this kind of row means (``--explain``)."""
    s = ep.state
    if ep.proto is Proto.UNIX:
        return "local (UNIX) socket"
    if s is TcpState.LISTEN or (ep.proto is Proto.UDP and not ep.has_peer):
        where = ("every local interface" if ep.local_address is not None
                 and ep.local_address.is_unspecified else f"only {ep.local_address}")
        verb = "listening" if s is TcpState.LISTEN else "bound"
        return f"{verb} on {where}; {nt.remote(ep)}: no peer yet"
    return _STATE_NOTES.get(s, "") if not ep.queued else (
        "queued: accepted by the kernel, not yet by the application")


_STATE_NOTES = {
    TcpState.ESTABLISHED: "connected; data can flow both ways",
    TcpState.SYN_SENT: "connecting: our SYN sent, no answer yet",
    TcpState.SYN_RECV: "half-open: the handshake is not finished",
    TcpState.FIN_WAIT1: "we closed; waiting for the peer to acknowledge",
    TcpState.FIN_WAIT2: "we closed; waiting for the peer to close",
    TcpState.TIME_WAIT: "closed here first; kept a while to absorb late packets",
    TcpState.CLOSE_WAIT: "the peer closed; the application has not closed yet",
    TcpState.LAST_ACK: "both closed; waiting for the last acknowledgement",
    TcpState.CLOSING: "both closed at once; waiting for the acknowledgement",
    TcpState.CLOSE: "closed",
}
