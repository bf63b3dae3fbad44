"""The filter bar: the filter language on the rows, with the error inline and no lag.

A filter applies as it is typed, once it parses; until then the table keeps the last
valid one and the bar shows the error with a caret. On big tables the filter waits for
typing to pause (``DEBOUNCE_S``), as refiltering every row on each keystroke would lag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from textual import events
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Static

from sockscope.model.filter import Filter, FilterError, parse_filter
from sockscope.model.filter.ast import field_names
from sockscope.model.states import Proto, TcpState
from sockscope.sources.names import resolve_service, resolve_user
from sockscope.tui.model import Row

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

    from sockscope.tui.app import TopOptions
    from sockscope.tui.model import Board
    from sockscope.tui.table import ConnTable

    _Base = App[int]
else:
    _Base = object

W = TypeVar("W", bound=Widget)
#: Above this many rows, a filter is applied once typing pauses for DEBOUNCE_S.
DEBOUNCE_ROWS = 5000
DEBOUNCE_S = 0.15
EVENT_FIELDS = frozenset({"event", "duration", "source"})


class RowView:
    """A row seen by a filter: the endpoint's fields, plus ``event`` and ``duration``."""

    __slots__ = ("_row",)

    def __init__(self, row: Row) -> None:
        self._row = row

    def __getattr__(self, name: str) -> object:
        return getattr(self._row.endpoint, name)

    @property
    def event(self) -> str | None:
        """The row's latest event."""
        return self._row.last_event

    @property
    def duration(self) -> float | None:
        """How long a closed connection lived."""
        return self._row.duration

    @property
    def source(self) -> str | None:
        """Which mechanism saw the latest event."""
        return self._row.history[-1].source.value if self._row.history else None


def uses_event_fields(flt: Filter | None) -> bool:
    """Whether ``flt`` asks about events (``event``, ``duration``, ``source``)."""
    return flt is not None and bool(field_names(flt.root) & EVENT_FIELDS)


def is_listening(row: Row) -> bool:
    """A listener, or an unconnected UDP socket (what ``list -l`` shows)."""
    ep = row.endpoint
    return ep.state is TcpState.LISTEN or (ep.proto is Proto.UDP and not ep.has_peer)


class FilterMixin(_Base):
    """The app's filter bar and row filter (mixed into ``TopApp``)."""

    filter: Filter | None = None
    _event_fields = False
    _pending_filter: tuple[Timer, Filter | None] | None = None

    if TYPE_CHECKING:
        options: TopOptions
        board: Board

        @property
        def main(self) -> Screen[object]: ...
        @property
        def table(self) -> ConnTable: ...
        def part(self, selector: str, kind: type[W]) -> W: ...
        def update_screen(self, now: float) -> None: ...

        clock: Callable[[], float]

    def parse(self, text: str) -> Filter | None:
        """The filter for ``text`` (None when empty).

        Raises:
            FilterError: the text is not a valid filter.
        """
        if not text.strip():
            return None
        return parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)

    def accepts(self, row: Row) -> bool:
        """Whether ``row`` is shown with the current filter and toggles."""
        if self.options.listening and not is_listening(row):
            return False
        flt = self.filter
        if flt is None:
            return True
        return flt.matches(RowView(row) if self._event_fields else row.endpoint)  # type: ignore[arg-type]

    def set_filter(self, flt: Filter | None) -> None:
        """Show only the rows ``flt`` matches."""
        self._pending_filter = None
        self.filter = flt
        self._event_fields = uses_event_fields(flt)
        self.board.refilter()
        self.update_screen(self.clock())

    def action_open_filter(self) -> None:
        """Show the filter bar and type into it."""
        focused = self.focused
        if isinstance(focused, Input):
            # raddr in 10.0.0.0/8, or a file's path: the key goes on to the input, behind
            # the keys still queued for it.
            focused.post_message(events.Key("slash", "/"))
            return
        if self.screen is not self.main:
            return  # a dialog is open
        self.part("#filter-bar", Widget).display = True
        # Now, not on the next idle (Widget.focus): keys typed right after '/' go to the bar.
        self.main.set_focus(self.part("#filter-input", Input))

    def action_close_filter(self) -> None:
        """Hide the filter bar; an invalid text goes back to the filter in force."""
        if not self.part("#filter-bar", Widget).display:
            return
        if self._pending_filter is not None:  # typed, valid, not applied yet: apply it now
            self._pending_filter[0].stop()
            self.set_filter(self._pending_filter[1])
        box = self.part("#filter-input", Input)
        box.value = self.filter.text if self.filter is not None else ""
        self.part("#filter-error", Static).update("")
        self.part("#filter-bar", Widget).display = False
        self.main.set_focus(self.table)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter-input":
            return
        error = self.part("#filter-error", Static)
        try:
            flt = self.parse(event.value)
        except FilterError as exc:
            error.update(exc.render())  # the table keeps the last valid filter
            error.add_class("bad")
            return
        error.update("")
        error.remove_class("bad")
        if flt == self.filter:
            return
        if self._pending_filter is not None:
            self._pending_filter[0].stop()
            self._pending_filter = None
        if len(self.board) < DEBOUNCE_ROWS:
            self.set_filter(flt)
        else:  # filtering every row on each keystroke would make typing lag
            self._pending_filter = (self.set_timer(DEBOUNCE_S, lambda: self.set_filter(flt)), flt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter-input":
            self.action_close_filter()
