"""The process environment a command runs in, injectable so tests call ``main`` in-process."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Env:
    """Streams, terminal facts and environment variables for one command run."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    width: int = 80
    environ: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_process(cls) -> Env:
        """The real process's streams and terminal."""
        tty = sys.stdout.isatty()
        return cls(
            sys.stdout, sys.stderr, sys.stdin.isatty(), tty,
            shutil.get_terminal_size((80, 24)).columns if tty else 80, dict(os.environ),
        )

    def error(self, message: str) -> None:
        """One line on stderr, prefixed with the program's name."""
        print(f"sockscope: {message}", file=self.stderr)

    def warn(self, message: str) -> None:
        """A warning line on stderr."""
        print(f"sockscope: warning: {message}", file=self.stderr)
