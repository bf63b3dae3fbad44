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
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from results_file import command_line, replace_section, section_head  # noqa: E402

from sockscope.sources import bpf_syscalls as sc  # noqa: E402

PORT = 18080
TAIL_SECONDS = 3.0
BEGIN, END = "<!-- bench_bpf_source:begin -->", "<!-- bench_bpf_source:end -->"
MODES = {
    "bpf-closes": {},
    "bpf-open": {"want_open": True},
    "bpf-state": {"want_open": True, "want_state": True},
}
NGINX_CONF = """\
user nobody nogroup;
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format bench '$remote_port';
    access_log {tmp}/access.log bench;
    keepalive_timeout 0;
    client_body_temp_path {tmp}/tmp/body;
    proxy_temp_path {tmp}/tmp/proxy;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
    server {{ listen 127.0.0.1:{port} backlog=4096; root {tmp}/www; }}
}}
"""


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


# ----------------------------------------------------------------------------- harness


def cpu_of(pid: int) -> tuple[float, float, float]:
    """(user, system) in clock ticks' precision, and their sum in nanoseconds' (schedstat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    total = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    return int(fields[11]) / tick, int(fields[12]) / tick, total


class Stage:
    """A namespace with nginx in it; removed on every way out."""

    def __init__(self) -> None:
        self.ns = f"sockscope-bench-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-"))
        self.nginx: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stage:
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        self.tmp.chmod(0o755)
        for sub in ("www", "tmp"):
            (self.tmp / sub).mkdir(mode=0o755)
        (self.tmp / "www" / "index.html").write_text("x" * 611 + "\n")
        (self.tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=self.tmp, port=PORT))
        conf = str(self.tmp / "nginx.conf")
        cmd = ["ip", "netns", "exec", self.ns, "nginx", "-p", f"{self.tmp}/", "-c", conf]
        self.nginx = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.nginx is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.nginx.pid, signal.SIGKILL)
            self.nginx.wait()
        subprocess.run(["ip", "netns", "del", self.ns], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.ns}").st_ino

    def logged(self) -> int:
        path = self.tmp / "access.log"
        return len(path.read_bytes().splitlines()) if path.exists() else 0

    def load(self, n: int, c: int) -> tuple[float, float]:
        """ab's run: (seconds, requests per second)."""
        url = f"http://127.0.0.1:{PORT}/"
        cmd = ["ip", "netns", "exec", self.ns, "ab", "-q", "-n", str(n), "-c", str(c), url]
        t0 = time.monotonic()
        ab = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.monotonic() - t0
        lines = ab.stdout.splitlines()
        return seconds, next(float(ln.split()[3]) for ln in lines if ln.startswith("Requests per second"))


def prog_run_time(ids: list[int]) -> tuple[int, int]:
    time_ns = runs = 0
    for prog_id in ids:
        info = sc.prog_info_by_id(prog_id)
        if info is not None:
            time_ns, runs = time_ns + info.run_time_ns, runs + info.run_cnt
    return time_ns, runs


def start_watcher(stage: Stage, mode: str, out: Path) -> subprocess.Popen[str] | None:
    if mode == "none":
        return None
    if mode == "tcplife":
        with out.open("w") as f:
            proc = subprocess.Popen(["/usr/sbin/tcplife"], stdout=f, stderr=subprocess.STDOUT, text=True)
        time.sleep(2.0)
        return proc
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
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)  # user, system, total (seconds)
    bpf: tuple[int, int] = (0, 0)  # run time (ns), runs
    records: int = 0
    ends: dict[str, int] | None = None
    lost: int | None = None
    detail: dict[str, object] = field(default_factory=dict)

    def per_conn_us(self, index: int) -> float:
        return 1e6 * self.cpu[index] / self.conns if self.conns else 0.0

    def cells(self, tcplife: float) -> list[str]:
        user, system, total = (self.per_conn_us(i) for i in range(3))
        ratio = f"{total / tcplife:.2f}" if tcplife and self.mode != "none" else "-"
        bpf = f"{self.bpf[0] / self.conns:,.0f} ({self.bpf[1] / self.conns:.1f})" if self.bpf[1] else "-"
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


def measure(stage: Stage, run: int, mode: str, n: int, c: int) -> Row:
    out = stage.tmp / f"{mode}.out"
    before_ids = set(sc.prog_ids())
    proc = start_watcher(stage, mode, out)
    ids = sorted(set(sc.prog_ids()) - before_ids)
    logged0, bpf0 = stage.logged(), prog_run_time(ids)
    cpu0 = cpu_of(proc.pid) if proc else (0.0, 0.0, 0.0)
    seconds, rate = stage.load(n, c)
    time.sleep(TAIL_SECONDS)
    cpu1 = cpu_of(proc.pid) if proc else (0.0, 0.0, 0.0)
    bpf1 = prog_run_time(ids)
    row = Row(run, mode, stage.logged() - logged0, seconds, rate)
    row.cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2])
    row.bpf = (bpf1[0] - bpf0[0], bpf1[1] - bpf0[1])
    if proc is None:
        return row
    if mode == "tcplife":
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        rows = [ln.split() for ln in out.read_text(errors="replace").splitlines()]
        rows = [w for w in rows if len(w) >= 6 and w[0].isdigit()]
        row.ends = new_ends()
        for w in rows:  # PID COMM LADDR LPORT RADDR RPORT ...
            tally(row.ends, int(w[3]), int(w[5]), w[1])
        row.records = len(rows)
        return row
    result = json.loads(proc.communicate("", timeout=30)[0].splitlines()[-1])
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
    rows: list[Row] = []
    stats_fd = sc.enable_stats()
    started = time.monotonic()
    try:
        with Stage() as stage:
            stage.load(2000, args.c)  # warm-up: nginx's first connections, ab's first run
            for run in range(1, args.runs + 1):
                for mode in args.modes.split(","):
                    row = measure(stage, run, mode, args.n, args.c)
                    print(json.dumps(asdict(row)), flush=True)
                    rows.append(row)
    finally:
        os.close(stats_fd)
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
        "CPU total from /proc/PID/schedstat (ns); the user+sys split from /proc/PID/stat (10 ms ticks).",
        "",
        END,
    ]
    replace_section(BEGIN, END, "\n".join([*head, *lines, *notes]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
