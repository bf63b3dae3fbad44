"""The custom collector: reads the kernel on each scrape, for every namespace exported.

Concurrent scrapes share one reading, never an old one: a scrape that arrives while a
reading is under way waits for the next reading to start after it arrived (so its
values are younger than its request), and every scrape waiting then shares that one.
A hundred scrapes at once thus cost two readings, not a hundred.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from sockscope.exporter.churn import Churn
from sockscope.exporter.families import NsView, build_families
from sockscope.exporter.owners import OwnerNames
from sockscope.exporter.scrape import NsReading, Plan, Target, read_namespace
from sockscope.exporter.targets import Targets
from sockscope.exporter.watchers import NamespaceWatch, start_watch

T = TypeVar("T")
VERSION = "0.1.0"


class SingleFlight(Generic[T]):
    """Runs ``fn`` for a caller, sharing each run with every caller that arrived before it
    started."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._cond = threading.Condition()
        self._started = 0  # runs started so far; run n is the n-th
        self._done = 0  # the latest finished run
        self._running = False
        self._result: T | None = None

    def __call__(self) -> T:
        with self._cond:
            need = self._started + 1  # only a run that starts from now on will do
            while self._done < need:
                if not self._running:
                    self._started += 1
                    mine = self._started
                    self._running = True
                    break
                self._cond.wait()
            else:
                assert self._result is not None
                return self._result
        try:
            result = self._fn()
        except BaseException:
            with self._cond:
                self._running = False  # a waiter starts a run of its own
                self._cond.notify_all()
            raise
        with self._cond:
            self._running = False
            self._done, self._result = mine, result
            self._cond.notify_all()
        return result


class EventsConfig:
    """How the background watch engines run."""

    def __init__(
        self, enabled: bool, interval: float, sources: Iterable[str] | None, max_watchers: int = 8
    ) -> None:
        self.enabled = enabled
        self.interval = interval
        self.sources = None if sources is None else tuple(sources)
        #: Engines running at once. Each costs about 1% of a core while idle (its
        #: destroy-broadcast reader wakes every 10 ms), so with hundreds of namespaces
        #: only the first ones (named namespaces, then by lowest PID) get one.
        self.max_watchers = max_watchers


class Exporter:
    """Everything a scrape needs: the namespaces, their watchers, the counters kept."""

    def __init__(
        self,
        plan: Plan,
        targets: Targets,
        *,
        events: EventsConfig,
        max_series: int,
        warn: Callable[[str], None],
        owners: OwnerNames | None = None,
    ) -> None:
        self.plan = plan
        self.targets = targets
        self.events = events
        self.max_series = max_series
        self.warn = warn
        self.owners = owners or OwnerNames()
        self.churns: dict[int, Churn] = {}
        self.watches: dict[int, NamespaceWatch] = {}
        self.errors: dict[int, int] = {}
        self.folded = 0
        self.readings = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self.read = SingleFlight(self._read_all)

    # -- background engines ----------------------------------------------------------

    def reconcile(self, current: list[Target] | None = None) -> list[Target]:
        """Start a watcher for each namespace that has none, stop those of vanished ones."""
        targets = self.targets.current() if current is None else current
        if not self.events.enabled:
            return targets
        with self._lock:
            live = {t.key for t in targets}
            for key in [k for k in self.watches if k not in live]:
                self.watches.pop(key).stop(timeout=0.0)
                self.churns.pop(key, None)
            for target in targets:
                if len(self.watches) >= self.events.max_watchers:
                    break
                if target.key not in self.watches:
                    self._start(target)
        return targets

    def _start(self, target: Target) -> None:
        from sockscope.api import Query  # noqa: PLC0415

        query = Query(
            protocols=tuple(p for p in self.plan.protocols if p.value == "tcp"),
            families=self.plan.families,
            kernel=self.plan.kernel,
            netns=target.spec,
        )
        churn = self.churns[target.key] = Churn(self.plan.named_ports)
        self.watches[target.key] = start_watch(
            query,
            churn,
            interval=self.events.interval,
            sources=self.events.sources,
            predicate=self.plan.predicate,  # type: ignore[arg-type]  # an EventView reads as an Endpoint
            on_warning=self.warn_once,
        )

    def close(self) -> None:
        """Stop every watcher (each releases its tracefs instance, sockets and threads)."""
        with self._lock:
            watches = list(self.watches.values())
            self.watches.clear()
        for w in watches:
            w.stop()
        self.targets.close()

    # -- scrapes ---------------------------------------------------------------------

    def _read_all(self) -> list[NsReading]:
        targets = self.reconcile()
        out = []
        for target in targets:
            reading = read_namespace(target, self.plan, self.owners)
            if reading.error is not None:
                self.errors[target.key] = self.errors.get(target.key, 0) + 1
            for w in reading.warnings:
                self.warn_once(w)
            out.append(reading)
        self.readings += 1
        return out

    def views(self, readings: list[NsReading]) -> list[NsView]:
        """Each reading with its namespace's event counters."""
        out = []
        for r in readings:
            key = r.target.key
            churn = self.churns.get(key)
            watch = self.watches.get(key)
            out.append(
                NsView(
                    r,
                    churn.snapshot() if churn is not None else None,
                    watch.active if watch is not None else (),
                    watch.error if watch is not None else None,
                    self.errors.get(key, 0),
                    watch.lost if watch is not None else 0,
                )
            )
        return out

    def collect(self) -> Iterator[Metric]:
        """Every family of one scrape."""
        readings = self.read()
        families, folded = build_families(self.views(readings), self.plan.named_ports, self.max_series)
        with self._lock:
            self.folded += folded
            folded_total = self.folded
        yield from families
        c = CounterMetricFamily(
            "sockscope_series_folded",
            'Series folded into lport="other" because --max-series was reached (added at every '
            "scrape that folds).",
        )
        c.add_metric([], folded_total)
        yield c
        info = InfoMetricFamily("sockscope_build", "The sockscope version and the Python that runs it.")
        info.add_metric([], {"version": VERSION, "python": sys.version.split()[0]})
        yield info

    def warn_once(self, message: str) -> None:
        """Log a warning the first time it is seen."""
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)


class SockscopeCollector(Collector):
    """The ``prometheus_client`` face of an ``Exporter``."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterable[Metric]:
        return self.exporter.collect()

    def describe(self) -> Iterable[Metric]:
        # Without this the registry would collect once at registration to learn names.
        return []
