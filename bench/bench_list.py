"""Benchmark ``sockscope list`` against ss, netstat and psutil at several socket counts.

For each size, ``holdconns.held_connections`` holds that many ESTABLISHED loopback sockets;
then each sockscope command is timed next to its peer (median of repeated runs, output to
/dev/null), the library call ``sockscope.api.snapshot`` is timed against
``psutil.net_connections`` in a fresh child, and the peak RSS of ``sockscope list -tan`` is
measured.  A markdown table with pass/fail against the targets is printed and, with
``--write-results``, stored in bench/RESULTS.md.

Run as root (for the sysctls and for ``-p`` to see every process)::

    .venv/bin/python bench/bench_list.py --write-results
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdconns import MARKER_PORT, exit_on_sigterm, held_connections, sockstat_tcp
from results_file import command_line, replace_section, section_head

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
DEFAULT_SOCKSCOPE = REPO / ".venv" / "bin" / "sockscope"
BEGIN = "<!-- bench_list:begin -->"
END = "<!-- bench_list:end -->"

RUN_TIMEOUT = 120.0  # one run of one command; a hang must not eat the whole budget
SLOW_RUN = 5.0  # a command slower than this per run gets fewer runs
SLOW_RUNS = 3
MEMORY_TARGET_MIB = 80.0
API_TARGET_SPEEDUP = 5.0


# --------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Comparison:
    """One sockscope command timed next to its peer; the ratio is ours / peer."""

    key: str
    ours: tuple[str, ...]  # arguments after the sockscope executable
    peer: tuple[str, ...]
    target: float | None  # ratio must be <= target; None for a reference row


def comparisons(port: int) -> list[Comparison]:
    return [
        Comparison("tan", ("list", "-tan"), ("ss", "-tan"), 1.2),
        Comparison("tanp", ("list", "-tanp"), ("ss", "-tanp"), 0.5),
        Comparison("ltn", ("list", "-ltn"), ("ss", "-ltn"), 1.5),
        Comparison(
            "filter",
            ("list", "-tan", f"port == {port}"),
            ("ss", "-tan", f"( sport = :{port} or dport = :{port} )"),
            1.5,
        ),
        # Reference only: the classic tool, read from /proc/net/tcp.
        Comparison("netstat", ("list", "-tan"), ("netstat", "-tan"), None),
    ]


# --------------------------------------------------------------------------- results


@dataclass
class Timing:
    """Median wall time of one command, or why there is none."""

    argv: list[str]
    status: str = "ok"  # ok | unsupported | error | missing | timeout
    detail: str = ""
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


@dataclass
class Row:
    size: int
    key: str
    label: str
    ours: Timing
    peer: Timing
    target: float | None
    higher_is_better: bool = False  # True for the API speed-up (peer / ours)

    @property
    def ratio(self) -> float | None:
        a, b = self.ours.median, self.peer.median
        if a is None or b is None or a <= 0 or b <= 0:
            return None
        return b / a if self.higher_is_better else a / b

    @property
    def verdict(self) -> str:
        if self.ours.status != "ok":
            return self.ours.status
        if self.peer.status != "ok":
            return f"peer {self.peer.status}"
        if self.target is None or self.ratio is None:
            return "ref"
        ok = self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target
        return "PASS" if ok else "FAIL"


@dataclass
class MemoryRow:
    size: int
    label: str
    argv: list[str]
    max_rss_mib: float | None
    status: str = "ok"
    detail: str = ""
    target: float | None = None


@dataclass
class SizeResult:
    size: int
    established: int
    kernel_tcp: dict[str, int]
    setup_seconds: float
    rows: list[Row] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    api_counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- timing


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def precheck(argv: list[str], is_ours: bool) -> tuple[Timing, float]:
    """Run once (also a warm-up); a failing sockscope command is 'unsupported', not fatal."""
    timing = Timing(argv)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        timing.status, timing.detail = "missing", f"{argv[0]} not found"
        return timing, 0.0
    except subprocess.TimeoutExpired:
        timing.status, timing.detail = "timeout", f"> {RUN_TIMEOUT:.0f}s"
        return timing, RUN_TIMEOUT
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        timing.status = "unsupported" if is_ours else "error"
        err = _last_line(proc.stderr.decode(errors="replace"))
        timing.detail = f"exit {proc.returncode}: {err}"
    return timing, elapsed


def time_loop(timings: Sequence[Timing], runs: int, warmup: int) -> None:
    """Fallback without hyperfine: alternate the commands so drift hits them equally."""
    for i in range(warmup + runs):
        for timing in timings:
            t0 = time.perf_counter()
            try:
                subprocess.run(
                    timing.argv,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=RUN_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                timing.status, timing.detail, timing.times = "timeout", f"> {RUN_TIMEOUT}s", []
                continue
            if i >= warmup and timing.status == "ok":
                timing.times.append(time.perf_counter() - t0)


def time_hyperfine(hyperfine: str, timings: Sequence[Timing], runs: int, warmup: int) -> None:
    """Time with hyperfine, without a shell (-N) so no shell start-up is subtracted or added."""
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "h.json"
        cmd = [
            hyperfine,
            "-N",
            "--style",
            "none",
            "--output",
            "null",
            "--warmup",
            str(warmup),
            "--runs",
            str(runs),
            "--export-json",
            str(export),
            *(shlex.join(t.argv) for t in timings),
        ]
        timeout = RUN_TIMEOUT * (runs + warmup) * len(timings)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            for t in timings:
                t.status, t.detail = "timeout", "hyperfine timed out"
            return
        if proc.returncode != 0:
            err = _last_line(proc.stderr.decode(errors="replace"))
            for t in timings:
                t.status, t.detail = "error", f"hyperfine: {err}"
            return
        for t, res in zip(timings, json.loads(export.read_text())["results"], strict=True):
            t.times = [float(x) for x in res["times"]]


class Timer:
    def __init__(self, hyperfine: str | None, runs: int, warmup: int) -> None:
        self.hyperfine, self.runs, self.warmup = hyperfine, runs, warmup

    @property
    def name(self) -> str:
        return "hyperfine -N" if self.hyperfine else "perf_counter loop"

    def measure(self, argvs: Sequence[tuple[list[str], bool]]) -> list[Timing]:
        """Time the commands that run at all, together; argvs are (argv, is_sockscope)."""
        checked = [precheck(argv, ours) for argv, ours in argvs]
        timings = [t for t, _ in checked]
        live = [t for t in timings if t.status == "ok"]
        if not live:
            return timings
        slowest = max(elapsed for t, elapsed in checked if t.status == "ok")
        # The pre-check was already a warm-up; a very slow command gets fewer runs so the
        # whole benchmark stays bounded.
        runs, warmup = (SLOW_RUNS, 0) if slowest > SLOW_RUN else (self.runs, self.warmup)
        if self.hyperfine:
            time_hyperfine(self.hyperfine, live, runs, warmup)
        else:
            time_loop(live, runs, warmup)
        return timings


# --------------------------------------------------------------------------- API + memory

API_CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    runs = int(sys.argv[1])
    out = {"times": {}, "counts": {}}
    try:
        from sockscope.api import snapshot
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["error_sockscope"] = f"{type(exc).__name__}: {exc}"
        snapshot = None
    try:
        import psutil
    except Exception as exc:  # noqa: BLE001
        out["error_psutil"] = f"{type(exc).__name__}: {exc}"
        psutil = None
    calls = {}
    if snapshot is not None:
        calls["snapshot"] = lambda: len(snapshot(protocols=["tcp"]).endpoints)
        calls["snapshot_p"] = lambda: len(
            snapshot(protocols=["tcp"], processes=True).endpoints)
    if psutil is not None:
        calls["psutil"] = lambda: len(psutil.net_connections("tcp"))
    for name, call in calls.items():
        try:
            out["counts"][name] = call()  # warm-up: imports, caches
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            out["times"][name] = times
        except Exception as exc:  # noqa: BLE001
            out["error_" + name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def measure_api(python: str, size: int, runs: int) -> tuple[list[Row], dict[str, int]]:
    """snapshot() vs psutil.net_connections() in one fresh child interpreter."""
    argv = [python, "-c", API_CHILD, str(runs)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT * (runs + 1) * 3, check=False)
        data = json.loads(proc.stdout or b"{}")
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        data = {"error_sockscope": str(exc), "error_psutil": str(exc)}

    def timing(name: str, text: str, lib: str) -> Timing:
        t = Timing([text])
        if name in data.get("times", {}):
            t.times = data["times"][name]
        else:
            t.status = "unsupported" if lib == "sockscope" else "error"
            t.detail = data.get(f"error_{name}") or data.get(f"error_{lib}") or "no result"
        return t

    snap = timing("snapshot", 'snapshot(protocols=["tcp"])', "sockscope")
    snap_p = timing("snapshot_p", 'snapshot(protocols=["tcp"], processes=True)', "sockscope")
    psu = timing("psutil", 'psutil.net_connections("tcp")', "psutil")
    rows = [
        Row(
            size,
            "api",
            "`snapshot(tcp)` vs `psutil.net_connections`",
            snap,
            psu,
            API_TARGET_SPEEDUP,
            higher_is_better=True,
        ),
        # psutil always maps sockets to pids; this row is the like-for-like reference.
        Row(
            size,
            "api_p",
            "`snapshot(tcp, processes=True)` vs psutil",
            snap_p,
            psu,
            None,
            higher_is_better=True,
        ),
    ]
    return rows, data.get("counts", {})


MEM_CHILD = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    "sys.stderr.write(r.stderr.decode(errors='replace'))\n"
)


def measure_memory(argv: list[str], repeats: int = 3) -> tuple[float | None, str]:
    """Peak RSS (MiB) of argv, in a fresh wrapper whose only child is argv.

    RUSAGE_CHILDREN of a long-lived process is the max over *all* its children, so each
    measurement gets its own short-lived wrapper.  Max over a few repeats.
    """
    peaks: list[float] = []
    for _ in range(repeats):
        try:
            proc = subprocess.run(
                [sys.executable, "-c", MEM_CHILD, *argv],
                capture_output=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, "timeout"
        kib, rc = proc.stdout.decode().split()
        if rc != "0":
            return None, f"exit {rc}: {_last_line(proc.stderr.decode(errors='replace'))}"
        peaks.append(int(kib) / 1024)  # ru_maxrss is in KiB on Linux
    return max(peaks), ""


# --------------------------------------------------------------------------- one size


def bench_size(
    size: int,
    sockscope: str,
    python: str,
    timer: Timer,
    api_runs: int,
    memory: bool,
    hold_seconds: float,
) -> SizeResult:
    with held_connections(size, hold_seconds=hold_seconds) as held:
        result = SizeResult(size, held.sockets, sockstat_tcp(), round(held.seconds, 2))
        print(
            f"## {size} sockets: {held.sockets} ESTABLISHED in {held.seconds:.1f}s "
            f"({held.workers} workers); kernel TCP {result.kernel_tcp}",
            flush=True,
        )
        for comp in comparisons(MARKER_PORT):
            ours, peer = timer.measure([([sockscope, *comp.ours], True), (list(comp.peer), False)])
            label = f"`sockscope {shlex.join(comp.ours)}` vs `{shlex.join(comp.peer)}`"
            row = Row(size, comp.key, label, ours, peer, comp.target)
            result.rows.append(row)
            print(
                f"  {comp.key:8} {_ms(ours):>12} {_ms(peer):>12}  {_ratio(row):>6}  {row.verdict}",
                flush=True,
            )
        api_rows, result.api_counts = measure_api(python, size, api_runs)
        result.rows += api_rows
        for row in api_rows:
            print(
                f"  {row.key:8} {_ms(row.ours):>12} {_ms(row.peer):>12}  {_ratio(row):>6}  "
                f"{row.verdict}  counts {result.api_counts}",
                flush=True,
            )
        if memory:
            for label, argv, target in (
                ("sockscope list -tan", [sockscope, "list", "-tan"], MEMORY_TARGET_MIB),
                ("ss -tan", ["ss", "-tan"], None),
            ):
                rss, err = measure_memory(argv)
                mrow = MemoryRow(size, label, argv, rss, "ok" if rss else "error", err, target)
                result.memory.append(mrow)
                print(f"  max RSS {label}: {_mib(mrow)}", flush=True)
    # Let the kernel finish freeing the torn-down sockets before the next size.
    time.sleep(1.0)
    return result


# --------------------------------------------------------------------------- report


def _ms(t: Timing) -> str:
    if t.status != "ok":
        return t.status
    m = t.median
    return f"{m * 1000:.1f} ms" if m is not None else "-"


def _ratio(row: Row) -> str:
    r = row.ratio
    if r is None:
        return "-"
    return f"{r:.1f}x" if row.higher_is_better else f"{r:.2f}"


def _mib(m: MemoryRow) -> str:
    return f"{m.max_rss_mib:.1f} MiB" if m.max_rss_mib is not None else m.status


def _target(row: Row) -> str:
    if row.target is None:
        return "ref"
    return f"≥ {row.target:g}x faster" if row.higher_is_better else f"≤ {row.target:g}"


def memory_verdict(m: MemoryRow, largest: int) -> str:
    """PASS/FAIL for a judged row; the memory target applies at the largest size only."""
    if m.target is None or m.size != largest:
        return "ref"
    if m.max_rss_mib is None:
        return m.status
    return "PASS" if m.max_rss_mib <= m.target else "FAIL"


def render(results: list[SizeResult]) -> str:
    out = [
        "| sockets | comparison | sockscope | peer | ratio | target | result |",
        "|---:|---|---:|---:|---:|---|---|",
    ]
    notes: list[str] = []
    for res in results:
        for row in res.rows:
            verdict = row.verdict if row.verdict not in ("PASS", "FAIL") else f"**{row.verdict}**"
            out.append(
                f"| {res.size:,} | {row.label} | {_ms(row.ours)} | {_ms(row.peer)} "
                f"| {_ratio(row)} | {_target(row)} | {verdict} |"
            )
            for t in (row.ours, row.peer):
                if t.detail:
                    notes.append(f"- {res.size:,} `{row.key}`: {t.status}: `{t.detail}`")
    largest = max((r.size for r in results), default=0)
    if any(res.memory for res in results):
        out += ["", "| sockets | command | max RSS | target | result |", "|---:|---|---:|---|---|"]
    for res in results:
        for m in res.memory:
            verdict = memory_verdict(m, largest)
            target = f"≤ {m.target:g} MiB" if verdict in ("PASS", "FAIL") else "ref"
            if verdict in ("PASS", "FAIL"):
                verdict = f"**{verdict}**"
            out.append(f"| {res.size:,} | `{m.label}` | {_mib(m)} | {target} | {verdict} |")
            if m.detail:
                notes.append(f"- {res.size:,} max RSS `{m.label}`: `{m.detail}`")
    if notes:
        out += ["", "Notes:", "", *dict.fromkeys(notes)]
    return "\n".join(out)


def environment(timer: Timer, sockscope: str) -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else ""
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    # Results of a dirty tree are not the commit's: say so.
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rev = f"{rev or 'none yet'}{' + uncommitted changes in src/' if dirty else ''}"
    shown = sockscope
    with contextlib.suppress(ValueError):
        shown = str(Path(sockscope).relative_to(REPO))
    hf = ""
    if timer.hyperfine:
        hf = subprocess.run(
            [timer.hyperfine, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "python": platform.python_version(),
        "ss": subprocess.run(["ss", "-V"], capture_output=True, text=True, check=False).stdout.strip(),
        "timer": f"{hf or timer.name}, median of {timer.runs} runs after {timer.warmup} warm-up",
        "sockscope": f"{shown} (commit {rev})",
    }


def write_results(command: str, env: dict[str, str], table: str) -> None:
    section = "\n".join(
        [
            *section_head(BEGIN, "`sockscope list` vs ss / netstat / psutil", command, env),
            "Ratios are sockscope / peer wall time (lower is better), except the API rows, which",
            "are psutil / sockscope (higher is better). Loopback connections held by",
            "`bench/holdconns.py`: N sockets = N/2 connections with both ends open, plus",
            "listeners.",
            "",
            table,
            END,
        ]
    )
    replace_section(BEGIN, END, section, RESULTS)


# --------------------------------------------------------------------------- main


def _dont_write_bytecode() -> str:
    return os.environ.get("PYTHONDONTWRITEBYTECODE", "unset") or "unset"


def bytecode_cache() -> str:
    """Let every child Python cache bytecode in a temporary directory.

    With PYTHONDONTWRITEBYTECODE set (as in some dev shells) and no __pycache__ in src/,
    every sockscope run recompiles all of its modules, which costs ~20 ms that no
    installed copy pays.  PYTHONPYCACHEPREFIX keeps the cache out of the source tree; the
    warm-up runs fill it.  Set in os.environ so hyperfine and all children inherit it.
    """
    path = tempfile.mkdtemp(prefix="sockscope-bench-pyc-")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = path
    return path


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="2k,20k,60k",
        help="ESTABLISHED socket counts, comma-separated (default 2k,20k,60k)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (7)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per command (1)")
    parser.add_argument("--api-runs", type=int, default=5, help="timed API calls each (5)")
    parser.add_argument(
        "--sockscope",
        default=str(DEFAULT_SOCKSCOPE),
        help="sockscope executable (default: the venv's, not a pyenv shim)",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="interpreter for the API child (default: next to --sockscope)",
    )
    parser.add_argument(
        "--no-hyperfine",
        action="store_true",
        help="time with a perf_counter loop even if hyperfine is installed",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip peak-RSS measurement")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="leave PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX as they are",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=540.0,
        help="skip remaining sizes once this many seconds have passed (540)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=600.0,
        help="connection holders end by themselves after this long (600)",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="replace the bench_list section of bench/RESULTS.md",
    )
    parser.add_argument("--json", type=Path, help="also dump raw results (all run times) here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    pyc_dir = None if args.no_bytecode_cache else bytecode_cache()
    try:
        return run(args, argv)
    finally:
        if pyc_dir:
            shutil.rmtree(pyc_dir, ignore_errors=True)


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Benchmark every size and report; main() owns set-up and clean-up."""
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    sockscope = str(Path(args.sockscope).absolute())
    python = args.python or str(Path(sockscope).parent / "python")
    if not Path(python).exists():
        python = sys.executable
    hyperfine = None if args.no_hyperfine else shutil.which("hyperfine")
    timer = Timer(hyperfine, args.runs, args.warmup)
    if os.geteuid() != 0:
        print(
            "warning: not root: sysctls stay as they are and -p sees only your processes",
            file=sys.stderr,
        )

    # What any Python CLI pays before its first line of code: context for the ratios against
    # ss, which starts in ~1 ms.
    (floor,) = timer.measure([([python, "-c", "pass"], False)])
    started = time.monotonic()
    results: list[SizeResult] = []
    skipped: list[int] = []
    for size in sizes:
        if time.monotonic() - started > args.budget:
            skipped.append(size)
            continue
        results.append(
            bench_size(size, sockscope, python, timer, args.api_runs, not args.no_memory, args.hold_seconds)
        )
    elapsed = time.monotonic() - started

    table = render(results)
    if skipped:
        table += f"\n\nSkipped (over the {args.budget:.0f}s budget): {skipped}"
    env = environment(timer, sockscope)
    env["bytecode"] = (
        "cached (.pyc in a temporary PYTHONPYCACHEPREFIX, as in an installed package)"
        if not args.no_bytecode_cache
        else f"as the environment has it (PYTHONDONTWRITEBYTECODE={_dont_write_bytecode()})"
    )
    env["python start-up floor"] = f"{_ms(floor)} (`{Path(python).name} -c pass`)"
    env["wall time"] = f"{elapsed:.0f}s"
    print()
    print("\n".join(f"- {k}: {v}" for k, v in env.items()))
    print()
    print(table)

    command = command_line("bench/bench_list.py", argv)
    if args.write_results:
        write_results(command, env, table)
        print(f"\nwrote {RESULTS}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"command": command, "env": env, "results": [asdict(r) for r in results]},
                indent=1,
                default=str,
            )
        )
    largest = max((r.size for r in results), default=0)
    missed = any(r.verdict == "FAIL" for res in results for r in res.rows) or any(
        memory_verdict(m, largest) == "FAIL" for res in results for m in res.memory
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
