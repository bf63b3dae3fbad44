"""Pure: what a watch showed, counted for its summary in bounded memory (a watch may run
for days)."""

from __future__ import annotations

from collections import Counter

from sockscope.model.event import Event, EventKind

#: The identity of a connection in the tally: proto, local address and port, remote
#: address and port (an Endpoint's fields 0, 3, 4, 5, 6).
ConnectionKey = tuple[object, ...]


class Shown:
    """Events shown, by kind, and the connections they were about."""

    def __init__(self) -> None:
        # By kind, not by its name: this runs for every event, and the name is a property.
        self.by_kind: Counter[EventKind] = Counter()
        self.total = 0
        self.connections = 0
        self.open_keys: set[ConnectionKey] = set()  # seen opening, not closed yet

    @property
    def kinds(self) -> dict[str, int]:
        """Events shown, by kind name."""
        return {kind.value: n for kind, n in self.by_kind.items()}

    def add(self, ev: Event) -> None:
        """Count one event shown."""
        self.add_all([ev])

    def add_all(self, events: list[Event]) -> None:
        """Count the events of a batch shown."""
        self.by_kind.update(ev.kind for ev in events)
        self.total += len(events)
        for ev in events:
            kind = ev.kind
            if kind is _OPENED or kind is _CLOSED:
                ep = ev.endpoint
                self.connection(kind is _OPENED, (ep[0], ep[3], ep[4], ep[5], ep[6]))

    def connection(self, opened: bool, key: ConnectionKey) -> None:
        """One connection's open (``opened``) or close shown (not counted by kind here)."""
        seen = self.open_keys
        if opened:
            if key not in seen:
                seen.add(key)
                self.connections += 1
        elif key in seen:
            seen.discard(key)
        else:
            self.connections += 1  # closed without being seen opening


_OPENED, _CLOSED = EventKind.OPENED, EventKind.CLOSED
