"""argparse wired to an ``Env``: errors become exit 2 with one line, never ``sys.exit``."""

from __future__ import annotations

import argparse

from sockscope.cli.env import Env

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see sockscope._namedtuple)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from _typeshed import SupportsWrite


class UsageError(Exception):
    """Bad command-line usage or bad input: exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the injected streams and raises instead of exiting."""

    env: Env
    # argparse makes a HelpFormatter for every add_argument (to check the metavar) and
    # for add_subparsers (to name the subcommands), and each one asks the terminal for
    # its width, importing shutil: ~3 ms of a short listing's start-up, for text nobody
    # sees. Those get a fixed width; the help and usage text people do see still gets
    # the terminal's.
    _unseen_text = False

    def _get_formatter(self) -> argparse.HelpFormatter:
        if self._unseen_text:
            return self.formatter_class(prog=self.prog, width=78)  # type: ignore[call-arg]
        return super()._get_formatter()

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:  # noqa: ANN401 - argparse's own
        self._unseen_text = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._unseen_text = False

    def add_subparsers(self, **kwargs: Any) -> Any:  # noqa: ANN401 - argparse's own signature
        self._unseen_text = True
        try:
            return super().add_subparsers(**kwargs)
        finally:
            self._unseen_text = False

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
    p.add_argument(
        "-n", "--numeric", action="store_true", help="numeric addresses and ports (no service or host names)"
    )
    p.add_argument(
        "--bsd", action="store_true", help="the primer's BSD notation: *.23 for a wildcard, *.* for no peer"
    )
    p.add_argument(
        "--netns",
        metavar="NAME|PATH|PID",
        help="look inside another network namespace (as ss -N; needs root)",
    )
    p.add_argument(
        "-F",
        "--filter",
        dest="filter_expr",
        metavar="EXPR",
        action="append",
        help="filter expression (see 'sockscope help filters'); may repeat",
    )
    p.add_argument(
        "filter",
        nargs="*",
        metavar="FILTER",
        help="filter expression as trailing words, sockscope or ss syntax",
    )
