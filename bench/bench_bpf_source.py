"""Micro benchmark of the ``bpf`` source alone (no engine, no output): its floor.

nginx (2 workers, keep-alive off) in a private network namespace, ``ab -n N -c C``
against it from inside, and one watcher at a time in the same run:

- ``bpf-closes``: ``BpfSource`` with CLOSE (and LISTEN) records only, tcplife's job;
- ``bpf-open``: also OPEN records (the default ``watch`` events);
- ``bpf-state``: also STATE records (every transition);
- ``tcplife``: libbpf-tools ``/usr/sbin/tcplife`` (one line per closed socket);
- ``none``: ab alone (its rate is the reference).

Each ``bpf-*`` reader is a child process that selects on the ring's fd with a 20 ms
timeout and decodes every record, counting kinds and names. CPU is the watcher's
user + system time from just before the load to 3 s after it, per connection nginx
logged. BPF run time comes from ``BPF_ENABLE_STATS`` (held by this process for the
whole run, so tcplife's programs are measured too), per logged connection.

Run as root, under the shared lock:
``flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_bpf_source.py [--write-results]``
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from harness.counts import parse_tcplife  # noqa: E402
from harness.cpu import NO_BPF, ZERO, BpfTime, CpuTimes, bpf_stats, program_ids, read_bpf_time, read_cpu  # noqa: E402
from harness.stage import PORT, Stage  # noqa: E402
from harness.watchers import WatcherSpec, launch, prepare_signals  # noqa: E402
from results_file import command_line, replace_section, section_head  # noqa: E402

TAIL_SECONDS = 3.0
BEGIN, END = "<!-- bench_bpf_source:begin -->", "<!-- bench_bpf_source:end -->"
MODES = {
    "bpf-closes": {},
    "bpf-open": {"want_open": True},
    "bpf-state": {"want_open": True, "want_state": True},
}


# ----------------------------------------------------------------------------- reader


def new_ends() -> dict[str, int]:
    return {"server": 0, "server_nginx": 0, "client": 0, "client_ab": 0, "other": 0}


def tally(ends: dict[str, int], sport: int, dport: int, comm: str) -> None:
    """One closed end: nginx's (local port PORT) should be named nginx, ab's ab."""
    if sport == PORT:
        ends["server"] += 1
        ends["server_nginx"] += comm == "nginx"
    elif dport == PORT:
        ends["client"] += 1
        ends["client_ab"] += comm == "ab"
    else:
        ends["other"] += 1


def reader_main(netns: int, mode: str) -> int:
    """The measured watcher: read and decode every record until stdin closes."""
    from sockscope.sources.bpf import BpfSource  # noqa: PLC0415
    from sockscope.wire.ebpf.records import KIND_CLOSE, KIND_NAMES, BpfRecord  # noqa: PLC0415

    src = BpfSource(netns_inode=netns, **MODES[mode])  # type: ignore[arg-type]
    print("READY", flush=True)
    kinds = dict.fromkeys(KIND_NAMES.values(), 0)
    ends = new_ends()
    out: list[BpfRecord] = []
    fd, stdin = src.fileno(), sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([fd, stdin], [], [], 0.02)
        src.read(out)
        for r in out:
            kinds[KIND_NAMES[r.kind]] += 1
            if r.kind == KIND_CLOSE:
                tally(ends, r.sport, r.dport, r.comm)
        out.clear()
        if stdin in ready and not os.read(stdin, 1):
            break
    lost = src.counters()._asdict()
    result = {"kinds": kinds, "ends": ends, "lost": lost, "backlog": src.ring_backlog_max()}
    src.close()
    print(json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------- runs


def start_reader(stage: Stage, mode: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--reader", str(stage.inode), mode]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        raise SystemExit(f"the {mode} reader did not start")
    return proc


@dataclass
class Row:
    """One load with one watcher."""

    run: int
    mode: str
    conns: int = 0  # nginx's logged requests
    seconds: float = 0.0
    ab_rate: float = 0.0
    cpu: CpuTimes = ZERO
    bpf: BpfTime = NO_BPF
    records: int = 0
    ends: dict[str, int] | None = None
    lost: int | None = None
    detail: dict[str, object] = field(default_factory=dict)

    def per_conn_us(self, index: int) -> float:
        return 1e6 * self.cpu[index] / self.conns if self.conns else 0.0

    def cells(self, tcplife: float) -> list[str]:
        user, system, total = (self.per_conn_us(i) for i in range(3))
        ratio = f"{total / tcplife:.2f}" if tcplife and self.mode != "none" else "-"
        bpf = f"{self.bpf.ns / self.conns:,.0f} ({self.bpf.runs / self.conns:.1f})" if self.bpf.runs else "-"
        ends = self.ends or {}
        cells = [str(self.run), self.mode, f"{self.conns:,}", f"{self.ab_rate:,.0f}"]
        cells += [f"{self.records / self.seconds:,.0f}" if self.records else "-"]
        cells += [
            f"{total:.1f} ({user:.1f}+{system:.1f})",
            ratio,
            bpf,
            "-" if self.lost is None else str(self.lost),
        ]
        cells += [f"{ends['server_nginx']}/{ends['server']}" if ends else "-"]
        cells += [f"{ends['client_ab']}/{ends['client']}" if ends else "-"]
        return cells


def measure(stage: Stage, run: int, mode: str, n: int, c: int, tmp: Path) -> Row:
    before = program_ids()
    tcplife, reader = None, None
    if mode == "tcplife":
        tcplife = launch(WatcherSpec("tcplife", "tcplife", "tcplife"), stage, "", tmp / f"{run}-tcplife")
    elif mode != "none":
        reader = start_reader(stage, mode)
    pid = tcplife.pid if tcplife is not None else reader.pid if reader is not None else None
    ids = sorted(program_ids() - before)
    offset, bpf0 = stage.offset(), read_bpf_time(ids)
    cpu0 = (read_cpu(pid) if pid else None) or ZERO
    ab = stage.ab(n, c)
    time.sleep(TAIL_SECONDS)
    cpu1 = (read_cpu(pid) if pid else None) or ZERO
    row = Row(run, mode, stage.logged_since(offset).total(), ab.seconds, ab.rate)
    row.cpu, row.bpf = cpu1 - cpu0, read_bpf_time(ids) - bpf0
    if tcplife is not None:
        tcplife.stop()
        parsed = parse_tcplife(tcplife.out.read_text(errors="replace").splitlines(), tcplife.stderr())
        row.ends = new_ends()
        for ob in parsed.observations:
            tally(row.ends, ob.local[1], ob.remote[1], ob.process or "")
        row.records, row.lost = len(parsed.observations), parsed.lost
    elif reader is not None:
        result = json.loads(reader.communicate("", timeout=30)[0].splitlines()[-1])
        row.records, row.ends, row.detail = sum(result["kinds"].values()), result["ends"], result
        row.lost = sum(v for k, v in result["lost"].items() if k != "close_without_entry")
    return row


def table(rows: list[Row], tcplife: float) -> list[str]:
    lines = [
        "| run | watcher | conns | ab conn/s | records/s | CPU µs/conn (user+sys) | vs tcplife"
        " | BPF ns/conn (runs/conn) | lost | server ends named nginx | client ends named ab |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    return lines + ["| " + " | ".join(r.cells(tcplife)) + " |" for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--c", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="none,tcplife,bpf-closes,bpf-open,bpf-state")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--reader", nargs=2, metavar=("NETNS_INODE", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reader:
        return reader_main(int(args.reader[0]), args.reader[1])
    prepare_signals()
    rows: list[Row] = []
    started = time.monotonic()
    with bpf_stats(), Stage() as stage, tempfile.TemporaryDirectory(prefix="sockscope-bench-bpf-") as tmp:
        stage.ab(2000, args.c)  # warm-up: nginx's first connections, ab's first run
        for run in range(1, args.runs + 1):
            for mode in args.modes.split(","):
                row = measure(stage, run, mode, args.n, args.c, Path(tmp))
                print(json.dumps(asdict(row)), flush=True)
                rows.append(row)
    tcplife_rows = [r.per_conn_us(2) for r in rows if r.mode == "tcplife"]
    tcplife = sorted(tcplife_rows)[len(tcplife_rows) // 2] if tcplife_rows else 0.0
    lines = table(rows, tcplife)
    print("\n".join(lines))
    if args.write_results:
        write_results(lines, argv, time.monotonic() - started, args)
    return 0


def write_results(lines: list[str], argv: list[str] | None, wall: float, args: argparse.Namespace) -> None:
    env = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": os.uname().release,
        "cpus": str(os.cpu_count()),
        "load": f"nginx (2 workers, keep-alive off) in its own netns, `ab -n {args.n} -c {args.c}`",
        "wall time": f"{wall:.0f}s",
    }
    head = section_head(
        BEGIN,
        "eBPF source alone vs libbpf-tools tcplife",
        command_line("bench/bench_bpf_source.py", argv),
        env,
    )
    notes = [
        "",
        "CPU: the watcher's user+system time from just before the load to 3 s after it, per connection",
        "nginx logged. `vs tcplife`: that against the median tcplife run. BPF ns/conn: the programs'",
        "run time (BPF_ENABLE_STATS on for the whole run) per logged connection, with runs per connection.",
        "lost: reserve_failed + map_full + listener_map_full + recursion_misses. The bpf readers decode",
        "every record into a `BpfRecord` and count it; no engine, no output (the source's floor).",
        "tcplife has no namespace filter: its records/s and CPU include other namespaces' connections",
        "(other tests on the machine), which the bpf source leaves in the kernel. It names nginx's",
        "server ends `ab` (taken where the close runs, in ab's softirq on loopback), all but 0.1%.",
        "CPU total from every thread's schedstat (ns); the user+sys split from /proc/PID/stat (10 ms ticks).",
        "",
        END,
    ]
    replace_section(BEGIN, END, "\n".join([*head, *lines, *notes]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
