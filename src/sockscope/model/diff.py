"""Pure: the difference between two snapshots, as events (drives ``watch`` polling)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sockscope.model.endpoint import Endpoint
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState

Key = tuple[object, ...]


def appeared(ep: Endpoint) -> EventKind:
    """The event for a socket seen for the first time."""
    if ep.state is TcpState.LISTEN:
        return EventKind.LISTEN
    if ep.proto is Proto.UDP and not ep.has_peer:
        return EventKind.BOUND
    return EventKind.OPENED


def vanished(ep: Endpoint) -> EventKind:
    """The event for a socket that is gone."""
    if ep.state is TcpState.LISTEN:
        return EventKind.UNLISTEN
    if ep.proto is Proto.UDP and not ep.has_peer:
        return EventKind.UNBOUND
    return EventKind.CLOSED


def changes(before: Endpoint, after: Endpoint, mono: float, wall: float) -> list[Event]:
    """Events between two sightings of the same socket."""
    out = []
    if after.state is not before.state:
        out.append(Event(EventKind.STATE, after, mono, wall, Source.POLL, old_state=before.state))
    if (
        before.inode == 0
        and after.inode != 0
        and after.state is not TcpState.TIME_WAIT
        and after.proto is Proto.TCP
        and after.state is not TcpState.LISTEN
    ):
        out.append(Event(EventKind.ACCEPTED, after, mono, wall, Source.POLL))
    if after.state is TcpState.LISTEN and (after.drops or 0) > (before.drops or 0):
        out.append(
            Event(
                EventKind.DROPPED,
                after,
                mono,
                wall,
                Source.POLL,
                amount=(after.drops or 0) - (before.drops or 0),
            )
        )
    return out


def diff(
    prev: Mapping[Key, Endpoint],
    cur: Iterable[Endpoint],
    mono: float,
    wall: float,
    first_seen: Mapping[Key, float] | None = None,
) -> tuple[list[Event], dict[Key, Endpoint]]:
    """Events that turn ``prev`` into ``cur``, and ``cur`` keyed by socket identity.

    ``first_seen`` (key to monotonic time) lets a closed event carry its duration.
    """
    table = {ep.key: ep for ep in cur}
    events: list[Event] = []
    for key, ep in table.items():
        old = prev.get(key)
        if old is None:
            events.append(Event(appeared(ep), ep, mono, wall, Source.POLL))
        elif old is not ep and old != ep:
            events.extend(changes(old, ep, mono, wall))
    for key, ep in prev.items():
        if key not in table:
            since = first_seen.get(key) if first_seen is not None else None
            events.append(
                Event(
                    vanished(ep),
                    ep,
                    mono,
                    wall,
                    Source.POLL,
                    duration=None if since is None else mono - since,
                )
            )
    return events, table
