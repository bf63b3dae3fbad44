"""Pure: a recording summarised, as ``tshark -z conv,tcp`` does for a capture."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sockscope.model.event import Event, EventKind


@dataclass
class Conversation:
    """Closed connections between one peer and one service port."""

    count: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    durations: list[float] = field(default_factory=list)


@dataclass
class RecordingStats:
    """Everything ``sockscope stats`` prints."""

    kinds: Counter[str] = field(default_factory=Counter)
    conversations: dict[tuple[str, int], Conversation] = field(default_factory=dict)
    ports: Counter[int] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)  # opened events per wall second
    first: float | None = None
    last: float | None = None
    lost: int = 0


def summarize(events: Iterable[Event], listening_ports: set[int] | None = None) -> RecordingStats:
    """Fold events into counts, conversations per (peer, service port), and a timeline.

    The service port of a connection is its listener's port: the local port when this
    host accepted it (a port some listener in the recording used), else the remote one.
    """
    st = RecordingStats()
    evs = list(events)
    listening = set(listening_ports or ())
    listening.update(e.endpoint.local_port for e in evs if e.kind is EventKind.LISTEN)
    for ev in evs:
        st.kinds[ev.kind.value] += 1
        st.first = ev.time if st.first is None else min(st.first, ev.time)
        st.last = ev.time if st.last is None else max(st.last, ev.time)
        ep = ev.endpoint
        if ev.kind is EventKind.LOST:
            st.lost += ev.amount or 0
        if ev.kind is EventKind.OPENED:
            st.per_second[int(ev.time)] += 1
        if ev.kind is not EventKind.CLOSED or ep.remote_address is None:
            continue
        inbound = ep.local_port in listening
        port = ep.local_port if inbound else (ep.remote_port or 0)
        st.ports[port] += 1
        conv = st.conversations.setdefault((str(ep.remote_address), port), Conversation())
        conv.count += 1
        if ep.tcp_info is not None:
            conv.bytes_sent += ep.tcp_info.bytes_sent
            conv.bytes_received += ep.tcp_info.bytes_received
        if ev.duration is not None:
            conv.durations.append(ev.duration)
    return st
