"""The event engine: a pure state machine (``engine.Engine``) fed by a thin loop
(``loop.Watcher``) that reads eBPF records, tracepoint records, destroy broadcasts and
dumps."""

from sockscope.watch.loop import Watcher, WatchSourceError
from sockscope.watch.stats import WatchStats

__all__ = ["WatchSourceError", "WatchStats", "Watcher"]
