"""Benchmark ``sockscope capture`` against dumpcap, the same traffic for both, in one run.

Three loads, each captured in turn by each capturer (one at a time, so they do not
share the CPU), every capturer writing pcapng to a file on disk:

- bulk: one loopback TCP connection sending 64 KiB writes as fast as it can for
  ``--bulk-seconds`` (loopback packets are up to 64 KiB);
- a UDP sweep: 64-byte datagrams at fixed rates for ``--sweep-seconds`` each, to find
  the highest rate each capturer keeps without a drop;
- churn: nginx (``keepalive_timeout 0``) and ``ab -n 20000 -c 50``, every request one
  connection, captured with the port filter; and with ``--handshakes`` (SYN, FIN and
  RST only, headers only) against dumpcap with the equivalent pcap filter.

The capturers: dumpcap, ``sockscope capture --no-labels``, and ``sockscope capture``
with its process labels (the watch engine running beside it). For each: packets kept,
packets the kernel dropped (the capture socket's own count, PACKET_STATISTICS),
the capturer's CPU (utime + stime of the process, from wait4) per packet kept, and for
sockscope with labels the share of TCP/UDP packets written with a process. The
capturer is stopped with SIGINT half a second after the load ends.

As root (a capture needs CAP_NET_RAW) it runs in a private network namespace made for
it. Needs dumpcap (Debian: tshark), nginx and ab (apache2-utils)::

    flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_capture.py --write-results
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cpu import read_cpu
from harness.stage import HOST, Stage, StageError
from results_file import command_line, replace_section, section_head

BEGIN = "<!-- bench_capture:begin -->"
END = "<!-- bench_capture:end -->"
NETNS_ENV = "SOCKSCOPE_BENCH_CAPTURE_NETNS"
REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
NGINX_PORT, BULK_PORT, UDP_PORT = 18100, 18101, 18102
READY_TIMEOUT = 30.0


class StartError(RuntimeError):
    """A capturer did not start: that run has no figures."""


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or in the sbin directories a non-root PATH may lack."""
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of every thread of ``pid`` (as ``wait4`` reports them at its exit)."""
    cpu = read_cpu(pid)
    return None if cpu is None else cpu.user + cpu.system


DUMPCAP_SETTLE = 0.3  # dumpcap says "Capturing on" a little before it sees packets
AFTER_LOAD = 0.5
HANDSHAKES_PCAP = "tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0"
CAPTURERS = ("dumpcap", "sockscope --no-labels", "sockscope")


@dataclass
class Result:
    """One capture of one load."""

    load: str
    capturer: str
    kept: int = 0
    dropped: int = 0
    cpu: float = 0.0  # seconds
    seconds: float = 0.0  # the load's wall time
    bytes: int = 0
    offered: float = 0.0  # the load's own rate (datagrams or connections a second)
    unlabelled: int | None = None
    error: str = ""

    @property
    def us_per_packet(self) -> float | None:
        return self.cpu / self.kept * 1e6 if self.kept else None

    @property
    def labelled(self) -> str:
        if self.unlabelled is None or not self.kept:
            return "—"
        return f"{100 * (self.kept - self.unlabelled) / self.kept:.1f}%"


class Capturer:
    """One capturer process, started, then stopped with SIGINT; its rusage from wait4."""

    def __init__(self, kind: str, out: Path, pcap_filter: str, ours_filter: list[str]) -> None:
        if kind == "dumpcap":
            cmd = [str(find_tool("dumpcap")), "-q", "-i", "lo", "-w", str(out)]
            if pcap_filter:
                cmd += ["-f", pcap_filter]
            ready = "Capturing on"
        else:
            cmd = [PYTHON, "-m", "sockscope", "capture", "-i", "lo", "-w", str(out), *ours_filter]
            if kind == "sockscope --no-labels":
                cmd.append("--no-labels")
            ready = "sockscope: capturing"
        self.kind, self.out = kind, out
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.err = ""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.err += line
            if ready in line:
                if kind == "dumpcap":
                    time.sleep(DUMPCAP_SETTLE)
                return
        self.proc.kill()
        raise StartError(f"{kind} did not start: {self.err[-400:]}")

    def stop(self) -> tuple[float, str]:
        """SIGINT; (CPU seconds, everything it said)."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.stderr is not None
        rest = [""]
        reader = threading.Thread(target=lambda: rest.__setitem__(0, self.proc.stderr.read()), daemon=True)
        reader.start()
        _, _, usage = os.wait4(self.proc.pid, 0)
        reader.join(10)
        self.proc.returncode = 0
        return usage.ru_utime + usage.ru_stime, self.err + rest[0]


