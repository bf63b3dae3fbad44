"""Benchmark ``sockscope watch`` against nginx's own count of its connections.

nginx runs on 127.0.0.1 only (a private config and prefix in a temporary directory,
``keepalive_timeout 0`` so every request is one connection, the client address and port
of each request in its access log).  For each source set a watcher
(``sockscope watch --jsonl -t 'port == PORT'``) starts first, ``ab -n 20000 -c 50``
(no keep-alive) runs, and the watcher is stopped with SIGINT once the load is over and it
is idle again.  Every connection nginx logged is then looked up in the watcher's events by
its client address and port, on both ends: the server end (local port PORT, attributed to
nginx) and the client end (remote port PORT, attributed to ab).  The
watcher's CPU (utime + stime from /proc/PID/stat, sampled) is divided by the wall time of
the load: once for the load alone, once up to the watcher's last event (its catch-up).

A rate sweep, run first, repeats the measurement with a paced client (this file,
``--client``) at fixed connection rates to find the highest rate at which nothing is
missed.  The paced client connects from its own loopback address per run (127.B.R.1, B
random per invocation) and lets connect() choose the port, as ab does.  All traffic stays
on the loopback interface and goes to 127.0.0.1:PORT; as root, in a private network
namespace made for the run (``--no-netns``: the host's).

Needs nginx and ab (``apt-get install -y nginx apache2-utils``); the tracepoint source
needs root::

    .venv/bin/python bench/bench_watch.py --write-results
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from results_file import command_line, replace_section, section_head

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
DEFAULT_SOCKSCOPE = REPO / ".venv" / "bin" / "sockscope"
BEGIN = "<!-- bench_watch:begin -->"
END = "<!-- bench_watch:end -->"
INSTALL_HINT = "apt-get install -y nginx apache2-utils"

HOST = "127.0.0.1"
DEFAULT_PORT = 18080
DOC = "/index.html"
DOC_BYTES = 612  # the size of nginx's own welcome page
CPU_TARGET = 0.5  # cores

WATCH_READY_TIMEOUT = 20.0  # the watcher prints "sockscope: watching ..." when it is ready
WATCH_STOP_TIMEOUT = 30.0  # after SIGINT
SETTLE = 3.0  # after the load: the tracepoint's confirm/close grace is 2 s past a 1 s poll
# Idle: less than this share of a core over IDLE_WINDOW (its 1 s polls of the TIME_WAIT
# sockets a run leaves behind are not free).
IDLE_CPU = 0.35
IDLE_WINDOW = 1.0
DRAIN_MAX = 30.0  # a watcher still busy this long after the load is stopped anyway
SAMPLE_EVERY = 0.1
NGINX_TIMEOUT = 10.0
LOAD_TIMEOUT = 180.0
NETNS_ENV = "SOCKSCOPE_BENCH_NETNS"  # set inside the private namespace run_in_netns made
SWEEP_MISSES = 2  # a source set's sweep stops after missing at this many rates in a row


# --------------------------------------------------------------------------- source sets


@dataclass(frozen=True)
class SourceSet:
    """One way to run the watcher, and what it must see."""

    key: str
    label: str
    args: tuple[str, ...]
    needs_root: bool
    opens: bool  # must see every connection open (and attribute it)
    judged: bool  # False: shown for contrast only


SOURCE_SETS = {
    s.key: s
    for s in (
        SourceSet(
            "trace",
            "trace + destroy + poll (auto, root)",
            ("--source", "trace,destroy"),
            needs_root=True,
            opens=True,
            judged=True,
        ),
        SourceSet(
            "destroy",
            "destroy + poll (no tracepoint)",
            ("--source", "poll,destroy"),
            needs_root=False,
            opens=False,
            judged=True,
        ),
        SourceSet(
            "poll1s",
            "poll every 1s (as TCPView)",
            ("--source", "poll", "--interval", "1s"),
            needs_root=False,
            opens=False,
            judged=False,
        ),
    )
}


# --------------------------------------------------------------------------- nginx


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or in the sbin directories a non-root PATH may lack."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


NGINX_CONF = """\
{user}worker_processes 2;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    log_format bench '$remote_addr $remote_port $status';
    access_log {tmp}/access.log bench;
    keepalive_timeout 0;
    client_body_temp_path {tmp}/tmp/body;
    proxy_temp_path {tmp}/tmp/proxy;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        root {tmp}/www;
    }}
}}
"""


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class Nginx:
    """nginx in the foreground with a private config and prefix under ``tmp``."""

    def __init__(self, binary: str, tmp: Path, port: int) -> None:
        self.binary, self.tmp, self.port = binary, tmp, port
        self.access_log = tmp / "access.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Workers run as an unprivileged user when nginx starts as root: they must be able
        # to read the document root.
        self.tmp.chmod(0o755)
        (self.tmp / "www").mkdir(mode=0o755)
        (self.tmp / "tmp").mkdir(mode=0o755)
        (self.tmp / "www" / DOC.lstrip("/")).write_text("x" * (DOC_BYTES - 1) + "\n")
        user = ""
        if os.geteuid() == 0:
            group = "nogroup" if _group_exists("nogroup") else "nobody"
            user = f"user nobody {group};\n"
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=self.tmp, host=HOST, port=self.port))
        out = (self.tmp / "nginx.out").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-p", f"{self.tmp}/", "-c", str(conf), "-e", str(self.tmp / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a stray worker can be killed with it
        )
        out.close()
        deadline = time.monotonic() + NGINX_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"nginx exited {self.proc.returncode}: {self.errors()}")
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect((HOST, self.port))
                return
            time.sleep(0.05)
        raise StartError(f"nginx did not listen on {HOST}:{self.port}: {self.errors()}")

    def errors(self) -> str:
        text = ""
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.tmp / name).read_text(errors="replace")
        return " | ".join(ln for ln in text.splitlines()[-5:] if ln.strip())

    def offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def logged_since(self, offset: int) -> Counter[tuple[str, int]]:
        """(client address, client port) of every request logged after ``offset``."""
        seen: Counter[tuple[str, int]] = Counter()
        with self.access_log.open("rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                words = line.split()
                if len(words) >= 2 and words[1].isdigit():
                    seen[(words[0], int(words[1]))] += 1
        return seen

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then SIGKILL to the whole group; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(NGINX_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers outliving their master, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(NGINX_TIMEOUT)


def _group_exists(name: str) -> bool:
    import grp  # noqa: PLC0415 - Unix only, used once

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# --------------------------------------------------------------------------- load


@dataclass
class Load:
    """What one load generator did."""

    label: str
    client_addr: str
    client_name: str  # the process name its connections should be attributed to
    requests: int
    target_rate: float | None = None  # paced client only
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0  # wall time around the generator, as measured here
    rate: float = 0.0  # achieved connections per second
    detail: str = ""


def run_ab(ab: str, url: str, n: int, c: int, bind: str | None) -> Load:
    """``ab -n N -c C URL``; with ``bind``, ``-B bind`` (bind() picks random ports)."""
    label = f"ab -n {n} -c {c}" + (f" -B {bind}" if bind else "")
    load = Load(label, bind or HOST, "ab", n)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [ab, "-q", "-S", "-n", str(n), "-c", str(c), *(["-B", bind] if bind else []), url],
            capture_output=True,
            text=True,
            timeout=LOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        load.seconds, load.detail = time.monotonic() - t0, f"ab timed out after {LOAD_TIMEOUT}s"
        return load
    load.seconds = time.monotonic() - t0

    def number(label: str) -> float | None:
        m = re.search(rf"^{label}:\s+([\d.]+)", proc.stdout, re.M)
        return float(m.group(1)) if m else None

    complete, failed, rps = (
        number("Complete requests"),
        number("Failed requests"),
        number("Requests per second"),
    )
    load.failed = int(failed or 0)
    load.ok = int(complete or 0) - load.failed
    load.rate = rps if rps is not None else (load.ok / load.seconds if load.seconds else 0.0)
    if proc.returncode != 0 or complete is None:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        load.detail = f"ab exit {proc.returncode}: {err[:160]}"
    return load


def run_paced(port: int, n: int, rate: float, addr: str) -> Load:
    """The paced client of this file in a child interpreter (see ``client_main``)."""
    load = Load(f"paced {rate:g}/s", addr, "?", n, target_rate=rate)
    argv = [sys.executable, __file__, "--client", addr, str(port), str(n), str(rate)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=n / rate + LOAD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        load.seconds, load.detail = time.monotonic() - t0, "paced client timed out"
        return load
    load.seconds = time.monotonic() - t0
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        load.detail = f"paced client exit {proc.returncode}: {proc.stderr.strip()[-160:]}"
        return load
    load.ok, load.failed, load.client_name = out["ok"], out["failed"], out["comm"]
    load.rate = out["ok"] / out["seconds"] if out["seconds"] else 0.0
    if out.get("error"):
        load.detail = f"first error: {out['error']}"
    return load


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CLIENT_THREADS = 16


def client_main(addr: str, port: int, n: int, rate: float) -> int:
    """Open ``n`` connections from ``addr`` to HOST:port, connection i at t0 + i/rate.

    Each does one HTTP/1.0 GET and reads until nginx closes.  Threads take the next
    connection from a shared counter and sleep until its time, so the rate holds as long
    as the machine keeps up; the achieved rate is reported.  Prints one JSON line.
    """
    request = f"GET {DOC} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode()
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0}
    errors: list[str] = []
    t0 = time.monotonic() + 0.05

    def one() -> bool:
        with socket.socket() as s:
            # Take the port at connect(), as connect() alone would, not at bind().
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((addr, 0))
            s.settimeout(10.0)
            s.connect((HOST, port))
            s.sendall(request)
            head = s.recv(65536)
            while s.recv(65536):
                pass
        return head.startswith(b"HTTP/1.1 200")

    def worker() -> None:
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= n:
                return
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                good = one()
            except OSError as exc:
                good = False
                errors.append(f"{type(exc).__name__}: {exc}")
            with lock:
                state["ok" if good else "failed"] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    comm = Path("/proc/self/comm").read_text().strip()
    print(
        json.dumps(
            {
                "ok": state["ok"],
                "failed": state["failed"],
                "seconds": seconds,
                "comm": comm,
                "error": errors[0] if errors else "",
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- the watcher

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float] | None:
    """(utime, stime) of ``pid`` in seconds (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14 and 15 of stat


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None once it is gone)."""
    split = cpu_split(pid)
    return None if split is None else split[0] + split[1]


def time_wait_sockets() -> int:
    """The kernel's count of TCP sockets in TIME_WAIT (host-wide, /proc/net/sockstat)."""
    with contextlib.suppress(OSError, ValueError):
        m = re.search(r"^TCP:.*\btw (\d+)", Path("/proc/net/sockstat").read_text(), re.M)
        return int(m.group(1)) if m else 0
    return 0


