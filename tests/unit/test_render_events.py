"""The hand-formatted JSON of ``watch --jsonl`` against json.dumps of the same record."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint, InternedIPv4Address, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.render.events import event_record, render_event_json

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
