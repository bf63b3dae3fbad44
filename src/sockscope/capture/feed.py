"""The watch engine in a thread of its own, keeping a ``LabelIndex`` up to date.

The ``Watcher`` is made (and its first dump taken) in the caller's thread, so the index
holds every socket older than the capture before the first packet is read, and a
failure to start is the caller's to report. Its events then run in the background:
opens and accepts add sockets, closes retire them, and each new dump of ``table`` is
taken in. ``--until`` is checked here, on every event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from sockscope.api import Query
from sockscope.capture.labels import LabelIndex
from sockscope.model.event import Event, EventKind, EventView

#: How long ``stop`` waits for the thread to close the watcher (its tracefs instance).
STOP_TIMEOUT = 10.0

_GONE = frozenset({EventKind.CLOSED, EventKind.UNLISTEN, EventKind.UNBOUND})
_SKIP = frozenset({EventKind.DROPPED, EventKind.LOST})
#: State changes are half a connection's events; a label does not change with them.
_SKIP_STATES = _SKIP | {EventKind.STATE}


class _StopError(Exception):
    """Raised from the watcher's idle callback to end its loop."""


class LabelFeed:
    """Runs a ``Watcher`` for ``query`` in a daemon thread, feeding ``index``."""

    def __init__(
        self,
        query: Query,
        index: LabelIndex,
        *,
        until: Callable[[EventView], bool] | None = None,
        interval: float = 1.0,
        sources: Iterable[str] | None = None,
        on_until: Callable[[Event], None] | None = None,
        states: bool = False,
    ) -> None:
        from sockscope.watch import Watcher  # noqa: PLC0415 - the engine is heavy

        self.index = index
        self.skip = _SKIP if states else _SKIP_STATES  # states: a per-packet filter tests them
        self.until = until
        self.on_until = on_until
        self.matched: Event | None = None
        self.error: BaseException | None = None
        # State changes do not change a label: unless a filter tests them (or --until
        # may name them), the sources do not produce them at all (no eBPF records either).
        kinds = None if states or until is not None else frozenset(EventKind) - {EventKind.STATE}
        self.watcher = Watcher(query, interval=interval, sources=sources, kinds=kinds)
        self.warnings = list(self.watcher.warnings)
        index.seed(self.watcher.table)
        self._polls = self.watcher.polls
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sockscope-labels", daemon=True)

    @property
    def sources(self) -> tuple[str, ...]:
        """The watcher's event sources (poll, destroy, trace)."""
        return self.watcher.stats.sources

    @property
    def lost(self) -> int:
        """Events the watcher knows it lost."""
        return self.watcher.stats.lost

    def start(self) -> None:
        """Start following events."""
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self.watcher.events(None, idle=self._idle):
                self._apply(ev)
        except _StopError:
            pass
        except Exception as exc:
            self.error = exc
        finally:
            self.watcher.close()

    def _apply(self, ev: Event) -> None:
        kind = ev.kind
        if kind in _GONE:
            self.index.retire(ev.endpoint)
        elif kind not in self.skip:
            self.index.update(ev.endpoint, (ev.process,) if ev.process is not None else ())
        if self.until is not None and self.matched is None and self.until(EventView(ev)):
            self.matched = ev
            if self.on_until is not None:
                self.on_until(ev)

    def _idle(self) -> None:
        if self._stopping.is_set():
            raise _StopError
        if self.watcher.polls != self._polls:
            self._polls = self.watcher.polls
            self.index.sync(self.watcher.table.values())
        self.index.expire(time.monotonic())

    def stop(self) -> None:
        """End the thread and close the watcher (its tracefs instance included)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)
        elif not self._thread.ident:
            self.watcher.close()  # never started
