"""Hold many established TCP connections on loopback, for benchmarking socket listers.

N connections are made from 127.0.0.1 to 127.0.0.1 and both ends are kept open, so the
kernel shows 2N ESTABLISHED sockets, plus a handful of listeners.

The per-process open-file limit here is 20,000 and cannot be raised, and every connection
costs two descriptors (client + accepted) in the process that holds it, so the work is
spread over worker processes of at most ``PER_WORKER`` connections each.  Workers are
plain child processes running this file with ``--worker``: they report readiness as one
line on stdout and hold until their stdin reaches EOF (the parent asked them to stop, or
died) or ``--hold-seconds`` pass, so they always end by themselves.

Use from another bench script::

    with held_connections(20_000) as held:
        ...  # 20,000 ESTABLISHED sockets exist here

or from a shell, holding until Ctrl-C or the timeout::

    python bench/holdconns.py 20000 --hold-seconds 300
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
PER_WORKER = 4_500  # 9,000 fds + listeners: well under the 20,000 limit
LISTENERS_PER_WORKER = 8  # more destinations -> more 4-tuples per ephemeral port
BASE_PORT = 20_000
MARKER_PORT = 2323  # a few connections here, so port filters have something to match
MARKER_CONNS = 4
ACCEPT_EVERY = 256  # drain accept queues this often so they never fill up
BACKLOG = 8_192
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0

# Sysctls the harness needs; each is raised to at least this value, never lowered.
# The ephemeral range starts above the listener ports so a client never takes one.
PORT_RANGE = (24_000, 65_000)
MIN_SYSCTLS = {
    "net/core/somaxconn": BACKLOG,
    "net/ipv4/tcp_max_syn_backlog": BACKLOG,
}
SYSCTL_ROOT = Path("/proc/sys")

# SO_LINGER on with a zero timeout: close() sends RST instead of FIN, so tearing down
# 60k sockets leaves no TIME_WAIT behind to pollute the next measurement.
LINGER_RST = struct.pack("ii", 1, 0)


# --------------------------------------------------------------------------- sysctls


def _read_sysctl(name: str) -> str:
    return (SYSCTL_ROOT / name).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    (SYSCTL_ROOT / name).write_text(value + "\n")


@contextlib.contextmanager
def tuned_sysctls(*, verbose: bool = False) -> Iterator[dict[str, str]]:
    """Widen the ephemeral port range and raise listen backlogs; restore on exit.

    Yields the original values of what was changed.  Without permission to write, it
    warns and carries on: small sizes still work with the defaults.
    """
    changed: dict[str, str] = {}
    wanted: dict[str, str] = {}
    lo, hi = (int(x) for x in _read_sysctl("net/ipv4/ip_local_port_range").split())
    if lo > PORT_RANGE[0] or hi < PORT_RANGE[1]:
        wanted["net/ipv4/ip_local_port_range"] = f"{min(lo, PORT_RANGE[0])}\t{max(hi, PORT_RANGE[1])}"
    for name, minimum in MIN_SYSCTLS.items():
        if int(_read_sysctl(name)) < minimum:
            wanted[name] = str(minimum)
    try:
        for name, value in wanted.items():
            old = _read_sysctl(name)
            try:
                _write_sysctl(name, value)
            except OSError as exc:
                print(f"holdconns: cannot set {name}={value!r}: {exc}", file=sys.stderr)
                continue
            changed[name] = old
            if verbose:
                print(f"holdconns: {name}: {old!r} -> {value!r}", file=sys.stderr)
        yield changed
    finally:
        for name, old in changed.items():
            with contextlib.suppress(OSError):
                _write_sysctl(name, old)


# --------------------------------------------------------------------------- worker


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # REUSEADDR so a quick re-run can bind while old sockets are still being torn down.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _drain(listener: socket.socket, held: list[socket.socket]) -> int:
    """Accept everything queued on a non-blocking listener."""
    n = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return n
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        held.append(conn)
        n += 1


def _connect_all(listeners: list[socket.socket], ports: list[int], n: int, held: list[socket.socket]) -> None:
    accepted = 0
    for i in range(n):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        # Round-robin over listeners: each extra destination multiplies the 4-tuples
        # available per ephemeral port.
        client.connect((LOOPBACK, ports[i % len(ports)]))
        held.append(client)
        if (i + 1) % ACCEPT_EVERY == 0:
            accepted += sum(_drain(lst, held) for lst in listeners)
    # The last handshakes may still be queued: wait for every accept, briefly.
    deadline = time.monotonic() + 30.0
    while accepted < n:
        got = sum(_drain(lst, held) for lst in listeners)
        accepted += got
        if accepted >= n:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {accepted} of {n} connections were accepted")
        select.select(listeners, [], [], 0.5)


def run_worker(args: argparse.Namespace) -> int:
    """Body of one worker process: connect, say ready, hold, exit."""
    # The parent owns Ctrl-C; a worker ends through stdin EOF or its own timeout.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    held: list[socket.socket] = []
    try:
        ports = list(range(args.first_port, args.first_port + args.listeners))
        listeners = [_listen(p) for p in ports]
        _connect_all(listeners, ports, args.conns, held)
        if args.marker_conns:
            marker = _listen(args.marker_port)
            listeners.append(marker)
            _connect_all([marker], [args.marker_port], args.marker_conns, held)
    except OSError as exc:
        hint = " (port in use?)" if exc.errno == errno.EADDRINUSE else ""
        print(f"error {exc}{hint}", flush=True)
        return 1
    except TimeoutError as exc:
        print(f"error {exc}", flush=True)
        return 1
    print(f"ready {len(held)} {len(listeners)}", flush=True)
    # Hold until the parent closes our stdin (or dies, which closes it too) or time is up.
    deadline = time.monotonic() + args.hold_seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sys.stdin], [], [], left)
        if readable and not os.read(sys.stdin.fileno(), 4096):
            break
    return 0


# --------------------------------------------------------------------------- parent


@dataclass
class Held:
    """What ``held_connections`` established."""

    connections: int
    sockets: int  # ESTABLISHED sockets made (2 per connection)
    listeners: int
    workers: int
    seconds: float  # time to establish everything
    pids: list[int] = field(default_factory=list)


def plan(n_sockets: int, per_worker: int = PER_WORKER) -> list[int]:
    """Connections per worker for at least ``n_sockets`` ESTABLISHED sockets."""
    conns = math.ceil(n_sockets / 2)
    workers = max(1, math.ceil(conns / per_worker))
    base, extra = divmod(conns, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _await_ready(procs: list[subprocess.Popen[bytes]], timeout: float) -> tuple[int, int]:
    """Wait for one 'ready' line per worker; returns (sockets, listeners)."""
    pending = {proc.stdout.fileno(): proc for proc in procs if proc.stdout}
    sockets = listeners = 0
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(pending)} holdconns workers not ready after {timeout}s")
        readable, _, _ = select.select(list(pending), [], [], left)
        for fd in readable:
            proc = pending.pop(fd)
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            word, *rest = line.split(maxsplit=1) or [""]
            if word != "ready":
                proc.wait(timeout=5)
                raise RuntimeError(f"holdconns worker {proc.pid} failed: {line or 'no output'}")
            n_sock, n_lst = rest[0].split()
            sockets += int(n_sock)
            listeners += int(n_lst)
    return sockets, listeners


@contextlib.contextmanager
def held_connections(
    n_sockets: int,
    *,
    hold_seconds: float = 600.0,
    per_worker: int = PER_WORKER,
    base_port: int = BASE_PORT,
    marker_port: int | None = MARKER_PORT,
    tune: bool = True,
) -> Iterator[Held]:
    """Hold at least ``n_sockets`` ESTABLISHED loopback sockets while the block runs.

    ``marker_port`` (default 2323) gets a few of the connections on a listener of its own
    so port filters have a small, known match set.  With ``tune`` the needed sysctls are
    raised for the duration and restored afterwards.
    """
    shares = plan(n_sockets, per_worker)
    if marker_port is not None:
        shares[0] -= MARKER_CONNS
    # A worker's listeners must stay below the ephemeral range, or a client could take one.
    top = base_port + len(shares) * LISTENERS_PER_WORKER
    if top > PORT_RANGE[0]:
        raise ValueError(f"listener ports {base_port}..{top} reach the ephemeral range")
    with contextlib.ExitStack() as stack:
        if tune:
            stack.enter_context(tuned_sysctls())
        procs: list[subprocess.Popen[bytes]] = []
        stack.callback(_stop, procs)
        started = time.perf_counter()
        for i, conns in enumerate(shares):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                f"--conns={conns}",
                f"--first-port={base_port + i * LISTENERS_PER_WORKER}",
                f"--listeners={LISTENERS_PER_WORKER}",
                f"--hold-seconds={hold_seconds}",
            ]
            if i == 0 and marker_port is not None:
                cmd += [f"--marker-port={marker_port}", f"--marker-conns={MARKER_CONNS}"]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        sockets, listeners = _await_ready(procs, READY_TIMEOUT)
        yield Held(
            connections=sockets // 2,
            sockets=sockets,
            listeners=listeners,
            workers=len(procs),
            seconds=time.perf_counter() - started,
            pids=[p.pid for p in procs],
        )


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so context managers restore sysctls and stop workers."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def sockstat_tcp() -> dict[str, int]:
    """The kernel's own TCP socket counters, e.g. {'inuse': 40012, 'tw': 0, ...}."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            words = line.split()[1:]
            return {k: int(v) for k, v in zip(words[::2], words[1::2], strict=True)}
    return {}


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sockets",
        nargs="?",
        type=int,
        default=2_000,
        help="ESTABLISHED sockets to hold (2 per connection; default 2000)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=600.0,
        help="end by itself after this long (default 600)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--first-port", type=int, default=BASE_PORT, help=argparse.SUPPRESS)
    parser.add_argument("--listeners", type=int, default=LISTENERS_PER_WORKER, help=argparse.SUPPRESS)
    parser.add_argument("--marker-port", type=int, default=MARKER_PORT, help=argparse.SUPPRESS)
    parser.add_argument("--marker-conns", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    exit_on_sigterm()

    with held_connections(args.sockets, hold_seconds=args.hold_seconds) as held:
        print(
            f"holding {held.sockets} ESTABLISHED sockets ({held.connections} connections, "
            f"{held.listeners} listeners, {held.workers} workers) after {held.seconds:.1f}s; "
            f"kernel TCP {sockstat_tcp()}; pid {os.getpid()}",
            flush=True,
        )
        # Workers end on their own at the deadline; Ctrl-C stops them sooner.
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.hold_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
