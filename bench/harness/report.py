"""The rows as Markdown tables, and a benchmark's section of bench/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from results_file import RESULTS, replace_section, section_head

from harness.measure import Row
from harness.verdict import Target, Verdict, judge, median_range, misses

REPO = Path(__file__).resolve().parents[2]


def table(header: list[str], rows: Iterable[list[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` gives each column's ``l``/``r`` (default: left)."""
    marks = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(marks)}|", *(f"| {' | '.join(r)} |" for r in rows)]


def fmt_range(mr: tuple[float, float, float] | None, fmt: str = ".1f") -> str:
    """``median (lowest-highest)`` from ``median_range``, or ``-``."""
    if mr is None:
        return "-"
    med, lo, hi = mr
    return f"{med:{fmt}}" if lo == hi else f"{med:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def spread(values: Iterable[float], fmt: str = ".1f") -> str:
    """``median (lowest-highest)`` of ``values``, or ``-``."""
    return fmt_range(median_range(values), fmt)


def share(n: int, total: int) -> str:
    """``100%``, ``99.95% (19,990)``: a share of the logged connections."""
    if not total:
        return "-"
    s = n / total
    text = "100%" if n == total else f"{100 * s:.2f}%" if s >= 0.995 else f"{100 * s:.1f}%"
    return text if n == total else f"{text} ({n:,})"


def render_runs(rows: list[Row], labels: dict[str, str], targets: dict[str, Target]) -> list[str]:
    """One line per measurement."""
    header = ["round", "watcher", "load", "conns (nginx log)", "conn/s", "CPU µs/conn (user+sys)"]
    header += [
        "BPF ns/conn (runs/conn, skipped)",
        "srv opened",
        "srv closed",
        "srv named nginx",
        "cli opened",
    ]
    header += ["cli closed", "cli named", "lost", "caught up", "complete"]
    lines = []
    for r in rows:
        t = r.tally
        cells = [str(r.round), labels.get(r.key, r.key), r.load.label, f"{r.logged:,}", f"{r.load.rate:,.0f}"]
        cells.append(_cpu(r))
        cells.append(_bpf(r))
        if t is None:
            cells += ["-"] * 6
        else:
            srv, cli = t.server, t.client
            named_srv = min(srv.closed_named, srv.opened_named) if srv.opened else srv.closed_named
            named_cli = min(cli.closed_named, cli.opened_named) if cli.opened else cli.closed_named
            cells += [share(srv.opened, r.logged), share(srv.closed, r.logged), share(named_srv, r.logged)]
            cells += [share(cli.opened, r.logged), share(cli.closed, r.logged), share(named_cli, r.logged)]
        cells += ["-" if r.lost is None else str(r.lost), _yes(r.caught_up)]
        target = targets.get(r.key)
        missed = misses(r, target) if target is not None and r.tally is not None else []
        cells.append("-" if target is None or r.tally is None else "yes" if not missed else "; ".join(missed))
        lines.append(cells)
    return table(header, lines, "rllrrrrrrrrrrrll")


def _cpu(r: Row) -> str:
    if r.tally is None or not r.logged:
        return "-"
    us = 1e6 / r.logged
    return f"{r.cpu.total * us:.1f} ({r.cpu.user * us:.1f}+{r.cpu.system * us:.1f})"


def _bpf(r: Row) -> str:
    if not r.bpf.runs or not r.logged:
        return "-"
    skipped = f", {r.bpf.skipped:,} skipped" if r.bpf.skipped else ""
    return f"{r.bpf.ns / r.logged:,.0f} ({r.bpf.runs / r.logged:.1f}{skipped})"


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "**no**"


def median_of(rows: list[Row], value: Callable[[Row], float | None]) -> float | None:
    xs = [x for r in rows if (x := value(r)) is not None]
    return statistics.median(xs) if xs else None


def render_summary(
    rows: list[Row], targets: list[Target], labels: dict[str, str], baseline: str, alone: str
) -> tuple[list[str], list[Verdict]]:
    """Per watcher: medians and ranges over the rounds, ratios and the verdict."""
    base = [r for r in rows if r.key == baseline]
    alone_rate = median_of([r for r in rows if r.key == alone], lambda r: r.load.rate)
    header = ["watcher", "runs", "CPU µs/conn", "vs tcplife", "target", "BPF ns/conn", "ab conn/s"]
    header += ["ab rate vs alone", "lost", "BPF runs skipped", "result"]
    lines, verdicts = [], []
    for target in targets:
        mine = [r for r in rows if r.key == target.key]
        if not mine:
            continue
        v = judge(rows, base, target)
        verdicts.append(v)
        rate = median_of(mine, lambda r: r.load.rate)
        cells = [labels.get(target.key, target.key), str(len(mine))]
        cells.append(spread(x for r in mine if r.tally is not None and (x := r.per_conn_us()) is not None))
        cells.append("-" if v.ratio is None or target.key == baseline else fmt_range(v.ratio, ".2f"))
        cells.append(f"≤ {target.ratio:g}" if target.ratio is not None else "-")
        cells.append(spread((x for r in mine if (x := r.bpf_per_conn_ns()) is not None), ",.0f"))
        cells.append(spread((r.load.rate for r in mine), ",.0f"))
        cells.append(f"{rate / alone_rate:.0%}" if rate is not None and alone_rate else "-")
        cells.append(", ".join("-" if r.lost is None else str(r.lost) for r in mine))
        cells.append(", ".join(str(r.bpf.skipped) if r.bpf.runs else "-" for r in mine))
        cells.append(f"**{v.word}**" if v.passed is not None else v.word)
        lines.append(cells)
    return table(header, lines, "lrrrlrrrlll"), verdicts


def environment(sockscope: str) -> dict[str, str]:
    """Where and what was measured."""

    def out(argv: list[str]) -> str:
        p = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (p.stdout + p.stderr).strip() if p.returncode == 0 else ""

    head = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
    path = sockscope
    if Path(sockscope).is_relative_to(REPO):
        path = str(Path(sockscope).relative_to(REPO))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "nginx": out(["nginx", "-v"]).removeprefix("nginx version: "),
        "sockscope": f"{path} (commit {head or '?'}{' + uncommitted changes in src/' if dirty else ''})",
    }


def write_section(
    name: str, title: str, command: str, env: dict[str, str], body: list[str], path: Path = RESULTS
) -> None:
    """Replace benchmark ``name``'s marked section of bench/RESULTS.md (or append it)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = [*section_head(begin, title, command, env), *body, "", end]
    replace_section(begin, end, "\n".join(section), path)
