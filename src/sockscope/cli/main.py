"""``sockscope``: the command's entry point and subcommand dispatch."""

from __future__ import annotations

import argparse
import errno
import gc
import os
import re
import sys
from collections.abc import Sequence

from sockscope.cli.env import Env
from sockscope.cli.parser import UsageError, new_parser
from sockscope.cli.status import ExitStatus
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NetlinkError

DESCRIPTION = """\
Watch what TCP/IP does with the ports of this Linux server.

commands:
  list      every endpoint, netstat/ss compatible (default when piped)
  top       a live table of connections, TCPView-like (default on a terminal)
  queues    every listener's accept queue: waiting, backlog, half-open, drops
  watch     connections opening, changing state and closing, as they happen
  capture   packets in pcapng for Wireshark, each labelled with its process
  replay    print a recording made with watch --record
  stats     summarise a recording: conversations, ports, rates
  report    a recording as one HTML page of plots (PDF, CSV)
  demo      the primer live: a telnet server, clients, a guided tour
  exporter  Prometheus metrics: every listener's queue, sockets, each port's churn
  help      help topics: 'sockscope help filters'

examples:
  sockscope list -a -n -f inet     every TCP and UDP endpoint, numeric
  sockscope -tanp                  same flags without the subcommand
"""

SUBCOMMANDS = (
    "list",
    "queues",
    "watch",
    "capture",
    "top",
    "replay",
    "stats",
    "report",
    "demo",
    "exporter",
    "help",
)
#: A first word that could be a command's name (a filter's first word often is a field).
_BARE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


