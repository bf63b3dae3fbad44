"""The hand-formatted JSON of ``watch --jsonl`` against json.dumps of the same record."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint, InternedIPv4Address, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.render.addresses import Notation
from sockscope.render.events import event_record, render_event_json, render_event_line

names = st.text(min_size=0, max_size=12)  # any text: quotes, backslashes, non-ASCII
owners = st.builds(Owner, st.integers(1, 2**22), names, st.integers(-1, 2**16))
addresses = st.one_of(
    st.none(),
    st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    st.just(InternedIPv4Address("127.0.0.1")),
)
infos = st.one_of(st.none(), st.builds(TcpInfo, *[st.integers(0, 2**40)] * 20))
maybe_int = st.one_of(st.none(), st.integers(0, 2**64 - 1))
seconds = st.floats(0, 1e7, allow_nan=False)

endpoints = st.builds(
    Endpoint,
    st.sampled_from(list(Proto)),
    st.sampled_from([0, 4, 6]),
    st.sampled_from(list(TcpState)),
    addresses,
    st.integers(0, 65535),
    addresses,
    st.one_of(st.none(), st.integers(0, 65535)),
    st.integers(0, 2**31),
    st.integers(0, 2**31),
    maybe_int,
    st.integers(0, 2**32),
    maybe_int,
    st.integers(0, 2**16),
    st.none(),
    infos,
    owners=st.lists(owners, max_size=3).map(tuple),
    path=st.one_of(st.none(), names),
    peer_inode=maybe_int,
    sock_type=st.one_of(st.none(), st.sampled_from(["stream", "dgram"])),
)

events = st.builds(
    Event,
    st.sampled_from(list(EventKind)),
    endpoints,
    seconds,
    st.floats(1e9, 2e9),
    st.sampled_from([s for s in Source if s is not Source.BPF]),  # eBPF events: below
    old_state=st.one_of(st.none(), st.sampled_from(list(TcpState))),
    duration=st.one_of(st.none(), seconds),
    amount=st.one_of(st.none(), st.integers(0, 10**6)),
    process=st.one_of(st.none(), owners),
    lower_bound=st.booleans(),
)


@given(events)
def test_the_fast_json_is_the_records_json(ev: Event) -> None:
    fast = json.loads(render_event_json(ev))
    reference = json.loads(json.dumps(event_record(ev)))
    assert list(fast) == list(reference)  # the same keys, in the same order
    assert fast == reference
    assert render_event_json(ev).isascii()  # as json.dumps writes it


def test_times_round_like_datetime() -> None:
    ep = Endpoint(Proto.TCP, 4, TcpState.ESTABLISHED, None, 1, None, None, 0, 0, None, 0, None)
    for wall in (1.9999996, 1764000000.0, 1764000000.1234565, 1764000000.9999999):
        ev = Event(EventKind.STATE, ep, 1.0, wall, Source.POLL)
        assert json.loads(render_event_json(ev))["time"] == event_record(ev)["time"]


@st.composite
def bpf_events(draw: st.DrawFn) -> Event:
    """Events shaped as the eBPF source makes them (watch.bpf_events)."""
    proc = draw(st.one_of(st.none(), owners))
    kind = draw(st.sampled_from([EventKind.OPENED, EventKind.STATE, EventKind.CLOSED, EventKind.LISTEN]))
    state = draw(st.sampled_from(list(TcpState)))
    listening = kind is EventKind.LISTEN
    ep = Endpoint(
        Proto.TCP,
        draw(st.sampled_from([4, 6])),
        state,
        draw(addresses.filter(lambda a: a is not None)),
        draw(st.integers(0, 65535)),
        None if listening else draw(addresses),
        None if listening else draw(st.integers(0, 65535)),
        0,
        0,
        None,
        0,
        draw(st.one_of(st.none(), st.integers(1, 2**64 - 1))),
        tcp_info=draw(infos) if kind is EventKind.CLOSED else None,
        owners=(proc,) if proc else (),
    )
    return Event(
        kind,
        ep,
        draw(seconds),
        draw(st.floats(1e9, 2e9)),
        Source.BPF,
        old_state=draw(st.sampled_from(list(TcpState))) if kind is EventKind.STATE else None,
        duration=draw(st.one_of(st.none(), seconds)) if kind is EventKind.CLOSED else None,
        process=proc,
        lower_bound=draw(st.booleans()),
    )


@given(bpf_events())
def test_the_bpf_json_is_the_records_json(ev: Event) -> None:
    fast = json.loads(render_event_json(ev))
    reference = json.loads(json.dumps(event_record(ev)))
    assert list(fast) == list(reference)
    assert fast == reference


def _reference_line(ev: Event) -> str:
    """The text line as first written, plainly: what the fast form must reproduce."""
    from datetime import datetime  # noqa: PLC0415

    from sockscope.render.events import format_duration, format_size  # noqa: PLC0415
    from sockscope.render.labels import proto_label  # noqa: PLC0415

    nt = Notation()
    ep = ev.endpoint
    clock = datetime.fromtimestamp(ev.time).strftime("%H:%M:%S.%f")[:-3]
    state = ep.state.label(ep.proto)
    if ev.old_state is not None:
        state = f"{ev.old_state.label(ep.proto)}->{state}"
    owner = ev.owner
    who = f"{owner.name}/{owner.pid}" if owner is not None else "-"
    parts = [clock, f"{ev.kind.value:<9}", f"{proto_label(ep, 'netstat'):<5}", f"{nt.local(ep):<21}",
             f"{nt.remote(ep):<21}", f"{state:<23}", who]  # fmt: skip
    if ev.duration is not None:
        parts.append(f"dur{'>=' if ev.lower_bound else '='}{format_duration(ev.duration)}")
    info = ep.tcp_info
    if ev.kind is EventKind.CLOSED and info is not None:
        parts.append(f"sent={format_size(info.bytes_sent)} recv={format_size(info.bytes_received)}")
        parts.append(f"rtt={info.rtt_us / 1000:.2f}ms")
        if info.total_retrans:
            parts.append(f"retrans={info.total_retrans}")
    if ev.amount is not None and ev.kind is EventKind.DROPPED:
        parts.append(f"drops=+{ev.amount}")
    return " ".join(parts)


@given(st.one_of(events, bpf_events()))
def test_the_fast_line_is_the_plain_line(ev: Event) -> None:
    if ev.kind is EventKind.LOST or ev.endpoint.proto is Proto.UNIX:
        return
    assert render_event_line(ev, Notation()) == _reference_line(ev)
