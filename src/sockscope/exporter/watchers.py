"""The watch engine in the background: one thread per namespace, feeding ``Churn``.

Each thread owns a ``Watcher`` for its namespace (the engine enters the namespace for its
dumps and subscribes to its destroy broadcasts there). A watcher that fails (the
namespace went away, the kernel refused a dump) is closed, its failure kept for the
scrape to report, and started again after a pause while its namespace exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from sockscope.api import Query
from sockscope.exporter.churn import Churn
from sockscope.model.event import Event, EventKind, EventView

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.watch import Watcher

#: Events are handed to the counters in batches of at most this many, or whenever the
#: engine is about to wait.
BATCH = 512
#: After a failure, the watcher is started again this much later.
RESTART_AFTER = 10.0


#: What the counters count: the sources produce nothing else (no state records).
CHURN_KINDS = frozenset({EventKind.OPENED, EventKind.CLOSED, EventKind.LISTEN, EventKind.UNLISTEN})


class _StopWatchError(Exception):
    """Raised from the engine's idle callback to end its event loop."""


class NamespaceWatch:
    """A background watcher for one namespace and the counters it feeds."""

    def __init__(
        self,
        query: Query,
        churn: Churn,
        *,
        interval: float,
        sources: Iterable[str] | None,
        predicate: Callable[[object], bool] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.query = query
        self.churn = churn
        self.interval = interval
        self.sources = None if sources is None else set(sources)
        self.predicate = predicate
        self.on_warning = on_warning
        self.active: tuple[str, ...] = ()  # the engine's sources while it runs
        self.error: str | None = None
        self.failures = 0
        self.lost_before = 0  # the engine's count of lost events, from runs that ended
        self._lost_now: Callable[[], int] = lambda: 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {query.netns or 'here'}", daemon=True)

    @property
    def lost(self) -> int:
        """Events the engine knows it lost, over every run."""
        return self.lost_before + self._lost_now()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end and wait for it (the engine releases its sources)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from sockscope.watch import Watcher  # noqa: PLC0415 - the engine is heavy to import

        while not self._stop.is_set():
            try:
                watcher = Watcher(self.query, interval=self.interval, sources=self.sources, kinds=CHURN_KINDS)
            except Exception as exc:  # reported through the scrape, retried
                self._failed(exc)
                continue
            try:
                self._follow(watcher)
            except _StopWatchError:
                pass
            except Exception as exc:  # as above
                self._failed(exc)
            finally:
                self.lost_before += watcher.stats.lost
                self._lost_now = lambda: 0
                self.active = ()
                watcher.close()

    def _follow(self, watcher: Watcher) -> None:
        for warning in watcher.warnings:
            if self.on_warning is not None:
                self.on_warning(warning)
        self.churn.start(watcher.table.values(), watcher.stats.sources)
        self.active = watcher.stats.sources
        self.error = None
        stats = watcher.stats
        self._lost_now = lambda: stats.lost
        batch: list[Event] = []
        add = self.churn.add_events
        keep = self.predicate

        def idle() -> None:
            if batch:
                add(batch)
                batch.clear()
            if self._stop.is_set():
                raise _StopWatchError

        for ev in watcher.events(None, idle=idle):
            if keep is None or keep(EventView(ev)):
                batch.append(ev)
                if len(batch) >= BATCH:
                    add(batch)
                    batch.clear()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.error = f"{type(exc).__name__}: {exc}"
        self._stop.wait(RESTART_AFTER)


def start_watch(
    query: Query,
    churn: Churn,
    *,
    interval: float,
    sources: Iterable[str] | None,
    predicate: Callable[[object], bool] | None,
    on_warning: Callable[[str], None] | None,
) -> NamespaceWatch:
    """A started ``NamespaceWatch``."""
    watch = NamespaceWatch(
        query, churn, interval=interval, sources=sources, predicate=predicate, on_warning=on_warning
    )
    watch.start()
    return watch
