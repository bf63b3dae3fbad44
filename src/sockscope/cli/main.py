"""``sockscope``: the command's entry point and subcommand dispatch."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from sockscope.cli import demo_cmd, list_cmd, queues_cmd, recording_cmd, watch_cmd
from sockscope.cli.env import Env
from sockscope.cli.parser import UsageError, new_parser
from sockscope.cli.status import ExitStatus
from sockscope.sources.netns import NetnsError
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NetlinkError

DESCRIPTION = """\
Watch what TCP/IP does with the ports of this Linux server.

commands:
  list      every endpoint, netstat/ss compatible (default)
  queues    every listener's accept queue: waiting, backlog, half-open, drops
  watch     connections opening, changing state and closing, as they happen
  replay    print a recording made with watch --record
  stats     summarise a recording: conversations, ports, rates
  demo      the primer live: a telnet server, clients, a guided tour
  help      help topics: 'sockscope help filters'

examples:
  sockscope list -a -n -f inet     every TCP and UDP endpoint, numeric
  sockscope -tanp                  same flags without the subcommand
"""

SUBCOMMANDS = ("list", "queues", "watch", "replay", "stats", "demo", "help")


def build_parser(env: Env) -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = new_parser(env, prog="sockscope", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version="sockscope 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    list_cmd.add_parser(sub)
    queues_cmd.add_parser(sub)
    watch_cmd.add_parser(sub)
    recording_cmd.add_parsers(sub)
    demo_cmd.add_parser(sub)
    help_p = sub.add_parser("help", help="help topics (filters)")
    help_p.add_argument("topic", nargs="?", default="", help="filters")
    help_p.set_defaults(run=run_help)
    return parser


def run_help(args: argparse.Namespace, env: Env) -> int:
    """``sockscope help filters``."""
    if args.topic == "filters":
        from sockscope.model.filter import render_filter_help  # noqa: PLC0415 - lazy

        env.stdout.write(render_filter_help().rstrip("\n") + "\n")
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


def _with_default_command(argv: list[str]) -> list[str]:
    # 'sockscope' alone and 'sockscope -tanp' mean 'sockscope list ...'.
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        return ["list", *argv]
    return argv


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run one command; return its exit status (never raises for bad input)."""
    env = env or Env.from_process()
    args_list = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    try:
        parser = build_parser(env)
        args = _parse(parser, args_list)
        return int(args.run(args, env))
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except UsageError as exc:
        env.error(str(exc))
        return ExitStatus.USAGE
    except (NetnsError, NetlinkError, ParseError, PermissionError) as exc:
        env.error(_runtime_message(exc))
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED


def _runtime_message(exc: Exception) -> str:
    if isinstance(exc, NetlinkError):
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"the kernel refused the socket dump: {name} ({os.strerror(exc.errno)})"
    if isinstance(exc, ParseError):
        return f"could not decode the kernel's reply: {exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    return str(exc)


def entry_point() -> None:
    """The console script: real streams, exit status to the shell."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # 'sockscope list | head': the reader left; exit quietly as other tools do.
        sys.stderr.close()
        code = 0
    sys.exit(code)
