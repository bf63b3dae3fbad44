"""Pure: events as one line of text or one JSON object each (``watch``, ``replay``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sockscope.model.event import Event, EventKind
from sockscope.render.addresses import Notation
from sockscope.render.listing import proto_label
from sockscope.render.records import endpoint_record


def _clock(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S.%f")[:-3]


def format_size(n: int | None) -> str:
    """``830B``, ``12.4kB``, ``3.1MB``; empty when unknown."""
    if n is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def format_duration(seconds: float) -> str:
    """``850us``, ``12.3ms``, ``4.20s``, ``3m05s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def render_event_line(ev: Event, nt: Notation) -> str:
    """One line: time, event, proto, local, remote, state, process, details.

    Columns are padded, never cut, so a long IPv6 address pushes the rest right
    instead of running into it.
    """
    ep = ev.endpoint
    if ev.kind is EventKind.LOST:
        return f"{_clock(ev.time)} {'lost':<9} {ev.amount} events the kernel could not " \
               "deliver (ENOBUFS); resynchronised with a dump"
    state = ep.state.label(ep.proto)
    if ev.old_state is not None:
        state = f"{ev.old_state.label(ep.proto)}->{state}"
    owner = ev.owner
    who = f"{owner.name}/{owner.pid}" if owner is not None else "-"
    parts = [_clock(ev.time), f"{ev.kind.value:<9}", f"{proto_label(ep, 'netstat'):<5}",
             f"{nt.local(ep):<21}", f"{nt.remote(ep):<21}", f"{state:<23}", who]
    extra = []
    if ev.duration is not None:
        extra.append(f"dur={format_duration(ev.duration)}")
    info = ep.tcp_info
    if ev.kind is EventKind.CLOSED and info is not None:
        extra.append(f"sent={format_size(info.bytes_sent)} recv={format_size(info.bytes_received)}")
        extra.append(f"rtt={info.rtt_us / 1000:.2f}ms")
        if info.total_retrans:
            extra.append(f"retrans={info.total_retrans}")
    if ev.amount is not None and ev.kind is EventKind.DROPPED:
        extra.append(f"drops=+{ev.amount}")
    return " ".join(parts + extra)


def event_record(ev: Event) -> dict[str, object]:
    """The ``list --jsonl`` keys of the endpoint plus the event's own."""
    ep = ev.endpoint
    rec = endpoint_record(ep)
    owner = ev.owner
    if owner is not None and not rec["owners"]:
        rec["owners"] = [{"pid": owner.pid, "name": owner.name, "fd": owner.fd}]
    info = ep.tcp_info
    rec.update(
        event=ev.kind.value,
        time=datetime.fromtimestamp(ev.time, UTC).isoformat(timespec="microseconds"),
        mono=round(ev.mono, 6),
        source=ev.source.value,
        pid=owner.pid if owner is not None else None,
        process=owner.name if owner is not None else None,
    )
    if ev.kind is EventKind.STATE:
        rec["old_state"] = ev.old_state.label(ep.proto) if ev.old_state is not None else None
    if ev.kind in (EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND):
        rec.update(
            duration=None if ev.duration is None else round(ev.duration, 6),
            bytes_sent=info.bytes_sent if info is not None else None,
            bytes_received=info.bytes_received if info is not None else None,
            rtt=info.rtt_us / 1000 if info is not None else None,
            retrans=info.total_retrans if info is not None else None,
        )
    if ev.amount is not None:
        rec["count"] = ev.amount
    return rec


def render_event_json(ev: Event) -> str:
    """One compact JSON object."""
    return json.dumps(event_record(ev), separators=(",", ":"))
