"""``sockscope report`` on a recording of a million events: time and peak memory.

Target (issue 15): a report from 1,000,000 recorded events in under 20 s and under
500 MB. The recording is made for the run, realistic in shape: an hour of connections
from a few hundred peers to three services (an nginx-like pair of ports and the demo
port), each accepted connection's server end as the tracepoint and destroy sources
record it (opened, SYN_RECV->ESTABLISHED, ESTABLISHED->CLOSE_WAIT, CLOSE_WAIT->LAST_ACK,
closed with bytes and RTT; a tenth reset), some outgoing connections, a few drops and
losses, and every listener's queue sampled each second (format 2).

The report runs as the command a user types, in a fresh process (imports included),
writing the HTML page and every CSV table; its peak RSS is the child's ``ru_maxrss``.
Peer in the same run: ``sockscope stats`` on the same file, which folds every event
into Python objects (the approach the report's SQL aggregation replaces). Also timed:
the report with a filter (``lport == 2323``), which evaluates the filter language on
each candidate event.

    flock /tmp/sockscope-heavy.lock .venv/bin/python bench/bench_report.py --write-results
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import command_line, replace_section, section_head

from sockscope.record.schema import COLUMNS, QUEUE_COLUMNS
from sockscope.record.sqlite import Recorder

BEGIN = "<!-- bench_report:begin -->"
END = "<!-- bench_report:end -->"
TARGET_S = 20.0
TARGET_MB = 500.0
SERVICES = ((443, "nginx", 0.55), (80, "nginx", 0.3), (2323, "python3", 0.15))
T0 = 1_800_000_000.0
INSERT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
QUEUE = (
    f"INSERT INTO queue_samples ({', '.join(QUEUE_COLUMNS)}) VALUES ({', '.join('?' * len(QUEUE_COLUMNS))})"
)


def row(
    t: float,
    event: str,
    state: str,
    local: tuple[str, int],
    remote: tuple[str, int],
    pid: int,
    process: str,
    cookie: int,
    **extra: object,
) -> tuple[object, ...]:
    base = dict.fromkeys(COLUMNS)
    base.update(
        time=t,
        mono=t - T0,
        event=event,
        source="trace",
        proto="tcp",
        family=4,
        state=state,
        local_address=local[0],
        local_port=local[1],
        remote_address=remote[0],
        remote_port=remote[1],
        recv_q=0,
        send_q=0,
        uid=33,
        inode=0,
        cookie=cookie,
        pid=pid,
        process=process,
    )
    base.update(extra)
    return tuple(base[c] for c in COLUMNS)


def connection(rng: random.Random, t: float, cookie: int) -> list[tuple[object, ...]]:
    """One accepted connection's server end: five events, or three when reset."""
    port, process, _ = rng.choices(SERVICES, weights=[s[2] for s in SERVICES])[0]
    pid = 1000 + port % 7
    peer = (f"10.{rng.randrange(4)}.{rng.randrange(8)}.{rng.randrange(1, 40)}", rng.randrange(32768, 61000))
    local = ("10.9.0.1", port)
    life = rng.lognormvariate(-4.0, 1.6)  # a few ms typical, seconds in the tail
    reset = rng.random() < 0.1
    out = [
        row(t, "opened", "SYN_RECV", local, peer, pid, process, cookie),
        row(t + 1e-4, "state", "ESTABLISHED", local, peer, pid, process, cookie, old_state="SYN_RECV"),
    ]
    if not reset:
        out += [
            row(t + life, "state", "CLOSE_WAIT", local, peer, pid, process, cookie, old_state="ESTABLISHED"),
            row(
                t + life + 1e-4,
                "state",
                "LAST_ACK",
                local,
                peer,
                pid,
                process,
                cookie,
                old_state="CLOSE_WAIT",
            ),
        ]
    sent = int(rng.lognormvariate(8.5, 2.0))
    out.append(
        row(
            t + life + 2e-4,
            "closed",
            "ESTABLISHED" if reset else "LAST_ACK",
            local,
            peer,
            pid,
            process,
            cookie,
            source="destroy",
            duration=life + 2e-4,
            bytes_sent=sent,
            bytes_received=rng.randrange(200, 2000),
            rtt_us=int(rng.lognormvariate(5.5, 1.0)),
            retrans=0,
        )
    )
    return out