def host_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat): others' load, when idle."""

    def sample() -> tuple[int, int]:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def host_cpu_seconds() -> float:
    """CPU time all processes spent since boot: user + nice + system of /proc/stat.

    Interrupt and softirq time (the loopback traffic's, largely) is left out, as it is
    from every process's utime + stime.
    """
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:3]) / CLK_TCK


def own_cpu_seconds(nginx_pid: int | None) -> float:
    """CPU time of this process, its reaped children (watchers, ab, clients) and nginx."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    if nginx_pid is None:
        return total
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(stat.parent.name) == nginx_pid or int(fields[1]) == nginx_pid:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


class StartError(RuntimeError):
    """The watcher (or nginx) did not start: nothing can be measured."""


class Watcher:
    """``sockscope watch --jsonl`` as a child, its events and summary in files.

    A thread samples its CPU time and the size of its output every ``SAMPLE_EVERY``
    seconds, to tell when it caught up with the load and what that cost.
    """

    def __init__(self, sockscope: str, sources: SourceSet, port: int, tmp: Path) -> None:
        self.argv = [sockscope, "watch", "--jsonl", "-t", *sources.args, f"port == {port}"]
        n = len(list(tmp.glob("watch-*.err"))) + 1
        self.events = tmp / f"watch-{n:02}-{sources.key}.jsonl"
        self.log = tmp / f"watch-{n:02}-{sources.key}.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.active = ""
        self.killed = False
        self.returncode: int | None = None
        self.kernel_share: float | None = None  # of its CPU time, up to its stop
        self.samples: list[tuple[float, float, int]] = []  # (monotonic, cpu s, output bytes)
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        with self.events.open("wb") as out, self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # a Ctrl-C on the terminal is ours to forward
            )
        deadline = time.monotonic() + WATCH_READY_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"^sockscope: watching.* with (.+?) \(", self.stderr(), re.M)
            if m:
                self.active = m.group(1)
                self._sampler.start()
                return
            if self.proc.poll() is not None:
                raise StartError(f"watcher exited {self.proc.returncode}: {self.stderr()[-600:]}")
            time.sleep(0.02)
        raise StartError(f"watcher not ready after {WATCH_READY_TIMEOUT}s: {self.stderr()}")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def size(self) -> int:
        try:
            return self.events.stat().st_size
        except FileNotFoundError:
            return 0

    def cpu(self) -> float | None:
        proc = self.proc
        return cpu_seconds(proc.pid) if proc is not None else None

    def _sample(self) -> None:
        while not self._stop_sampling.wait(SAMPLE_EVERY):
            cpu = self.cpu()
            if cpu is None:
                return
            self.samples.append((time.monotonic(), cpu, self.size()))

    def wait_idle(self, settle: float, load_end: float) -> None:
        """Sleep ``settle``, then until its CPU use drops (a backlog keeps it at 100%).

        Not until its output stops growing: a poll keeps reporting earlier runs'
        TIME_WAIT sockets as they expire.
        """
        time.sleep(settle)
        cpu = self.cpu()
        while cpu is not None and time.monotonic() - load_end < DRAIN_MAX:
            time.sleep(IDLE_WINDOW)
            now = self.cpu()
            if now is None or now - cpu < IDLE_CPU * IDLE_WINDOW:
                return
            cpu = now

    def caught_up(self, load_end: float, needed: int) -> tuple[float, float] | None:
        """(when, cpu seconds) at the first sample after ``load_end`` whose output had
        ``needed`` bytes; the last sample if none had (the output ended at the stop)."""
        later = [s for s in self.samples if s[0] >= load_end]
        for when, cpu, size in later:
            if size >= needed:
                return when, cpu
        return (later[-1][0], later[-1][1]) if later else None

    def stop(self) -> None:
        """SIGINT (a clean stop with a summary), SIGKILL if it hangs; safe to call twice."""
        self._stop_sampling.set()
        if self._sampler.is_alive():
            self._sampler.join()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        split = cpu_split(proc.pid)
        if split is not None and sum(split) > 0:
            self.kernel_share = split[1] / sum(split)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(WATCH_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode

    def summary(self) -> dict[str, str]:
        """The ``# key: value`` lines it printed on stderr when it stopped."""
        out = {}
        for line in self.stderr().splitlines():
            if line.startswith("# ") and ":" in line:
                key, _, value = line[2:].partition(":")
                out[key.strip()] = value.strip()
        return out


