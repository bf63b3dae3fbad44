"""Pure: a recording's summed-up rows become the report's sections.

No drawing and no I/O: the rows come from ``record.aggregate``, the times of day are
shown in the ``tz`` given, and what comes out is ``report.model`` values.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import PurePath

from sockscope.record.aggregate import BINS_PER_DECADE, RESET_STATES, ListenerRow, QueueBucket, RecordingData
from sockscope.report.model import (
    Column,
    Histogram,
    Kind,
    Line,
    Marks,
    Plot,
    Report,
    Section,
    Table,
    TimePlot,
)
from sockscope.report.sections import (
    capture_section,
    conversation_section,
    process_section,
    transition_section,
)
from sockscope.report.streams import Key, Stream
from sockscope.report.units import format_count, format_seconds, format_time, utc_offset

#: Listeners that get a plot of their own; the others are in the table.
MAX_QUEUE_PLOTS = 6


def build_report(
    data: RecordingData, tz: tzinfo, streams: dict[Key, list[Stream]] | None = None, capture: str = ""
) -> Report:
    """Every section of the page, from the rows of one recording."""
    kinds = Table(
        "events_by_kind",
        "Events by kind",
        (Column("Event"), Column("Count", Kind.COUNT)),
        [(k, n) for k, n in data.kinds],
    )
    report = Report(
        f"sockscope report: {PurePath(data.path).name}",
        _facts(data, tz),
        _alerts(data),
        [],
        [kinds],
    )
    if data.first is None:
        report.sections.append(_nothing(data, tz))
    else:
        report.sections.append(io_section(data))
    report.sections.append(queue_section(data))
    if data.first is not None:
        report.sections += [
            duration_section(data),
            conversation_section(data),
            process_section(data),
            transition_section(data),
        ]
    if streams is not None:
        report.sections.append(capture_section(data, streams, capture))
    return report


def _period(data: RecordingData) -> tuple[float | None, float | None]:
    """When the recording started and what it last holds (events or queue samples)."""
    started = _float(data.meta.get("started"))
    first = data.first if data.first is not None else started
    ends = [t for t in (data.last, *(_queue_end(data),)) if t is not None]
    return first, max(ends) if ends else first


def _queue_end(data: RecordingData) -> float | None:
    return max(q.bucket for q in data.queues) * data.width if data.queues else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _facts(data: RecordingData, tz: tzinfo) -> list[tuple[str, str]]:
    meta = data.meta
    first, last = _period(data)
    period = "unknown"
    if first is not None and last is not None:
        period = (
            f"{format_time(first, tz, date=True)} to {format_time(last, tz, date=True)} "
            f"({utc_offset(first, tz)}), {format_seconds(last - first)}"
        )
    shown = sum(n for _, n in data.kinds)
    events = format_count(data.total_events)
    if data.filter_text:
        events = f"{format_count(shown)} of {events} (filter: {data.filter_text})"
    return [
        ("Recording", f"{data.path} (format {data.version})"),
        ("Host", meta.get("host", "unknown")),
        ("Namespace", meta.get("netns") or "the watcher's own"),
        ("Period", period),
        ("Sources", ", ".join((meta.get("sources") or "").split(",")) or ", ".join(data.sources) or "none"),
        ("Recorded with the filter", meta.get("filter") or "none (everything)"),
        ("Events", events),
        ("Queue samples", format_count(data.samples) if data.version >= 2 else "none (format 1)"),
        ("Lost events", format_count(data.lost)),
        ("Made by", meta.get("tool", "unknown")),
    ]


def _alerts(data: RecordingData) -> list[str]:
    alerts = list(data.warnings)
    if data.lost:
        alerts.append(
            f"{format_count(data.lost)} events were lost: the kernel could not deliver them "
            "(its buffers overran). Every count below is missing them."
        )
    return alerts


def _nothing(data: RecordingData, tz: tzinfo) -> Section:
    first, last = _period(data)
    if first is None or last is None:
        when = "when the recording was made"
    else:
        when = f"between {format_time(first, tz, date=True)} and {format_time(last, tz, date=True)}"
    what = "matched the filter" if data.filter_text and data.total_events else "was recorded"
    return Section("events", "Events", empty=f"Nothing {what} {when}.")


def _title_filter(data: RecordingData) -> str:
    parts = []
    if data.meta.get("filter"):
        parts.append(f"recorded with '{data.meta['filter']}'")
    if data.filter_text:
        parts.append(f"shown: '{data.filter_text}'")
    return f" ({'; '.join(parts)})" if parts else ""


def _per(width: float) -> str:
    return "per second" if width == 1 else f"per second (mean over {format_seconds(width)})"


def io_section(data: RecordingData) -> Section:
    """Connections opened, closed and reset per time bucket."""
    w = data.width
    by = {b: (o, c, r) for b, o, c, r in data.io}
    # Every bucket of the recording's period, quiet ones as zeros, and one more at the
    # end: where the last step ends.
    lo = int((data.first or 0.0) // w)
    hi = max(int((data.last or 0.0) // w), lo)
    xs = [b * w for b in range(lo, hi + 2)]
    series = [[by.get(b, (0, 0, 0))[i] / w for b in range(lo, hi + 2)] for i in range(3)]
    plot = TimePlot(
        "io",
        f"Connections opened, closed and reset{_title_filter(data)}",
        f"events {_per(w)}",
        [
            Line("opened", xs, series[0], 0),
            Line("closed", xs, series[1], 1),
            Line("reset", xs, series[2], 3),
        ],
        xlim=(xs[0], xs[-1]),
        integer=w == 1,
    )
    table = Table(
        "io",
        "Opened, closed and reset per time bucket",
        (
            Column("Start", Kind.TIME),
            Column("Opened", Kind.COUNT),
            Column("Closed", Kind.COUNT),
            Column("Reset", Kind.COUNT),
        ),
        [(b * w, o, c, r) for b, o, c, r in data.io],
        on_page=False,
    )
    intro = (
        "Each end of a connection is counted: a loopback connection opens and closes twice. "
        f"Reset: closed in {', '.join(RESET_STATES)}, without an orderly exchange of FINs."
    )
    return Section("io", "Connections over time", intro, [plot], [table])


def queue_section(data: RecordingData) -> Section:
    """Each listener's accept queue against its capacity, with drops marked."""
    title = "Listen queues"
    if data.version < 2:
        return Section("queues", title, empty="This recording (format 1) has no queue samples.")
    if not data.listeners or not data.queues:
        return Section("queues", title, empty="No listener was seen while recording.")
    by: dict[int, list[QueueBucket]] = {}
    for q in data.queues:
        by.setdefault(q.listener, []).append(q)
    names = {x.ident: x for x in data.listeners}
    ranked = sorted(by, key=lambda i: (-max(q.accept_queue / max(q.capacity, 1) for q in by[i]), i))
    plots: list[Plot] = [_queue_plot(names[i], by[i], data) for i in ranked[:MAX_QUEUE_PLOTS]]
    rows = [_queue_row(names[i], by[i]) for i in ranked]
    table = Table(
        "listeners",
        "Listeners",
        (
            Column("Listener"),
            Column("Process"),
            Column("Peak queue", Kind.COUNT),
            Column("Capacity", Kind.COUNT),
            Column("Peak half-open", Kind.COUNT),
            Column("Drops", Kind.COUNT),
        ),
        rows,
        note=(f"Peaks over {format_seconds(data.width)}. " if data.width > 1 else "")
        + "Capacity: backlog + 1, what the queue admits.",
    )
    intro = (
        "Accepted by TCP, not yet by the application: the accept queue at each poll, "
        "against what it admits (backlog + 1). Drops are the listener's own counter."
    )
    return Section("queues", title, intro, plots, [table])