def make_recording(path: Path, events: int, seconds: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    rec = Recorder(path, {"host": "bench", "netns": "", "started": str(T0), "tool": "bench"}, private=False)
    rec.set_meta("sources", "poll,destroy,trace")
    rec.set_meta("listening_ports", "80,443,2323")
    db = rec.db
    written, cookie, batch = 0, 1, []
    rate = events / 4.6 / seconds  # connections a second: 4.6 events each on average
    t = T0
    db.execute("BEGIN")
    while written < events:
        t += rng.expovariate(rate)
        batch += connection(rng, t, cookie)
        cookie += 1
        if rng.random() < 0.0005:
            batch.append(
                row(
                    t,
                    "dropped",
                    "LISTEN",
                    ("0.0.0.0", 2323),
                    ("0.0.0.0", 0),
                    1002,
                    "python3",
                    3,
                    amount=rng.randrange(1, 5),
                )
            )
        if len(batch) >= 50_000 or written + len(batch) >= events:
            db.executemany(INSERT, batch[: events - written])
            written += min(len(batch), events - written)
            batch.clear()
    listeners = [(4, "0.0.0.0", p, 9000 + p, 1000 + p % 7, name) for p, name, _ in SERVICES]
    db.executemany(
        "INSERT INTO listeners (family, local_address, local_port, cookie, pid, process) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        listeners,
    )
    samples = []
    for s in range(int(seconds) + 1):
        for i, (port, _, share) in enumerate(SERVICES, start=1):
            q = min(int(rng.expovariate(1 / (share * 20))), 129)
            samples.append(
                (T0 + s, float(s), i, q, 128, 129, rng.randrange(3), s // 400 if port == 2323 else 0)
            )
    db.executemany(QUEUE, samples)
    db.execute("COMMIT")
    rec.close()
    return db_count(path)


def db_count(path: Path) -> int:
    import sqlite3  # noqa: PLC0415

    con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        con.close()


def timed(argv: list[str], timeout: float) -> tuple[float, float, int]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        raise
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[3]} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=3600.0, help="how long the recording spans")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-report-"))
    try:
        db = tmp / "run.db"
        start = time.perf_counter()
        n = make_recording(db, args.events, args.seconds)
        made = time.perf_counter() - start
        size = db.stat().st_size / 1e6
        print(f"recording: {n:,} events over {args.seconds:g} s, {size:.0f} MB, made in {made:.1f} s")
        exe = [sys.executable, "-m", "sockscope"]
        cases = {
            "report -o page.html --csv tables": [
                *exe,
                "report",
                str(db),
                "-o",
                str(tmp / "r.html"),
                "--csv",
                str(tmp / "t"),
                "--overwrite",
            ],
            "report 'lport == 2323' -o page.html": [
                *exe,
                "report",
                str(db),
                "lport == 2323",
                "-o",
                str(tmp / "f.html"),
                "--overwrite",
            ],
            "stats (peer: Python objects)": [*exe, "stats", str(db)],
        }
        results = {}
        for name, cmd in cases.items():
            runs = [timed(cmd, 600) for _ in range(args.runs if "stats" not in name else 1)]
            wall = sorted(r[0] for r in runs)[len(runs) // 2]
            rss = max(r[1] for r in runs)
            results[name] = (wall, rss, len(runs))
            print(f"{name}: {wall:.2f} s (median of {len(runs)}), peak RSS {rss:.0f} MB")
        html = (tmp / "r.html").stat().st_size / 1e3
        table = render(results, html)
        print("\n".join(table))
        if args.write_results:
            write(table, args, argv, n, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def render(results: dict[str, tuple[float, float, int]], html_kb: float) -> list[str]:
    report = results["report -o page.html --csv tables"]
    stats = results["stats (peer: Python objects)"]
    lines = [
        "| command | wall time | peak RSS | runs | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, (wall, rss, runs) in results.items():
        target, ok = "-", ""
        if name.startswith("report"):
            target = f"< {TARGET_S:g} s, < {TARGET_MB:g} MB"
            ok = "pass" if wall < TARGET_S and rss < TARGET_MB else "**FAIL**"
        lines.append(f"| `sockscope {name}` | {wall:.2f} s | {rss:.0f} MB | {runs} | {target} | {ok} |")
    lines += [
        "",
        f"- report / stats wall time: {report[0] / stats[0]:.2f}; peak RSS: {report[1] / stats[1]:.2f}",
        f"- the page: {html_kb:.0f} kB, self-contained (inline SVG, no script)",
    ]
    return lines


def write(table: list[str], args: argparse.Namespace, argv: list[str] | None, n: int, size: float) -> None:
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        "python": platform.python_version(),
        "recording": f"{n:,} events over {args.seconds:g} s ({size:.0f} MB), format 2, "
        f"{int(args.seconds) + 1} queue samples of each of 3 listeners",
        "peak RSS": "the command's own process (ru_maxrss from wait4)",
    }
    section = [
        *section_head(
            BEGIN, "`sockscope report` on a million events", command_line("bench/bench_report.py", argv), env
        ),
        "The report reads the recording with SQL aggregation (GROUP BY per time bucket, "
        "per peer and port, per process...); only the results come back to Python. "
        "`stats` folds every event into Python objects, as it did before.",
        "",
        *table,
        END,
    ]
    replace_section(BEGIN, END, "\n".join(section) + "\n")


if __name__ == "__main__":
    sys.exit(main())
