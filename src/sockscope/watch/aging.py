"""Tables of recent keys, oldest first, that forget old entries without walking them all.

Under load a watcher remembers tens of thousands of closed sockets for a few seconds;
walking all of them on every check would cost more than the events themselves. A dict
keeps insertion order, so when every entry is (re)inserted with the current time, the
old ones are at the front.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, MutableMapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def touch(table: MutableMapping[K, V], key: K, value: V) -> None:
    """Set ``key`` and move it to the end: the newest entry."""
    table.pop(key, None)
    table[key] = value


def forget_before(table: dict[K, V], cutoff: float, when: Callable[[V], float]) -> int:
    """Drop entries from the front while ``when(value) < cutoff``; how many went."""
    dropped = 0
    while table:
        key = next(iter(table))
        if when(table[key]) >= cutoff:
            break
        del table[key]
        dropped += 1
    return dropped