def parse_counts(kind: str, text: str) -> tuple[int, int, int | None]:
    """(kept, dropped by the kernel, unlabelled or None) from a capturer's last words."""
    if kind == "dumpcap":
        m = re.search(r"Packets received/dropped on interface '[^']*': (\d+)/(\d+)", text)
        if not m:
            raise StartError(f"dumpcap said: {text[-300:]}")
        return int(m.group(1)), int(m.group(2)), None
    m = re.search(r"sockscope: (\d+) packets written .*? it dropped (\d+)", text)
    if not m:
        raise StartError(f"sockscope said: {text[-300:]}")
    u = re.search(r"; (\d+) without a process", text)
    unlabelled = None if "no-labels" in kind else int(u.group(1)) if u else 0
    return int(m.group(1)), int(m.group(2)), unlabelled


def capture(
    kind: str, load: str, tmp: Path, run_load, pcap_filter: str = "", ours: list[str] | None = None
) -> Result:
    out = tmp / f"{load.split(maxsplit=1)[0]}-{kind.replace(' ', '')}.pcapng"
    res = Result(load, kind)
    try:
        cap = Capturer(kind, out, pcap_filter, ours or [])
        # CPU from here on: not the start-up (Python's, the first socket dump).
        before = cpu_seconds(cap.proc.pid) or 0.0
        t0 = time.monotonic()
        try:
            res.offered = run_load()
        finally:
            res.seconds = time.monotonic() - t0
            time.sleep(AFTER_LOAD)
            total, said = cap.stop()
            res.cpu = total - before
        res.kept, res.dropped, res.unlabelled = parse_counts(kind, said)
        res.bytes = out.stat().st_size
    except (StartError, OSError) as exc:
        res.error = str(exc)
    finally:
        out.unlink(missing_ok=True)  # gigabytes: one capture's file at a time
    return res


# --------------------------------------------------------------------------- loads


def bulk(seconds: float) -> float:
    """One TCP connection on loopback, 64 KiB writes for ``seconds``; bytes a second."""
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((HOST, BULK_PORT))
    lst.listen()
    cli = socket.create_connection((HOST, BULK_PORT))
    srv, _ = lst.accept()
    got = [0]

    def drain() -> None:
        buf = bytearray(1 << 20)
        while n := srv.recv_into(buf):
            got[0] += n

    reader = threading.Thread(target=drain)
    reader.start()
    chunk = b"x" * (1 << 16)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        cli.sendall(chunk)
    cli.close()
    reader.join()
    srv.close()
    lst.close()
    return got[0] / (time.monotonic() - t0)