# --------------------------------------------------------------------------- one run


@dataclass
class Side:
    """One end of nginx's connections: how many of them had each event."""

    opened: int = 0
    closed: int = 0
    attributed: int = 0  # opened (when required) and closed attributed to the right process
    wrong: Counter[str] = field(default_factory=Counter)  # other processes named, by name
    unattributed: int = 0  # opened/closed events naming no process
    on_reused: int = 0  # of those two kinds, on a 4-tuple the run used more than once
    duplicates: int = 0  # closed events beyond one per logged connection


@dataclass
class Run:
    sources: str
    label: str
    load: Load
    active: str = ""
    time_wait: int = 0  # TIME_WAIT sockets on the host when the run started
    logged: int = 0  # requests in nginx's access log
    server: Side = field(default_factory=Side)
    client: Side = field(default_factory=Side)
    extra: int = 0  # server ends closed that nginx never logged (ab's spare connections)
    remnants: int = 0  # closed events in TIME_WAIT: earlier runs' sockets expiring
    events: int = 0
    lost: int | None = None
    lost_closes: int | None = None
    foreign: int = 0
    cpu_load: float | None = None  # watcher CPU seconds during the load
    cpu_busy: float | None = None  # from the load's start to the watcher's last event
    caught_up: float | None = None  # seconds after the load's end, its output was complete
    watcher_exit: int | None = None
    kernel_share: float | None = None  # of the watcher's CPU time: system calls, page faults
    error: str = ""

    @property
    def cores(self) -> float | None:
        """Watcher CPU during the load, in cores (capped by what it could get)."""
        if self.cpu_load is None or self.load.seconds <= 0:
            return None
        return self.cpu_load / self.load.seconds

    @property
    def cost(self) -> float | None:
        """Watcher CPU for the load, catch-up included, per second of load: the judged one."""
        if self.cpu_busy is None or self.load.seconds <= 0:
            return None
        return self.cpu_busy / self.load.seconds

    def share(self, n: int) -> float | None:
        return n / self.logged if self.logged else None

    def misses(self, spec: SourceSet) -> list[str]:
        """What this run missed against its targets (empty: complete)."""
        if self.error or not self.logged:
            return ["no result"]
        wanted = {"srv closed": self.server.closed, "cli closed": self.client.closed}
        if spec.opens:
            wanted |= {
                "srv opened": self.server.opened,
                "srv nginx": self.server.attributed,
                "cli opened": self.client.opened,
                "cli process": self.client.attributed,
            }
        out = [name for name, n in wanted.items() if n < self.logged]
        if self.lost != 0:
            out.append("lost")
        if self.watcher_exit != 0:
            out.append(f"exit {self.watcher_exit}")
        return out

    def verdict(self, spec: SourceSet, judge_cpu: bool) -> str:
        if self.error:
            return "error"
        if not spec.judged:
            return "ref"
        missed = self.misses(spec)
        if judge_cpu and (self.cost is None or self.cost >= CPU_TARGET):
            missed.append("cpu")
        return "PASS" if not missed else "FAIL (" + ", ".join(missed) + ")"


