"""A watch of one quiet port on a busy host, against ``ss -E`` doing the same.

nginx takes ``ab -n 20000 -c 50`` (no keep-alive) on one port while a quiet service on
another port gets a few hundred short connections, all in a namespace of their own, and
each run has one watcher of the quiet port, the watchers taking turns ``--repeat`` times:

- ``sockscope watch --jsonl 'port == Q'``: the kernel leaves other ports' records and
  destroy messages out before they are read;
- the same with ``'port == Q or duration < 0s'``: the same events, but a filter the
  kernel cannot take, so every record is read and filtered in Python;
- ``ss -E`` with the same ports (closes only), line-buffered;
- none: ab's own rate.

Reported: the watcher's CPU from just before ab to 3 s after it, per second of ab's run;
ab's rate; the quiet connections it saw close (and open) at both ends. As root::

    flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_watch_quiet_port.py --write-results
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from harness import report
from harness.measure import Row, measure
from harness.stage import HOST, LoadResult, Stage
from harness.watchers import WatcherSpec, prepare_signals
from results_file import command_line

BUSY_PORT, QUIET_PORT, QUIET_CONNECTIONS = 18090, 18091, 300
WATCHERS = (
    WatcherSpec("kernel", "sockscope", "sockscope", ("--jsonl", f"port == {QUIET_PORT}")),
    WatcherSpec(
        "python",
        "sockscope, Python filter",
        "sockscope",
        ("--jsonl", f"port == {QUIET_PORT} or duration < 0s"),
    ),
    WatcherSpec("ss", "ss -E", "ss", (f"sport = :{QUIET_PORT} or dport = :{QUIET_PORT}",)),
    WatcherSpec("none", "none", "none"),
)


class QuietService:
    """A listener on the quiet port inside the stage, saying hello to each client."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        with stage.entered():
            self.srv = socket.create_server((HOST, QUIET_PORT), reuse_port=False)
        self.srv.settimeout(0.2)
        self.clients: Counter[tuple[str, int]] = Counter()
        self._stop = threading.Event()
        self._server = threading.Thread(target=self._serve, daemon=True)
        self._server.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"hello\n")

    def connect_many(self, n: int, seconds: float) -> None:
        """``n`` connections spread over ``seconds``, from this thread inside the stage."""
        start = time.monotonic()
        with self.stage.entered():
            for i in range(n):
                with socket.create_connection((HOST, QUIET_PORT), timeout=5) as c:
                    self.clients[c.getsockname()[:2]] += 1
                    c.recv(16)
                time.sleep(max(0.0, start + seconds * (i + 1) / n - time.monotonic()))

    def close(self) -> None:
        """Stop serving, then close the listener (not while an accept() holds it)."""
        self._stop.set()
        self._server.join()
        self.srv.close()


def trial(stage: Stage, spec: WatcherSpec, args: argparse.Namespace, tmp: Path, round_: int) -> Row:
    quiet = QuietService(stage)

    def load(stage: Stage = stage) -> LoadResult:
        side = threading.Thread(target=quiet.connect_many, args=(QUIET_CONNECTIONS, args.quiet_seconds))
        side.start()
        result = stage.ab(args.n, args.c)
        side.join()
        return result

    try:
        return measure(
            stage,
            spec,
            load,
            args.sockscope,
            tmp / f"{round_}-{spec.key}",
            round_,
            expected=lambda: (quiet.clients, QUIET_PORT),
        )
    finally:
        quiet.close()


def render(rows: list[Row]) -> list[str]:
    alone = report.median_of([r for r in rows if r.key == "none"], lambda r: r.load.rate)
    lines = []
    for spec in WATCHERS:
        mine = [r for r in rows if r.key == spec.key]
        cores = [r.cpu.total / r.load.seconds for r in mine if r.tally is not None and r.load.seconds]
        rate = report.median_of(mine, lambda r: r.load.rate)
        seen = [r.tally for r in mine if r.tally is not None]
        closed = ", ".join(f"{min(t.server.closed, t.client.closed)}/{t.logged}" for t in seen) or "-"
        opened = ", ".join(f"{min(t.server.opened, t.client.opened)}/{t.logged}" for t in seen) or "-"
        vs = f" ({rate / alone:.0%})" if rate and alone else ""
        lines.append(
            [
                spec.label,
                str(len(mine)),
                report.spread(cores, ".3f"),
                f"{rate or 0:,.0f}{vs}",
                closed,
                opened if spec.kind == "sockscope" else "-",
            ]
        )
    header = [
        "watcher of the quiet port",
        "runs",
        "CPU per s of load (cores)",
        "ab conn/s (vs alone)",
        "quiet connections closed at both ends",
        "opened at both ends",
    ]
    return report.table(header, lines, "lrrrll")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20000, help="ab's requests (20000)")
    p.add_argument("-c", type=int, default=50, help="ab's concurrency (50)")
    p.add_argument("--repeat", type=int, default=3, help="runs per watcher (3)")
    p.add_argument("--quiet-seconds", type=float, default=1.0, help="the quiet connections' spread (1 s)")
    p.add_argument("--sockscope", default=str(Path(__file__).resolve().parents[1] / ".venv/bin/sockscope"))
    p.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = p.parse_args(argv)
    prepare_signals()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sockscope-bench-quiet-") as tmp, Stage(BUSY_PORT) as stage:
        for r in range(1, args.repeat + 1):
            for spec in WATCHERS:
                rows.append(trial(stage, spec, args, Path(tmp), r))
                print(
                    f"{r} {spec.label:26} cpu {rows[-1].cpu.total:.2f} s  ab {rows[-1].load.rate:,.0f}/s",
                    flush=True,
                )
    table = render(rows)
    print("\n".join(table))
    if args.write_results:
        env = report.environment(args.sockscope)
        env["load"] = (
            f"`ab -n {args.n} -c {args.c}` on nginx port {BUSY_PORT}; {QUIET_CONNECTIONS} "
            f"connections to port {QUIET_PORT} over {args.quiet_seconds:g} s meanwhile"
        )
        note = [
            "Each watcher follows the quiet port only (sockscope with `--netns`, ss inside the namespace);",
            "CPU is its user + system time from just before ab to 3 s after it, per second of ab's run.",
            "",
        ]
        report.write_section(
            "bench_watch_quiet_port",
            "`sockscope watch` of a quiet port on a busy host, vs ss -E",
            command_line("bench/bench_watch_quiet_port.py", argv),
            env,
            note + table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
