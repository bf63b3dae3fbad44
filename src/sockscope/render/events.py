"""Pure: events as one line of text or one JSON object each (``watch``, ``replay``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import TypeVar

from sockscope.model.endpoint import Endpoint, IPAddress, Owner
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.render.addresses import Notation
from sockscope.render.listing import proto_label
from sockscope.render.records import endpoint_record


def _clock(wall: float) -> str:
    """``HH:MM:SS.mmm`` in local time: ``datetime.fromtimestamp(wall)`` (rounded to the
    microsecond) cut to the millisecond, with the second looked up once."""
    text = f"{wall:.6f}"
    return f"{_local_second[text[:-7]]}.{text[-6:-3]}"


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
    instead of running into it. Written for speed (it is ``watch``'s default output):
    every part that repeats is looked up, not formatted.
    """
    ep = ev.endpoint
    kind = ev.kind
    if kind is EventKind.LOST:
        return (
            f"{_clock(ev.time)} {'lost':<9} {ev.amount} events the kernel could not deliver "
            f"({_LOSS_CAUSE[ev.source]}); resynchronised with a dump"
        )
    owner = ev.process
    if owner is None and ep.owners:
        owner = ep.owners[0]
    line = (
        f"{_clock(ev.time)} {_KIND_COLUMN[kind]} {_PROTO_COLUMN[ep.proto, ep.family]} "
        f"{nt.local(ep):<21} {nt.remote(ep):<21} {_STATE_COLUMN[ep.state, ev.old_state, ep.proto]} "
        f"{'-' if owner is None else _who[owner]}"
    )
    if ev.duration is not None:
        line += f" dur{'>=' if ev.lower_bound else '='}{format_duration(ev.duration)}"
    info = ep.tcp_info
    if kind is EventKind.CLOSED and info is not None:
        line += (
            f" sent={format_size(info.bytes_sent)} recv={format_size(info.bytes_received)}"
            f" rtt={info.rtt_us / 1000:.2f}ms"
        )
        if info.total_retrans:
            line += f" retrans={info.total_retrans}"
    if ev.amount is not None and kind is EventKind.DROPPED:
        line += f" drops=+{ev.amount}"
    return line


#: What a ``lost`` event's source lost.
_LOSS_CAUSE = {
    Source.DESTROY: "destroy messages, ENOBUFS",
    Source.TRACE: "tracepoint ring buffer full",
    Source.BPF: "eBPF ring buffer full, runs skipped or its map full",
    Source.POLL: "a dump",
}
_KIND_COLUMN = {k: f"{k.value:<9}" for k in EventKind}


def _bare(proto: Proto, family: int) -> Endpoint:
    return Endpoint(proto, family, TcpState.CLOSE, None, 0, None, None, 0, 0, None, 0, None)


def _state_column(key: tuple[TcpState, TcpState | None, Proto]) -> str:
    state, old, proto = key
    text = state.label(proto) if old is None else f"{old.label(proto)}->{state.label(proto)}"
    return f"{text:<23}"


