"""The report's content, built from real recordings without matplotlib or a browser."""

from __future__ import annotations

import csv
import io
from datetime import UTC
from pathlib import Path

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.model.filter import parse_filter
from sockscope.record.aggregate import bucket_width, read_recording
from sockscope.report.build import build_report
from sockscope.report.model import Histogram, Report, TimePlot
from sockscope.report.page import render_csv, render_page
from sockscope.report.units import format_bytes, format_seconds, format_si
from tests.report.helpers import T0, make_recording

FIXTURE = Path(__file__).parents[1] / "fixtures" / "recordings" / "v1-watch.db"


def report_of(path: Path, text: str = "") -> Report:
    flt = parse_filter(text) if text else None
    data = read_recording(path, flt.matches if flt else None, None, text)  # type: ignore[arg-type]
    return build_report(data, UTC)


def section(report: Report, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in report.sections if s.name == name)


def table(report: Report, name: str):  # type: ignore[no-untyped-def]
    return next(t for t in report.all_tables() if t.name == name)


def test_every_section_from_a_recording(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db"))
    assert [s.name for s in rep.sections] == [
        "io",
        "queues",
        "durations",
        "conversations",
        "processes",
        "transitions",
    ]
    facts = dict(rep.facts)
    assert facts["Host"] == "testhost" and facts["Namespace"] == "ns1"
    assert facts["Sources"] == "poll, destroy, trace" and facts["Lost events"] == "0"
    assert facts["Events"] == "90" and facts["Queue samples"] == "62"
    assert facts["Period"] == "2027-01-15 08:00:00 to 2027-01-15 08:00:30 (UTC+00:00), 30 s"
    # One connection a second for 30 s: opened 1/s, closed 1/s, a third of them reset.
    io_plot = section(rep, "io").plots[0]
    assert isinstance(io_plot, TimePlot)
    opened, closed, reset = io_plot.lines
    assert sum(opened.ys) == 30 and sum(closed.ys) == 30 and sum(reset.ys) == 10
    assert opened.xs[0] == T0 and max(opened.ys) == 1.0


def test_queue_section_marks_the_fill_and_the_drops(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db"))
    queues = section(rep, "queues")
    # The listener whose queue filled comes first, its capacity is backlog + 1.
    assert [p.name for p in queues.plots] == ["queue-1", "queue-2"]
    plot = queues.plots[0]
    assert isinstance(plot, TimePlot) and "*:2323 (server/100)" in plot.title
    queue, capacity, half_open = plot.lines
    assert max(queue.ys) == 4 and set(capacity.ys) == {4.0} and set(half_open.ys) == {0.0}
    drops = plot.marks[0]
    assert drops.xs == [T0 + 11, T0 + 12] and drops.ys == [4.0, 4.0]
    rows = table(rep, "listeners").rows
    assert rows[0] == ("*:2323", "server/100", 4, 4, 0, 5)
    assert rows[1] == ("*:8080", "server/100", 0, 129, 0, 0)


def test_conversations_match_stats(tmp_path: Path) -> None:
    db = make_recording(tmp_path / "run.db")
    rep = report_of(db)
    (row,) = table(rep, "conversations").rows
    out = io.StringIO()
    assert main(["stats", str(db)], Env(stdout=out, stderr=io.StringIO())) == 0
    stats_row = next(line.split() for line in out.getvalue().splitlines() if line.startswith("10.0.0.7"))
    assert row[:5] == ("10.0.0.7", 2323, 30, 30_000, 300)
    assert stats_row[:5] == ["10.0.0.7", "2323", "30", "30000", "300"]
    assert row[6] == pytest.approx(0.016)  # the median as stats takes it: the upper middle
    assert stats_row[6] == "16.0ms"
    assert table(rep, "ports").rows == [(2323, 30)]
    assert table(rep, "processes").rows[0][:5] == ("server", 100, 90, 30, 30)
    assert table(rep, "transitions").rows == [("SYN_RECV", "ESTABLISHED", 30)]


def test_histograms_on_log_bins(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db"))
    durations, rtt = section(rep, "durations").plots
    assert isinstance(durations, Histogram) and isinstance(rtt, Histogram)
    assert sum(durations.counts) == 30 and sum(rtt.counts) == 30
    assert durations.edges[0] <= 0.001 < durations.edges[1]  # 1 ms .. 30 ms
    assert durations.edges[-2] <= 0.030 < durations.edges[-1]
    assert rtt.edges[0] <= 50e-6 and rtt.edges[-1] > 79e-6  # 50 .. 79 µs, in seconds
    (stats,) = table(rep, "durations").rows
    assert stats[0] == 30 and stats[4] == pytest.approx(0.030)


def test_a_filter_narrows_every_section(tmp_path: Path) -> None:
    db = make_recording(tmp_path / "run.db")
    rep = report_of(db, "rport < 50010")
    assert dict(rep.facts)["Events"] == "30 of 90 (filter: rport < 50010)"
    width = read_recording(db, parse_filter("rport < 50010").matches).width  # type: ignore[arg-type]
    assert width == 0.2  # ten seconds of events: sub-second buckets
    assert sum(section(rep, "io").plots[0].lines[0].ys) * width == pytest.approx(10)  # type: ignore[union-attr]
    assert table(rep, "conversations").rows[0][2] == 10
    assert "shown: 'rport < 50010'" in section(rep, "io").plots[0].title
    # Listeners are matched as listeners: a port filter keeps its own.
    only = report_of(db, "lport == 8080")
    assert [r[0] for r in table(only, "listeners").rows] == ["*:8080"]
    assert only.sections[0].empty.startswith("Nothing matched the filter")


def test_an_empty_recording_says_so(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db", connections=0, samples=False))
    (events, queues) = rep.sections
    assert events.empty == "Nothing was recorded between 2027-01-15 08:00:00 and 2027-01-15 08:00:00."
    assert queues.empty == "No listener was seen while recording."
    page = render_page(rep, {}, UTC)
    assert "Nothing was recorded between" in page and "<svg" not in page


def test_one_event_makes_a_page(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db", connections=1, samples=False))
    io_plot = section(rep, "io").plots[0]
    assert isinstance(io_plot, TimePlot) and io_plot.xlim is not None
    assert io_plot.xlim[1] > io_plot.xlim[0]  # a visible span around the single bucket
    assert sum(io_plot.lines[0].ys) > 0


def test_nothing_matched_the_filter(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db", samples=False), "lport == 1")
    assert rep.sections[0].empty.startswith("Nothing matched the filter between 2027-01-15 08:00:00")


def test_a_format_1_recording_reports_without_queues() -> None:
    rep = report_of(FIXTURE)
    assert section(rep, "queues").empty == "This recording (format 1) has no queue samples."
    assert dict(rep.facts)["Recording"].endswith("(format 1)")
    assert sum(section(rep, "io").plots[0].lines[1].ys) * read_recording(FIXTURE).width == 24  # type: ignore[union-attr]


def test_csv_holds_raw_values(tmp_path: Path) -> None:
    rep = report_of(make_recording(tmp_path / "run.db"))
    rows = list(csv.reader(io.StringIO(render_csv(table(rep, "conversations")))))
    assert rows[0][:3] == ["Peer", "Port", "Conns"] and rows[1][:5] == [
        "10.0.0.7",
        "2323",
        "30",
        "30000",
        "300",
    ]
    io_rows = list(csv.reader(io.StringIO(render_csv(table(rep, "io")))))
    assert io_rows[1][0] == str(T0) or float(io_rows[1][0]) == T0


@pytest.mark.parametrize(
    ("first", "last", "width"),
    [
        (None, None, 1),
        (0.0, 0.0, 1),
        (0.0, 0.001, 0.01),
        (0.0, 1.0, 0.05),
        (0.0, 30.0, 1),
        (0.0, 3600.0, 5),
        (0.0, 86400.0, 60),
    ],
)
def test_bucket_width(first: float | None, last: float | None, width: float) -> None:
    assert bucket_width(first, last) == width


def test_si_units() -> None:
    assert format_si(0.00042, "s") == "420 µs"
    assert format_si(1_234_567, "B") == "1.23 MB"
    assert format_seconds(0.0123) == "12.3 ms" and format_seconds(305) == "5 min 05 s"
    assert format_bytes(512) == "512 B" and format_bytes(1500) == "1.5 kB"
