"""argparse wired to an ``Env``: errors become exit 2 with one line, never ``sys.exit``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from sockscope.cli.env import Env


class UsageError(Exception):
    """Bad command-line usage or bad input: exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the injected streams and raises instead of exiting."""

    env: Env

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self.env.stderr.write(message)
        raise SystemExit(status)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            self.env.stdout.write(message)


def new_parser(env: Env, **kwargs: object) -> Parser:
    """A top-level parser bound to ``env``; subparsers inherit the binding."""
    Parser.env = env
    return Parser(formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)  # type: ignore[arg-type]


def add_notation_options(p: argparse.ArgumentParser) -> None:
    """Options every listing-like command shares."""
    p.add_argument("-n", "--numeric", action="store_true",
                   help="numeric addresses and ports (no service or host names)")
    p.add_argument("--bsd", action="store_true",
                   help="the primer's BSD notation: *.23 for a wildcard, *.* for no peer")
    p.add_argument("--netns", metavar="NAME|PATH|PID",
                   help="look inside another network namespace (as ss -N; needs root)")
    p.add_argument("-F", "--filter", dest="filter_expr", metavar="EXPR", action="append",
                   help="filter expression (see 'sockscope help filters'); may repeat")
    p.add_argument("filter", nargs="*", metavar="FILTER",
                   help="filter expression as trailing words, sockscope or ss syntax")
