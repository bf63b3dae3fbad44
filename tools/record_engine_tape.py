"""Record what the watch loop feeds its engine during a real scenario, as a tape.

Run as root from the repository root; each scenario builds its own network namespaces
and removes them:

    .venv/bin/python tools/record_engine_tape.py SCENARIO [--sources trace,destroy,poll]

writes tests/fixtures/engine/SCENARIO-SOURCES.tape. The tape's first lines are comments
with the scenario's facts (pids, counts, times) the tests check the replay against.

Scenarios:
  reuse     the watched namespace and another run the same client loop with the same
            4-tuple (client port 40404 to 127.0.0.1:2323): 5 connections here, 9 there
  killed    a connection opened before the watch is killed with ``ss -K`` 1.5 s in
  held      a connection opened 3 s before the watch is closed 3 s into it
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sockscope.model.states import Proto
from sockscope.query.spec import Query
from sockscope.watch import Watcher

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "engine"

LOOP = r"""
import os, socket, struct, sys, time
n, pause, serve = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "serve"
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 2323)); lst.listen(16)
print(os.getpid(), flush=True)
time.sleep(pause)
for i in range(n):
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("127.0.0.1", 40404))
    c.connect(("127.0.0.1", 2323)); a, _ = lst.accept()
    a.sendall(b"x" * 100); c.recv(100)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close(); a.close()
    time.sleep(0.15)
time.sleep(1)
"""

HOLD = r"""
import os, socket, sys, time
hold = float(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 2323)); lst.listen(4)
c = socket.create_connection(("127.0.0.1", 2323)); a, _ = lst.accept()
print(os.getpid(), c.getsockname()[1], time.monotonic(), flush=True)
time.sleep(hold)
c.close(); a.close()
print(time.monotonic(), flush=True)
time.sleep(1)
"""


def netns() -> str:
    name = f"sockscope-tape-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def in_ns(ns: str, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )


def record(ns: str, sources: set[str], seconds: float, lines: list[str]) -> None:
    query = Query(protocols=(Proto.TCP,), processes=True, netns=ns)
    with Watcher(query, interval=0.5, sources=sources, tape=lines.append) as w:
        for _ in w.events(until=time.monotonic() + seconds):
            pass


def scenario_reuse(sources: set[str]) -> tuple[dict[str, object], list[str]]:
    here, there = netns(), netns()
    lines: list[str] = []
    try:
        mine = in_ns(here, LOOP, "5", "1.0", "serve")
        other = in_ns(there, LOOP, "9", "0.9", "serve")
        pids = [int(p.stdout.readline()) for p in (mine, other)]  # type: ignore[union-attr]
        record(here, sources, 4.5, lines)
        mine.wait(10)
        other.wait(10)
    finally:
        for ns in (here, there):
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return {"pid": pids[0], "other_pid": pids[1], "connections": 5, "other_connections": 9}, lines


def scenario_killed(sources: set[str]) -> tuple[dict[str, object], list[str]]:
    ns = netns()
    lines: list[str] = []
    try:
        holder = in_ns(ns, HOLD, "6")
        pid, port, opened = holder.stdout.readline().split()  # type: ignore[union-attr]
        time.sleep(0.5)

        def kill() -> None:
            time.sleep(1.5)
            facts["killed_at"] = time.monotonic()
            subprocess.run(
                ["ip", "netns", "exec", ns, "ss", "-K", "dst", "127.0.0.1", "dport", "=", "2323"], check=True
            )

        import threading  # noqa: PLC0415

        facts: dict[str, object] = {"pid": int(pid), "client_port": int(port), "opened_at": float(opened)}
        threading.Thread(target=kill, daemon=True).start()
        record(ns, sources, 4.0, lines)
        holder.kill()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return facts, lines


def scenario_held(sources: set[str]) -> tuple[dict[str, object], list[str]]:
    ns = netns()
    lines: list[str] = []
    try:
        holder = in_ns(ns, HOLD, "6")
        pid, port, opened = holder.stdout.readline().split()  # type: ignore[union-attr]
        time.sleep(3)
        record(ns, sources, 4.5, lines)
        closed = float(holder.stdout.readline())  # type: ignore[union-attr]
        holder.wait(10)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return {"pid": int(pid), "client_port": int(port), "opened_at": float(opened), "closed_at": closed}, lines


SCENARIOS = {"reuse": scenario_reuse, "killed": scenario_killed, "held": scenario_held}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--sources", default="trace,destroy,poll")
    args = p.parse_args()
    sources = set(args.sources.split(","))
    facts, lines = SCENARIOS[args.scenario](sources)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.scenario}-{'-'.join(sorted(sources))}.tape"
    head = [
        f"# recorded by tools/record_engine_tape.py {args.scenario} --sources {args.sources}\n",
        "# facts " + json.dumps(facts) + "\n",
    ]
    path.write_text("".join(head + lines))
    print(f"{path}: {len(lines)} calls; {facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
