"""What one refresh of ``sockscope top`` costs with 20,000 endpoints.

Two sides of one poll are timed:

- the worker thread (``WatchFeed``): the sock_diag dump with processes and tcp_info,
  then the difference against the last dump, the listeners and the state counts;
- the UI thread, headless (``App.run_test``): applying a poll's worth of changes to a
  table of 20k rows and drawing the screen (``tick`` and the repaint that follows).

Real sockets are held with ``holdconns.held_connections`` (2 per connection, both ends
on loopback) and dumped for real; the UI side is also timed on scripted polls with more
change than a real poll of idle connections has: 1% churn (200 rows changed, 100 opened,
100 closed) and every row changed.

    python bench/bench_top.py                 # 20k sockets, 5 rounds, prints a table
    python bench/bench_top.py --write         # and records it in bench/RESULTS.md

As root it runs in a network namespace of its own (so other sockets on the host, and
other benchmarks' ports, neither collide nor count); ``--here`` stays where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from holdconns import held_connections
from results_file import replace_section
from textual.pilot import Pilot

from sockscope.api import Query, run_query
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto
from sockscope.tui import TopApp, TopOptions
from sockscope.tui.feed import Batch, FeedStats, WatchFeed
from sockscope.tui.names import Names
from sockscope.watch import Watcher

RESULTS = Path(__file__).parent / "RESULTS.md"
BEGIN, END = "<!-- bench_top:begin -->", "<!-- bench_top:end -->"


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f})"


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def worker_side(watcher: Watcher, rounds: int) -> tuple[dict[str, list[float]], Batch, Batch]:
    """Dump, and the feed's per-poll work, on the real sockets."""
    feed = WatchFeed(watcher, 4096)
    first, table = feed.polled([], {})
    dump = timed(lambda: run_query(watcher.query), rounds)
    plain = Query(protocols=watcher.query.protocols, memory=True)  # the engine's own query
    dump_plain = timed(lambda: run_query(plain), rounds)
    deltas, last = [], first
    for _ in range(rounds):
        list(watcher.events(until=time.monotonic() + watcher.interval + 0.02))  # one poll
        t0 = time.perf_counter()
        last, table = feed.polled([], table)
        deltas.append(time.perf_counter() - t0)
    return {"dump": dump, "dump_plain": dump_plain, "delta": deltas}, first, last


def scripted(first: Batch, rounds: int, churn: bool, mono: float) -> list[Batch]:
    """Polls with more change than idle sockets make."""
    eps = list(first.changed.values())
    batches = []
    for r in range(rounds):
        if churn:
            step = max(1, len(eps) // 200)
            changed = {e.key: e._replace(recv_q=e.recv_q + r + 1) for e in eps[::step]}
            opened = [eps[i]._replace(cookie=10**12 + r * 1000 + i, local_port=1 + i) for i in range(100)]
            closed = eps[r * 100 : (r + 1) * 100]
            events = [Event(EventKind.OPENED, e, mono, 0.0, Source.POLL) for e in opened] + [
                Event(EventKind.CLOSED, e, mono, 0.0, Source.DESTROY) for e in closed
            ]
            changed.update({e.key: e for e in opened})
        else:
            changed = {e.key: e._replace(recv_q=e.recv_q + r + 1) for e in eps}
            events = []
        batches.append(
            Batch(events, mono, changed, set(), True, first.listeners, first.counts, FeedStats(("poll",)))
        )
    return batches


def ui_side(first: Batch, polls: dict[str, list[Batch]]) -> dict[str, dict[str, list[float]]]:
    """Headless app with the first dump loaded; each poll applied and drawn, timed.

    ``apply`` is ``receive`` + ``tick`` (the model and the view); ``repaint`` is the CPU
    time Textual then spends drawing the screen (its wall time also waits for the next
    frame, which is idle time, not cost).
    """
    out: dict[str, dict[str, list[float]]] = {}
    clock = [time.monotonic()]
    app = TopApp(
        TopOptions(refresh=3600, numeric=True),
        None,
        clock=lambda: clock[0],
        names=Names(resolve=lambda a: {}),
    )

    async def step(pilot: Pilot[int], b: Batch, into: dict[str, list[float]]) -> None:
        clock[0] += 1.0
        t0 = time.perf_counter()
        app.receive(b)
        app.tick()
        into["apply"].append(time.perf_counter() - t0)
        c0 = time.process_time()
        await pilot.pause()
        into["repaint"].append(time.process_time() - c0)

    async def go() -> None:
        async with app.run_test(size=(200, 50)) as pilot:
            load: dict[str, list[float]] = {"apply": [], "repaint": []}
            await step(pilot, first, load)
            out[f"load {len(first.changed)} rows"] = load
            for name, batches in polls.items():
                samples: dict[str, list[float]] = {"apply": [], "repaint": []}
                for b in batches:
                    await step(pilot, b, samples)
                out[name] = samples
            out["rows"] = {"n": [float(len(app.board))]}

    asyncio.run(go())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="record the figures in RESULTS.md")
    ap.add_argument("--here", action="store_true", help="do not make a network namespace")
    args = ap.parse_args()
    if not args.here and os.geteuid() == 0:
        return in_own_netns()
    with held_connections(args.sockets) as held:
        watcher = Watcher(Query(protocols=(Proto.TCP,), processes=True), interval=1.0, sources={"poll"})
        watcher.query.tcp_info = True  # as top asks
        try:
            worker, first, last = worker_side(watcher, args.rounds)
        finally:
            watcher.close()
    mono = time.monotonic()
    polls = {
        "real poll (idle sockets)": [
            Batch([], mono, last.changed, last.gone, True, last.listeners, last.counts)
        ]
        * args.rounds,
        "1% churn": scripted(first, args.rounds, True, mono),
        "every row changed": scripted(first, args.rounds, False, mono),
    }
    ui = ui_side(first, polls)
    rows = int(ui.pop("rows")["n"][0])
    lines = [
        f"sockets held: {held.sockets} ESTABLISHED + {held.listeners} listeners; "
        f"rows in top: {rows}; a real poll changed {len(last.changed)} of them",
        "",
        "| side | step | time (median of runs) |",
        "| --- | --- | --- |",
        f"| worker | sock_diag dump with tcp_info (top's default) | {ms(worker['dump'])} |",
        f"| worker | sock_diag dump without (`top --no-tcp-info`) | {ms(worker['dump_plain'])} |",
        f"| worker | difference, listeners, counts | {ms(worker['delta'])} |",
    ]
    for name, s in ui.items():
        lines.append(f"| UI | {name}: apply to the table | {ms(s['apply'])} |")
        lines.append(f"| UI | {name}: repaint (CPU) | {ms(s['repaint'])} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        argv = [a for a in sys.argv[1:] if a not in ("--here", "--write")]
        write(text, " ".join(["python", "bench/bench_top.py", *argv]))
    return 0


def in_own_netns() -> int:
    """Run this script again inside a fresh namespace with loopback up; remove it after."""
    ns = f"sockscope-bench-top-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        argv = [a for a in sys.argv[1:] if a != "--here"]
        return subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--here", *argv], check=False
        ).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def write(table: str, command: str) -> None:
    body = (
        f"{BEGIN}\n## sockscope top: refresh cost at 20k endpoints\n\n"
        f"`{command}` (as root, in a namespace of its own; "
        f"{time.strftime('%Y-%m-%d')}, 2-core VM)\n\n"
        + table
        + "\n\nThe UI applies only what changed (rows are kept by socket key in a sorted "
        f"view; nothing is rebuilt) and draws only the lines on screen.\n{END}"
    )
    replace_section(BEGIN, END, body, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