class _Columns(dict[tuple[object, ...], str]):
    """Padded column text by its inputs, made on first use."""

    def __init__(self, make: Callable[[tuple[object, ...]], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: tuple[object, ...]) -> str:
        if len(self) >= 4096:
            self.clear()
        text = self[key] = self.make(key)
        return text


_STATE_COLUMN = _Columns(_state_column)  # type: ignore[arg-type]  # keyed by (state, old, proto)
_PROTO_COLUMN = {
    (proto, family): f"{proto_label(_bare(proto, family), 'netstat'):<5}"
    for proto in Proto
    for family in (0, 4, 6)
}


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
    if ev.source is not Source.POLL:
        rec["queued"] = False  # only a dump tells an accept queue's connections apart
    if ev.kind in (EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND):
        rec.update(
            duration=None if ev.duration is None else round(ev.duration, 6),
            duration_lower_bound=ev.lower_bound,
            bytes_sent=info.bytes_sent if info is not None else None,
            bytes_received=info.bytes_received if info is not None else None,
            rtt=info.rtt_us / 1000 if info is not None else None,
            retrans=info.total_retrans if info is not None else None,
        )
    if ev.amount is not None:
        rec["count"] = ev.amount
    return rec


def render_event_json(ev: Event) -> str:
    """One compact JSON object: ``event_record(ev)``, five times faster than json.dumps.

    A watcher writes one per event, a hundred thousand a second under load, so the
    object is formatted directly, from small caches of the parts that repeat (addresses,
    owners, the second of the timestamp). It decodes to the same keys, in the same order,
    with the same values (tested).
    """
    if ev.source is _BPF and ev.kind is not _LOST:
        return _bpf_json(ev)
    ep = ev.endpoint
    kind = ev.kind
    owner = ev.process
    owners = ep.owners
    if owner is None:
        owner = owners[0] if owners else None
    elif not owners:
        owners = (owner,)
    proto = ep.proto
    state = ep.state
    # Endpoint.queued, inline: this runs for every event. Only a dump tells a queued
    # connection apart (the other sources know no inode).
    queued = (
        proto is _TCP
        and ep.inode == 0
        and (state is _ESTABLISHED or state is _CLOSE_WAIT)
        and ev.source is _POLL
    )
    head = (
        f'{{"proto":{_PROTO[proto]},"family":{ep.family or "null"},'
        f'"state":{_label(state, proto)},'
        f'"local_address":{_address(ep.local_address)},"local_port":{ep.local_port},'
        f'"remote_address":{_address(ep.remote_address)},'
        f'"remote_port":{_number(ep.remote_port)},"recv_q":{ep.recv_q},'
        f'"send_q":{ep.send_q},"uid":{_number(ep.uid)},"inode":{ep.inode},'
        f'"cookie":{_number(ep.cookie)},"queued":{"true" if queued else "false"},'
        f'"owners":{_owners(owners)},'
    )
    if proto is Proto.UNIX:
        head += (
            f'"path":{_string(ep.path)},"peer_inode":{_number(ep.peer_inode)},"type":{_string(ep.sock_type)},'
        )
    tail = (
        f'"event":{_KIND[kind]},"time":"{_iso_time(ev.time)}","mono":{_seconds(ev.mono)},'
        f'"source":{_SOURCE[ev.source]},{_actor(owner)}'
    )
    if kind is EventKind.STATE:
        tail += f',"old_state":{"null" if ev.old_state is None else _label(ev.old_state, proto)}'
    if kind is EventKind.CLOSED or kind is EventKind.UNLISTEN or kind is EventKind.UNBOUND:
        info = ep.tcp_info
        duration = "null" if ev.duration is None else _seconds(ev.duration)
        bound = "true" if ev.lower_bound else "false"
        if info is None:
            tail += (
                f',"duration":{duration},"duration_lower_bound":{bound},"bytes_sent":null,'
                f'"bytes_received":null,"rtt":null,"retrans":null'
            )
        else:
            tail += (
                f',"duration":{duration},"duration_lower_bound":{bound},"bytes_sent":{info.bytes_sent},'
                f'"bytes_received":{info.bytes_received},"rtt":{info.rtt_us / 1000!r},'
                f'"retrans":{info.total_retrans}'
            )
    if ev.amount is not None:
        tail += f',"count":{ev.amount}'
    return head + tail + "}"


_TCP, _ESTABLISHED, _CLOSE_WAIT, _POLL = Proto.TCP, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, Source.POLL
_BPF, _CLOSED, _UNLISTEN, _STATE, _LOST = (
    Source.BPF,
    EventKind.CLOSED,
    EventKind.UNLISTEN,
    EventKind.STATE,
    EventKind.LOST,
)


def _bpf_json(ev: Event) -> str:
    """``render_event_json`` for the eBPF program's events, which all have the same shape
    (TCP, one owner, no inode, queues or uid; counters on closes): a third of the work,
    for the source that brings the most events. Tested against the general form."""
    ep = ev.endpoint
    kind = ev.kind
    head = _bpf_head[ep[2], ep[3], ep[1]]  # state, local address, family
    raddr = ep[5]
    text = (
        f'{head}{ep[4]},"remote_address":{"null" if raddr is None else _address_text[raddr]},'
        f'"remote_port":{"null" if ep[6] is None else ep[6]},"recv_q":0,"send_q":0,"uid":null,"inode":0,'
        f'"cookie":{"null" if ep[11] is None else ep[11]},"queued":false,'
        f'{_bpf_owner[ev.process]}"event":{_KIND[kind]},"time":"{_iso_time(ev.time)}",'
        f'"mono":{ev.mono:.6f},"source":"bpf",{_bpf_actor[ev.process]}'
    )
    if kind is _CLOSED or kind is _UNLISTEN:
        info = ep[14]
        if info is None:
            counters = '"bytes_sent":null,"bytes_received":null,"rtt":null,"retrans":null}'
        else:
            counters = (
                f'"bytes_sent":{info[9]},"bytes_received":{info[11]},'
                f'"rtt":{info[0] / 1000!r},"retrans":{info[6]}}}'
            )
        duration = ev.duration
        return (
            f'{text},"duration":{"null" if duration is None else f"{duration:.6f}"},'
            f'"duration_lower_bound":{"true" if ev.lower_bound else "false"},{counters}'
        )
    if kind is _STATE:
        return f'{text},"old_state":{"null" if ev.old_state is None else _LABELS[ev.old_state, _TCP]}}}'
    return text + "}"


_PROTO = {p: f'"{p.value}"' for p in Proto}
_KIND = {k: f'"{k.value}"' for k in EventKind}
_SOURCE = {s: f'"{s.value}"' for s in Source}


def _seconds(value: float) -> str:
    # round(value, 6) as JSON writes it; the fixed-point form is three times faster and
    # the same text but for trailing zeros, which it drops (1.500000 -> 1.5).
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def _string(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)


K = TypeVar("K")


class _Memo(dict[K, str]):
    """JSON text by value, made on first use; cleared when full, so it stays small."""

    MAX = 4096

    def __init__(self, make: Callable[[K], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: K) -> str:  # a hit never gets here: a plain dict lookup
        if len(self) >= self.MAX:
            self.clear()
        text = self[key] = self.make(key)
        return text


_address_text: _Memo[IPAddress] = _Memo(lambda addr: f'"{addr}"')
_actor_text: _Memo[Owner] = _Memo(lambda owner: f'"pid":{owner.pid},"process":{_string(owner.name)}')
_owners_text: _Memo[tuple[Owner, ...]] = _Memo(
    lambda owners: json.dumps(
        [{"pid": o.pid, "name": o.name, "fd": o.fd} for o in owners], separators=(",", ":")
    )
)
_second_text: _Memo[int] = _Memo(
    lambda second: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
)


def _address(addr: IPAddress | None) -> str:
    return "null" if addr is None else _address_text[addr]


def _actor(owner: Owner | None) -> str:
    return '"pid":null,"process":null' if owner is None else _actor_text[owner]


def _owners(owners: tuple[Owner, ...]) -> str:
    return _owners_text[owners] if owners else "[]"


def _label(state: TcpState, proto: Proto) -> str:
    return _LABELS[state, proto]


_LABELS = {(s, p): f'"{s.label(p)}"' for s in TcpState for p in Proto}


def _iso_time(wall: float) -> str:
    """``datetime.fromtimestamp(wall, UTC).isoformat(timespec="microseconds")``.

    The fixed-point text of the time rounds to the microsecond as datetime does (half
    to even, carrying into the next second), and splits into the second, looked up
    once, and its microseconds."""
    text = f"{wall:.6f}"
    return f"{_second_of[text[:-7]]}.{text[-6:]}+00:00"


_bpf_head: _Memo[tuple[TcpState, IPAddress | None, int]] = _Memo(
    lambda key: (
        f'{{"proto":"tcp","family":{key[2]},"state":{_LABELS[key[0], _TCP]},'
        f'"local_address":{_address(key[1])},"local_port":'
    )
)
_bpf_owner: _Memo[Owner | None] = _Memo(lambda owner: f'"owners":{_owners((owner,) if owner else ())},')
_bpf_actor: _Memo[Owner | None] = _Memo(_actor)
_second_of: _Memo[str] = _Memo(lambda second: _second_text[int(second)])
_local_second: _Memo[str] = _Memo(lambda second: datetime.fromtimestamp(int(second)).strftime("%H:%M:%S"))
_who: _Memo[Owner] = _Memo(lambda owner: f"{owner.name}/{owner.pid}")