def listener_name(x: ListenerRow) -> str:
    """``127.0.0.1:2323``, ``[::1]:80``, ``*:22``."""
    addr = x.address or "*"
    if addr in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        addr = "*"
    elif ":" in addr:
        addr = f"[{addr}]"
    return f"{addr}:{x.port}"


def _process(x: ListenerRow) -> str:
    return f"{x.process}/{x.pid}" if x.process else "-"


def _drops(rows: list[QueueBucket]) -> tuple[int, list[QueueBucket]]:
    """Total drops over the recording, and the buckets where the counter rose."""
    total, rose, prev = 0, [], None
    for q in rows:
        if q.drops is not None and prev is not None and q.drops > prev:
            total += q.drops - prev
            rose.append(q)
        prev = q.drops if q.drops is not None else prev
    return total, rose


def _queue_row(x: ListenerRow, rows: list[QueueBucket]) -> tuple[object, ...]:
    return (
        listener_name(x),
        _process(x),
        max(q.accept_queue for q in rows),
        max(q.capacity for q in rows),
        max(q.half_open for q in rows),
        _drops(rows)[0],
    )


def _queue_plot(x: ListenerRow, rows: list[QueueBucket], data: RecordingData) -> TimePlot:
    w = data.width
    xs = [float(q.bucket * w) for q in rows]
    _, rose = _drops(rows)
    marks = [Marks("drops", [float(q.bucket * w) for q in rose], [float(q.accept_queue) for q in rose])]
    events = [(b, n) for b, port, n in data.dropped if port == x.port]
    if events:
        marks.append(Marks("dropped events", [float(b * w) for b, _ in events], [0.0] * len(events), 4))
    return TimePlot(
        f"queue-{x.ident}",
        f"Accept queue of {listener_name(x)} ({_process(x)})",
        "connections (at each poll)" if w <= 1 else f"connections (peak over {format_seconds(w)})",
        [
            Line("accept queue", xs, [float(q.accept_queue) for q in rows], 0),
            Line("capacity (backlog + 1)", xs, [float(q.capacity) for q in rows], 1, dashed=True),
            Line("half-open (SYN_RECV)", xs, [float(q.half_open) for q in rows], 2),
        ],
        marks,
    )


def duration_section(data: RecordingData) -> Section:
    """How long connections lived and their round-trip times, on log scales."""
    n, median, p90, p99, longest = data.duration_stats
    hists = [
        _histogram("durations", "Connection durations", "duration of a closed connection", data.durations, 1),
        _histogram("rtt", "Round-trip times", "smoothed RTT at close", data.rtts, 1e-6),
    ]
    plots: list[Plot] = [p for p in hists if p.counts]
    table = Table(
        "durations",
        "Durations of closed connections",
        (
            Column("Connections", Kind.COUNT),
            Column("Median", Kind.SECONDS),
            Column("90th percentile", Kind.SECONDS),
            Column("99th percentile", Kind.SECONDS),
            Column("Longest", Kind.SECONDS),
        ),
        [(n, median, p90, p99, longest)] if n else [],
    )
    section = Section("durations", "Durations and round-trip times", plots=plots, tables=[table])
    if not plots:
        section.empty = "No connection closed with a known duration or RTT."
    return section


def _histogram(name: str, title: str, xlabel: str, bins: list[tuple[int, int]], scale: float) -> Histogram:
    if not bins:
        return Histogram(name, title, xlabel, "s", [], [])
    by = dict(bins)
    lo, hi = min(by), max(by)
    edges = [10 ** (b / BINS_PER_DECADE) * scale for b in range(lo, hi + 2)]
    return Histogram(name, title, xlabel, "s", edges, [by.get(b, 0) for b in range(lo, hi + 1)])
