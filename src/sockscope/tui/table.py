"""The connection table: a line-API widget that draws only the rows on screen.

Textual's DataTable re-indexes every row on each removal and re-measures columns on
updates, which does not keep up with 20k sockets changing every second. Here the rows
live in a ``View`` (kept sorted one row at a time) and ``render_line`` formats the one
line asked for, so a refresh costs what changed plus one screenful.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from sockscope.render.addresses import Notation
from sockscope.tui.columns import Column, Context, layout, render_cells, render_header
from sockscope.tui.model import Row, Status
from sockscope.tui.view import View

_STATUS_CLASS = {
    Status.NEW: "conn-table--new",
    Status.CHANGED: "conn-table--changed",
    Status.CLOSED: "conn-table--closed",
}


def _unknown_user(uid: int) -> str:
    return str(uid)


class ConnTable(ScrollView, can_focus=True):
    """Rows of a ``View`` under a fixed header; the cursor follows a row, not a line."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "conn-table--header",
        "conn-table--cursor",
        *_STATUS_CLASS.values(),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]

    class Selected(Message):
        """The cursor moved to another row (or to none)."""

        def __init__(self, row: Row | None) -> None:
            super().__init__()
            self.row = row

    class SortRequested(Message):
        """The header of a column was clicked."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(
        self,
        view: View,
        columns: Sequence[Column],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:  # Textual's names
        super().__init__(name=name, id=id, classes=classes)
        self.view = view
        self.columns: list[Column] = list(columns)
        self.ctx = Context(Notation(), 0.0, _unknown_user)
        self.sort = ""
        self.reverse = False
        self.cursor_row: Row | None = None
        self._cursor_index = 0
        self._widths: list[int] = [c.width for c in self.columns]
        self._layout_width = -1

    # -- data ----------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Show these columns (the processes toggle hides two)."""
        self.columns = list(columns)
        self._relayout()

    def set_sort(self, column: str, reverse: bool) -> None:
        """Mark the sort column in the header (the view does the sorting)."""
        self.sort, self.reverse = column, reverse
        self.refresh()

    def refresh_rows(self, ctx: Context | None = None) -> None:
        """Redraw after the view changed; keeps the cursor on its row when it is still shown."""
        if ctx is not None:
            self.ctx = ctx
        if self.scrollable_content_region.width != self._layout_width:
            self._relayout()  # a scrollbar came or went
            return
        self.virtual_size = Size(sum(self._widths) + len(self._widths) - 1, len(self.view) + 1)
        self._follow_cursor()
        self.refresh()

    def _relayout(self) -> None:
        self._layout_width = self.scrollable_content_region.width
        self._widths = layout(self.columns, max(1, self._layout_width))
        self.refresh_rows()

    def on_resize(self, _event: events.Resize) -> None:
        self._relayout()

    # -- cursor --------------------------------------------------------------------

    @property
    def page_height(self) -> int:
        """Rows that fit under the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def _follow_cursor(self) -> None:
        n = len(self.view)
        before = self.cursor_row
        index = self.view.index(before) if before is not None else None
        if index is None:
            if n == 0:
                self.cursor_row = None
            else:
                index = min(self._cursor_index, n - 1)
                self.cursor_row = self.view.row_at(index)
        if index is not None:
            self._cursor_index = index
        if self.cursor_row is not before:
            self.post_message(self.Selected(self.cursor_row))

    def select_index(self, index: int) -> None:
        """Put the cursor on line ``index`` (clamped) and scroll it into sight."""
        n = len(self.view)
        if n == 0:
            return
        index = max(0, min(n - 1, index))
        before = self.cursor_row
        self.cursor_row = self.view.row_at(index)
        self._cursor_index = index
        top = round(self.scroll_offset.y)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + self.page_height:
            self.scroll_to(y=index - self.page_height + 1, animate=False)
        self.refresh()
        if self.cursor_row is not before:
            self.post_message(self.Selected(self.cursor_row))

    def select_row(self, row: Row) -> None:
        """Put the cursor on ``row`` if it is shown."""
        index = self.view.index(row)
        if index is not None:
            self.select_index(index)

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by ``delta`` rows."""
        self.select_index(self._cursor_index + delta)

    def action_page(self, direction: int) -> None:
        """Move the cursor by a screenful."""
        self.select_index(self._cursor_index + direction * self.page_height)

    def action_edge(self, end: int) -> None:
        """First or last row."""
        self.select_index(len(self.view) - 1 if end else 0)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + round(self.scroll_offset.x)
            for col, w in zip(self.columns, self._widths, strict=True):
                if x < w + 1:
                    self.post_message(self.SortRequested(col.name))
                    return
                x -= w + 1
            return
        self.select_index(round(self.scroll_offset.y) + offset.y - 1)

    # -- drawing -------------------------------------------------------------------

    def row_style(self, row: Row) -> Style:
        """The style of a row's line: its status color, reversed under the cursor."""
        style = self.rich_style
        name = _STATUS_CLASS.get(row.status)
        if name is not None:
            style += self.get_component_rich_style(name, partial=True)
        if row is self.cursor_row:
            style += self.get_component_rich_style("conn-table--cursor", partial=True)
        return style

    def line_text(self, index: int) -> str:
        """The text of line ``index`` of the view (tests read it)."""
        return render_cells(self.view.row_at(index), self.columns, self._widths, self.ctx)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = (round(v) for v in self.scroll_offset)
        if y == 0:
            text = render_header(self.columns, self._widths, self.sort, self.reverse)
            style = self.rich_style + self.get_component_rich_style("conn-table--header")
        else:
            index = scroll_y + y - 1
            if index >= len(self.view):
                return Strip.blank(width, self.rich_style)
            row = self.view.row_at(index)
            text = render_cells(row, self.columns, self._widths, self.ctx)
            style = self.row_style(row)
        strip = Strip([Segment(text, style)], len(text))
        return strip.crop_extend(scroll_x, scroll_x + width, style)
