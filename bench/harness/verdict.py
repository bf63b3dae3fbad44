"""Medians, ranges and PASS/FAIL: what the rows say against their targets. Pure.

A watcher passes when every one of its runs is complete (what its target asks of the
connections nginx logged, nothing lost, a clean exit, caught up within the window) and
the median of its CPU per connection over the baseline's, round by round (the peers
ran in the same round, so a busier moment of the shared machine touches both), is at
most the target ratio.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.measure import Row


@dataclass(frozen=True)
class Target:
    """What a watcher must do.

    ``opens``: every logged connection seen opening at both ends; ``closes``: seen
    closing at both ends; ``named``: those events name nginx at the server end and the
    client at the other; ``lossless``: 0 lost; ``ratio``: CPU per connection at most
    this many times the baseline's (None: not judged on CPU). ``judged`` False: shown
    for contrast only.
    """

    key: str
    ratio: float | None = None
    opens: bool = True
    closes: bool = True
    named: bool = True
    lossless: bool = True
    judged: bool = True


@dataclass
class Verdict:
    key: str
    passed: bool | None  # None: not judged
    reasons: list[str] = field(default_factory=list)
    ratio: tuple[float, float, float] | None = None  # median, lowest, highest

    @property
    def word(self) -> str:
        return "ref" if self.passed is None else "PASS" if self.passed else "FAIL"


def median_range(values: Iterable[float]) -> tuple[float, float, float] | None:
    """(median, lowest, highest), None for no values."""
    xs = sorted(values)
    return (statistics.median(xs), xs[0], xs[-1]) if xs else None


def misses(row: Row, target: Target) -> list[str]:
    """What ``row`` missed of ``target``'s completeness (empty: complete)."""
    t = row.tally
    if row.error or t is None or not row.logged:
        return [row.error or "no result"]
    wanted: list[tuple[str, int]] = []
    for name, end in (("server", t.server), ("client", t.client)):
        if target.opens:
            wanted.append((f"{name} ends opened", end.opened))
            if target.named:
                wanted.append((f"{name} ends named on open", end.opened_named))
        if target.closes:
            wanted.append((f"{name} ends closed", end.closed))
            if target.named:
                wanted.append((f"{name} ends named on close", end.closed_named))
    out = [f"{what} {n:,}/{row.logged:,}" for what, n in wanted if n < row.logged]
    if target.lossless and row.lost != 0:
        out.append(f"lost {row.lost}")
    if row.exit not in (0, None):
        out.append(f"exit {row.exit}")
    if row.caught_up is False:
        out.append("not caught up 3 s after the load")
    return out


def ratios(rows: list[Row], baseline: list[Row]) -> list[float]:
    """CPU per connection over the baseline's, for each round both ran in."""
    base = {r.round: r.per_conn_us() for r in baseline}
    out = []
    for r in rows:
        mine, theirs = r.per_conn_us(), base.get(r.round)
        if mine is not None and theirs:
            out.append(mine / theirs)
    return out


def judge(rows: list[Row], baseline: list[Row], target: Target) -> Verdict:
    """PASS or FAIL for ``target``'s watcher over its ``rows``, against ``baseline``'s."""
    mine = [r for r in rows if r.key == target.key]
    verdict = Verdict(target.key, None, ratio=median_range(ratios(mine, baseline)))
    if not target.judged:
        return verdict
    if not mine:
        verdict.passed, verdict.reasons = False, ["no runs"]
        return verdict
    for r in mine:
        verdict.reasons += [f"round {r.round}: {m}" for m in misses(r, target)]
    if target.ratio is not None:
        if verdict.ratio is None:
            verdict.reasons.append("no CPU ratio to the baseline")
        elif verdict.ratio[0] > target.ratio:
            verdict.reasons.append(f"CPU {verdict.ratio[0]:.2f} x the baseline's, target {target.ratio:g}")
    verdict.passed = not verdict.reasons
    return verdict


def highest_clean(rows: list[Row], target: Target) -> tuple[float, float | None]:
    """Over a sweep: the highest achieved rate with nothing missed, and the lowest rate
    at which something was (None: none was)."""
    good = [r.load.rate for r in rows if r.key == target.key and not misses(r, target)]
    bad = [r.load.rate for r in rows if r.key == target.key and misses(r, target)]
    return max(good, default=0.0), min(bad, default=None)
