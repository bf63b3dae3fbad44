"""Sampling every listener's queue into a recording, once per poll of the watcher."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sockscope.model.listener import build_listeners

if TYPE_CHECKING:
    from sockscope.record.sqlite import Recorder
    from sockscope.watch import Watcher


def read_somaxconn(netns: str | None) -> int | None:
    """``net.core.somaxconn`` inside the watched namespace (None if unreadable)."""
    from sockscope.sources.netns import entered_netns  # noqa: PLC0415 - only recordings need it
    from sockscope.sources.procfs import ProcFS  # noqa: PLC0415

    with entered_netns(netns):
        return ProcFS().read_somaxconn()


class QueueSampler:
    """Hands each new poll's listeners to the recorder; a poll is sampled once."""

    def __init__(self, recorder: Recorder, somaxconn: int | None) -> None:
        self.recorder = recorder
        self.somaxconn = somaxconn
        self.polls = -1
        self.samples = 0

    def sample(self, watcher: Watcher) -> None:
        """Record the listeners of the watcher's latest dump, if not done already."""
        if watcher.polls == self.polls:
            return
        self.polls = watcher.polls
        listeners = build_listeners(watcher.table.values(), self.somaxconn)
        self.recorder.write_queues(time.time(), time.monotonic(), listeners)
        self.samples += 1
