"""``sockscope queues --watch``: refresh in place, keep peaks and drops since start."""

from __future__ import annotations

import argparse
import io
from typing import TYPE_CHECKING

from sockscope.cli.env import Env
from sockscope.cli.query import Selection, read_queue_report
from sockscope.cli.queues_cmd import _print, _visible

if TYPE_CHECKING:
    from rich.live import Live
    from rich.text import Text


def watch_queues(args: argparse.Namespace, env: Env, selection: Selection) -> int:
    """Refresh until Ctrl-C or ``--count``; on a terminal the table is redrawn in place."""
    peaks: dict[int, int] = {}
    first_drops: dict[int, int] = {}
    first_counters: dict[str, int] | None = None
    live = _live(env)
    refreshes = 0
    try:
        while True:
            report = read_queue_report(selection.query, env)
            if first_counters is None:
                first_counters = dict(report.counters.values)
            since: dict[int, int] = {}
            for lst in report.listeners:
                key = lst.endpoint.cookie or 0
                peaks[key] = max(peaks.get(key, 0), lst.accept_queue)
                first_drops.setdefault(key, lst.drops or 0)
                since[key] = (lst.drops or 0) - first_drops[key]
            listeners = _visible(selection, report)
            refreshes += 1
            if live is not None:
                buf = io.StringIO()
                _print(
                    args, Env(stdout=buf, stdout_isatty=True), listeners, report, first_counters, peaks, since
                )
                live.update(_text(buf.getvalue()))
            else:
                if args.format is None:
                    env.stdout.write(f"--- refresh {refreshes} ---\n")
                _print(args, env, listeners, report, first_counters, peaks, since)
            if args.count is not None and refreshes >= args.count:
                break
            env.sleep(args.watch)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    if args.format is None:
        top = max(peaks.values(), default=0)
        env.stdout.write(f"stopped after {refreshes} refreshes; peak queue length {top}\n")
    return 0


def _live(env: Env) -> Live | None:
    if not env.stdout_isatty:
        return None
    from rich.console import Console  # noqa: PLC0415 - only on a terminal
    from rich.live import Live  # noqa: PLC0415

    live = Live(console=Console(file=env.stdout), auto_refresh=False, transient=False)
    live.start()
    return live


def _text(s: str) -> Text:
    from rich.text import Text  # noqa: PLC0415

    return Text.from_ansi(s)
