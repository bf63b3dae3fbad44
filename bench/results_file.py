"""Replacing one benchmark's marked section of bench/RESULTS.md, leaving the others."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
REPO = Path(__file__).resolve().parents[1]


def command_line(script: str, argv: list[str] | None) -> str:
    """How this run was started, from the repository root, for the results' header."""
    exe = sys.executable
    with contextlib.suppress(ValueError):
        exe = str(Path(exe).relative_to(REPO))
    given = argv if argv is not None else sys.argv[1:]
    return shlex.join([exe, script, *given])


def section_head(begin: str, title: str, command: str, env: dict[str, str]) -> list[str]:
    """The lines every benchmark's section starts with: marker, title, command, setup."""
    return [
        begin,
        f"## {title}",
        "",
        "Command (from the repository root):",
        "",
        "```sh",
        command,
        "```",
        "",
        *(f"- {k}: {v}" for k, v in env.items()),
        "",
    ]


def replace_section(begin: str, end: str, section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in ``path``.

    An existing section between the same markers is replaced; otherwise it is appended.
    """
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
