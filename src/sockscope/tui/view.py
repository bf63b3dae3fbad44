"""The rows on screen: filtered and sorted, kept in order one row at a time.

A refresh moves only the rows that changed: each row's place is found by bisection in
a list of ``(sort value, sequence, row)`` entries (the sequence number makes every entry
unique, so rows themselves are never compared). Sorting or filtering anew (a person
asked for it) is the only full rebuild.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sockscope.tui.model import Row

SortKey = Callable[["Row"], object]
Accept = Callable[["Row"], bool]
Entry = tuple[tuple[bool, object], int, "Row"]


def _everything(_row: Row) -> bool:
    return True


class View:
    """The accepted rows in sort order; ``row_at(i)`` is the i-th line on screen."""

    def __init__(self, key: SortKey, *, reverse: bool = False, accept: Accept = _everything) -> None:
        self.key = key
        self.reverse = reverse
        self.accept = accept
        self.entries: list[Entry] = []
        self.generation = 0  # bumped on every change, so widgets know when to redraw

    def __len__(self) -> int:
        return len(self.entries)

    def _value(self, row: Row) -> tuple[bool, object]:
        value = self.key(row)
        return (value is None, value)  # None sorts last and is never compared with a value

    def update(self, row: Row) -> None:
        """Place ``row`` where it belongs now (or take it out when it is filtered out)."""
        if not self.accept(row):
            self.discard(row)
            return
        value = self._value(row)
        if row.entry is not None:
            if row.entry[0] == value:
                return
            self._remove(row.entry)
        entry: Entry = (value, row.seq, row)
        insort(self.entries, entry)
        row.entry = entry
        self.generation += 1

    def discard(self, row: Row) -> None:
        """Take ``row`` out of the view, if it is in it."""
        if row.entry is not None:
            self._remove(row.entry)
            row.entry = None
            self.generation += 1

    def _remove(self, entry: Entry) -> None:
        i = bisect_left(self.entries, entry)
        if i < len(self.entries) and self.entries[i][2] is entry[2]:
            del self.entries[i]

    def rebuild(
        self,
        rows: Iterable[Row],
        key: SortKey | None = None,
        reverse: bool | None = None,
        accept: Accept | None = None,
    ) -> None:
        """Filter and sort everything again (a new sort column, order or filter)."""
        if key is not None:
            self.key = key
        if reverse is not None:
            self.reverse = reverse
        if accept is not None:
            self.accept = accept
        entries: list[Entry] = []
        for row in rows:
            if self.accept(row):
                row.entry = (self._value(row), row.seq, row)
                entries.append(row.entry)
            else:
                row.entry = None
        entries.sort()
        self.entries = entries
        self.generation += 1

    def row_at(self, index: int) -> Row:
        """The row on line ``index`` (0 is the first line under the header)."""
        if self.reverse:
            return self.entries[len(self.entries) - 1 - index][2]
        return self.entries[index][2]

    def index(self, row: Row) -> int | None:
        """The line ``row`` is on, or None when it is not shown."""
        if row.entry is None:
            return None
        i = bisect_left(self.entries, row.entry)
        if i >= len(self.entries) or self.entries[i][2] is not row:
            return None
        return len(self.entries) - 1 - i if self.reverse else i

    def __iter__(self) -> Iterator[Row]:
        entries = reversed(self.entries) if self.reverse else iter(self.entries)
        return (e[2] for e in entries)
