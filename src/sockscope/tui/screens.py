"""Modal screens: confirmations before anything destructive, saving, and the key help."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from sockscope.tui.columns import Column

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL)


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; ``y`` and ``n`` answer, Escape says no. No is focused first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, message: str, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class SignalScreen(ModalScreen[int | None]):
    """Which signal to send; TERM is focused, so Enter sends TERM. Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("n,escape", "cancel", "Cancel")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Signal process", classes="dialog-title")
            yield Static(self.message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for sig in SIGNALS:
                    yield Button(
                        sig.name, variant="error" if sig is signal.SIGKILL else "warning", id=sig.name
                    )
                yield Button("Cancel (n)", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#SIGTERM", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        chosen = event.button.id or ""
        self.dismiss(int(signal.Signals[chosen]) if chosen.startswith("SIG") else None)

    def action_cancel(self) -> None:
        """Send nothing."""
        self.dismiss(None)


class SaveScreen(ModalScreen[str | None]):
    """A file name; ``.json`` saves JSON, anything else CSV. Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Save the rows shown", classes="dialog-title")
            yield Static("File name (.csv or .json); Enter saves, Escape cancels.", classes="dialog-body")
            yield Input(self.default, id="path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Save nothing."""
        self.dismiss(None)


KEYS: tuple[tuple[str, str], ...] = (
    ("/", "filter (the filter language: 'sockscope help filters'); Enter applies, Esc drops"),
    ("space", "pause / resume; nothing is lost while paused"),
    ("up down pgup pgdn home end", "move the cursor"),
    ("< >  or click a header", "sort by the previous / next column"),
    ("r", "reverse the sort order"),
    ("enter / d", "show or hide the detail pane"),
    ("c", "close the selected connection (SOCK_DESTROY, as ss -K; asks first)"),
    ("k", "signal the selected row's process (TERM by default; asks first)"),
    ("n", "numeric addresses and ports / names"),
    ("b", "BSD notation (*.23, *.*) / Linux notation (0.0.0.0:23)"),
    ("p", "show / hide the process columns"),
    ("l", "listening sockets only / everything"),
    ("Q", "show / hide the listeners panel"),
    ("s", "save the rows shown to CSV or JSON"),
    ("?", "this help"),
    ("q / ctrl+c", "quit"),
)

COLORS = (
    "green: new since it was shown; yellow: state changed; red: closed, kept for "
    "--linger seconds, however short its life was"
)


class HelpScreen(ModalScreen[None]):
    """Every key, the colors and the columns; any of Escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__()
        self.columns = list(columns)

    def compose(self) -> ComposeResult:
        keys = "\n".join(f"  {k:<28} {v}" for k, v in KEYS)
        cols = "\n".join(f"  {c.header:<14} ({c.name}) {c.help}" for c in self.columns)
        with VerticalScroll(classes="dialog help"):
            yield Label("sockscope top: keys", classes="dialog-title")
            yield Static(
                f"{keys}\n\n  {COLORS}\n\nColumns (names as in filters)\n{cols}", classes="dialog-body"
            )

    def action_close(self) -> None:
        """Back to the table."""
        self.dismiss(None)