def measure(
    sockscope: str,
    spec: SourceSet,
    nginx: Nginx,
    tmp: Path,
    load_fn: Callable[[], Load],
    settle: float,
    keep: bool = False,
) -> Run:
    """One watcher, one load, everything counted; ``keep``: leave its events on disk.

    Raises StartError when the watcher does not start.
    """
    offset = nginx.offset()
    watcher = Watcher(sockscope, spec, nginx.port, tmp)
    run = Run(spec.key, spec.label, Load("", "", "", 0), time_wait=time_wait_sockets())
    cpu0 = cpu1 = None
    load_end = 0.0
    try:
        watcher.start()
        run.active = watcher.active
        cpu0 = watcher.cpu()
        run.load = load_fn()
        load_end, cpu1 = time.monotonic(), watcher.cpu()
        watcher.wait_idle(settle, load_end)
    finally:
        watcher.stop()
    run.watcher_exit = watcher.returncode
    run.kernel_share = watcher.kernel_share
    if watcher.killed:
        run.error = run.error or f"watcher ignored SIGINT for {WATCH_STOP_TIMEOUT}s: killed"
    logged = nginx.logged_since(offset)
    run.logged = sum(logged.values())
    needed = count_events(run, watcher.events, logged, nginx.port, spec.opens)
    if cpu0 is not None and cpu1 is not None:
        run.cpu_load = cpu1 - cpu0
        done = watcher.caught_up(load_end, needed)
        if done is not None:
            run.caught_up, run.cpu_busy = done[0] - load_end, max(cpu1, done[1]) - cpu0
    summary = watcher.summary()
    run.lost = _int(summary.get("lost events"))
    run.lost_closes = _int(summary.get("closes found only by a dump"))
    run.foreign = _int(summary.get("tracepoint records of other namespaces left out")) or 0
    if not summary and not run.error:
        run.error = f"no summary from the watcher: {watcher.stderr()[-200:]!r}"
    if not keep:
        with contextlib.suppress(OSError):
            watcher.events.unlink()  # up to ~100 MB per run; the counts are kept
    return run


def _int(text: str | None) -> int | None:
    m = re.match(r"\d+", text or "")
    return int(m.group()) if m else None


def count_events(run: Run, path: Path, logged: Counter[tuple[str, int]], port: int, opens: bool) -> int:
    """Match the watcher's events to nginx's log by the client's (address, port).

    A client port can repeat within a run (the kernel reuses it once the earlier
    connection is gone), so counts are matched per key: min(logged, seen).  A poll's
    ``closed`` event in TIME_WAIT is an earlier run's socket expiring, never one of this
    run's (TIME_WAIT lasts 60 s): it is counted apart.  A destroy broadcast can say
    TIME_WAIT too (a dump saw the TIME_WAIT socket before the full socket it replaces was
    freed); that one is this run's close and counts.

    Returns where in the file the last event about this run's connections ends.
    """
    names = {"srv": "nginx", "cli": run.load.client_name}
    # (side, event, named the right process) -> client (address, port) -> events
    seen: dict[tuple[str, str, bool], Counter[tuple[str, int]]] = {}
    sides = {"srv": run.server, "cli": run.client}
    extra = remnants = offset = last = 0
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            run.events += 1
            kind = ev.get("event")
            if ev.get("local_port") == port and ev.get("local_address") == HOST:
                side, key = "srv", (ev.get("remote_address"), ev.get("remote_port"))
            elif ev.get("remote_port") == port and ev.get("remote_address") == HOST:
                side, key = "cli", (ev.get("local_address"), ev.get("local_port"))
            else:
                continue
            if kind == "closed" and ev.get("state") == "TIME_WAIT" and ev.get("source") == "poll":
                remnants += 1
                continue
            if key not in logged:
                extra += side == "srv" and kind == "closed"
                continue
            last = offset  # the end of the last event about this run's connections
            if kind not in ("opened", "closed"):
                continue
            process = ev.get("process")
            right = process == names[side]
            seen.setdefault((side, kind, False), Counter())[key] += 1
            if right:
                seen.setdefault((side, kind, True), Counter())[key] += 1
            else:
                if process is None:
                    sides[side].unattributed += 1
                else:
                    sides[side].wrong[str(process)] += 1
                sides[side].on_reused += logged[key] > 1

    def matched(*wanted: tuple[str, str, bool]) -> int:
        counts = [seen.get(w, Counter()) for w in wanted]
        return sum(min(n, *(c[k] for c in counts)) for k, n in logged.items())

    for side, out in sides.items():
        out.opened = matched((side, "opened", False))
        out.closed = matched((side, "closed", False))
        named = [(side, "closed", True)]
        if opens:
            named.append((side, "opened", True))
        out.attributed = matched(*named)
        closes = seen.get((side, "closed", False), Counter())
        out.duplicates = sum(max(0, closes[k] - n) for k, n in logged.items())
    run.extra, run.remnants = extra, remnants
    return last


