"""Pure: listeners' connection request queues as text and records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sockscope.model.endpoint import Endpoint
from sockscope.model.listener import Listener
from sockscope.render.addresses import Notation
from sockscope.render.listing import format_owners
from sockscope.render.table import Column, render_table

BAR_WIDTH = 10


@dataclass(slots=True)
class QueueStyle:
    """How the queue table is drawn."""

    notation: Notation = field(default_factory=Notation)
    bars: bool = False  # fill bars (a terminal); plain percentages otherwise
    verbose: bool = False  # list the queued and half-open connections
    explain: bool = False
    warn_fill: float = 0.8
    # Shown for a listener whose owner is not known: "-", or "?" when some processes
    # could not be examined (a listener always has an owner; it may just be hidden).
    no_owner: str = "-"


def fill_bar(fill: float, width: int = BAR_WIDTH) -> str:
    """``#####.....`` style bar, saturating at full."""
    n = min(width, round(fill * width))
    return "\u2588" * n + "\u00b7" * (width - n)


def listener_notes(lst: Listener, warn_fill: float, drops_since: int | None = None) -> list[str]:
    """Short flags for the Note column: full, near full, dropping, clamped by somaxconn."""
    notes = []
    if lst.full:
        notes.append("FULL: new handshakes are dropped")
    elif lst.fill >= warn_fill:
        notes.append(f"{lst.fill:.0%} full")
    if drops_since:
        notes.append(f"dropped {drops_since} since start")
    if lst.clamped:
        notes.append(f"backlog = somaxconn ({lst.somaxconn}): may have been clamped")
    return notes


def render_queues(
    listeners: Sequence[Listener],
    style: QueueStyle,
    peaks: Mapping[int, int] | None = None,
    drops_since: Mapping[int, int] | None = None,
) -> list[str]:
    """One row per listener; with ``verbose``, its waiting and half-open connections below.

    ``peaks`` and ``drops_since`` (keyed by listener cookie) come from ``--watch``.
    """
    nt = style.notation
    cols = [
        Column("Listener", 14),
        Column("Process", 7),
        Column("Waiting", 7, True),
        Column("Backlog", 7, True),
        Column("Fill", 4),
        Column("Half-open", 9, True),
        Column("Drops", 5, True),
    ]
    if peaks is not None:
        cols.append(Column("Peak", 4, True))
    cols.append(Column("Note", 4))
    rows = []
    for lst in listeners:
        ep = lst.endpoint
        key = ep.cookie or 0
        fill = f"{fill_bar(lst.fill)} {lst.accept_queue}/{lst.capacity}" if style.bars else f"{lst.fill:.0%}"
        since = drops_since.get(key) if drops_since is not None else None
        notes = listener_notes(lst, style.warn_fill, since)
        if style.explain:
            where = (
                "every interface"
                if ep.local_address is None or ep.local_address.is_unspecified
                else f"{ep.local_address} only"
            )
            notes.append(f"listening on {where}; {nt.remote(ep)}: no peer yet")
        row = [
            nt.local(ep),
            format_owners(ep.owners, "netstat") if ep.owners else style.no_owner,
            str(lst.accept_queue),
            str(lst.backlog),
            fill,
            str(len(lst.half_open)),
            "-" if lst.drops is None else str(lst.drops),
        ]
        if peaks is not None:
            row.append(str(peaks.get(key, lst.accept_queue)))
        row.append("; ".join(notes))
        rows.append(row)
    lines = [line.rstrip() for line in render_table(cols, rows)]
    if style.verbose:
        lines.extend(_details(listeners, style))
    return lines


def _details(listeners: Sequence[Listener], style: QueueStyle) -> list[str]:
    nt = style.notation
    out: list[str] = []
    for lst in listeners:
        if not lst.queued and not lst.half_open:
            continue
        out.append("")
        out.append(f"{nt.local(lst.endpoint)}:")
        for ep in lst.queued:
            waited = _waited(ep)
            out.append(
                f"  queued     {nt.remote(ep):<24} accepted by TCP, not yet by the application{waited}"
            )
        for ep in lst.half_open:
            retrans = ep.timer.retransmits if ep.timer else 0
            out.append(
                f"  half-open  {nt.remote(ep):<24} SYN-ACK sent {retrans + 1}x, final ACK not accepted"
            )
    return out


def _waited(ep: Endpoint) -> str:
    ms = waited_ms(ep)
    return "" if ms is None else f", waiting {ms / 1000:.1f}s"


def waited_ms(ep: Endpoint) -> int | None:
    """Time since the handshake's last ACK arrived: how long a queued child has waited."""
    return ep.tcp_info.last_ack_recv_ms if ep.tcp_info is not None else None


def render_counters(values: Mapping[str, int], delta: Mapping[str, int] | None) -> str:
    """The namespace counters, labelled for what they are: packets, whole namespace."""
    parts = []
    for name, value in values.items():
        change = f" (+{delta[name]})" if delta and delta.get(name) else ""
        parts.append(f"{name} {value}{change}")
    return "namespace counters (packets, all listeners): " + ", ".join(parts)


def listener_record(lst: Listener) -> dict[str, object]:
    """One listener as a flat JSON object."""
    ep = lst.endpoint
    return {
        "local_address": None if ep.local_address is None else str(ep.local_address),
        "local_port": ep.local_port,
        "family": ep.family,
        "accept_queue": lst.accept_queue,
        "backlog": lst.backlog,
        "capacity": lst.capacity,
        "fill": round(lst.fill, 4),
        "half_open": len(lst.half_open),
        "drops": lst.drops,
        "somaxconn": lst.somaxconn,
        "clamped": lst.clamped,
        "cookie": ep.cookie,
        "owners": [{"pid": o.pid, "name": o.name, "fd": o.fd} for o in ep.owners],
        "queued": [
            {
                "remote_address": str(c.remote_address),
                "remote_port": c.remote_port,
                "waited_ms": waited_ms(c),
                "state": c.state.label(c.proto),
            }
            for c in lst.queued
        ],
        "half_open_connections": [
            {
                "remote_address": str(c.remote_address),
                "remote_port": c.remote_port,
                "synack_retransmits": c.timer.retransmits if c.timer else 0,
            }
            for c in lst.half_open
        ],
    }
