"""The event engine: merges polling, destroy broadcasts and the tracepoint into one stream."""

from sockscope.watch.engine import Watcher, WatchStats

__all__ = ["WatchStats", "Watcher"]
