"""The process environment a command runs in, injectable so tests call ``main`` in-process."""

from __future__ import annotations

import os
import shlex
import sys
import time

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see sockscope._namedtuple)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from sockscope.sources.netlink import DiagSocket


class Env:
    """Streams, terminal facts, environment variables and data sources for one command run.

    ``socket_factory`` makes the sock_diag socket and ``proc_root`` is where ``/proc``
    is: tests pass a replay of recorded kernel bytes and a fixture tree, so a command
    runs in-process on recorded data, without root or a live kernel. ``clock`` (wall
    seconds) and ``sleep`` drive what waits between refreshes.

    A plain class rather than a dataclass: this sits on every command's start-up path,
    and ``dataclasses`` costs ~10 ms to import (it pulls in ``inspect``).
    """

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        stdin_isatty: bool = False,
        stdout_isatty: bool = False,
        width: int = 80,
        environ: dict[str, str] | None = None,
        program: str | None = None,
        *,
        socket_factory: Callable[[], DiagSocket] | None = None,
        proc_root: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The real streams are looked up per instance, as the dataclass's factories did,
        # so a test that swaps sys.stdout still gets its own stream.
        self.stdout: TextIO = sys.stdout if stdout is None else stdout
        self.stderr: TextIO = sys.stderr if stderr is None else stderr
        self.stdin_isatty = stdin_isatty
        self.stdout_isatty = stdout_isatty
        self.width = width
        self.environ: dict[str, str] = {} if environ is None else environ
        # How to start this same program again, for 'run it as root: sudo ...' (None:
        # this process's own command). sudo resets PATH, so a venv's or pipx's
        # 'sockscope' needs its full path.
        self.program = program
        self.socket_factory = socket_factory
        self.proc_root = proc_root
        self.clock = clock
        self.sleep = sleep
        self.argv: list[str] | None = None  # the command line being run (set by main)

    def __repr__(self) -> str:
        return (
            f"Env(stdout={self.stdout!r}, stderr={self.stderr!r}, "
            f"stdin_isatty={self.stdin_isatty!r}, stdout_isatty={self.stdout_isatty!r}, "
            f"width={self.width!r}, environ={self.environ!r}, program={self.program!r}, "
            f"socket_factory={self.socket_factory!r}, proc_root={self.proc_root!r})"
        )

    @classmethod
    def from_process(cls) -> Env:
        """The real process's streams and terminal."""
        tty = sys.stdout.isatty()
        width = 80
        if tty:
            import shutil  # noqa: PLC0415 - only a terminal needs its width

            width = shutil.get_terminal_size((80, 24)).columns
        return cls(sys.stdout, sys.stderr, sys.stdin.isatty(), tty, width, dict(os.environ))

    def error(self, message: str, *, needs_root: bool = False) -> None:
        """One line on stderr, prefixed with the program's name (see ``with_root_hint``)."""
        print(f"sockscope: {self.with_root_hint(message, needs_root)}", file=self.stderr)

    def warn(self, message: str) -> None:
        """A warning line on stderr (see ``with_root_hint``)."""
        print(f"sockscope: warning: {self.with_root_hint(message, False)}", file=self.stderr)

    def as_root(self, argv: list[str]) -> str:
        """The command line that runs ``argv`` again with root's privilege."""
        program = self.program if self.program is not None else _program()
        return f"sudo {program} {shlex.join(argv)}".rstrip()

    def with_root_hint(self, message: str, needs_root: bool) -> str:
        """``message``, and when it is about missing privilege (it says something
        "needs root") and we lack it, the command line that runs this command as root."""
        if self.argv is None or os.geteuid() == 0 or not (needs_root or "needs root" in message):
            return message
        return f"{message}; run it as root: {self.as_root(self.argv)}"


def _program() -> str:
    """This program as a command line that works under sudo (which resets PATH)."""
    arg0 = sys.argv[0] if sys.argv else ""
    if not arg0 or arg0.endswith("__main__.py"):  # python -m sockscope
        return f"{shlex.quote(sys.executable)} -m sockscope"
    return shlex.quote(os.path.abspath(arg0))
