"""What a scrape of ``sockscope exporter`` costs, against node_exporter's tcpstat collector.

Four measurements, in one run, in a network namespace of its own (as root; ``--here``
stays where it is), with real sockets held by ``holdconns.held_connections``:

1. Scrape latency at 2k, 20k and 60k sockets: sockscope exporter (its default: events
   on, the watch engine in the background) and ``prometheus-node-exporter
   --collector.disable-defaults --collector.tcpstat``, scraped alternately over fresh
   HTTP connections, as Prometheus does. Target: under 0.5 s at 60k.
2. 100 concurrent scrapes at 20k sockets: none may fail; p50, p99, max.
3. A soak: a fresh exporter, ``--soak-sockets`` held and a bounded churn of
   ``--churn-rate`` connections a second, scraped every 5 s, for ``--soak`` seconds
   (600 for the results): CPU and RSS sampled every 30 s, which should stay flat.
4. Idle: the same exporter with no churn and no scrape for ``--idle`` seconds. Target:
   under 1% of a core.

    flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_exporter.py --write
    .venv/bin/python bench/bench_exporter.py --sizes 2k --soak 30 --idle 10   # a quick look
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from holdconns import held_connections
from results_file import command_line, replace_section, section_head

BEGIN, END = "<!-- bench_exporter:begin -->", "<!-- bench_exporter:end -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVING = re.compile(r"serving http://127\.0\.0\.1:(\d+)/metrics")
CHURN_PORT = 2424


def size_arg(text: str) -> list[int]:
    out = []
    for raw in text.split(","):
        part = raw.strip().lower()
        out.append(int(float(part[:-1]) * 1000) if part.endswith("k") else int(part))
    return out


# ---------------------------------------------------------------- processes


def start_sockscope(*extra: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "sockscope", "exporter", "--listen", "127.0.0.1:0", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        m = SERVING.search(line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, int(m.group(1))
    raise RuntimeError(f"sockscope exporter exited: {proc.wait()}")


def start_node_exporter() -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        sys.exit("bench_exporter: apt-get install prometheus-node-exporter")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            exe,
            "--collector.disable-defaults",
            "--collector.tcpstat",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            scrape(port)
        except OSError:
            time.sleep(0.1)
        else:
            return proc, port
    raise RuntimeError("node_exporter did not start")


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scrape(port: int) -> tuple[float, bytes]:
    """One scrape over a fresh connection: seconds, body."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
        body = resp.read()
        assert resp.status == 200
    return time.perf_counter() - t0, body


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- churn


