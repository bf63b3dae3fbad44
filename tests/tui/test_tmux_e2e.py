"""top in a real terminal (tmux), on real loopback connections in a namespace of its own.

Start it, see a new connection appear, filter it with '/', close it with the action
(SOCK_DESTROY), see it turn red, quit. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.netns import socket_in

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)
RED = "38;2;255;64;64"
ROOT = Path(__file__).parents[2]


class Tmux:
    """One private tmux server running one command in a 150x40 window."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"sockscope-e2e-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "COLORTERM": "truecolor", "PYTHONPATH": str(ROOT / "src")}
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "150",
            "-y",
            "40",
            " ".join(command),
            env=env,
        )
        self.tmux("set-option", "-t", "top", "remain-on-exit", "on")

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            check=True,
            text=True,
            capture_output=True,
            env=env,
            timeout=10,
        ).stdout

    def screen(self, colors: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top", *(["-e"] if colors else []))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def wait(
        self, cond: Callable[[str], bool], what: str, timeout: float = 20.0, colors: bool = False
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(colors)
            if cond(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)

    def dead(self) -> bool:
        return self.tmux("list-panes", "-t", "top", "-F", "#{pane_dead}").strip() == "1"

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True, timeout=10
        )
        tmpdir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmpdir / self.socket).unlink(missing_ok=True)  # kill-server leaves the socket file


@pytest.fixture
def top(netns: str) -> Iterator[Tmux]:
    term = Tmux(
        [
            sys.executable,
            "-m",
            "sockscope",
            "top",
            "--netns",
            netns,
            "-n",
            "--refresh",
            "0.3",
            "--interval",
            "0.3",
            "--linger",
            "30s",
        ]
    )
    try:
        yield term
    finally:
        term.kill()


def test_see_filter_close_quit(netns: str, top: Tmux) -> None:
    lst = socket_in(netns)
    lst.bind(("127.0.0.1", 2323))
    lst.listen(8)
    try:
        top.wait(lambda s: "127.0.0.1:2323" in s and "LISTEN" in s, "the listener")
        cli = socket_in(netns)
        cli.connect(("127.0.0.1", 2323))
        srv, _ = lst.accept()
        port = cli.getsockname()[1]
        top.wait(lambda s: f"127.0.0.1:{port} " in s, "the new connection")
        # Filter it: only the client end is left.
        top.keys("/")
        top.wait(lambda s: "filter, e.g." in s, "the filter bar")
        top.keys("-l", f"lport == {port}")
        top.keys("Enter")
        screen = top.wait(
            lambda s: f"filter: lport == {port}" in s and "LISTEN" not in s.split("Listener")[0], "the filter"
        )
        rows = [ln for ln in screen.splitlines() if ln.startswith("tcp ")]
        assert len(rows) == 1 and f"127.0.0.1:{port}" in rows[0] and "ESTABLISHED" in rows[0]
        # Close it, with the confirmation.
        top.keys("c")
        top.wait(lambda s: "Close connection" in s and "Close (y)" in s, "the confirmation")
        top.keys("y")
        top.wait(lambda s: "closed tcp" in s, "the notification")

        def red_row(s: str) -> bool:
            return any(f"127.0.0.1:{port}" in ln and RED in ln for ln in s.splitlines())

        top.wait(red_row, "the row to turn red", colors=True)
        cli.settimeout(5)
        with pytest.raises(ConnectionAbortedError):
            cli.recv(1)
        srv.close()
        cli.close()
        # Quit: the process ends and removes its tracefs instance (named by its pid).
        pid = top.tmux("list-panes", "-t", "top", "-F", "#{pane_pid}").strip()
        instance = Path(f"/sys/kernel/tracing/instances/sockscope-{pid}")
        traced = "trace" in screen.split("ev/s")[-1].split("|")[2]  # the status bar's sources
        assert instance.exists() == traced  # so the check below is not vacuous
        top.keys("q")
        deadline = time.monotonic() + 15
        while not top.dead():
            assert time.monotonic() < deadline, top.screen()
            time.sleep(0.1)
        assert not instance.exists()
    finally:
        lst.close()


def test_sockscope_alone_on_a_terminal_is_top_and_ctrl_c_quits(netns: str) -> None:
    # Inside the test's namespace, so top sees only what is there.
    term = Tmux(["ip", "netns", "exec", netns, sys.executable, "-m", "sockscope"])
    try:
        term.wait(lambda s: "rows" in s and "Quit" in s, "top's status bar and keys")
        term.keys("C-c")
        deadline = time.monotonic() + 15
        while not term.dead():
            assert time.monotonic() < deadline, term.screen()
            time.sleep(0.1)
        assert "ctrl+q" not in term.screen()
    finally:
        term.kill()
