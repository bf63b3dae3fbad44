"""``sockscope replay FILE`` and ``sockscope stats FILE``: a recording read back."""

from __future__ import annotations

import argparse

from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError

REPLAY_HELP = """\
Print a recording made with 'sockscope watch --record FILE' as watch printed it,
optionally filtered.

examples:
  sockscope replay run.db
  sockscope replay run.db 'event == closed and duration > 2s' --jsonl
"""
STATS_HELP = """\
Summarise a recording: events by kind, conversations per peer and service port (count,
bytes, durations), the busiest ports, and connections opened per second.

example:
  sockscope stats run.db
"""


#: Lines ``replay`` writes at a time.
REPLAY_BATCH = 1000


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``replay`` and ``stats``."""
    p = sub.add_parser(
        "replay",
        help="print a recording's events",
        description=REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="a recording (sockscope watch --record FILE)")
    p.add_argument("filter", nargs="*", metavar="FILTER", help="filter expression")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per event")
    p.add_argument("--bsd", action="store_true", help="BSD notation (*.23, *.*)")
    p.set_defaults(run=run_replay)
    s = sub.add_parser(
        "stats",
        help="summarise a recording",
        description=STATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("file", help="a recording (sockscope watch --record FILE)")
    s.set_defaults(run=run_stats)


def run_replay(args: argparse.Namespace, env: Env) -> int:
    """Print the recorded events, filtered."""
    # Imported here: sqlite3 and the renderers cost start-up time for every other command.
    from sockscope.model.event import EventKind, EventView  # noqa: PLC0415
    from sockscope.record.sqlite import RecordingError, read_events  # noqa: PLC0415
    from sockscope.render.addresses import Notation  # noqa: PLC0415
    from sockscope.render.events import render_event_json, render_event_line  # noqa: PLC0415

    matches = None
    if args.filter:
        from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415
        from sockscope.sources.names import resolve_service, resolve_user  # noqa: PLC0415

        try:
            matches = parse_filter(
                " ".join(args.filter), resolve_service=resolve_service, resolve_user=resolve_user
            ).matches
        except FilterError as exc:
            raise UsageError(exc.render()) from None
    nt = Notation(bsd=args.bsd)
    lines: list[str] = []  # written a thousand at a time, however stdout is buffered
    warnings: list[str] = []
    try:
        for ev in read_events(args.file, warnings):
            if matches is not None and ev.kind is not EventKind.LOST and not matches(EventView(ev)):  # type: ignore[arg-type]
                continue
            lines.append(render_event_json(ev) if args.jsonl else render_event_line(ev, nt))
            if len(lines) >= REPLAY_BATCH:
                env.stdout.write("\n".join(lines) + "\n")
                lines.clear()
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if lines:
            env.stdout.write("\n".join(lines) + "\n")
    for w in warnings:
        env.warn(w)
    return 0


def run_stats(args: argparse.Namespace, env: Env) -> int:
    """Print the summary of a recording."""
    from sockscope.model.stats import summarize  # noqa: PLC0415
    from sockscope.record.sqlite import RecordingError, read_events, read_meta  # noqa: PLC0415
    from sockscope.render.stats import render_stats  # noqa: PLC0415

    warnings: list[str] = []
    try:
        listening = {int(p) for p in read_meta(args.file).get("listening_ports", "").split(",") if p}
        st = summarize(read_events(args.file, warnings), listening)
    except (RecordingError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for w in warnings:
        env.warn(w)
    env.stdout.write("\n".join(render_stats(st)) + "\n")
    return 0
