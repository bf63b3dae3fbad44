"""``sockscope watch``: every connection's life as it happens, none missed, recorded."""

from __future__ import annotations

import argparse
import signal
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from sockscope.cli import units
from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_notation_options
from sockscope.cli.query import build_selection, filter_text
from sockscope.cli.status import ExitStatus
from sockscope.model.event import Event, EventKind, EventView
from sockscope.model.states import ALL_STATES, TcpState
from sockscope.model.tally import Shown
from sockscope.render.addresses import Notation
from sockscope.render.events import render_event_json, render_event_line

if TYPE_CHECKING:
    from sockscope.record.sqlite import Recorder
    from sockscope.render.bpf_lines import BpfLines
    from sockscope.watch import Watcher, WatchStats

DESCRIPTION = """\
Watch ports open and close in real time: one line (or JSON object) per event, for each
end of each connection. Events: opened (a connect, or a connection the kernel accepted
for a listener), accepted (the application took it off the accept queue), state (any
TCP state change), closed (with duration, bytes, RTT), listen/unlisten, UDP
bound/unbound, dropped (a listener dropped packets), lost (events the kernel could not
deliver; counted, never hidden).

Sources, merged: periodic dumps (--interval), the kernel's destroy broadcasts (every
close, no root needed) and, as root, the sock:inet_sock_set_state tracepoint (every
transition, exact times, connections shorter than one poll included). A filter on ports
also runs in the kernel, so a watcher of one port is not slowed by the others' traffic.

examples:
  sockscope watch                                   everything, until Ctrl-C
  sockscope watch 'port == 2323' --duration 30s     stop by itself after 30 s
  sockscope watch 'event == closed and duration < 1s' --count 100
  sockscope watch --jsonl --record run.db --max-size 50MB
  sockscope replay run.db 'process ~ nginx'         print a recording again
  sockscope stats run.db                            conversations, ports, rates
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``watch``."""
    p = sub.add_parser(
        "watch",
        help="stream connection events (opened, state, closed...)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-t", "--tcp", action="store_true", help="TCP only")
    p.add_argument("-u", "--udp", action="store_true", help="UDP only")
    p.add_argument("-4", "--ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", "--ipv6", action="store_true", help="IPv6 only")
    p.add_argument(
        "--interval",
        type=units.interval,
        default=1.0,
        metavar="DUR",
        help="poll interval (default 1s, at least 10ms)",
    )
    p.add_argument(
        "--source",
        default="auto",
        metavar="LIST",
        help="sources to use: auto, or a comma list of bpf,trace,destroy,poll",
    )
    p.add_argument(
        "--events",
        default=None,
        metavar="LIST",
        help="event kinds to report: all, or a comma list of " + ",".join(ALL_KINDS) + " (default: all but "
        "state; a filter on 'event' chooses too)",
    )
    p.add_argument("--jsonl", action="store_true", help="one JSON object per event")
    p.add_argument("--record", metavar="FILE", help="append the events to an SQLite recording")
    stop = p.add_argument_group("stop conditions (Ctrl-C always stops cleanly)")
    stop.add_argument("--duration", type=units.duration, metavar="DUR", help="e.g. 30s, 5m")
    stop.add_argument("--count", type=units.count, metavar="N", help="after N events")
    stop.add_argument(
        "--max-size", type=units.size, metavar="SIZE", help="when the recording reaches SIZE (e.g. 50MB)"
    )
    add_notation_options(p)
    p.set_defaults(run=run, all=True)


SOURCE_NAMES = ("bpf", "trace", "destroy", "poll")
ALL_KINDS = tuple(k.value for k in EventKind)
#: What ``watch`` reports unless asked: every kind but ``state`` (one per transition,
#: most of the traffic, and work for every source).
DEFAULT_KINDS = frozenset(EventKind) - {EventKind.STATE}


def _sources(text: str) -> set[str] | None:
    if text == "auto":
        return None
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    bad = chosen - set(SOURCE_NAMES)
    if bad or not chosen:
        raise UsageError(
            f"unknown source {', '.join(sorted(bad)) or text!r}; choose from {', '.join(SOURCE_NAMES)}"
        )
    return chosen | {"poll"}


def event_kinds(text: str | None, flt: object | None) -> frozenset[EventKind] | None:
    """The kinds to report: ``--events``, narrowed by what the filter can match; a filter
    that names kinds chooses them even when the default leaves them out."""
    if text is not None:
        names = {w.strip() for w in text.split(",") if w.strip()}
        if names == {"all"}:
            chosen = frozenset(EventKind)
        else:
            bad = names - set(ALL_KINDS)
            if bad or not names:
                raise UsageError(
                    f"unknown event kind {', '.join(sorted(bad)) or text!r}; choose from all, "
                    + ", ".join(ALL_KINDS)
                )
            chosen = frozenset(EventKind(n) for n in names)
    else:
        chosen = DEFAULT_KINDS
    if flt is not None:
        from sockscope.query.pushdown import event_kinds as matchable  # noqa: PLC0415 - lazy

        named = matchable(flt)  # type: ignore[arg-type]
        if named is not None:
            kinds = frozenset(EventKind(n) for n in named)
            return kinds if text is None else kinds & chosen
    return None if chosen == frozenset(EventKind) else chosen


