"""The section of bench/RESULTS.md that bench_watch.py writes: sockscope against tcplife."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from harness.measure import Row
from harness.report import median_of, render_runs, render_summary
from harness.verdict import Target, Verdict, highest_clean, median_range, misses
from harness.watchers import WatcherSpec

BASELINE, ALONE = "tcplife", "none"

EXPLAIN = [
    "nginx (2 workers, `keepalive_timeout 0`: one connection per request) in a network",
    "namespace of its own, `ab` from inside it; each run gets a fresh namespace and nginx, and",
    "one watcher: `sockscope watch --netns NS` with the arguments shown (run from the host, so",
    "the eBPF program compares the namespace's inode in the kernel), libbpf-tools `tcplife`",
    "(`/usr/sbin/tcplife`, one line per closed socket; it has no namespace filter and sees the",
    "whole host), or none. The watchers take turns in each round. *CPU µs/conn*: the",
    "watcher's user + system time (every thread's schedstat) from just before the load to 3 s",
    "after it, per connection in nginx's access log; *vs tcplife*: that over tcplife's in the",
    "same round, median and range of the rounds, judged against the target. *BPF ns/conn*:",
    "the run time of the programs the watcher loaded (`BPF_ENABLE_STATS`), which the kernel",
    "charges to the processes whose sockets change state, not to the watcher. Every connection",
    "nginx logged is looked up in the watcher's output by its client address and port at both",
    "ends: the server end must be named `nginx` and the client end `ab` (on open and on close",
    "where the target asks for opens), nothing lost (the watcher's own count), and all of it",
    "written by the end of the window (*caught up*).",
]


def render(
    rows: list[Row],
    sweep: list[Row],
    stopped: list[str],
    labels: dict[str, str],
    targets: list[Target],
    sweep_specs: Sequence[tuple[WatcherSpec, Target]],
) -> list[str]:
    """The whole section body."""
    summary, verdicts = render_summary(rows, targets, labels, BASELINE, ALONE)
    out = [*EXPLAIN, "", *summary, "", *_verdicts(verdicts, labels), ""]
    out += [*_naming(rows, labels), "", *_costs(rows, labels), ""]
    if sweep:
        out += [*_sweep(sweep, stopped, labels, sweep_specs), ""]
    out += ["Every run:", "", *render_runs(rows, labels, {t.key: t for t in targets}), ""]
    opens = {t.key for t in targets if t.opens} | {t.key for _, t in sweep_specs if t.opens}
    return out + _notes(rows, sweep, labels, opens)


def _verdicts(verdicts: list[Verdict], labels: dict[str, str]) -> list[str]:
    out = []
    for v in verdicts:
        if v.passed is None:
            continue
        why = "" if v.passed else ": " + "; ".join(v.reasons)
        out.append(f"- {labels.get(v.key, v.key)}: **{v.word}**{why}")
    return out


def _named_share(rows: list[Row], end: str) -> str:
    """The share of ``end``s named right on close: median (range) over the rounds."""
    shares = [
        100 * getattr(r.tally, end).closed_named / r.logged for r in rows if r.tally is not None and r.logged
    ]
    mr = median_range(shares)
    if mr is None:
        return "-"
    med, lo, hi = (f"{x:.1f}".removesuffix(".0") + "%" for x in mr)
    return med if lo == hi else f"{med} ({lo}-{hi})"


def _naming(rows: list[Row], labels: dict[str, str]) -> list[str]:
    out = [
        "Server ends named `nginx` and client ends named `ab` on close (median and range of the rounds):",
        "",
    ]
    for key in dict.fromkeys(r.key for r in rows if r.tally is not None):
        mine = [r for r in rows if r.key == key]
        names: Counter[str] = Counter()
        for r in mine:
            if r.tally is not None:
                names.update(r.tally.server.names)
        other = ", ".join(f"{n} {c:,}" for n, c in names.most_common(3))
        out.append(
            f"- {labels.get(key, key)}: server ends {_named_share(mine, 'server')} (names given: {other}),"
            f" client ends {_named_share(mine, 'client')}"
        )
    return out


def _costs(rows: list[Row], labels: dict[str, str]) -> list[str]:
    base = median_of([r for r in rows if r.key == BASELINE], _total_us)
    alone = median_of([r for r in rows if r.key == ALONE], lambda r: r.load.rate)
    out = [
        "The whole cost, the watcher's CPU plus its programs' run time in the kernel, per",
        "connection (median), and ab's rate beside it (median, against ab alone):",
        "",
    ]
    for key in dict.fromkeys(r.key for r in rows):
        mine = [r for r in rows if r.key == key]
        total, rate = median_of(mine, _total_us), median_of(mine, lambda r: r.load.rate)
        ratio = f" = {total / base:.2f} x tcplife's" if total is not None and base and key != BASELINE else ""
        cost = f"{total:.1f} µs{ratio}; " if total is not None else ""
        vs = f" ({rate / alone:.0%})" if rate is not None and alone else ""
        out.append(f"- {labels.get(key, key)}: {cost}ab {rate or 0:,.0f} conn/s{vs}")
    return out


def _total_us(r: Row) -> float | None:
    us = r.per_conn_us()
    if us is None or r.tally is None:
        return None
    return us + r.bpf.ns / r.logged / 1000


def _sweep(
    sweep: list[Row], stopped: list[str], labels: dict[str, str], specs: Sequence[tuple[WatcherSpec, Target]]
) -> list[str]:
    out = [
        "Rate sweep: the paced client (connection *i* at *t0 + i/rate*, one GET each, from",
        f"several processes and loopback addresses) for {_step_seconds(sweep):g} s at each rate, a fresh",
        "stage and watcher per step; *round* is the step. Complete = every connection opened and "
        "closed at both",
        "ends, named, 0 lost, caught up within 3 s. One run per rate: on this shared machine the",
        "highest clean rate moves by a step from one run of the benchmark to the next.",
        "",
        *render_runs(sweep, labels, {t.key: t for _, t in specs}),
        "",
        "Highest rate with nothing missed:",
        "",
    ]
    for spec, target in specs:
        good, _ = highest_clean(sweep, target)
        mine = [r for r in sweep if r.key == spec.key]
        held = next((r for r in mine if r.load.rate == good), None)
        first_miss = next((r for r in mine if misses(r, target)), None)
        line = f"- {spec.label}: nothing missed up to {good:,.0f} conn/s"
        if held is not None and held.load.target_rate:
            line += f" (paced at {held.load.target_rate:,.0f})"
        if first_miss is not None and first_miss.load.target_rate:
            line += (
                f"; missed when paced at {first_miss.load.target_rate:,.0f} (reached"
                f" {first_miss.load.rate:,.0f} conn/s): {'; '.join(misses(first_miss, target))}"
            )
        out.append(line)
    return out + [f"- {s}" for s in stopped]


def _step_seconds(sweep: list[Row]) -> float:
    first = sweep[0].load
    return round(first.requests / first.target_rate, 1) if first.target_rate else 0.0


def _notes(rows: list[Row], sweep: list[Row], labels: dict[str, str], opens: set[str]) -> list[str]:
    """Losses, errors, late loads; closes reported twice where every open is seen too."""
    out = ["Notes:", ""]
    base = [r for r in rows if r.key == BASELINE and r.tally is not None]
    if base:
        extra = statistics.median(r.tally.unmatched for r in base if r.tally is not None)
        out.append(
            f"- tcplife has no namespace filter: it printed a median {extra:,.0f} lines per run about no"
            " connection nginx logged (ab's spare connections, other namespaces' traffic on the host),"
            " and its CPU includes them"
        )
    for r in rows + sweep:
        where = f"{'step' if r in sweep else 'round'} {r.round}, {labels.get(r.key, r.key)}"
        if r.lost and r.summary:
            out.append(f"- {where}: lost {r.summary['lost events']}")
        if r.bpf.skipped and not r.summary:
            skipped = f"the kernel skipped {r.bpf.skipped:,} runs of its program"
            out.append(f"- {where}: {skipped} (it reports lost {r.lost})")
        if r.error:
            out.append(f"- {where}: {r.error}")
        if r.load.detail:
            out.append(f"- {where}: load: {r.load.detail}")
        if (
            r.key in opens
            and r.tally is not None
            and (r.tally.server.duplicates or r.tally.client.duplicates)
        ):
            twice = r.tally.server.duplicates + r.tally.client.duplicates
            out.append(f"- {where}: {twice:,} ends closed more often than they were opened (reported twice)")
        if r.logged and r.bpf.runs > 10.5 * r.logged:
            out.append(f"- {where}: {r.bpf.runs / r.logged:.1f} program runs per connection (other traffic)")
    return out if len(out) > 2 else []