# --------------------------------------------------------------------------- report


def _pct(run: Run, n: int) -> str:
    s = run.share(n)
    if s is None:
        return "-"
    text = f"{100 * s:.2f}%" if 0.995 <= s < 1 else f"{100 * s:.1f}%" if s < 1 else "100%"
    return text if n == run.logged else f"{text} ({n:,})"


def _num(x: float | None, fmt: str = ".2f", unit: str = "") -> str:
    return f"{x:{fmt}}{unit}" if x is not None else "-"


def _lost(run: Run) -> str:
    return str(run.lost) if run.lost is not None else "-"


def render_runs(runs: list[Run], sweep: bool) -> str:
    load = "target rate" if sweep else "load"
    rate = "achieved (conn/s)" if sweep else "rate (conn/s)"
    out = [
        f"| sources | {load} | TIME_WAIT at start | conns (nginx log) | {rate} | srv opened "
        "| srv closed | srv nginx | cli opened | cli closed | cli process | lost "
        "| CPU during load (cores) | CPU per s of load | caught up | result |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        spec = SOURCE_SETS[r.sources]
        if sweep:
            missed = r.misses(spec)
            verdict = "ref" if not spec.judged else "missed: " + ", ".join(missed) if missed else ""
            verdict = verdict or "complete"
        else:
            verdict = r.verdict(spec, judge_cpu=True)
        if verdict.startswith(("PASS", "FAIL", "missed")):
            verdict = f"**{verdict}**"
        what = f"{r.load.target_rate:g}/s" if sweep and r.load.target_rate else r.load.label
        what = what if sweep else f"`{what}`"
        out.append(
            f"| {r.label} | {what} | {r.time_wait:,} | {r.logged:,} | {r.load.rate:,.0f} "
            f"| {_pct(r, r.server.opened)} | {_pct(r, r.server.closed)} "
            f"| {_pct(r, r.server.attributed)} | {_pct(r, r.client.opened)} "
            f"| {_pct(r, r.client.closed)} | {_pct(r, r.client.attributed)} "
            f"| {_lost(r)} | {_num(r.cores)} | {_num(r.cost)} | {_num(r.caught_up, '.1f', ' s')} "
            f"| {verdict} |"
        )
    return "\n".join(out)


def notes(runs: list[Run]) -> list[str]:
    out = []
    for r in runs:
        where = f"{r.label}, `{r.load.label}`"
        judged = SOURCE_SETS[r.sources].opens  # both ends' processes are known and judged
        if r.error:
            out.append(f"- {where}: error: `{r.error}`")
        if r.load.detail:
            out.append(f"- {where}: load: `{r.load.detail}`")
        if r.load.failed:
            out.append(f"- {where}: {r.load.failed} requests failed")
        if r.load.ok and r.logged != r.load.ok:
            out.append(f"- {where}: client counted {r.load.ok:,} requests, nginx {r.logged:,}")
        for side, name in ((r.server, "server"), (r.client, "client")):
            if side.wrong and judged:
                names = ", ".join(f"{k} x{v}" for k, v in side.wrong.most_common())
                out.append(f"- {where}: {name}-end events naming another process: {names}")
            astray = side.unattributed + side.wrong.total()
            if astray and judged:
                out.append(
                    f"- {where}: {astray:,} {name}-end `opened`/`closed` events name no process "
                    f"or another one; {side.on_reused:,} of them are on a 4-tuple the run used "
                    "more than once"
                )
            if side.duplicates:
                out.append(
                    f"- {where}: {side.duplicates:,} {name}-end `closed` events more than one per connection"
                )
        if r.foreign:
            out.append(f"- {where}: {r.foreign:,} tracepoint records left out as other namespaces'")
        if r.lost_closes:
            out.append(f"- {where}: closes found only by a dump: {r.lost_closes:,}")
        if r.remnants:
            out.append(
                f"- {where}: {r.remnants:,} `closed` events in TIME_WAIT (earlier runs' "
                "sockets expiring) not counted"
            )
        if r.extra:
            out.append(
                f"- {where}: {r.extra:,} more server ends closed without a request (not in "
                "nginx's log; ab opens a few spare connections)"
            )
        if r.watcher_exit not in (0, None):
            out.append(f"- {where}: watcher exit status {r.watcher_exit}")
    return out


def lossless(runs: list[Run]) -> dict[str, tuple[float, float | None]]:
    """Per source set: the highest achieved rate with nothing missed, the lowest with a miss."""
    best: dict[str, tuple[float, float | None]] = {}
    for key, spec in SOURCE_SETS.items():
        mine = [r for r in runs if r.sources == key and not r.error and spec.judged]
        if not mine:
            continue
        good = [r.load.rate for r in mine if not r.misses(spec)]
        bad = [r.load.rate for r in mine if r.misses(spec)]
        best[key] = (max(good, default=0.0), min(bad, default=None))
    return best


def within_cpu(runs: list[Run]) -> dict[str, float]:
    """Per source set: the highest achieved rate with nothing missed and under CPU_TARGET."""
    best: dict[str, float] = {}
    for key, spec in SOURCE_SETS.items():
        mine = [r for r in runs if r.sources == key and not r.error and spec.judged]
        ok = [r.load.rate for r in mine if not r.misses(spec) and r.cost is not None and r.cost < CPU_TARGET]
        if mine:
            best[key] = max(ok, default=0.0)
    return best


def repeated(runs: list[Run]) -> list[str]:
    """Per source set of the ab runs: how many were complete, the median CPU and range."""
    out = []
    for key, spec in SOURCE_SETS.items():
        mine = [r for r in runs if r.sources == key and not r.error]
        if len(mine) < 2 or not spec.judged:
            continue
        complete = sum(not r.misses(spec) for r in mine)
        costs = sorted(r.cost for r in mine if r.cost is not None)
        cores = sorted(r.cores for r in mine if r.cores is not None)
        rates = sorted(r.load.rate for r in mine)
        kernel = sorted(r.kernel_share for r in mine if r.kernel_share is not None)
        if not costs or not cores:
            continue
        out.append(
            f"- {spec.label}: {complete} of {len(mine)} runs complete; CPU per s of load "
            f"{statistics.median(costs):.2f} (range {costs[0]:.2f}-{costs[-1]:.2f}), during "
            f"load {statistics.median(cores):.2f} ({cores[0]:.2f}-{cores[-1]:.2f}) cores, at "
            f"{rates[0]:,.0f}-{rates[-1]:,.0f} conn/s"
            + (f"; kernel time {kernel[0]:.0%}-{kernel[-1]:.0%} of the watcher's CPU" if kernel else "")
        )
    return out


def render(main_runs: list[Run], sweep: list[Run], skipped: list[str]) -> str:
    parts = [render_runs(main_runs, sweep=False)] if main_runs else []
    summary = repeated(main_runs)
    if summary:
        parts += ["", "The ab runs in short (median and range):", "", *summary]
    if sweep:
        parts += ["", "Rate sweep (paced client, one connection per request, run first):", ""]
        parts.append(render_runs(sweep, sweep=True))
    # A short ab burst fits in the watcher's buffers; only the paced runs hold a rate.
    best = lossless(sweep or main_runs)
    if best:
        held = "held for the whole sweep step" if sweep else "ab's burst"
        parts += ["", f"Highest connection rate with nothing missed ({held}):", ""]
        for key, (rate, first_bad) in best.items():
            bad = f"; missed at {first_bad:,.0f} conn/s" if first_bad is not None else ""
            parts.append(f"- {SOURCE_SETS[key].label}: {rate:,.0f} conn/s{bad}")
        cheap = within_cpu(sweep or main_runs)
        parts += [
            "",
            f"Highest connection rate with nothing missed and under {CPU_TARGET} core "
            f"(CPU per s of load) ({held}):",
            "",
        ]
        parts += [f"- {SOURCE_SETS[key].label}: {rate:,.0f} conn/s" for key, rate in cheap.items()]
    found = notes(main_runs + sweep) + [f"- skipped: {s}" for s in skipped]
    if found:
        parts += ["", "Notes:", "", *dict.fromkeys(found)]
    return "\n".join(parts)


def environment(sockscope: str, nginx: str, ab: str, rev: str | None, commit: str | None) -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else ""

    def out(argv: list[str]) -> str:
        p = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (p.stdout + p.stderr).strip() if p.returncode == 0 else ""

    if rev is not None:
        shown = f"`{rev}` = commit {commit}, its src/ exported with git archive (not the working tree)"
    else:
        head = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = out(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
        path = sockscope
        with contextlib.suppress(ValueError):
            path = str(Path(sockscope).relative_to(REPO))
        changes = " + uncommitted changes in src/" if dirty else ""
        shown = f"{path} (commit {head or 'none yet'}{changes})"
    ab_version = out([ab, "-V"]).splitlines()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "python": platform.python_version(),
        "nginx": out([nginx, "-v"]).removeprefix("nginx version: "),
        "ab": ab_version[0] if ab_version else "?",
        "user": "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (no tracepoint)",
        "network namespace": (
            f"private ({os.environ[NETNS_ENV]}), made for the run; nginx, clients, watchers in it"
            if NETNS_ENV in os.environ
            else "the host's, shared with everything else on it"
        ),
        "sockscope": shown,
    }


def write_results(command: str, env: dict[str, str], table: str, port: int) -> None:
    section = "\n".join(
        [
            *section_head(BEGIN, "`sockscope watch` vs nginx's access log", command, env),
            f"nginx (2 workers, `keepalive_timeout 0`) on {HOST}:{port}: every request is one",
            f"connection.  Each run starts `sockscope watch --jsonl -t 'port == {port}'` with the",
            "sources shown, drives the load, waits until the watcher is idle (< 0.35 core)",
            "and stops it with SIGINT.  Shares are of the connections in nginx's access log",
            "for that run, matched by client address and port: `srv` is the server end (local",
            f"port {port}), `cli` the client end.  `srv nginx`: the server end's `closed` event",
            "(and, with the tracepoint, its `opened` event) names nginx; `cli process`: the",
            "client end's events name the client (ab, or the paced client's python).  `lost` is",
            "the watcher's own count (`# lost events`).  CPU is the watcher's utime + stime over",
            "the wall time of the load: *during load* up to the load's end, *per s of load* up",
            "to its last event about the run's connections (catch-up included; the judged",
            "one); *caught up*: when that event was written, after the load's end.",
            "`TIME_WAIT at start`: sockets the run inherited from earlier runs (every poll",
            "dumps them).  Targets: with the tracepoint every connection opened and closed on",
            f"both ends and attributed; without it every close; `lost` 0; under {CPU_TARGET} core.  The",
            "1-second poll is for contrast only.  The sweep ran first.",
            "",
            table,
            END,
        ]
    )
    replace_section(BEGIN, END, section, RESULTS)


# --------------------------------------------------------------------------- main


def _csv(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="nginx port (18080)")
    parser.add_argument("--requests", type=int, default=20_000, help="ab -n (20000)")
    parser.add_argument("--concurrency", type=int, default=50, help="ab -c (50)")
    parser.add_argument("--repeat", type=int, default=3, help="ab runs per source set, taking turns (3)")
    parser.add_argument(
        "--sources",
        default=",".join(SOURCE_SETS),
        help=f"source sets to run, comma-separated ({','.join(SOURCE_SETS)})",
    )
    parser.add_argument(
        "--rates",
        default="250,500,1000,1500,2000,3000,4000,6000,8000",
        help="paced-client rates for the sweep, conn/s (250,...,8000); '' for none",
    )
    parser.add_argument(
        "--ab-bind",
        action="store_true",
        help="ab -B 127.B.R.1 (a fresh source address per run): bind() picks random source "
        "ports, so a 4-tuple can repeat within milliseconds",
    )
    parser.add_argument(
        "--sweep-sources",
        default="trace,destroy",
        help="source sets the sweep runs (trace,destroy)",
    )
    parser.add_argument(
        "--sweep-seconds",
        type=float,
        default=5.0,
        help="each sweep step lasts about this long: rate x seconds connections (5)",
    )
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help="seconds after the load before stopping (3)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="skip the remaining sweep steps once this many seconds have passed (240)",
    )
    parser.add_argument(
        "--sockscope",
        default=str(DEFAULT_SOCKSCOPE),
        help="sockscope executable (default: the venv's)",
    )
    parser.add_argument(
        "--rev",
        metavar="REV",
        help="measure git revision REV (its src/, exported with git archive) instead of the "
        "working tree, e.g. HEAD while others are editing src/",
    )
    parser.add_argument(
        "--no-netns",
        action="store_true",
        help="as root, run in this network namespace instead of a private one",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (nginx's log, every watcher's events) and say where",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="replace the bench_watch section of bench/RESULTS.md",
    )
    parser.add_argument("--json", type=Path, help="also dump raw results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--client", nargs=4, metavar=("ADDR", "PORT", "N", "RATE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        addr, port, n, rate = args.client
        return client_main(addr, int(port), int(n), float(rate))
    nginx_bin, ab = find_tool("nginx"), find_tool("ab")
    missing = [name for name, path in (("nginx", nginx_bin), ("ab", ab)) if path is None]
    if missing or nginx_bin is None or ab is None:
        print(
            f"bench_watch: {' and '.join(missing)} not found; install with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    for key in _csv(args.sources) + _csv(args.sweep_sources):
        if key not in SOURCE_SETS:
            print(f"bench_watch: unknown source set {key!r}", file=sys.stderr)
            return 2
    # SIGTERM unwinds like an error, so nginx, the watcher and the namespace are cleaned up.
    # SIGINT gets Python's handler even if it was ignored (a shell's `cmd &` ignores it),
    # because every child inherits an ignored SIGINT, and a watcher would not stop on it.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.geteuid() == 0 and not args.no_netns and NETNS_ENV not in os.environ:
        ip = find_tool("ip")
        if ip is not None:
            return run_in_netns(ip, sys.argv[1:] if argv is None else argv)
        print("bench_watch: no `ip` (iproute2): running in this namespace", file=sys.stderr)
    if not port_free(args.port):
        print(f"bench_watch: {HOST}:{args.port} is in use; choose --port", file=sys.stderr)
        return 2
    sockscope = str(Path(args.sockscope).absolute())
    if not os.access(sockscope, os.X_OK):
        print(f"bench_watch: {sockscope} is not executable", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-watch-"))
    nginx = Nginx(nginx_bin, tmp, args.port)
    try:
        if args.rev is not None:
            sockscope, args.commit = export_rev(args.rev, sockscope, tmp)
        nginx.start()
        return run(args, argv, sockscope, nginx, nginx_bin, ab, tmp)
    except StartError as exc:
        print(f"bench_watch: {exc}", file=sys.stderr)
        return 1
    finally:
        nginx.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def export_rev(rev: str, sockscope: str, tmp: Path) -> tuple[str, str]:
    """src/ of git revision ``rev`` under ``tmp``: (a launcher running it, its commit).

    The launcher uses the interpreter next to ``sockscope`` (sockscope needs only the
    standard library), so a working tree in the middle of an edit is never measured.
    """
    # Resolve first: HEAD may move while the benchmark runs.
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--short", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not commit:
        raise StartError(f"git rev-parse {rev}: not a commit")
    proc = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StartError(f"git archive {rev}: {proc.stderr.decode(errors='replace').strip()}")
    dest = tmp / "rev"
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    python = Path(sockscope).parent / "python"
    launcher = dest / "sockscope"
    launcher.write_text(
        f"#!{python if python.exists() else sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(dest / 'src')!r})\n"
        "from sockscope.cli.main import entry_point\n"
        "sys.exit(entry_point())\n"
    )
    launcher.chmod(0o755)
    return str(launcher), commit


def run_in_netns(ip: str, argv: list[str]) -> int:
    """Run this benchmark again inside a private network namespace, then delete it.

    nginx, the clients and the watchers then share a loopback, a TIME_WAIT table and a
    destroy multicast group with nothing else on the host: another program's sockets
    (a test suite, a connection holder tearing down 60k sockets) cannot overrun the
    watcher's buffer or fill its dumps.  The tracepoint stays host-wide: the watcher
    leaves out other namespaces' records, at its own cost, as in production.
    """
    name = f"sockscope-bench-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    child: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        env = os.environ | {NETNS_ENV: name}
        child = subprocess.Popen([ip, "netns", "exec", name, sys.executable, __file__, *argv], env=env)
        return child.wait()
    finally:
        if child is not None and child.poll() is None:
            child.terminate()  # it stops nginx and its watcher on SIGTERM
            try:
                child.wait(WATCH_STOP_TIMEOUT + NGINX_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        subprocess.run([ip, "netns", "del", name], check=False)


def client_addresses() -> Iterator[str]:
    """A fresh loopback source address per run: 127.B.R.1, B random per invocation."""
    b = random.randrange(64, 250)
    for r in range(1, 250 * 250):
        yield f"127.{b}.{r // 250 + 1}.{r % 250 + 1}"


def run(
    args: argparse.Namespace,
    argv: list[str] | None,
    sockscope: str,
    nginx: Nginx,
    nginx_bin: str,
    ab: str,
    tmp: Path,
) -> int:
    """The sweep, then the ab runs, then the report; main() owns nginx and the temp dir."""
    root = os.geteuid() == 0
    skipped: list[str] = []
    # Every figure here depends on the watcher getting CPU: say how busy the host was, and
    # how much CPU others took during the run (host busy time minus ours, nginx included).
    busy_before = host_busy()
    cpus = os.cpu_count() or 1
    nginx_pid = nginx.proc.pid if nginx.proc is not None else None
    host0, own0 = host_cpu_seconds(), own_cpu_seconds(nginx_pid)
    addrs = client_addresses()
    url = f"http://{HOST}:{args.port}{DOC}"
    started = time.monotonic()

    def usable(keys: list[str]) -> list[str]:
        for key in keys:
            if SOURCE_SETS[key].needs_root and not root:
                skipped.append(f"{SOURCE_SETS[key].label}: needs root")
        return [k for k in keys if root or not SOURCE_SETS[k].needs_root]

    def show(r: Run) -> None:
        spec = SOURCE_SETS[r.sources]
        print(
            f"  {r.sources:8} {r.load.label:18} tw {r.time_wait:<6} [{r.active}] "
            f"logged {r.logged:,} at {r.load.rate:,.0f}/s  srv o/c/nginx {r.server.opened:,}/"
            f"{r.server.closed:,}/{r.server.attributed:,}  cli o/c/{r.load.client_name} "
            f"{r.client.opened:,}/{r.client.closed:,}/{r.client.attributed:,}  lost {_lost(r)}"
            f"  cpu {_num(r.cores)}/{_num(r.cost)}  caught up {_num(r.caught_up, '.1f', 's')}  "
            f"{r.verdict(spec, judge_cpu=True)}" + (f"  error: {r.error}" if r.error else ""),
            flush=True,
        )

    # The sweep first, rates ascending and the source sets interleaved, so each step finds
    # about as many TIME_WAIT sockets on the port (which every poll dumps) as its peers.
    sweep: list[Run] = []
    rates = sorted(float(x) for x in _csv(args.rates))
    active = usable(_csv(args.sweep_sources)) if rates else []
    if active:
        print(f"## rate sweep: {', '.join(f'{x:g}' for x in rates)} conn/s", flush=True)
    misses_in_a_row = dict.fromkeys(active, 0)
    for rate in rates:
        for key in [k for k in active if k in misses_in_a_row]:
            if time.monotonic() - started > args.budget:
                skipped.append(f"sweep at {rate:g}/s and up: over the {args.budget:.0f}s budget")
                break
            n = max(500, int(rate * args.sweep_seconds))
            r = measure(
                sockscope,
                SOURCE_SETS[key],
                nginx,
                tmp,
                functools.partial(run_paced, args.port, n, rate, next(addrs)),
                args.settle,
                args.keep,
            )
            sweep.append(r)
            show(r)
            misses_in_a_row[key] = misses_in_a_row[key] + 1 if r.misses(SOURCE_SETS[key]) else 0
            if r.load.rate < 0.8 * rate:
                # The client (or the machine) cannot go faster: higher targets add nothing.
                skipped.append(f"sweep {key} above {rate:g}/s: the paced client reached {r.load.rate:,.0f}/s")
                del misses_in_a_row[key]
            elif misses_in_a_row[key] >= SWEEP_MISSES:
                skipped.append(f"sweep {key} above {rate:g}/s: missed at {SWEEP_MISSES} rates")
                del misses_in_a_row[key]

    print(f"## ab -n {args.requests} -c {args.concurrency} against {url}", flush=True)
    main_runs: list[Run] = []
    # Repeated, the source sets taking turns: on a shared VM one run's CPU figure can be
    # a third off the next one's; the summary gives the median and the range.
    for key in [k for _ in range(args.repeat) for k in usable(_csv(args.sources))]:
        bind = next(addrs) if args.ab_bind else None
        r = measure(
            sockscope,
            SOURCE_SETS[key],
            nginx,
            tmp,
            functools.partial(run_ab, ab, url, args.requests, args.concurrency, bind),
            args.settle,
            args.keep,
        )
        main_runs.append(r)
        show(r)
    elapsed = time.monotonic() - started
    others = (host_cpu_seconds() - host0) - (own_cpu_seconds(nginx_pid) - own0)

    table = render(main_runs, sweep, list(dict.fromkeys(skipped)))
    env = environment(sockscope, nginx_bin, ab, args.rev, getattr(args, "commit", None))
    env["host CPU busy before the run (others' load)"] = f"{100 * busy_before:.0f}%"
    env["other processes' CPU during the run (all processes' minus this benchmark's)"] = (
        f"{max(0.0, others):.0f} CPU s = {100 * max(0.0, others) / (elapsed * cpus):.0f}% of "
        f"the host ({cpus} CPUs, {elapsed:.0f} s)"
    )
    env["wall time"] = f"{elapsed:.0f}s"
    print()
    print("\n".join(f"- {k}: {v}" for k, v in env.items()))
    print()
    print(table)

    command = command_line("bench/bench_watch.py", argv)
    if args.write_results:
        write_results(command, env, table, args.port)
        print(f"\nwrote {RESULTS}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "env": env,
                    "runs": [asdict(r) for r in main_runs],
                    "sweep": [asdict(r) for r in sweep],
                },
                indent=1,
                default=str,
            )
        )
    missed = any(
        r.verdict(SOURCE_SETS[r.sources], judge_cpu=True).startswith(("FAIL", "error")) for r in main_runs
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # cleaned up on the way out: nginx, watcher, namespace
        print("bench_watch: interrupted", file=sys.stderr)
        sys.exit(130)
