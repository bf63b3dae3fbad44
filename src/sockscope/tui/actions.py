"""What ``top`` does to the world: close a connection, signal a process, save the view.

Nothing destructive happens without a confirmation screen. The kernel's and the
system's refusals come back as a notification that says why (no privilege, a kernel
without socket destroy, already gone), never as a crash.
"""

from __future__ import annotations

import errno
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work

from sockscope.model.endpoint import Endpoint
from sockscope.sources.files import OutputFileError, write_new_file
from sockscope.sources.kill import CloseError, SignalError, destroy_socket, signal_process, sock_id
from sockscope.tui.columns import COLUMNS
from sockscope.tui.filtering import is_listening
from sockscope.tui.save import format_for, render_rows
from sockscope.tui.screens import ConfirmScreen, HelpScreen, SaveScreen, SignalScreen

if TYPE_CHECKING:
    from textual.app import App

    from sockscope.tui.app import TopOptions
    from sockscope.tui.model import Row
    from sockscope.tui.table import ConnTable
    from sockscope.tui.view import View

    _Base = App[int]
else:
    _Base = object


def describe(ep: Endpoint) -> str:
    """``tcp 127.0.0.1:45082 -> 127.0.0.1:2323 ESTABLISHED``."""
    remote = "*" if ep.remote_address is None else f"{ep.remote_address}:{ep.remote_port}"
    return f"{ep.proto.value} {ep.local_address}:{ep.local_port} -> {remote} {ep.state.label(ep.proto)}"


class ActionsMixin(_Base):
    """The app's actions that reach outside it (mixed into ``TopApp``)."""

    if TYPE_CHECKING:
        options: TopOptions
        view: View
        clock: Callable[[], float]

        @property
        def table(self) -> ConnTable: ...

    def _selected(self) -> Row | None:
        row = self.table.cursor_row
        if row is None:
            self.notify("no row selected", severity="warning")
        return row

    def _may_act(self) -> bool:
        if not self.options.can_act:
            self.notify("a replayed recording: there is nothing live to act on", severity="warning")
        return self.options.can_act

    # -- close a connection --------------------------------------------------------

    def action_close_connection(self) -> None:
        """Ask, then abort the selected socket as ``ss -K`` does."""
        row = self._selected()
        if row is None or not self._may_act():
            return
        if row.closed:
            self.notify("that connection is already closed")
            return
        ep = row.endpoint
        if is_listening(row):
            # TCPView closes connections. Aborting a listener breaks its server: accept()
            # fails and nothing more connects to the port until the server listens again.
            self.notify(
                f"{describe(ep)} is a listener, not a connection: closing it would make its "
                "server's accept() fail and refuse every new connection on port "
                f"{ep.local_port}. Close its connections, or signal its process (k).",
                title="Not closed",
                severity="warning",
                timeout=10,
            )
            return
        try:
            sock_id(ep)
        except CloseError as exc:
            self.notify(str(exc), title="Cannot close", severity="error")
            return
        owner = row.owner
        who = f"{owner.name} (pid {owner.pid})" if owner is not None else "its owner"
        message = (
            f"{describe(ep)}\n\nThe kernel aborts it (SOCK_DESTROY, as ss -K): {who} "
            "gets ECONNABORTED and a TCP peer a reset."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.close_worker(ep)

        self.push_screen(ConfirmScreen("Close connection", message, yes="Close"), answered)

    @work(thread=True, group="actions")
    def close_worker(self, ep: Endpoint) -> None:
        """Send the destroy request off the UI thread; report how it went."""
        try:
            destroy_socket(ep)
        except CloseError as exc:
            message = str(exc)
            if exc.errno in (errno.EPERM, errno.EACCES) and self.options.root_command:
                message += f"; run top as root: {self.options.root_command}"
            self.call_from_thread(self.notify, message, title="Not closed", severity="error", timeout=8)
            return
        self.call_from_thread(self.notify, f"closed {describe(ep)}", title="Closed")

    # -- signal a process ----------------------------------------------------------

    def action_signal_process(self) -> None:
        """Ask which signal (TERM by default), then send it to the row's process."""
        row = self._selected()
        if row is None or not self._may_act():
            return
        owner = row.owner
        if owner is None:
            self.notify(
                "no process holds this socket (queued, TIME_WAIT, or not visible to you)", severity="warning"
            )
            return
        inode = row.endpoint.inode or 0
        if row.closed or inode <= 0:
            # The socket is gone, so nothing shows that pid is still that process (pids
            # are reused): a signal could reach a stranger.
            self.notify(
                f"the connection is closed: nothing shows that pid {owner.pid} is still {owner.name} "
                "(pids are reused), so k acts only on live rows",
                title="Not sent",
                severity="warning",
                timeout=8,
            )
            return
        message = f"{owner.name} (pid {owner.pid}), holding {describe(row.endpoint)}"

        def answered(sig: int | None) -> None:
            if sig is None:
                return
            name = signal.Signals(sig).name
            try:
                signal_process(owner.pid, inode, sig)
            except SignalError as exc:
                self.notify(str(exc), title="Not sent", severity="error", timeout=8)
                return
            self.notify(f"sent {name} to {owner.name} (pid {owner.pid})", title="Signal sent")

        self.push_screen(SignalScreen(message), answered)

    # -- save, help ----------------------------------------------------------------

    def action_save(self) -> None:
        """Ask for a file name, then write the rows shown, in order."""
        default = time.strftime("sockscope-top-%Y%m%d-%H%M%S.csv")

        def answered(path: str | None) -> None:
            if path:
                self.save_view(Path(path))

        self.push_screen(SaveScreen(default), answered)

    def save_view(self, path: Path) -> int:
        """Write the rows shown to ``path`` (CSV, or JSON for ``.json``); returns the count."""
        rows = list(self.view)
        now = self.clock()
        header: dict[str, object] = {
            "time": time.time(),
            "netns": self.options.netns or None,
            "filter": self.query_filter_text(),
            "sort": self.table.sort,
            "reverse": self.table.reverse,
        }
        text = render_rows(rows, format_for(str(path)), now, header)
        try:
            write_new_file(str(path), text, private=self.options.private_output)
        except OutputFileError as exc:
            self.notify(f"not saved: {exc}", title="Not saved", severity="error", timeout=8)
            return 0
        self.notify(f"saved {len(rows)} rows to {path}", title="Saved")
        return len(rows)

    def query_filter_text(self) -> str:
        """The filter in force, as typed."""
        flt = getattr(self, "filter", None)
        return str(getattr(flt, "text", "")) if flt is not None else ""

    def action_help(self) -> None:
        """Every key, the colors and the columns."""
        self.push_screen(HelpScreen(COLUMNS))
