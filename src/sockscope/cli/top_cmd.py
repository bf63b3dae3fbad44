"""``sockscope top``: a live table of every endpoint, as TCPView shows it, in the terminal."""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import TYPE_CHECKING

from sockscope.cli import units
from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_notation_options
from sockscope.cli.query import filter_text, selected_families, selected_protocols
from sockscope.cli.status import ExitStatus
from sockscope.cli.watch_cmd import _sources
from sockscope.query.spec import Query

if TYPE_CHECKING:
    from sockscope.tui.feed import Feed
    from sockscope.watch import Watcher

DESCRIPTION = """\
A live table of every TCP and UDP endpoint, driven by the watch engine so that even
connections shorter than a refresh are seen: new rows green, changed rows yellow,
closed rows red (kept --linger seconds). A filter bar (/), sorting, pause (space), a
listeners panel with each accept queue against its backlog, a detail pane, and
actions: close a connection (SOCK_DESTROY, as ss -K) and signal its process, each
after a confirmation. Press ? inside for every key.

examples:
  sockscope top                          everything in this namespace
  sudo sockscope top --netns demo        another namespace (and the tracepoint source)
  sockscope top 'port == 2323'           start with a filter (change it with /)
  sockscope top --replay run.db          a recording made with watch --record
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``top``."""
    p = sub.add_parser(
        "top",
        help="live table of connections, TCPView-like (Textual)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-t", "--tcp", action="store_true", help="TCP only")
    p.add_argument("-u", "--udp", action="store_true", help="UDP only")
    p.add_argument("-4", "--ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", "--ipv6", action="store_true", help="IPv6 only")
    p.add_argument("-l", "--listening", action="store_true", help="start with listeners only (l)")
    p.add_argument(
        "--interval",
        type=units.interval,
        default=1.0,
        metavar="DUR",
        help="poll interval of the watch engine (default 1s)",
    )
    p.add_argument(
        "--refresh", type=units.interval, default=1.0, metavar="DUR", help="screen refresh (default 1s)"
    )
    p.add_argument(
        "--linger",
        type=units.duration,
        default=5.0,
        metavar="DUR",
        help="how long closed rows stay, in red (default 5s)",
    )
    p.add_argument(
        "--source",
        default="auto",
        metavar="LIST",
        help="watch sources: auto, or a comma list of poll,destroy,trace",
    )
    p.add_argument(
        "--no-processes", dest="processes", action="store_false", help="start without the process columns (p)"
    )
    p.add_argument(
        "--no-tcp-info",
        dest="tcp_info",
        action="store_false",
        help="no RTT and byte counts while connections live (cheaper polls on "
        "busy hosts; closed ones still have their final counters)",
    )
    p.add_argument("--replay", metavar="FILE", help="play a recording instead of watching")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="replay speed (default 1: as recorded; 0: all at once)",
    )
    add_notation_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, env: Env) -> int:
    """Start the UI; returns when the user quits."""
    if importlib.util.find_spec("textual") is None:  # a dependency: only a broken install lacks it
        env.error("sockscope top needs Textual, which this installation lacks: reinstall sockscope")
        return ExitStatus.ERROR
    if not (env.stdin_isatty and env.stdout_isatty):
        raise UsageError("top needs a terminal; use 'sockscope watch' or 'sockscope list' in a pipe")
    from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415 - lazy
    from sockscope.sources.kill import read_privilege  # noqa: PLC0415
    from sockscope.sources.names import resolve_service, resolve_user  # noqa: PLC0415
    from sockscope.tui import TopApp, TopOptions  # noqa: PLC0415 - Textual loads only here

    text = filter_text(args)
    try:
        parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)
    except FilterError as exc:
        raise UsageError(exc.render()) from None
    options = TopOptions(
        refresh=args.refresh,
        linger=args.linger,
        filter_text=text,
        numeric=args.numeric,
        bsd=args.bsd,
        processes=args.processes,
        listening=args.listening,
        netns=args.netns or "",
        privilege=read_privilege(),
        can_act=not args.replay,
        private_output=_private_output(args),
    )
    watcher: Watcher | None = None
    if args.replay:
        feed: Feed = _replay_feed(args)
    else:
        watcher = _watcher(args)
        feed = _watch_feed(args, watcher)
    if watcher is not None:
        warnings = (*watcher.warnings, *_owner_warning(watcher))
        options.warnings = tuple(env.with_root_hint(w, False) for w in warnings)
    if os.geteuid() != 0 and env.argv is not None:
        options.root_command = env.as_root(env.argv)
    app = TopApp(options, feed)
    try:
        code = int(app.run() or 0)
    finally:
        if watcher is not None:
            watcher.close()  # the feed closes it too; a second close is harmless
    if app.error:
        env.error(app.error)
        return ExitStatus.ERROR
    return code


def _private_output(args: argparse.Namespace) -> bool:
    """Whether what top shows came from privileged sources (so a saved view is 0600)."""
    if os.geteuid() == 0:
        return True
    if args.replay:
        try:
            return not os.stat(args.replay).st_mode & 0o004  # others may not read it
        except OSError:
            return True
    return False


def _owner_warning(watcher: Watcher) -> tuple[str, ...]:
    denied = watcher.owners.denied if watcher.owners is not None else 0
    if not denied or os.geteuid() == 0:
        return ()
    return (
        f"not all processes could be examined ({denied} denied): only your own "
        "processes' sockets show owners; run as root to see all",
    )


def _replay_feed(args: argparse.Namespace) -> Feed:
    from sockscope.record.sqlite import RecordingError, read_events  # noqa: PLC0415
    from sockscope.tui.feed import ReplayFeed  # noqa: PLC0415

    try:
        events = list(read_events(args.replay))
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    return ReplayFeed(events, speed=max(0.0, args.speed))


def _watcher(args: argparse.Namespace) -> Watcher:
    from sockscope.watch import Watcher  # noqa: PLC0415

    query = Query(
        protocols=selected_protocols(args), families=selected_families(args), processes=True, netns=args.netns
    )
    watcher = Watcher(query, interval=args.interval, sources=_sources(args.source))
    # The engine builds its own query without tcp_info; the RTT and byte columns need
    # it, so ask for it from the next poll on.
    watcher.query.tcp_info = args.tcp_info
    return watcher


def _watch_feed(args: argparse.Namespace, watcher: Watcher) -> Feed:
    from sockscope.sources.netns import entered_netns  # noqa: PLC0415
    from sockscope.sources.procfs import ProcFS  # noqa: PLC0415
    from sockscope.tui.feed import WatchFeed  # noqa: PLC0415

    with entered_netns(args.netns):
        somaxconn = ProcFS().read_somaxconn()
    return WatchFeed(watcher, somaxconn)
