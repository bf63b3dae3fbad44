"""Pure: ``sockscope stats`` text."""

from __future__ import annotations

from datetime import datetime

from sockscope.model.stats import RecordingStats
from sockscope.render.events import format_duration
from sockscope.render.table import Column, render_table

TOP = 20
BAR = 40


def render_stats(st: RecordingStats) -> list[str]:
    """Events by kind, conversations, busiest ports, connections per second."""
    if st.first is None or st.last is None:
        return ["no events recorded"]
    span = max(st.last - st.first, 0.0)
    out = [
        f"{sum(st.kinds.values())} events from "
        f"{datetime.fromtimestamp(st.first):%Y-%m-%d %H:%M:%S} over {format_duration(span)}"
        f"; lost: {st.lost}",
        "",
        "Events by kind",
    ]
    out += render_table(
        [Column("Event", 9), Column("Count", 5, True)], [[k, str(n)] for k, n in st.kinds.most_common()]
    )
    out += ["", "Conversations (closed connections) by peer and service port"]
    rows = []
    for (peer, port), c in sorted(st.conversations.items(), key=lambda kv: -kv[1].count)[:TOP]:
        d = sorted(c.durations)
        rows.append(
            [
                peer,
                str(port),
                str(c.count),
                str(c.bytes_sent),
                str(c.bytes_received),
                format_duration(sum(d) / len(d)) if d else "-",
                format_duration(d[len(d) // 2]) if d else "-",
                format_duration(d[-1]) if d else "-",
            ]
        )
    out += render_table(
        [
            Column("Peer", 4),
            Column("Port", 4, True),
            Column("Conns", 5, True),
            Column("Bytes sent", 10, True),
            Column("Bytes recv", 10, True),
            Column("Mean dur", 8, True),
            Column("Median", 6, True),
            Column("Max dur", 7, True),
        ],
        rows,
    )
    out += ["", "Busiest ports (closed connections)"]
    out += render_table(
        [Column("Port", 4, True), Column("Conns", 5, True)],
        [[str(p), str(n)] for p, n in st.ports.most_common(TOP)],
    )
    out += ["", "Connections opened per second"]
    peak = max(st.per_second.values(), default=0)
    if peak:
        start = min(st.per_second)
        for sec in range(start, max(st.per_second) + 1):
            n = st.per_second.get(sec, 0)
            out.append(f"{datetime.fromtimestamp(sec):%H:%M:%S} {n:>7} " + "#" * round(BAR * n / peak))
    return out
