"""``sockscope queues``: every listener's connection request queue, made visible."""

from __future__ import annotations

import argparse
import json

from sockscope.cli import units
from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_notation_options
from sockscope.cli.query import build_selection, read_queue_report
from sockscope.model.listener import Listener
from sockscope.model.states import ALL_STATES
from sockscope.query.dump import QueueReport
from sockscope.render.addresses import Notation
from sockscope.render.queues import QueueStyle, listener_record, render_counters, render_queues

DESCRIPTION = """\
Each TCP listener has a fixed-length queue of connections that TCP has accepted (the
handshake is done) but the application has not yet taken with accept(). This shows, per
listener:

  Waiting    accepted by the kernel, waiting for the application (accept-queue length)
  Backlog    the queue's limit from listen(), after the net.core.somaxconn clamp;
             the kernel admits backlog + 1 before it drops handshakes
  Fill       Waiting against backlog + 1
  Half-open  handshakes still in SYN_RECV (SYN-ACK sent, final ACK not accepted yet)
  Drops      packets this listener dropped (sk_drops), e.g. SYNs refused while full

The namespace counters below (ListenOverflows...) count packets for all listeners.

examples:
  sockscope queues                      every listener
  sockscope queues --bsd -v 'lport == 2323'
                                        one listener, its waiting connections listed
  sockscope queues --watch 0.5 --warn 80%
                                        refresh twice a second, flag listeners 80% full
  sockscope queues --json               for scripts
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``queues``."""
    p = sub.add_parser(
        "queues",
        help="listeners' accept queues, backlogs, drops",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list the waiting and half-open connections of each listener",
    )
    p.add_argument("-4", "--ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", "--ipv6", action="store_true", help="IPv6 only")
    p.add_argument("--explain", action="store_true", help="plain-language notes per row")
    p.add_argument(
        "-p",
        "--processes",
        action="store_true",
        help="insist on every listener's process: warn when some cannot be examined (not root)",
    )
    p.add_argument(
        "--watch",
        nargs="?",
        const=1.0,
        type=units.interval,
        metavar="INTERVAL",
        help="refresh every INTERVAL seconds (default 1) until Ctrl-C",
    )
    p.add_argument("--count", type=int, metavar="N", help="with --watch: stop after N refreshes")
    p.add_argument(
        "--warn",
        type=_percent,
        default=0.8,
        metavar="PCT",
        help="flag listeners at least this full (default 80%%)",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="format",
        help="one JSON document with every listener and the counters",
    )
    fmt.add_argument(
        "--jsonl",
        action="store_const",
        const="jsonl",
        dest="format",
        help="one JSON object per listener per line",
    )
    add_notation_options(p)
    p.set_defaults(run=run, source="auto")


def _percent(text: str) -> float:
    """``80%``, ``80`` or ``0.8``: a fill between 0 (excluded) and 100%."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    fill = value / 100 if text.strip().endswith("%") or value > 1 else value
    if not 0 < fill <= 1:  # a queue is never more than full, so 150% would never warn
        raise argparse.ArgumentTypeError(f"a percentage above 0 and at most 100%: {text!r}")
    return fill


def run(args: argparse.Namespace, env: Env) -> int:
    """One report, or a refreshing one with ``--watch``."""
    if args.count is not None and args.watch is None:
        raise UsageError("--count needs --watch")
    selection = build_selection(args, processes=True, states=ALL_STATES)
    if args.watch is None:
        report = read_queue_report(selection.query, env)
        for w in shown_warnings(args, report):
            env.warn(w)
        _print(args, env, _visible(selection, report), report, None, None, None)
        return 0
    from sockscope.cli.queues_watch import watch_queues  # noqa: PLC0415 - only with --watch

    return watch_queues(args, env, selection)


#: The start of the warning a listing gives when other users' processes were hidden.
OWNERS_HIDDEN = "not all processes could be examined"


def owners_hidden(report: QueueReport) -> bool:
    """Whether some processes could not be examined (so some owners are unknown)."""
    return any(w.startswith(OWNERS_HIDDEN) for w in report.snapshot.warnings)


def shown_warnings(args: argparse.Namespace, report: QueueReport) -> list[str]:
    """The report's warnings; the hidden owners only with ``-p`` (they show as '?')."""
    return [w for w in report.snapshot.warnings if args.processes or not w.startswith(OWNERS_HIDDEN)]


def _visible(selection: object, report: QueueReport) -> list[Listener]:
    flt = getattr(selection, "predicate", None)
    if flt is None:
        return list(report.listeners)
    return [lst for lst in report.listeners if flt.matches(lst.endpoint)]


def style_for(args: argparse.Namespace, env: Env, report: QueueReport) -> QueueStyle:
    """Numeric by default here: resolving names would slow a refresh."""
    return QueueStyle(
        notation=Notation(bsd=args.bsd),
        bars=env.stdout_isatty,
        verbose=args.verbose,
        explain=args.explain,
        warn_fill=args.warn,
        no_owner="?" if owners_hidden(report) else "-",
    )


def _print(
    args: argparse.Namespace,
    env: Env,
    listeners: list[Listener],
    report: QueueReport,
    before: dict[str, int] | None,
    peaks: dict[int, int] | None,
    drops_since: dict[int, int] | None,
) -> None:
    if args.format == "jsonl":
        for lst in listeners:
            env.stdout.write(json.dumps(listener_record(lst), separators=(",", ":")) + "\n")
        return
    if args.format == "json":
        doc = {
            "time": report.snapshot.taken_at,
            "netns": report.snapshot.netns or None,
            "somaxconn": report.somaxconn,
            "counters": report.counters.values,
            "listeners": [listener_record(lst) for lst in listeners],
        }
        env.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    lines = render_queues(listeners, style_for(args, env, report), peaks, drops_since)
    delta = None if before is None else {k: v - before.get(k, v) for k, v in report.counters.values.items()}
    lines += ["", render_counters(report.counters.values, delta)]
    env.stdout.write("\n".join(lines) + "\n")
