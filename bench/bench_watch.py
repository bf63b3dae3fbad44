"""``sockscope watch`` with the eBPF source against libbpf-tools ``tcplife``: issue 12's proof.

nginx (2 workers, keep-alive off) in a network namespace of its own, ``ab -n 20000 -c 50``
from inside it, one watcher per run on a fresh stage, the watchers taking turns in each
of three rounds. CPU is the watcher's user + system time from just before the load to
3 s after it, per connection nginx logged. Then a sweep with the paced client finds the
highest rate at which nothing is lost, with and without ``--jsonl``. As root, under the
shared lock::

    flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_watch.py --write-results
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import report
from harness.cpu import bpf_stats, busy_share, read_host_busy
from harness.plan import run_rounds, run_sweep
from harness.verdict import Target
from harness.watch_report import render
from harness.watchers import TCPLIFE, WatcherSpec, prepare_signals
from results_file import command_line

REPO = Path(__file__).resolve().parents[1]


def spec(key: str, label: str, *args: str) -> WatcherSpec:
    return WatcherSpec(key, label, "sockscope", args)


WATCHERS = {
    "none": WatcherSpec("none", "none (ab alone)", "none"),
    "tcplife": WatcherSpec("tcplife", "tcplife", "tcplife"),
    "default": spec("default", "bpf, default events", "--jsonl"),
    "closes": spec("closes", "bpf, `event == closed`", "--jsonl", "event == closed"),
    "all": spec("all", "bpf, `--events all`", "--jsonl", "--events", "all"),
    "trace": spec("trace", "`--source trace,destroy,poll`", "--jsonl", "--source", "trace,destroy,poll"),
    "destroy": spec("destroy", "`--source destroy,poll`", "--jsonl", "--source", "destroy,poll"),
}
TARGETS = {
    "tcplife": Target("tcplife", opens=False, named=False, judged=False),
    "default": Target("default", ratio=1.5),
    "closes": Target("closes", ratio=1.0, opens=False),
    "all": Target("all", ratio=3.0),
    "trace": Target("trace", judged=False),
    "destroy": Target("destroy", opens=False, named=False, judged=False),
    "none": Target("none", judged=False),
}
SWEEP = (
    (spec("jsonl", "bpf, default events, `--jsonl`", "--jsonl"), Target("jsonl")),
    (spec("text", "bpf, default events, text", "-n"), Target("text")),
    (WatcherSpec("tcplife-paced", "tcplife", "tcplife"), Target("tcplife-paced", opens=False, named=False)),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="ab's requests per run (20000)")
    p.add_argument("-c", type=int, default=50, help="ab's concurrency (50)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every watcher (3)")
    p.add_argument("--watchers", default=",".join(WATCHERS), help=f"({','.join(WATCHERS)})")
    p.add_argument(
        "--rates",
        default="2000,4000,6000,8000,10000,12000,14000,16000,18000,20000",
        help="sweep rates, '' for none",
    )
    p.add_argument("--sweep-seconds", type=float, default=5.0, help="each sweep step's length (5)")
    p.add_argument("--processes", type=int, default=4, help="the paced client's processes (4)")
    p.add_argument("--sockscope", default=str(REPO / ".venv" / "bin" / "sockscope"))
    p.add_argument("--keep", action="store_true", help="keep every watcher's output and say where")
    p.add_argument("--write-results", action="store_true", help="replace this section of bench/RESULTS.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [t for t in ("nginx", "ab", "ip", TCPLIFE) if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        print(f"bench_watch: needs root and nginx, ab, ip, tcplife (missing: {missing})", file=sys.stderr)
        return 2
    prepare_signals()
    keys = [k for k in args.watchers.split(",") if k]
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-watch-"))
    started, busy0 = time.monotonic(), read_host_busy()
    try:
        with bpf_stats():
            rows = run_rounds(
                [WATCHERS[k] for k in keys], args.rounds, lambda s: s.ab(args.n, args.c), args.sockscope, tmp
            )
            rates = [float(x) for x in args.rates.split(",") if x]
            sweep, stopped = run_sweep(SWEEP, rates, args.sweep_seconds, args.processes, args.sockscope, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    env = report.environment(args.sockscope)
    env["load"] = f"`ab -n {args.n} -c {args.c}` (no keep-alive), {args.rounds} rounds; sweep: paced client"
    env["host busy during the run (this benchmark included)"] = f"{busy_share(busy0, read_host_busy()):.0%}"
    env["wall time"] = f"{time.monotonic() - started:.0f} s"
    labels = {k: w.label for k, w in WATCHERS.items()} | {s.key: s.label for s, _ in SWEEP}
    body = render(rows, sweep, stopped, labels, [TARGETS[k] for k in keys if k in TARGETS], SWEEP)
    print("\n".join(body))
    if args.write_results:
        command = command_line("bench/bench_watch.py", argv)
        report.write_section(
            "bench_watch", "`sockscope watch` (eBPF) vs tcplife under nginx + ab", command, env, body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
