"""The filter bar: the filter language on the rows, with the error inline.

The filter in force is always one the user submitted with Enter, whole: what is being
typed is only checked (an error shows with a caret as soon as the text stops parsing),
never applied, so a prefix that happens to parse ('lport == 9999' on the way to
'lport == 99999 and (...)') never filters the table. Enter on a bad filter keeps the bar
open with its error and the filter in force unchanged; Esc goes back to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from textual import events
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
        """Hide the filter bar; what was typed and not submitted is dropped."""
        if not self.part("#filter-bar", Widget).display:
            return
        box = self.part("#filter-input", Input)
        box.value = self.filter.text if self.filter is not None else ""
        self._show_error(None)
        self.part("#filter-bar", Widget).display = False
        self.main.set_focus(self.table)

    def _show_error(self, error: FilterError | None) -> None:
        box = self.part("#filter-error", Static)
        box.update("" if error is None else error.render())
        box.set_class(error is not None, "bad")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter-input":
            return
        try:
            self.parse(event.value)  # checked as typed, applied only on Enter
        except FilterError as exc:
            self._show_error(exc)
            return
        self._show_error(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter-input":
            return
        try:
            flt = self.parse(event.value)
        except FilterError as exc:
            self._show_error(exc)  # the bar stays open; the filter in force stays
            return
        if flt != self.filter:
            self.set_filter(flt)
        self.action_close_filter()
