"""Benchmark a watch of one quiet port on a busy host, against ``ss -E`` doing the same.

The primer watches one service (telnet's port 23) on a server that serves others too.
A watcher's cost should then follow the watched port's traffic, not the host's. Here
nginx takes ``ab -n 20000 -c 50`` (no keep-alive) on one port while a quiet service
on another port gets a few hundred short connections, and each run has one watcher of
the quiet port:

- ``sockscope watch --jsonl 'port == Q'`` (tracepoint, destroy and poll as root): the
  kernel drops other ports' records and destroy messages before they are read (an
  event filter on the tracepoint, a BPF program on the destroy socket);
- the same with ``'port == Q or duration < 0s'``: the same events, but a filter the
  kernel cannot take (``or`` with a test of events), so every record is read and
  filtered in Python: the cost the kernel filters save;
- ``ss -E -n 'sport = :Q or dport = :Q'``: closes only, filtered in user space;
- none: ab's own rate, for the cost to the host.

Each is run ``--repeat`` times, taking turns. Reported: the watcher's CPU (utime +
stime) during ab's run per second of it, ab's rate, and how many of the quiet port's
connections each saw close (both ends). Like bench_watch, as root it runs in a private network
namespace made for it.

Usage:
    .venv/bin/python bench/bench_watch_quiet_port.py --write-results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_watch import (
    DEFAULT_SOCKSCOPE,
    DOC,
    HOST,
    INSTALL_HINT,
    Load,
    Nginx,
    StartError,
    cpu_seconds,
    find_tool,
    run_ab,
)
from results_file import command_line, replace_section, section_head

BEGIN = "<!-- bench_watch_quiet_port:begin -->"
END = "<!-- bench_watch_quiet_port:end -->"
NETNS_ENV = "SOCKSCOPE_BENCH_QUIET_NETNS"
BUSY_PORT, QUIET_PORT = 18090, 18091
QUIET_CONNECTIONS = 300
READY_TIMEOUT = 20.0
SETTLE = 3.0  # after the load, for the watchers' last events (the tracepoint's grace)
STOP_TIMEOUT = 30.0
CPU_TARGET = 0.5
PYTHON_ONLY = "sockscope, Python filter"
#: The watchers of sockscope, by the filter they are given.
WATCH_FILTERS = {"sockscope": f"port == {QUIET_PORT}", PYTHON_ONLY: f"port == {QUIET_PORT} or duration < 0s"}
KINDS = ("sockscope", PYTHON_ONLY, "ss -E", "none")


@dataclass
class Trial:
    """One load with (or without) one watcher."""

    watcher: str
    load: Load
    cpu: float | None = None  # watcher CPU seconds during the load
    cpu_all: float | None = None  # ... from the load's start to SETTLE after its end
    quiet_closed: int = 0  # quiet connections whose both ends it saw close
    quiet_opened: int = 0  # ... and open (sockscope with the tracepoint)
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def cost(self) -> float | None:
        """Watcher CPU during the load, per second of it."""
        if self.cpu is None or not self.load.seconds:
            return None
        return self.cpu / self.load.seconds

    @property
    def cost_all(self) -> float | None:
        """Watcher CPU with its catch-up after the load, per second of load."""
        if self.cpu_all is None or not self.load.seconds:
            return None
        return self.cpu_all / self.load.seconds


class QuietService:
    """A listener on the quiet port, and a client making short connections to it."""

    def __init__(self, port: int) -> None:
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((HOST, port))
        self.srv.listen(64)
        self.port = port
        self._stop = threading.Event()
        self._server = threading.Thread(target=self._serve, daemon=True)
        self._server.start()

    def _serve(self) -> None:
        self.srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"hello\n")

    def connect_many(self, n: int, seconds: float) -> list[int]:
        """``n`` connections spread over ``seconds``; their client ports."""
        ports = []
        start = time.monotonic()
        for i in range(n):
            with socket.create_connection((HOST, self.port), timeout=5) as c:
                ports.append(c.getsockname()[1])
                c.recv(16)
            time.sleep(max(0.0, start + seconds * (i + 1) / n - time.monotonic()))
        return ports

    def close(self) -> None:
        self._stop.set()
        self.srv.close()
        self._server.join(2)


def start_watcher(argv: list[str], out: Path, err: Path, ready: str | None) -> subprocess.Popen[bytes]:
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while ready is not None and time.monotonic() < deadline:
        if ready in err.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise StartError(f"{argv[0]} exited {proc.returncode}: {err.read_text()[-300:]}")
        time.sleep(0.02)
    if ready is not None:
        raise StartError(f"{argv[0]} not ready after {READY_TIMEOUT}s")
    time.sleep(0.5)  # ss prints nothing when ready: give it its subscription
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _both_ends(ends: Counter[tuple[int, int]], clients: list[int]) -> int:
    """Connections seen at both ends; a client port reused within the run counts as
    many times as it was used, if it was seen that many times."""
    return sum(min(used, ends[(port, 0)], ends[(port, 1)]) for port, used in Counter(clients).items())


def count_sockscope(path: Path, clients: list[int], port: int) -> tuple[int, int]:
    """(connections seen closing at both ends, seen opening at both ends)."""
    closed: Counter[tuple[int, int]] = Counter()
    opened: Counter[tuple[int, int]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        ev = json.loads(line)
        lp, rp = ev.get("local_port"), ev.get("remote_port")
        end = (lp, 0) if rp == port else (rp, 1) if lp == port else None
        if end is None:
            continue
        if ev["event"] == "closed":
            closed[end] += 1
        elif ev["event"] == "opened":
            opened[end] += 1
    return _both_ends(closed, clients), _both_ends(opened, clients)


def count_ss(path: Path, clients: list[int], port: int) -> int:
    """Connections ``ss -E`` printed closing at both ends."""
    ends: Counter[tuple[int, int]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        found = re.findall(r":(\d+)\b", line)
        if len(found) < 2:
            continue
        lp, rp = int(found[-2]), int(found[-1])
        if rp == port:
            ends[(lp, 0)] += 1
        elif lp == port:
            ends[(rp, 1)] += 1
    return _both_ends(ends, clients)


def trial(kind: str, args: argparse.Namespace, ab: str, tmp: Path, n: int) -> Trial:
    url = f"http://{HOST}:{BUSY_PORT}{DOC}"
    out, err = tmp / f"{n:02}-{kind}.out", tmp / f"{n:02}-{kind}.err"
    quiet = QuietService(QUIET_PORT)
    proc = None
    try:
        if kind in WATCH_FILTERS:
            proc = start_watcher(
                [args.sockscope, "watch", "--jsonl", WATCH_FILTERS[kind]], out, err, "sockscope: watching"
            )
        elif kind == "ss -E":
            # Line-buffered, so what it saw is on disk when SIGINT stops it.
            proc = start_watcher(
                [
                    *args.line_buffered,
                    args.ss,
                    "-E",
                    "-n",
                    "-t",
                    "-H",
                    f"sport = :{QUIET_PORT} or dport = :{QUIET_PORT}",
                ],
                out,
                err,
                None,
            )
        cpu0 = cpu_seconds(proc.pid) if proc else None
        clients: list[int] = []
        side = threading.Thread(
            target=lambda: clients.extend(quiet.connect_many(QUIET_CONNECTIONS, args.quiet_seconds))
        )
        side.start()
        load = run_ab(ab, url, args.n, args.c, None)
        cpu1 = cpu_seconds(proc.pid) if proc else None
        side.join()
        result = Trial(kind, load)
        if proc is not None:
            time.sleep(SETTLE)
            cpu2 = cpu_seconds(proc.pid)
            stop(proc)
            result.cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
            result.cpu_all = None if cpu0 is None or cpu2 is None else cpu2 - cpu0
            if kind in WATCH_FILTERS:
                result.quiet_closed, result.quiet_opened = count_sockscope(out, clients, QUIET_PORT)
            else:
                result.quiet_closed = count_ss(out, clients, QUIET_PORT)
        result.detail = load.detail
        return result
    finally:
        if proc is not None:
            stop(proc)
        quiet.close()


def render(trials: list[Trial], args: argparse.Namespace) -> list[str]:
    rows = [
        "| watcher of the quiet port | runs | watcher CPU during the load (median, range) "
        f"| with the {SETTLE:g} s after it, per s of load | ab conn/s (median) "
        "| quiet connections seen closing (both ends) | seen opening |",
        "|---|---|---|---|---|---|---|",
    ]
    base = [t.load.rate for t in trials if t.watcher == "none"]
    for kind in KINDS:
        mine = [t for t in trials if t.watcher == kind]
        if not mine:
            continue
        costs = [c for t in mine if (c := t.cost) is not None]
        cpu = (
            "-" if not costs else (f"{statistics.median(costs):.3f} core ({min(costs):.3f}-{max(costs):.3f})")
        )
        alls = [c for t in mine if (c := t.cost_all) is not None]
        cpu_all = f"{statistics.median(alls):.3f}" if alls else "-"
        rates = [t.load.rate for t in mine]
        closed = ", ".join(f"{t.quiet_closed}/{QUIET_CONNECTIONS}" for t in mine) if kind != "none" else "-"
        opened = (
            ", ".join(f"{t.quiet_opened}/{QUIET_CONNECTIONS}" for t in mine) if kind in WATCH_FILTERS else "-"
        )
        rows.append(
            f"| {kind} | {len(mine)} | {cpu} | {cpu_all} | {statistics.median(rates):,.0f} | "
            f"{closed} | {opened} |"
        )
    out = ["", *rows, ""]
    med = {
        k: statistics.median(c)
        for k in KINDS
        if (c := [x for t in trials if t.watcher == k and (x := t.cost) is not None])
    }
    if "sockscope" in med and "ss -E" in med and med["ss -E"] > 0:
        out.append(
            f"- sockscope / ss -E CPU: {med['sockscope'] / med['ss -E']:.2f}x "
            f"(sockscope also sees every open, with its process, from the tracepoint)"
        )
    alls = {
        k: statistics.median(c)
        for k in KINDS
        if (c := [x for t in trials if t.watcher == k and (x := t.cost_all) is not None])
    }
    if "sockscope" in alls and alls.get(PYTHON_ONLY):
        out.append(
            f"- kernel filters / Python only: {alls['sockscope'] / alls[PYTHON_ONLY]:.2f}x "
            f"the CPU, catch-up included"
        )
    if "sockscope" in med:
        verdict = "PASS" if med["sockscope"] < CPU_TARGET else "FAIL"
        out.append(f"- sockscope CPU against {CPU_TARGET} core: {verdict}")
    if base:
        for kind in KINDS[:-1]:
            rates = [t.load.rate for t in trials if t.watcher == kind]
            if rates:
                out.append(
                    f"- ab's rate with {kind} watching: "
                    f"{statistics.median(rates) / statistics.median(base):.0%} of its rate alone"
                )
    problems = [f"{t.watcher}: {t.detail}" for t in trials if t.detail]
    out += [f"- problem: {p}" for p in problems]
    return out


def run_in_netns(ip: str, argv: list[str]) -> int:
    name = f"sockscope-quiet-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        return subprocess.run(
            [ip, "netns", "exec", name, sys.executable, __file__, *argv],
            env=os.environ | {NETNS_ENV: name},
            check=False,
        ).returncode
    finally:
        subprocess.run([ip, "netns", "del", name], check=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: .venv/bin/python bench/bench_watch_quiet_port.py --repeat 3 --write-results",
    )
    p.add_argument("-n", type=int, default=20000, help="ab's requests (default 20000)")
    p.add_argument("-c", type=int, default=50, help="ab's concurrency (default 50)")
    p.add_argument("--repeat", type=int, default=3, help="runs per watcher (default 3)")
    p.add_argument(
        "--quiet-seconds",
        type=float,
        default=1.0,
        help="the quiet port's connections are spread over this (default 1)",
    )
    p.add_argument("--sockscope", default=str(DEFAULT_SOCKSCOPE), help="the sockscope to run")
    p.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = p.parse_args(argv)
    nginx_bin, ab, ss = find_tool("nginx"), find_tool("ab"), find_tool("ss")
    if nginx_bin is None or ab is None or ss is None:
        print(
            f"bench_watch_quiet_port: needs nginx, ab and ss; install with: {INSTALL_HINT} iproute2",
            file=sys.stderr,
        )
        return 2
    args.ss = ss
    stdbuf = find_tool("stdbuf")
    args.line_buffered = [stdbuf, "-oL"] if stdbuf else []
    if os.geteuid() == 0 and NETNS_ENV not in os.environ and (ip := find_tool("ip")):
        return run_in_netns(ip, sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-quiet-"))
    nginx = Nginx(nginx_bin, tmp, BUSY_PORT)
    trials: list[Trial] = []
    try:
        nginx.start()
        n = 0
        for _ in range(args.repeat):
            for kind in KINDS:
                n += 1
                t = trial(kind, args, ab, tmp, n)
                trials.append(t)
                print(
                    f"{kind:10} ab {t.load.rate:8,.0f}/s  cpu/s {t.cost if t.cost is not None else '-'}"
                    f"  quiet closed {t.quiet_closed} opened {t.quiet_opened} {t.detail}",
                    file=sys.stderr,
                )
    except StartError as exc:
        print(f"bench_watch_quiet_port: {exc}", file=sys.stderr)
        return 1
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    table = render(trials, args)
    print("\n".join(table))
    if args.write_results:
        env = {
            "host": f"{platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
            "load": f"ab -n {args.n} -c {args.c} (no keep-alive) on nginx port {BUSY_PORT}; "
            f"{QUIET_CONNECTIONS} connections to port {QUIET_PORT} over "
            f"{args.quiet_seconds:g}s meanwhile",
            "namespace": os.environ.get(NETNS_ENV, "this one"),
        }
        section = [
            *section_head(
                BEGIN,
                "`sockscope watch` of a quiet port on a busy host, vs ss -E",
                command_line("bench/bench_watch_quiet_port.py", argv),
                env,
            ),
            "Each watcher follows the quiet port only; CPU is its utime + stime during "
            f"ab's run, per second of it, then up to {SETTLE:g} s after it (a watcher "
            "that fell behind catches up then). The quiet connections are counted "
            "from its output.",
            *table,
            END,
        ]
        replace_section(BEGIN, END, "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