def build_parser(env: Env, only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand, or with ``only`` just the one being run.

    A subcommand's module is imported only when its parser is built: 'demo' pulls in
    asyncio and 'watch' the event engine, which 'sockscope list' should not pay for at
    start-up (it was 40 ms of a 70 ms listing). Parsing one subcommand's arguments needs
    no other subcommand's parser.
    """
    parser = new_parser(env, prog="sockscope", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version="sockscope 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only in (None, "list"):
        from sockscope.cli import list_cmd  # noqa: PLC0415 - lazy, see above

        list_cmd.add_parser(sub)
    if only in (None, "queues"):
        from sockscope.cli import queues_cmd  # noqa: PLC0415 - lazy, see above

        queues_cmd.add_parser(sub)
    if only in (None, "watch"):
        from sockscope.cli import watch_cmd  # noqa: PLC0415 - lazy, see above

        watch_cmd.add_parser(sub)
    if only in (None, "capture"):
        from sockscope.cli import capture_cmd  # noqa: PLC0415 - lazy, see above

        capture_cmd.add_parser(sub)
    if only in (None, "top"):
        from sockscope.cli import top_cmd  # noqa: PLC0415 - lazy, see above

        top_cmd.add_parser(sub)
    if only in (None, "replay", "stats"):
        from sockscope.cli import recording_cmd  # noqa: PLC0415 - lazy, see above

        recording_cmd.add_parsers(sub)
    if only in (None, "report"):
        from sockscope.cli import report_cmd  # noqa: PLC0415 - lazy, see above

        report_cmd.add_parser(sub)
    if only in (None, "demo"):
        from sockscope.cli import demo_cmd  # noqa: PLC0415 - lazy, see above

        demo_cmd.add_parser(sub)
    if only in (None, "exporter"):
        from sockscope.cli import exporter_cmd  # noqa: PLC0415 - lazy, see above

        exporter_cmd.add_parser(sub)
    if only in (None, "help"):
        help_p = sub.add_parser("help", help="help topics (filters)")
        help_p.add_argument("topic", nargs="?", default="", help="filters")
        help_p.set_defaults(run=run_help)
    return parser


def run_help(args: argparse.Namespace, env: Env) -> int:
    """``sockscope help filters``."""
    if args.topic == "filters":
        from sockscope.model.filter import render_filter_help  # noqa: PLC0415 - lazy

        env.stdout.write(render_filter_help(env.width).rstrip("\n") + "\n")
        return ExitStatus.OK
    if args.topic:
        raise UsageError(f"no help topic {args.topic!r}; topics: filters")
    build_parser(env).print_help()
    return ExitStatus.OK


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, letting filter words follow options (``list -tan 'port == 23' --bsd``).

    argparse stops filling a ``nargs='*'`` positional at the first option; the words
    after it come back as extras, and belong to the filter when the command takes one.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "filter") or any(w.startswith("-") and len(w) > 1 for w in extra):
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see 'sockscope --help')")
        args.filter = [*(args.filter or []), *extra]
    return args


def _with_default_command(argv: list[str], interactive: bool = False) -> list[str]:
    # 'sockscope' alone is 'top' on a terminal, else 'list';
    # 'sockscope -tanp' means 'sockscope list -tanp'.
    if not argv and interactive:
        return ["top"]
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        return ["list", *argv]
    return argv


def _check_command_word(argv: list[str]) -> None:
    """'sockscope lsit' is a mistyped command, not a filter with an unknown field.

    Raises:
        UsageError: the first word is no command and no filter field either.
    """
    word = argv[0] if argv else ""
    if word in SUBCOMMANDS or not _BARE_WORD.match(word):
        return
    from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415 - this path only
    from sockscope.model.filter.errors import did_you_mean  # noqa: PLC0415 - as above

    try:
        parse_filter(word)
    except FilterError as exc:
        if exc.column == 0 and exc.message.startswith("unknown field"):
            hint = did_you_mean(word, SUBCOMMANDS) or (
                f" (commands: {', '.join(SUBCOMMANDS)}; filter fields: 'sockscope help filters')"
            )
            raise UsageError(f"unknown command {word!r}{hint}") from None


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run one command; return its exit status (never raises for bad input)."""
    env = env or Env.from_process()
    given = list(sys.argv[1:] if argv is None else argv)
    env.argv = given
    args_list = _with_default_command(given, interactive=env.stdin_isatty and env.stdout_isatty)
    try:
        _check_command_word(given)
        parser = build_parser(env, only=args_list[0] if args_list[0] in SUBCOMMANDS else None)
        args = _parse(parser, args_list)
        return int(args.run(args, env))
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except UsageError as exc:
        env.error(str(exc))
        return ExitStatus.USAGE
    except Exception as exc:
        if not isinstance(exc, _runtime_errors()) or isinstance(exc, BrokenPipeError):
            raise  # a bug's traceback; a closed pipe is entry_point's
        env.error(_runtime_message(exc), needs_root=_needs_root(exc))
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED


def _runtime_errors() -> tuple[type[Exception], ...]:
    # NetnsError's module imports pathlib: only a failing command pays for it.
    from sockscope.sources.netns import NetnsError  # noqa: PLC0415

    # OSError last: whatever the system refused (a name too long, a full disk, no more
    # file descriptors) is a runtime failure to tell in one line, not a traceback.
    return (NetnsError, NetlinkError, ParseError, OSError)


def _needs_root(exc: Exception) -> bool:
    return isinstance(exc, PermissionError) or bool(getattr(exc, "needs_root", False))


def _runtime_message(exc: Exception) -> str:
    if isinstance(exc, NetlinkError):
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"the kernel refused the socket dump: {name} ({os.strerror(exc.errno)})"
    if isinstance(exc, ParseError):
        return f"could not decode the kernel's reply: {exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {_shown(exc.filename) or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = _shown(exc.filename)
        return f"{exc.strerror}: {where}" if where else exc.strerror
    return str(exc)


def _shown(filename: object) -> str:
    """A file name for a one-line message: at most 80 characters of it."""
    if filename is None:
        return ""
    text = str(filename)
    return text if len(text) <= 80 else f"{text[:77]}..."


def entry_point() -> None:
    """The console script: real streams, exit status to the shell."""
    _tune_gc(sys.argv[1:])
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # 'sockscope list | head': the reader left; exit quietly as other tools do.
        sys.stderr.close()
        code = 0
    sys.exit(code)


def _tune_gc(argv: list[str]) -> None:
    """A one-shot listing runs without the cyclic collector, for this process only.

    A dump builds tens of thousands of endpoints that hold no cycles; the collector
    would walk them again and again as they pile up (~15% of the decode at 60k sockets),
    and the process exits right after printing them. The long-running event commands
    (watch, capture, exporter) keep it, collecting less often; top, queues --watch and
    the demo keep the defaults. Done here, never in ``main`` or the library: the process
    is ours only when we are the program.
    """
    args = _with_default_command(argv, interactive=sys.stdin.isatty() and sys.stdout.isatty())
    watching = any(a.startswith("--w") for a in args)  # --watch, as argparse's prefixes
    if args[0] == "list" or (args[0] == "queues" and not watching):
        gc.disable()
    elif args[0] in ("watch", "capture", "exporter"):
        # Under load the watch engine makes a hundred thousand short-lived tuples a second
        # while its tables hold tens of thousands of sockets; with the default thresholds
        # the collector walks those tables again and again (a sixth of the CPU at 10,000
        # connections a second). It collects less often; what start-up made is frozen
        # out of every collection.
        gc.freeze()
        gc.set_threshold(GC_YOUNG, 50, 100)


#: Young-generation size for the collector of the long-running commands (CPython's
#: default is 700).
GC_YOUNG = 50_000