def _matcher(flt: object | None) -> Callable[[EventView], bool] | None:
    """What each event must pass in Python; None when the sources answer it all."""
    if flt is None:
        return None
    from sockscope.query.pushdown import tests_only_kinds  # noqa: PLC0415 - lazy, as the filter

    if tests_only_kinds(flt):  # type: ignore[arg-type]
        return None  # the kinds asked of the sources are the whole answer
    matches: Callable[[EventView], bool] = flt.matches  # type: ignore[attr-defined]
    return matches


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C so every finally block (eBPF program, tracefs instance,
    # recording) runs: SIGTERM from a service manager, SIGHUP from a closed terminal.
    raise KeyboardInterrupt


def run(args: argparse.Namespace, env: Env) -> int:
    """Stream events until a stop condition or Ctrl-C, then print a summary."""
    from sockscope.watch import Watcher, WatchSourceError  # noqa: PLC0415 - heavier imports, watch only

    if args.max_size is not None and args.record is None:
        raise UsageError("--max-size needs --record FILE")
    sources = _sources(args.source)
    selection = build_selection(args, processes=True, states=ALL_STATES)
    flt = selection.predicate
    kinds = event_kinds(args.events, flt)
    matches = _matcher(flt)
    recorder = _open_recorder(args) if args.record is not None else None
    # Signals can be handled only by the main thread; main() run from another (a test, an
    # embedding program) stops on its stop conditions and Ctrl-C alone.
    main_thread = threading.current_thread() is threading.main_thread()
    stops = (signal.SIGTERM, signal.SIGHUP) if main_thread else ()
    previous = {sig: signal.signal(sig, _on_signal) for sig in stops}
    watcher: Watcher | None = None
    shown = Shown()
    lines: list[str] = []  # output waiting for the next write
    direct = _direct_lines(args, flt, matches, recorder, lines, shown, kinds)
    try:
        try:
            watcher = Watcher(
                selection.query,
                interval=args.interval,
                sources=sources,
                kinds=kinds,
                full_owners=False,
                direct=direct,
            )
        except WatchSourceError as exc:
            env.error(str(exc))
            return ExitStatus.ERROR
        if recorder is not None:
            # stats needs the listeners that existed before the first event to tell
            # accepted connections (service port local) from outgoing ones.
            ports = sorted({e.local_port for e in watcher.table.values() if e.state is TcpState.LISTEN})
            recorder.set_meta("listening_ports", ",".join(map(str, ports)))
            recorder.set_meta("sources", ",".join(watcher.stats.sources))
        for w in watcher.warnings:
            env.warn(w)
        in_kernel = watcher.stats.port_filtered
        if {"bpf", "trace"} & set(watcher.stats.sources):  # (else the warning above said why)
            for name, why in watcher.stats.refused.items():
                env.stderr.write(f"sockscope: {name} source not used: {why}\n")
        env.stderr.write(
            f"sockscope: watching{' ' + args.netns if args.netns else ''} with "
            f"{', '.join(watcher.stats.sources)} (Ctrl-C to stop)"
            + (f"; ports filtered in the kernel for {', '.join(in_kernel)}" if in_kernel else "")
            + "\n"
        )
        env.stderr.flush()
        _stream(args, env, watcher, matches, recorder, shown, lines)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if watcher is not None:
            watcher.close()
        if recorder is not None:
            recorder.close()
    if watcher is not None:
        _summary(args, env, watcher, shown)
    return 0


def _direct_lines(
    args: argparse.Namespace,
    flt: object | None,
    matches: Callable[[EventView], bool] | None,
    recorder: Recorder | None,
    lines: list[str],
    shown: Shown,
    kinds: frozenset[EventKind] | None,
) -> BpfLines | None:
    """The eBPF records' own way to the output, where nothing but the output needs their
    events (no recording, no count, no filter left to evaluate but one of ports alone,
    which becomes a lookup by port): most become lines with no event made."""
    if recorder is not None or args.count is not None:
        return None
    ports = None
    if matches is not None:
        from sockscope.query.pushdown import exact_port_spans  # noqa: PLC0415

        ports = exact_port_spans(flt)  # type: ignore[arg-type]
        if ports is None:
            return None
    from sockscope.render.bpf_lines import BpfLines  # noqa: PLC0415

    return BpfLines(lines, shown, kinds, ports, matches, text=None if args.jsonl else Notation(bsd=args.bsd))


def _open_recorder(args: argparse.Namespace) -> Recorder:
    from sockscope.record.sqlite import Recorder, RecordingError  # noqa: PLC0415

    try:
        return Recorder(
            args.record,
            {
                "host": socket.gethostname(),
                "netns": args.netns or "",
                "started": str(time.time()),
                "tool": "sockscope 0.1.0",
                "filter": filter_text(args),
            },
        )
    except RecordingError as exc:
        raise UsageError(str(exc)) from None


#: Events between two checks of the recording's size during a burst (and at every pause).
SIZE_CHECK_EVERY = 256


class _RecordingFullError(Exception):
    """--max-size reached."""


_LOST = EventKind.LOST


def _stream(
    args: argparse.Namespace,
    env: Env,
    watcher: Watcher,
    matches: Callable[[EventView], bool] | None,
    recorder: Recorder | None,
    shown: Shown,
    lines: list[str],
) -> None:
    nt = Notation(bsd=args.bsd)
    until = None if args.duration is None else time.monotonic() + args.duration
    out = env.stdout
    render = render_event_json if args.jsonl else partial(render_event_line, nt=nt)
    sampler = None
    if recorder is not None:  # every listener's queue at each poll (recording format 2)
        from sockscope.cli.queue_sampler import QueueSampler, read_somaxconn  # noqa: PLC0415

        sampler = QueueSampler(recorder, read_somaxconn(args.netns))

    def full() -> bool:
        return recorder is not None and args.max_size is not None and recorder.size() >= args.max_size

    def write_out() -> None:
        # One write per batch, whatever the stream's buffering (PYTHONUNBUFFERED=1, common
        # in containers, makes every write a system call): a burst of thousands of
        # events is one write, and a quiet stream still shows each event at once.
        if lines:
            lines.append("")
            out.write("\n".join(lines))
            lines.clear()
        out.flush()

    def idle() -> None:  # before the watcher waits again
        write_out()
        if sampler is not None:
            sampler.sample(watcher)
        if recorder is not None:
            recorder.tick()
            if full():
                raise _RecordingFullError

    try:
        for delivered in watcher.batches(until, idle=idle):
            batch = delivered
            if matches is not None:
                batch = [ev for ev in delivered if ev.kind is _LOST or matches(EventView(ev))]
            if args.count is not None:
                batch = batch[: args.count - shown.total]
            shown.add_all(batch)
            lines.extend(map(render, batch))
            if recorder is not None and _record(recorder, batch, full):
                break
            if args.count is not None and shown.total >= args.count:
                break
    except _RecordingFullError:
        pass
    finally:
        write_out()


def _record(recorder: Recorder, batch: list[Event], full: Callable[[], bool]) -> bool:
    """Write ``batch`` to the recording; whether it reached its --max-size."""
    for i, ev in enumerate(batch, 1):
        recorder.write(ev)
        # The size is two stat() calls: checked every few hundred events in a burst.
        if i % SIZE_CHECK_EVERY == 0 and full():
            return True
    return full()


def _summary(args: argparse.Namespace, env: Env, watcher: Watcher, shown: Shown) -> None:
    stream = env.stderr if args.jsonl else env.stdout
    stream.write("".join(f"# {ln}\n" for ln in summary_lines(watcher.stats, shown)))
    stream.flush()


def summary_lines(stats: WatchStats, shown: Shown) -> list[str]:
    """What was shown, and every loss by its cause: nothing is lost silently."""
    kinds = shown.kinds
    causes = [
        ("destroy messages (ENOBUFS)", stats.destroy_overruns),
        ("tracepoint ring buffer", stats.trace_overruns),
        ("eBPF ring buffer full", stats.bpf_lost),
        ("eBPF runs skipped", stats.bpf_recursion),
        ("eBPF records unreadable", stats.bpf_unreadable),
    ]
    lost = stats.lost
    recovered = stats.lost_closes + stats.closes_from_trace
    lines = [
        "events: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"),
        f"connections seen: {shown.connections}",
        f"lost events: {lost}"
        + (" (" + ", ".join(f"{why} {n}" for why, n in causes if n) + ")" if lost else ""),
        f"closes reported without their source's message: {recovered}"
        + (
            f" (from the tracepoint {stats.closes_from_trace}, from a dump "
            f"{stats.lost_closes}; their final counters are unknown)"
            if recovered
            else ""
        ),
    ]
    if stats.closes_recovered:
        lines.append(f"closes the eBPF records lost, told by destroy messages: {stats.closes_recovered}")
    if stats.bpf_map_full or stats.opens_missed:
        lines.append(
            f"connections whose opening was not seen: {stats.opens_missed} "
            f"(eBPF connection map full {stats.bpf_map_full} times)"
        )
    lines.append(f"sources: {', '.join(stats.sources)}")
    if stats.foreign:
        lines.append(f"tracepoint records of other namespaces left out: {stats.foreign}")
    return lines
