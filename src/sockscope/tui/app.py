"""``TopApp``: the table, its panels, the keys, and the feed running on a worker thread.

Batches from the feed are queued as they come and applied on the refresh timer (1 s by
default), or all at once when a pause ends: nothing is lost while paused. Destructive
actions (close a connection, signal a process) live in ``actions.py`` and always ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from sockscope.model.listener import Listener
from sockscope.tui.actions import ActionsMixin
from sockscope.tui.columns import COLUMNS, COLUMNS_BY_NAME, DEFAULT_SORT, Column, Context
from sockscope.tui.feed import Batch, Feed, FeedStats
from sockscope.tui.filtering import FilterMixin, uses_event_fields
from sockscope.tui.listeners import ListenerHistory
from sockscope.tui.model import Board
from sockscope.tui.names import Names
from sockscope.tui.panels import StatusInfo, render_detail, render_listeners, render_status
from sockscope.tui.table import ConnTable
from sockscope.tui.view import View

W = TypeVar("W", bound=Widget)


@dataclass(slots=True)
class TopOptions:
    """Everything ``sockscope top`` was asked for."""

    refresh: float = 1.0
    linger: float = 5.0
    highlight: float = 3.0
    filter_text: str = ""
    numeric: bool = False
    bsd: bool = False
    processes: bool = True
    listening: bool = False
    listeners_panel: bool = True
    netns: str = ""
    privilege: str = ""
    can_act: bool = True  # a replayed recording has nothing to close or signal
    # Saved views readable by their owner only: the data came from privileged sources
    # (root's view of every process, or a recording only its owner may read).
    private_output: bool = True
    warnings: tuple[str, ...] = ()  # the watcher's, shown once at start
    root_command: str = ""  # how to run this top as root, when it runs without


class BatchReady(Message):
    """The feed has something new (posted from the worker thread)."""

    def __init__(self, batch: Batch) -> None:
        super().__init__()
        self.batch = batch


class FeedFailed(Message):
    """The feed stopped with an error."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class TopApp(FilterMixin, ActionsMixin, App[int]):
    """A TCPView for the terminal."""

    CSS_PATH = "top.tcss"
    TITLE = "sockscope top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        # Textual binds ctrl+c to a hint ("press ctrl+q"); here it quits, as ? says and
        # as every other terminal tool does. A priority binding, so no widget takes it.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        # A priority binding runs before the next key is routed, so what is typed right
        # after '/' reaches the bar (it types a '/' itself when the bar has the focus).
        Binding("slash", "open_filter", "Filter", priority=True),
        Binding("escape", "close_filter", "Close filter", show=False),
        Binding("space", "pause", "Pause"),
        Binding("c", "close_connection", "Close conn"),
        Binding("k", "signal_process", "Signal"),
        Binding("enter,d", "detail", "Detail"),
        Binding("less_than_sign", "sort(-1)", "Sort <", show=False),
        Binding("greater_than_sign", "sort(1)", "Sort"),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("n", "flip('numeric')", "Names"),
        Binding("b", "flip('bsd')", "BSD"),
        Binding("p", "flip('processes')", "Procs"),
        Binding("l", "flip('listening')", "Listen"),
        Binding("Q", "listeners", "Queues", show=False),
        Binding("s", "save", "Save"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        options: TopOptions,
        feed: Feed | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        names: Names | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.feed = feed
        self.clock = clock
        self.names = names or Names()
        self.filter = self.parse(options.filter_text)  # the CLI checked it
        self._event_fields = uses_event_fields(self.filter)
        self.sort = DEFAULT_SORT
        self.view = View(COLUMNS_BY_NAME[self.sort].key, accept=self.accepts)
        self.board = Board(
            self.view,
            linger=options.linger,
            highlight=options.highlight,
            tables=feed.tables if feed is not None else True,
        )
        self.history = ListenerHistory()
        self.pending: list[Batch] = []
        self.paused = False
        self.stats = FeedStats()
        self.counts: dict[str, int] = {}
        self.listeners: tuple[Listener, ...] = ()
        self.error: str | None = None
        self._stopping = threading.Event()
        self._received = 0
        self._rate = 0.0
        self._last_tick: float | None = None

    # -- layout --------------------------------------------------------------------

    def visible_columns(self) -> list[Column]:
        """The columns shown with the current toggles."""
        return [c for c in COLUMNS if self.options.processes or not c.process]

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-bar"):
            yield Input(
                self.options.filter_text,
                id="filter-input",
                placeholder="filter, e.g. port == 2323 and state == established (Enter keeps it, Esc closes)",
            )
            yield Static("", id="filter-error")
        with Horizontal(id="body"):
            yield ConnTable(self.view, self.visible_columns(), id="table")
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-text")
        with VerticalScroll(id="listeners"):
            yield Static("", id="listeners-text")
        yield Static("", id="status")
        yield Footer()

    @property
    def main(self) -> Screen[object]:
        """The screen with the table (dialogs open above it)."""
        return self.screen_stack[0]

    def part(self, selector: str, kind: type[W]) -> W:
        """A widget of the main screen, whatever dialog is open."""
        return self.main.query_one(selector, kind)

    @property
    def table(self) -> ConnTable:
        """The connection table."""
        return self.part("#table", ConnTable)

    def on_mount(self) -> None:
        self.table.set_sort(self.sort, False)
        self.table.focus()
        self.part("#listeners", Widget).display = self.options.listeners_panel
        self.set_interval(self.options.refresh, self.tick)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        for warning in self.options.warnings:
            self.notify(warning, severity="warning", timeout=10)
        if self.feed is not None:
            self.run_feed()
        self.update_screen(self.clock())

    def on_unmount(self) -> None:
        self._stopping.set()

    # -- the feed ------------------------------------------------------------------

    @work(thread=True, exclusive=True, name="sockscope-watch")
    def run_feed(self) -> None:
        """Run the feed on this worker thread until the app stops."""
        worker = get_current_worker()
        assert self.feed is not None

        def stopped() -> bool:
            return self._stopping.is_set() or worker.is_cancelled

        def post(batch: Batch) -> None:
            self.post_message(BatchReady(batch))

        try:
            self.feed.run(post, stopped)
        except Exception as exc:  # any failure is shown, then top exits
            self.post_message(FeedFailed(f"the watcher stopped: {exc}"))

    def on_batch_ready(self, message: BatchReady) -> None:
        self.receive(message.batch)

    def on_feed_failed(self, message: FeedFailed) -> None:
        self.error = message.error
        self.exit(1)

    def receive(self, batch: Batch) -> None:
        """Queue a batch; the first one is shown at once."""
        self.stats = batch.stats
        self._received += len(batch.events)
        if batch.polled:
            self.counts = batch.counts
        self.pending.append(batch)
        if batch.initial:
            self.tick()

    def alive(self) -> bool:
        """Whether the table is there (not before mounting, nor while the app closes)."""
        return bool(self.screen_stack) and bool(self.main.query("#table"))

    def tick(self) -> None:
        """The refresh: apply what came (unless paused), fade highlights, redraw."""
        if not self.alive():
            return  # a timer or a batch that arrived while the app is closing
        now = self.clock()
        if self._last_tick is not None and now > self._last_tick:
            self._rate = self._received / (now - self._last_tick)
            self._received = 0
        self._last_tick = now
        if not self.paused:
            self.board.expire(now)  # first, so what just happened is not faded at once
            self.apply_pending(now)
        self.update_screen(now)

    def apply_pending(self, now: float) -> None:
        """Apply every queued batch, in order."""
        for batch in self.pending:
            self.board.apply_events(batch.events, now)
            self.history.count(batch.events)
            if batch.polled or batch.initial:
                self.board.apply_delta(batch.changed, batch.gone, now, batch.mono)
            if batch.polled:
                self.listeners = batch.listeners
                self.history.sample(batch.listeners, batch.mono)
        self.pending.clear()

    # -- drawing -------------------------------------------------------------------

    def context(self, now: float) -> Context:
        """Formatting context for the current toggles."""
        nt = self.names.notation(bsd=self.options.bsd, numeric=self.options.numeric)
        return Context(nt, now, self.names.user)

    def update_screen(self, now: float) -> None:
        """Redraw the table and the panels."""
        ctx = self.context(now)
        table = self.table
        if not self.paused:
            table.refresh_rows(ctx)
        if not self.options.numeric:
            top = round(table.scroll_offset.y)
            shown = [table.view.row_at(i) for i in range(top, min(len(table.view), top + table.page_height))]
            self.names.want(a for r in shown for a in (r.endpoint.local_address, r.endpoint.remote_address))
        if self.part("#listeners", Widget).display and not self.paused:
            self.part("#listeners-text", Static).update(
                render_listeners(self.listeners, self.history, ctx.notation)
            )
        if self.part("#detail", Widget).display:
            self.part("#detail-text", Static).update(render_detail(table.cursor_row, ctx))
        self.part("#status", Static).update(
            render_status(
                StatusInfo(
                    self.counts,
                    self._rate,
                    self.stats,
                    self.options.privilege,
                    len(self.view),
                    len(self.board),
                    len(self.pending) if self.paused else None,
                    self.filter.text if self.filter is not None else "",
                    self.options.netns,
                )
            )
        )

    def on_conn_table_selected(self, message: ConnTable.Selected) -> None:
        if self.alive() and self.part("#detail", Widget).display:
            self.part("#detail-text", Static).update(render_detail(message.row, self.context(self.clock())))

    def on_conn_table_sort_requested(self, message: ConnTable.SortRequested) -> None:
        if message.column == self.sort:
            self.action_reverse()
        else:
            self.set_sort(message.column, False)

    # -- view toggles --------------------------------------------------------------

    def set_sort(self, column: str, reverse: bool) -> None:
        """Sort by ``column``."""
        self.sort = column
        self.view.rebuild(self.board.rows.values(), key=COLUMNS_BY_NAME[column].key, reverse=reverse)
        self.table.set_sort(column, reverse)
        self.update_screen(self.clock())

    def action_sort(self, step: int) -> None:
        """Sort by the previous or next visible column."""
        names = [c.name for c in self.visible_columns()]
        i = names.index(self.sort) if self.sort in names else 0
        self.set_sort(names[(i + step) % len(names)], False)

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.set_sort(self.sort, not self.view.reverse)

    def action_flip(self, what: str) -> None:
        """Flip one of numeric, bsd, processes, listening."""
        setattr(self.options, what, not getattr(self.options, what))
        if what == "processes":
            self.table.set_columns(self.visible_columns())
        if what == "listening":
            self.board.refilter()
        state = "on" if getattr(self.options, what) else "off"
        self.notify(f"{what} {state}", timeout=1.5)
        self.update_screen(self.clock())

    def action_pause(self) -> None:
        """Freeze the table; batches keep coming and are applied on resume."""
        self.paused = not self.paused
        if not self.paused:
            self.tick()
        else:
            self.update_screen(self.clock())

    def action_detail(self) -> None:
        """Show or hide the detail pane."""
        pane = self.part("#detail", Widget)
        pane.display = not pane.display
        self.update_screen(self.clock())

    def action_listeners(self) -> None:
        """Show or hide the listeners panel."""
        pane = self.part("#listeners", Widget)
        pane.display = not pane.display
        self.update_screen(self.clock())
