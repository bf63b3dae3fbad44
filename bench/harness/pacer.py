"""A client that holds a connection rate, where ab can only hold a concurrency.

``run_paced`` starts ``processes`` copies of this file inside the stage's namespace;
each opens its share of the connections from a loopback address of its own, connection
*i* at *t0 + i / rate*, does one HTTP/1.0 GET and reads until nginx closes. One
non-blocking loop per process, so its cost stays at a few tens of µs per connection and
its open files well under the limit (20,000 per process). Run alone it prints one JSON
line: what it did.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script inside the namespace
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.stage import DOC, HOST, LOAD_TIMEOUT, LoadResult, Stage

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CONN_TIMEOUT = 10.0
MAX_OPEN = 15_000  # below the open-file limit of 20,000


class Conn:
    __slots__ = ("head", "started")

    def __init__(self, started: float) -> None:
        self.started, self.head = started, b""


def _open(sel: selectors.BaseSelector, addr: str, port: int, now: float) -> None:
    s = socket.socket()
    # The port is taken at connect(), as ab's connect() alone takes it, not at bind().
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((addr, 0))
    s.setblocking(False)
    err = s.connect_ex((HOST, port))
    if err not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(err, f"connect: {errno.errorcode.get(err, err)}")
    sel.register(s, selectors.EVENT_WRITE, Conn(now))


def _step(sel: selectors.BaseSelector, key: selectors.SelectorKey, mask: int, request: bytes) -> bool | None:
    """Advance one connection: None while it goes on, else whether it got a 200."""
    s: socket.socket = key.fileobj  # type: ignore[assignment]
    conn: Conn = key.data
    try:
        if mask & selectors.EVENT_WRITE:
            # A failed connect shows in SO_ERROR; send() then raises it.
            if not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                s.send(request)
                sel.modify(s, selectors.EVENT_READ, conn)
                return None
            good = False
        elif data := s.recv(65536):
            conn.head = conn.head or data[:16]
            return None
        else:
            good = conn.head.startswith(b"HTTP/1.1 200")
    except OSError:
        good = False
    sel.unregister(s)
    s.close()
    return good


def client_main(addr: str, port: int, count: int, rate: float, t0: float) -> dict[str, object]:
    """Open ``count`` connections at ``rate`` from ``t0`` (monotonic); what it did."""
    request = f"GET {DOC} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    ok = failed = started = 0
    late = 0.0
    error = ""
    while started < count or sel.get_map():
        now = time.monotonic()
        while started < count and t0 + started / rate <= now and len(sel.get_map()) < MAX_OPEN:
            late = max(late, now - (t0 + started / rate))
            started += 1
            try:
                _open(sel, addr, port, now)
            except OSError as exc:
                failed, error = failed + 1, error or str(exc)
        wait = t0 + started / rate - now if started < count else 0.5
        for key, mask in sel.select(max(0.0, min(wait, 0.5))):
            result = _step(sel, key, mask, request)
            if result is not None:
                ok, failed = ok + result, failed + (not result)
        for key in [k for k in sel.get_map().values() if now - k.data.started > CONN_TIMEOUT]:
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
            failed, error = failed + 1, error or "timed out"
    comm = Path("/proc/self/comm").read_text().strip()
    seconds = time.monotonic() - t0
    return {"ok": ok, "failed": failed, "seconds": seconds, "late": late, "comm": comm, "error": error}


def run_paced(stage: Stage, rate: float, seconds: float, processes: int = 4, net: int = 1) -> LoadResult:
    """``rate`` connections a second for ``seconds`` against the stage, from
    127.``net``.0.1, 127.``net``.0.2, ... (one address per process)."""
    count = max(processes, int(rate * seconds))
    t0 = time.monotonic() + 0.5  # the interpreters' start
    procs = []
    for k in range(processes):
        share = count // processes + (k < count % processes)
        argv = [sys.executable, __file__, f"127.{net}.0.{k + 1}", str(stage.port), str(share)]
        argv += [str(rate / processes), repr(t0)]
        procs.append(subprocess.Popen(stage.exec(argv), stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + LOAD_TIMEOUT)
        lines = out.strip().splitlines()
        results.append(json.loads(lines[-1]) if lines else {"ok": 0, "failed": 0, "seconds": 0.0})
    return _combine(results, rate, count)


def _combine(results: list[dict[str, object]], rate: float, count: int) -> LoadResult:
    ok = sum(int(r["ok"]) for r in results)  # type: ignore[call-overload]
    failed = sum(int(r["failed"]) for r in results)  # type: ignore[call-overload]
    seconds = max(float(r["seconds"]) for r in results)  # type: ignore[arg-type]
    load = LoadResult(f"paced {rate:,.0f}/s", count, ok + failed, failed, ok / seconds if seconds else 0.0)
    load.seconds, load.target_rate = seconds, rate
    load.client = str(results[0].get("comm", "?"))
    late = max(float(r.get("late", 0.0)) for r in results)  # type: ignore[arg-type]
    errors = [str(r["error"]) for r in results if r.get("error")]
    load.detail = "; ".join(([f"started up to {late:.2f} s late"] if late > 0.1 else []) + errors[:1])
    return load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One process of the paced client (run by run_paced).")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("rate", type=float)
    p.add_argument("t0", type=float, help="time.monotonic() of the first connection")
    a = p.parse_args(argv)
    print(json.dumps(client_main(a.addr, a.port, a.count, a.rate, a.t0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
