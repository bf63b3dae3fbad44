"""PASS/FAIL on constructed rows: completeness, losses, catch-up and the CPU ratio."""

from __future__ import annotations

import pytest
from harness.counts import EndCounts, Tally
from harness.cpu import BpfTime, CpuTimes
from harness.measure import Row
from harness.stage import LoadResult
from harness.verdict import Target, highest_clean, judge, median_range, misses, ratios

N = 20_000


def complete(opens: bool = True) -> Tally:
    def end(name: str) -> EndCounts:
        o = N if opens else 0
        return EndCounts(o, N, o, N)

    return Tally(N, end("nginx"), end("ab"))


def row(
    key: str, round_: int, us_per_conn: float, *, opens: bool = True, rate: float = 10_000.0, **kw
) -> Row:
    cpu = us_per_conn * N / 1e6
    r = Row(key, round_, LoadResult("ab", N, N, 0, rate), N, CpuTimes(cpu * 0.9, cpu * 0.1, cpu))
    r.tally, r.summary, r.exit, r.caught_up = complete(opens), {"lost events": "0"}, 0, True
    for name, value in kw.items():
        setattr(r, name, value)
    return r


BASE = [row("tcplife", k, 15.0, opens=False) for k in (1, 2, 3)]
DEFAULT = Target("default", ratio=1.5)


def test_median_range():
    assert median_range([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert median_range([]) is None


def test_a_complete_cheap_watcher_passes():
    rows = [row("default", k, us) for k, us in ((1, 20.0), (2, 21.0), (3, 40.0))]
    v = judge(rows, BASE, DEFAULT)
    assert v.passed and v.word == "PASS"
    assert v.ratio == pytest.approx((1.4, 20 / 15, 40 / 15))


def test_the_median_ratio_decides_not_one_run():
    rows = [row("default", k, us) for k, us in ((1, 20.0), (2, 24.0), (3, 25.0))]
    v = judge(rows, BASE, DEFAULT)
    assert v.passed is False
    assert v.reasons == ["CPU 1.60 x the baseline's, target 1.5"]


def test_ratios_pair_runs_of_the_same_round():
    base = [row("tcplife", 1, 10.0, opens=False), row("tcplife", 2, 20.0, opens=False)]
    mine = [row("default", 1, 15.0), row("default", 2, 15.0), row("default", 3, 15.0)]
    assert ratios(mine, base) == pytest.approx([1.5, 0.75])  # round 3 has no baseline


def test_one_unnamed_server_end_fails():
    r = row("default", 1, 10.0)
    assert r.tally is not None
    r.tally.server.closed_named = N - 1
    assert misses(r, DEFAULT) == [f"server ends named on close {N - 1:,}/{N:,}"]
    v = judge([r], BASE, DEFAULT)
    assert v.passed is False
    assert v.reasons == [f"round 1: server ends named on close {N - 1:,}/{N:,}"]


def test_closes_only_does_not_ask_for_opens():
    closes = Target("closes", ratio=1.0, opens=False)
    r = row("closes", 1, 12.0, opens=False)
    assert misses(r, closes) == []
    assert misses(r, DEFAULT) == [
        f"server ends opened 0/{N:,}",
        f"server ends named on open 0/{N:,}",
        f"client ends opened 0/{N:,}",
        f"client ends named on open 0/{N:,}",
    ]


def test_a_loss_an_exit_and_a_late_watcher_each_fail():
    assert misses(
        row("default", 1, 1.0, summary={"lost events": "3 (eBPF ring buffer full 3)"}), DEFAULT
    ) == ["lost 3"]
    assert misses(row("default", 1, 1.0, exit=1), DEFAULT) == ["exit 1"]
    assert misses(row("default", 1, 1.0, caught_up=False), DEFAULT) == ["not caught up 3 s after the load"]
    assert misses(row("default", 1, 1.0, error="did not stop"), DEFAULT) == ["did not stop"]
    no_summary = row("default", 1, 1.0, summary={})  # then the lost events counted in its output
    assert misses(no_summary, DEFAULT) == []
    assert no_summary.tally is not None
    no_summary.tally.lost = 2
    assert misses(no_summary, DEFAULT) == ["lost 2"]


def test_no_runs_fail_and_contrast_is_not_judged():
    assert judge([], BASE, DEFAULT).passed is False
    contrast = Target("trace", judged=False)
    v = judge([row("trace", 1, 190.0)], BASE, contrast)
    assert v.passed is None and v.word == "ref"
    assert v.ratio is not None and v.ratio[0] == pytest.approx(190 / 15)


def test_no_baseline_means_no_pass_on_cpu():
    v = judge([row("default", 1, 1.0)], [], DEFAULT)
    assert v.passed is False
    assert v.reasons == ["no CPU ratio to the baseline"]


def test_highest_clean_rate_of_a_sweep():
    rows = [
        row("default", 1, 10.0, rate=2_000.0),
        row("default", 2, 10.0, rate=4_000.0),
        row("default", 3, 10.0, rate=8_000.0, summary={"lost events": "40"}),
        row("default", 4, 10.0, rate=6_000.0),
    ]
    assert highest_clean(rows, DEFAULT) == (6_000.0, 8_000.0)
    assert highest_clean(rows[:2], DEFAULT) == (4_000.0, None)


def test_bpf_time_and_cpu_per_connection():
    r = row("default", 1, 27.0)
    r.bpf = BpfTime(80_000_000, 200_000)
    assert r.per_conn_us() == pytest.approx(27.0)
    assert r.bpf_per_conn_ns() == pytest.approx(4_000.0)
    assert Row("none", 1).per_conn_us() is None
