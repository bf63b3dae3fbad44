"""The tools' command line: ``--help`` says what a tool does (its module doc) before it
records anything, and an argument it does not know is refused, not ignored."""

from __future__ import annotations

import argparse


def parse(doc: str | None, *flags: tuple[str, str]) -> argparse.Namespace:
    """Parse ``sys.argv`` for a tool documented by ``doc``, with (flag, help) switches."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, help_text in flags:
        parser.add_argument(flag, action="store_true", help=help_text)
    return parser.parse_args()
