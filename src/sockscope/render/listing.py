"""Pure: a snapshot as netstat-, BSD- or ss-style text."""

from __future__ import annotations

from collections.abc import Sequence

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto, TcpState
from sockscope.render.addresses import Notation

# The labels live in their own module so the row loops can use them too; they are
# imported from here as well, as they always were.
from sockscope.render.labels import QUEUED_MARK, format_owners, proto_label, state_label
from sockscope.render.rows import RECV_Q, SEND_Q, base_cells, netstat_text, owner_cells
from sockscope.render.table import Column, render_columns_text

__all__ = [
    "QUEUED_MARK",
    "ListingStyle",
    "explain",
    "format_info",
    "format_owners",
    "format_timer",
    "proto_label",
    "render_listing",
    "render_listing_text",
    "state_label",
]


class ListingStyle:
    """What a listing shows and in which layout.

    A plain slotted class, not a dataclass, to keep ``dataclasses`` (~10 ms to import)
    off the start-up path of ``sockscope list``.
    """

    __slots__ = ("explain", "extended", "header", "info", "layout", "notation", "processes", "timers")

    def __init__(
        self,
        layout: str = "netstat",
        notation: Notation | None = None,
        processes: bool = False,
        extended: bool = False,
        timers: bool = False,
        info: bool = False,
        header: bool = True,
        explain: bool = False,
    ) -> None:
        self.layout = layout  # netstat, bsd, ss
        self.notation = Notation() if notation is None else notation
        self.processes = processes
        self.extended = extended
        self.timers = timers
        self.info = info
        self.header = header
        self.explain = explain

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("layout", "notation", "processes", "extended", "timers", "info", "header", "explain")
        )
        return f"ListingStyle({inner})"


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
        f"rtt:{i.rtt_us / 1000:.3f}/{i.rttvar_us / 1000:.3f}",
        f"rto:{i.rto_us / 1000:g}",
        f"cwnd:{i.snd_cwnd}",
        f"retrans:{i.retransmits}/{i.total_retrans}",
        f"bytes_sent:{i.bytes_sent}",
        f"bytes_acked:{i.bytes_acked}",
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
    text = render_listing_text(endpoints, style)
    return text.split("\n")[:-1] if text else []


def render_listing_text(endpoints: Sequence[Endpoint], style: ListingStyle, title: str | None = None) -> str:
    """The listing as one string, every line ending in a newline; ``title`` goes first."""
    layout = style.layout
    if layout == "ss":
        columns = [
            Column("Netid", 5),
            Column("State", 6),
            Column("Recv-Q", 6, right=True),
            Column("Send-Q", 6, right=True),
            Column("Local Address:Port", 18),
            Column("Peer Address:Port", 17),
        ]
    else:
        columns = [
            Column("Proto", 5),
            Column("Recv-Q", 6, right=True),
            Column("Send-Q", 6, right=True),
            Column("Local Address", 23),
            Column("Foreign Address", 23),
            Column("(state)" if layout == "bsd" else "State", 11),
        ]
        fast = netstat_text(endpoints, style, columns, _extra_columns(style), title)
        if fast is not None:
            return fast
    protos, states, local, remote = base_cells(endpoints, style)
    # Queue sizes stay ints: the table writes them as str() would, once per distinct value.
    recv_q = list(map(RECV_Q, endpoints))
    send_q = list(map(SEND_Q, endpoints))
    cells: list[Sequence[str | int]] = (
        [protos, states, recv_q, send_q, local, remote]
        if layout == "ss"
        else [protos, recv_q, send_q, local, remote, states]
    )
    extras = _extra_columns(style)
    if extras:
        cells.extend(_extra_cell_columns(endpoints, style))
        columns.extend(extras)
    return render_columns_text(columns, cells, header=style.header, title=title)


def _extra_columns(style: ListingStyle) -> list[Column]:
    cols = []
    if style.extended:
        cols += [
            Column("User", 4, right=True),
            Column("Inode", 8, right=True),
            Column("Cookie", 6, right=True),
        ]
    if style.processes:
        cols.append(Column("Process" if style.layout == "ss" else "PID/Program name", 16))
    if style.timers:
        cols.append(Column("Timer", 14))
    if style.info:
        cols.append(Column("TCP info", 8))
    if style.explain:
        cols.append(Column("Meaning", 7))
    return cols


def _extra_cell_columns(endpoints: Sequence[Endpoint], style: ListingStyle) -> list[list[str]]:
    """The cells of ``_extra_columns``, one list per column."""
    cols: list[list[str]] = []
    if style.extended:
        cols += [
            ["-" if ep.uid is None else str(ep.uid) for ep in endpoints],
            [str(ep.inode) for ep in endpoints],
            ["-" if ep.cookie is None else str(ep.cookie) for ep in endpoints],
        ]
    if style.processes:
        cols.append(owner_cells(endpoints, style.layout))
    if style.timers:
        cols.append([format_timer(ep) for ep in endpoints])
    if style.info:
        cols.append([format_info(ep) for ep in endpoints])
    if style.explain:
        nt = style.notation
        cols.append([explain(ep, nt) for ep in endpoints])
    return cols


def explain(ep: Endpoint, nt: Notation) -> str:
    """A short plain-language note on what this kind of row means (``--explain``)."""
    s = ep.state
    if ep.proto is Proto.UNIX:
        return "local (UNIX) socket"
    if s is TcpState.LISTEN or (ep.proto is Proto.UDP and not ep.has_peer):
        where = (
            "every local interface"
            if ep.local_address is not None and ep.local_address.is_unspecified
            else f"only {ep.local_address}"
        )
        verb = "listening" if s is TcpState.LISTEN else "bound"
        return f"{verb} on {where}; {nt.remote(ep)}: no peer yet"
    return (
        _STATE_NOTES.get(s, "")
        if not ep.queued
        else ("queued: accepted by the kernel, not yet by the application")
    )


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