def churn_worker(rate: float, seconds: float) -> int:
    """Accept and close on CHURN_PORT while connecting to it ``rate`` times a second."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", CHURN_PORT))
    srv.listen(1024)

    def serve() -> None:
        while True:
            conn, _ = srv.accept()
            conn.recv(64)
            conn.sendall(b"y" * 512)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    print("ready", flush=True)
    end = time.monotonic() + seconds
    due = time.monotonic()
    while time.monotonic() < end:
        c = socket.create_connection(("127.0.0.1", CHURN_PORT))
        c.sendall(b"x" * 64)
        c.recv(512)
        c.close()
        due += 1 / rate
        time.sleep(max(0.0, due - time.monotonic()))
    return 0


def start_churn(rate: float, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--churn-worker", str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


# ---------------------------------------------------------------- measurements


def latency(ours: int, node: int, n: int) -> tuple[list[float], list[float], int, int]:
    scrape(ours)
    scrape(node)  # warm-up: first dumps, imports
    a, b = [], []
    size_a = size_b = 0
    for _ in range(n):
        t, body = scrape(ours)
        a.append(t)
        size_a = len(body)
        t, body = scrape(node)
        b.append(t)
        size_b = len(body)
    return a, b, size_a, size_b


def concurrent(port: int, n: int) -> tuple[list[float], int, float]:
    times: list[float] = []
    failures = [0]
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        try:
            times.append(scrape(port)[0])
        except Exception:  # counted
            failures[0] += 1

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(times), failures[0], time.perf_counter() - t0


def soak(args: argparse.Namespace) -> tuple[list[str], float, float]:
    rows = [
        "| minute | sockets | churn conn/s | scrapes | CPU (% of a core) | RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    with held_connections(args.soak_sockets, hold_seconds=args.soak + args.idle + 300) as held:
        proc, port = start_sockscope()
        try:
            time.sleep(3)
            churn = start_churn(args.churn_rate, args.soak)
            stop_scrapes = threading.Event()
            scrapes = [0]

            def scraper() -> None:
                while not stop_scrapes.wait(5.0):
                    scrape(port)
                    scrapes[0] += 1

            threading.Thread(target=scraper, daemon=True).start()
            start = time.monotonic()
            last_t, last_cpu = start, cpu_seconds(proc.pid)
            rss = []
            while time.monotonic() - start < args.soak:
                time.sleep(min(30.0, args.soak - (time.monotonic() - start)))
                now, cpu = time.monotonic(), cpu_seconds(proc.pid)
                rss.append(rss_mib(proc.pid))
                share = (cpu - last_cpu) / (now - last_t) * 100
                rows.append(
                    f"| {(now - start) / 60:.1f} | {held.sockets:,} | {args.churn_rate:g} | {scrapes[0]} "
                    f"| {share:.1f} | {rss[-1]:.1f} |"
                )
                print(rows[-1], flush=True)
                last_t, last_cpu = now, cpu
            stop_scrapes.set()
            churn.wait(30)
            time.sleep(5)  # the last closes handled
            t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
            time.sleep(args.idle)
            idle = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100
        finally:
            stop(proc)
    growth = rss[-1] - rss[0] if len(rss) > 1 else 0.0
    return rows, idle, growth


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def run(args: argparse.Namespace) -> str:
    lines: list[str] = []
    started = time.monotonic()
    node, node_port = start_node_exporter()
    ours, our_port = start_sockscope()
    table = [
        "| sockets | sockscope exporter | node_exporter tcpstat | ratio | sockscope body | node body "
        "| target | result |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    conc = None
    try:
        for n in args.sizes:
            with held_connections(n) as held:
                time.sleep(3)  # the watch engine's first polls over the new sockets
                a, b, size_a, size_b = latency(our_port, node_port, args.scrapes)
                target = "< 500 ms" if n >= 60_000 else "ref"
                result = "ref" if target == "ref" else ("**PASS**" if median_ms(a) < 500 else "**FAIL**")
                table.append(
                    f"| {held.sockets:,} | {median_ms(a):.1f} ms (max {max(a) * 1000:.1f}) "
                    f"| {median_ms(b):.1f} ms | {median_ms(a) / median_ms(b):.2f} | {size_a:,} B "
                    f"| {size_b:,} B | {target} | {result} |"
                )
                print(table[-1], flush=True)
                if n == 20_000 or (conc is None and n == max(args.sizes)):
                    times, failures, wall = concurrent(our_port, args.concurrent)
                    p99 = times[max(0, int(len(times) * 0.99) - 1)] if times else float("nan")
                    conc = (held.sockets, times, failures, wall, p99)
    finally:
        stop(ours)
        stop(node)
    lines += table
    if conc is not None:
        socks, times, failures, wall, p99 = conc
        lines += [
            "",
            f"{args.concurrent} concurrent scrapes at {socks:,} sockets: {len(times)} answered, "
            f"**{failures} failed**; p50 {median_ms(times):.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {times[-1] * 1000:.0f} ms; all done in {wall:.2f} s.",
        ]
    if args.soak > 0:
        rows, idle, growth = soak(args)
        lines += [
            "",
            f"Soak: a fresh exporter, {args.soak_sockets:,} sockets held, {args.churn_rate:g} connections a "
            f"second opened and closed on loopback (each seen at both ends), scraped every 5 s, for "
            f"{args.soak / 60:.0f} min:",
            "",
            *rows,
            "",
            f"RSS growth from the first sample to the last: {growth:+.1f} MiB. "
            f"Idle (no churn, no scrape, {args.idle:.0f} s): **{idle:.2f}% of a core** (target < 1%: "
            f"**{'PASS' if idle < 1 else 'FAIL'}**).",
        ]
    lines.append(f"\nwall time: {time.monotonic() - started:.0f} s")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=size_arg, default=[2000, 20000, 60000])
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=100)
    ap.add_argument("--soak", type=float, default=600.0, help="seconds of churn (0: none)")
    ap.add_argument("--soak-sockets", type=int, default=2000)
    ap.add_argument("--churn-rate", type=float, default=100.0)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--write", action="store_true", help="record the figures in bench/RESULTS.md")
    ap.add_argument("--here", action="store_true", help="do not make a network namespace")
    ap.add_argument("--churn-worker", nargs=2, type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.churn_worker:
        return churn_worker(*args.churn_worker)
    if not args.here and os.geteuid() == 0:
        return in_own_netns()
    text = run(args)
    print(text)
    if args.write:
        argv = [a for a in sys.argv[1:] if a != "--here"]
        env = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "kernel": os.uname().release,
            "machine": f"{os.cpu_count()} cores (shared VM)",
            "python": sys.version.split()[0],
            "node_exporter": node_exporter_version(),
        }
        head = section_head(
            BEGIN,
            "`sockscope exporter` scrapes vs node_exporter tcpstat",
            command_line("bench/bench_exporter.py", argv),
            env,
        )
        body = "\n".join(
            [
                *head,
                "As root, in a network namespace of its own. Times are wall times of whole HTTP "
                "scrapes over fresh connections (median of the runs).",
                "",
                text,
                END,
            ]
        )
        replace_section(BEGIN, END, body)
    return 0


def node_exporter_version() -> str:
    exe = shutil.which("prometheus-node-exporter") or "node_exporter"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    lines = (res.stdout + res.stderr).splitlines()  # it has printed on either, by version
    return lines[0] if lines else "unknown"


def in_own_netns() -> int:
    ns = f"sockscope-bench-exporter-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        argv = [a for a in sys.argv[1:] if a != "--here"]
        return subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--here", *argv], check=False
        ).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
