"""Each listener's recent past for the listeners panel: queue length and new connections per second.

Pure: samples are taken when a dump comes, with its time passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from sockscope.model.event import Event, EventKind
from sockscope.model.listener import Listener
from sockscope.render.queues import fill_bar

SAMPLES = 30  # points in each sparkline
BLOCKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
ListenerKey = tuple[int, int, str]  # family, port, local address


def listener_key(lst: Listener) -> ListenerKey:
    """A listener's identity across dumps (its cookie would do, but replays lack it)."""
    ep = lst.endpoint
    return (ep.family, ep.local_port, str(ep.local_address))


def sparkline(values: Iterable[float], width: int = SAMPLES) -> str:
    """``▁▂▅█``: the last ``width`` values, scaled to the largest (an idle line stays flat)."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return BLOCKS[0] * len(vals)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, round(v / top * (len(BLOCKS) - 1)))] for v in vals)


def gauge(lst: Listener, width: int = 10) -> str:
    """The accept queue against its capacity (backlog + 1), as a bar."""
    return fill_bar(lst.fill, width)


@dataclass(slots=True)
class History:
    """One listener's samples."""

    queue: deque[int] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    rate: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    opened: int = 0  # connections opened since the last sample
    drops_at_start: int | None = None


class ListenerHistory:
    """Samples per listener; listeners that go away are forgotten."""

    def __init__(self) -> None:
        self.by_key: dict[ListenerKey, History] = {}
        self.ports: dict[tuple[int, int], ListenerKey] = {}
        self.last_sample: float | None = None

    def count(self, events: Iterable[Event]) -> None:
        """Count connections the kernel accepted for each listener (the server ends)."""
        for ev in events:
            ep = ev.endpoint
            if ev.kind is EventKind.OPENED and ep.has_peer:
                key = self.ports.get((ep.family, ep.local_port))
                hist = self.by_key.get(key) if key is not None else None
                if hist is not None:
                    hist.opened += 1

    def sample(self, listeners: Iterable[Listener], now: float) -> None:
        """One point per listener from a dump taken at ``now``."""
        elapsed = None if self.last_sample is None else max(1e-3, now - self.last_sample)
        self.last_sample = now
        seen: dict[ListenerKey, History] = {}
        ports: dict[tuple[int, int], ListenerKey] = {}
        for lst in listeners:
            key = listener_key(lst)
            hist = self.by_key.get(key) or History(drops_at_start=lst.drops)
            hist.queue.append(lst.accept_queue)
            if elapsed is not None:
                hist.rate.append(hist.opened / elapsed)
            hist.opened = 0
            seen[key] = hist
            ports[(lst.endpoint.family, lst.endpoint.local_port)] = key
        self.by_key = seen
        self.ports = ports

    def get(self, lst: Listener) -> History:
        """The samples of ``lst`` (empty for one not sampled yet)."""
        return self.by_key.get(listener_key(lst)) or History()