def udp(rate: float, seconds: float) -> float:
    """64-byte datagrams to a bound socket at ``rate`` a second, paced each millisecond;
    the rate achieved."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((HOST, UDP_PORT))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect((HOST, UDP_PORT))
    payload = b"u" * 64
    sent = 0
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate) - sent
        for _ in range(due):
            try:
                tx.send(payload)
            except BlockingIOError:
                break
            sent += 1
        if due <= 0:
            time.sleep(0.0005)
        drain(rx)
    tx.close()
    rx.close()
    return sent / (time.monotonic() - t0)


def drain(rx: socket.socket) -> None:
    """Read what the receiver has (its drops would not change what a capture sees)."""
    try:
        while rx.recv(2048):
            pass
    except BlockingIOError:
        pass


# --------------------------------------------------------------------------- report


def table(results: list[Result], extra: str = "") -> list[str]:
    head = "| load | capturer | kept | kernel drops | pkt/s kept | CPU s | µs CPU / pkt | labelled |"
    if extra:
        head += f" {extra} |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if r.error:
            lines.append(f"| {r.load} | {r.capturer} | error: {r.error[:80]} |")
            continue
        us = f"{r.us_per_packet:.1f}" if r.us_per_packet is not None else "—"
        row = (
            f"| {r.load} | {r.capturer} | {r.kept:,} | {r.dropped:,} | "
            f"{r.kept / r.seconds:,.0f} | {r.cpu:.2f} | {us} | {r.labelled} |"
        )
        if extra:
            row += f" {r.offered:,.0f} |"
        lines.append(row)
    return lines


def best_rates(results: list[Result]) -> list[str]:
    lines = ["| capturer | highest rate kept with no drop (datagrams/s) |", "|---|---:|"]
    for kind in CAPTURERS:
        clean = [r.offered for r in results if r.capturer == kind and not r.error and r.dropped == 0]
        lines.append(f"| {kind} | {max(clean):,.0f} |" if clean else f"| {kind} | none of the rates |")
    return lines


def run(args: argparse.Namespace, tmp: Path) -> list[str]:
    out: list[str] = []
    nginx_bin, ab, netns = find_tool("nginx"), find_tool("ab"), os.environ.get(NETNS_ENV)
    print("bulk transfer", flush=True)
    results = [capture(k, "bulk", tmp, lambda: bulk(args.bulk_seconds), "", []) for k in CAPTURERS]
    out += ["### Bulk transfer on loopback", "", *table(results, "load bytes/s"), ""]
    print("UDP sweep", flush=True)
    sweep: list[Result] = []
    for rate in [float(r) for r in args.rates.split(",") if r]:
        for kind in CAPTURERS:
            r = capture(kind, f"udp {rate:,.0f}/s", tmp, lambda rate=rate: udp(rate, args.sweep_seconds))
            print(
                f"  {kind:24} {r.offered:9,.0f}/s kept {r.kept:,} dropped {r.dropped:,} {r.error}", flush=True
            )
            sweep.append(r)
    out += [
        "### UDP datagrams at fixed rates",
        "",
        *table(sweep, "datagrams/s sent"),
        "",
        *best_rates(sweep),
        "",
    ]
    if nginx_bin is None or ab is None or netns is None:
        return [*out, "nginx, ab or a namespace of its own missing: churn not measured", ""]
    print("nginx + ab churn", flush=True)
    churn: list[Result] = []
    # nginx and ab in this namespace (the one the captures watch), which the stage keeps.
    try:
        stage = Stage(NGINX_PORT, netns=netns).__enter__()
    except StageError as exc:
        return [*out, f"nginx did not start: {exc}", ""]
    try:

        def ab_run() -> float:
            return stage.ab(args.requests, args.concurrency).rate

        port_pcap, port_ours = f"tcp port {NGINX_PORT}", [f"port == {NGINX_PORT}"]
        for kind in CAPTURERS:
            churn.append(capture(kind, "ab", tmp, ab_run, port_pcap, port_ours))
        for kind in ("dumpcap", "sockscope"):
            churn.append(
                capture(
                    kind,
                    "ab --handshakes",
                    tmp,
                    ab_run,
                    f"{port_pcap} and {HANDSHAKES_PCAP}",
                    [*port_ours, "--handshakes"],
                )
            )
    finally:
        stage.close()
    out += [f"### nginx + `ab -n {args.requests} -c {args.concurrency}`", "", *table(churn, "ab conn/s"), ""]
    return out


def environment(args: argparse.Namespace) -> dict[str, str]:
    dumpcap = subprocess.run([str(find_tool("dumpcap")), "-v"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "dumpcap": (dumpcap.stdout.splitlines() or ["?"])[0],
        "sockscope": f"commit {commit.stdout.strip()}",
        "namespace": os.environ.get(NETNS_ENV, "the host's"),
        "output": "files on the root disk, each deleted after it is counted",
    }


def run_in_netns(ip: str, argv: list[str]) -> int:
    name = f"sockscope-bench-capture-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    child: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        env = os.environ | {NETNS_ENV: name}
        child = subprocess.Popen([ip, "netns", "exec", name, sys.executable, __file__, *argv], env=env)
        return child.wait()
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait(60)
        subprocess.run([ip, "netns", "del", name], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk-seconds", type=float, default=3.0)
    parser.add_argument("--sweep-seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="25000,50000,100000,150000,200000", help="UDP datagrams a second")
    parser.add_argument("--requests", type=int, default=20000, help="ab -n")
    parser.add_argument("--concurrency", type=int, default=50, help="ab -c")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_capture: capturing needs root", file=sys.stderr)
        return 2
    if find_tool("dumpcap") is None:
        print("bench_capture: no dumpcap (apt-get install tshark)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if NETNS_ENV not in os.environ:
        ip = find_tool("ip")
        if ip is not None:
            return run_in_netns(ip, sys.argv[1:] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-capture-", dir="/var/tmp"))
    started = time.monotonic()
    try:
        body = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env = environment(args) | {"wall time": f"{time.monotonic() - started:.0f}s"}
    print("\n".join(body))
    if args.write_results:
        section = "\n".join(
            [
                *section_head(
                    BEGIN, "`sockscope capture` vs dumpcap", command_line("bench/bench_capture.py", argv), env
                ),
                "Each load is captured by one capturer at a time on `lo` of a private namespace, to a",
                "file; stopped with SIGINT 0.5 s after the load. *kept*: packets written; *kernel",
                "drops*: the capture socket's PACKET_STATISTICS drops (the ring was full); *CPU*:",
                "the capturer's utime + stime from the load's start to its exit, start-up left out",
                "(sockscope's includes the watch engine's thread when labelling, and the last wait",
                "for labels); *labelled*: packets written with a process comment.",
                "",
                *body,
                END,
            ]
        )
        replace_section(BEGIN, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
