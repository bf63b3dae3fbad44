"""argparse wired to an ``Env``: errors become exit 2 with one line, never ``sys.exit``."""

from __future__ import annotations

import argparse
from functools import partial

from sockscope.cli.env import Env

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see sockscope._namedtuple)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from _typeshed import SupportsWrite


class UsageError(Exception):
    """Bad command-line usage or bad input: exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the injected streams and raises instead of exiting.

    Each parser holds its own ``env`` (its subcommands' parsers share it), so two
    commands run at once, in two threads, write to their own streams.
    """

    # argparse makes a HelpFormatter for every add_argument (to check the metavar) and
    # for add_subparsers (to name the subcommands), and each one asks the terminal for
    # its width, importing shutil: ~3 ms of a short listing's start-up, for text nobody
    # sees. Those get a fixed width; the help and usage text people do see still gets
    # the terminal's.
    _unseen_text = False

    def __init__(self, *args: Any, env: Env, **kwargs: Any) -> None:  # noqa: ANN401 - argparse's own
        super().__init__(*args, **kwargs)
        self.env = env

    def _get_formatter(self) -> argparse.HelpFormatter:
        if self._unseen_text:
            return self.formatter_class(prog=self.prog, width=78)  # type: ignore[call-arg]
        return super()._get_formatter()

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:  # noqa: ANN401 - argparse's own
        if kwargs.get("nargs") == "*" and args and not str(args[0]).startswith("-"):
            # argparse lists a '*' positional without a default among the required ones
            # when the arguments before it are missing ("required: file, FILTER").
            kwargs.setdefault("default", [])
        self._unseen_text = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._unseen_text = False

    def add_subparsers(self, **kwargs: Any) -> Any:  # noqa: ANN401 - argparse's own signature
        kwargs.setdefault("parser_class", partial(type(self), env=self.env))
        self._unseen_text = True
        try:
            return super().add_subparsers(**kwargs)
        finally:
            self._unseen_text = False

    def _parse_optional(self, arg_string: str) -> Any:  # noqa: ANN401 - argparse's own
        # '-4' and '-6' are flags, so argparse takes every negative number for an unknown
        # option ('--duration -1': "expected one argument"). A word that starts like a
        # negative number and does not begin with a known flag is a value, and its
        # option's type check says what is wrong with it.
        if (
            arg_string[:1] == "-"
            and arg_string[1:2].isdigit()
            and arg_string not in self._option_string_actions
            and not self._get_option_tuples(arg_string)
        ):
            return None
        return super()._parse_optional(arg_string)

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
    return Parser(formatter_class=argparse.RawDescriptionHelpFormatter, env=env, **kwargs)


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
    add_filter_arguments(p)


def add_filter_arguments(p: argparse.ArgumentParser, positional: bool = True) -> None:
    """``-F EXPR`` (repeatable, and-ed) and, with ``positional``, trailing filter words:
    every command takes its filter the same way (``cli.query.filter_text`` joins them)."""
    p.add_argument(
        "-F",
        "--filter",
        dest="filter_expr",
        metavar="EXPR",
        action="append",
        help="filter expression (see 'sockscope help filters'); may repeat",
    )
    if positional:
        p.add_argument(
            "filter",
            nargs="*",
            metavar="FILTER",
            help="filter expression as trailing words, sockscope or ss syntax",
        )
