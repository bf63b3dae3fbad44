"""The proof's section rendered from constructed rows: what it says follows the rows."""

from __future__ import annotations

from collections import Counter

from harness.counts import EndCounts, Tally
from harness.cpu import BpfTime, CpuTimes
from harness.measure import Row
from harness.plan import progress
from harness.stage import LoadResult
from harness.verdict import Target
from harness.watch_report import render
from harness.watchers import WatcherSpec

N = 1000


def row(
    key: str, round_: int, us: float, *, named_srv: int = N, opens: bool = True, rate: float = 9000.0
) -> Row:
    o = N if opens else 0
    server = EndCounts(o, N, o, named_srv, Counter({"nginx": named_srv, "ab": N - named_srv}))
    client = EndCounts(o, N, o, N, Counter({"ab": N}))
    r = Row(key, round_, LoadResult("ab -n 1000 -c 50", N, N, 0, rate, 0.1), N, CpuTimes(0, 0, us * N / 1e6))
    r.tally, r.exit, r.caught_up, r.bpf = (
        Tally(N, server, client, unmatched=40),
        0,
        True,
        BpfTime(N * 3000, N * 10),
    )
    r.summary = {"lost events": "0"} if key != "tcplife" else {}
    return r


LABELS = {"tcplife": "tcplife", "default": "bpf, default events", "closes": "closes", "none": "none"}
TARGETS = [
    Target("tcplife", opens=False, named=False, judged=False),
    Target("default", ratio=1.5),
    Target("closes", ratio=1.0, opens=False),
    Target("none", judged=False),
]


def test_the_section_says_pass_fail_naming_and_sweep():
    rows = []
    for k in (1, 2, 3):
        rows += [row("tcplife", k, 15.0, named_srv=2, opens=False), row("default", k, 20.0)]
        rows += [
            row("closes", k, 16.0, opens=False),
            Row("none", k, LoadResult("ab", N, N, 0, 12000.0, 0.1), N),
        ]
    jsonl = (WatcherSpec("jsonl", "with --jsonl", "sockscope", ("--jsonl",)), Target("jsonl"))
    sweep = [row("jsonl", 1, 30.0, rate=2000.0), row("jsonl", 2, 30.0, rate=4000.0)]
    for r in sweep:
        r.load.target_rate = r.load.rate
    sweep[1].summary = {"lost events": "5"}
    peer = row("tcplife", 3, 15.0, opens=False, rate=4000.0)
    peer.bpf, peer.load.target_rate = BpfTime(N, N * 10, 42), 4000.0
    sweep.append(peer)
    text = "\n".join(render(rows, sweep, ["with --jsonl: stopped"], LABELS, TARGETS, [jsonl]))
    assert "- bpf, default events: **PASS**" in text
    assert "- closes: **FAIL**: CPU 1.07 x the baseline's, target 1" in text
    assert "- tcplife: server ends 0.2% (names given: ab 2,994, nginx 6)" in text
    assert (
        "- with --jsonl: nothing missed up to 2,000 conn/s (paced at 2,000); missed when paced"
        " at 4,000 (reached 4,000 conn/s): lost 5"
    ) in text
    assert "- with --jsonl: stopped" in text
    assert "median 40 lines per run about no connection nginx logged" in text
    assert "- step 3, tcplife: the kernel skipped 42 runs of its program (it reports lost 0)" in text
    # ab's rate beside each watcher against its rate alone, and the whole cost with BPF.
    assert "- bpf, default events: 23.0 µs = 1.28 x tcplife's; ab 9,000 conn/s (75%)" in text
    assert text.count("| 1 | bpf, default events |") == 1


def test_progress_line():
    line = progress(row("default", 2, 27.0))
    assert line.startswith("2 default")
    assert "srv o/c/named 1000/1000/1000" in line and "cpu 27.0 us/conn" in line
