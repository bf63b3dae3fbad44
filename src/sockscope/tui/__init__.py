"""``sockscope top``: a TCPView for the terminal, on Textual.

``model`` and ``view`` hold the rows (pure, tested without a terminal), ``feed`` runs
the watch engine on a worker thread, ``table`` draws only what is on screen, ``app``
puts it together. Importing this package needs Textual (the ``tui`` extra).
"""

from sockscope.tui.app import TopApp, TopOptions
from sockscope.tui.feed import Batch, ReplayFeed, WatchFeed

__all__ = ["Batch", "ReplayFeed", "TopApp", "TopOptions", "WatchFeed"]
