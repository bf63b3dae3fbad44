"""The panels around the table: listeners, the selected row's detail, the status bar.

Each panel is a ``Static`` fed by a ``render_*`` function that returns Rich ``Text``,
so tests can read what a panel says without running an app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from sockscope.model.fields import FIELDS
from sockscope.model.listener import Listener
from sockscope.model.states import TcpState
from sockscope.render.addresses import Notation
from sockscope.render.events import format_duration
from sockscope.render.listing import format_owners
from sockscope.tui.columns import Context, age_text, row_age, size_text
from sockscope.tui.feed import FeedStats
from sockscope.tui.listeners import ListenerHistory, gauge, sparkline
from sockscope.tui.model import Row

#: Registry fields that are not an endpoint's own (events, or either-end shorthands).
_NOT_ENDPOINT = {"event", "duration", "source", "port", "addr"}
_TCP_INFO_UNITS = {
    "rtt_us": "us",
    "rttvar_us": "us",
    "rto_us": "us",
    "min_rtt_us": "us",
    "delivery_rate": "B/s",
    "pacing_rate": "B/s",
    "last_data_recv_ms": "ms",
    "last_ack_recv_ms": "ms",
}


def info_text(name: str, value: object) -> str:
    """One TCP info figure in its unit, scaled for reading: 2.5GB/s, 200.0ms, 1.2MB."""
    unit = _TCP_INFO_UNITS.get(name, "")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if name.startswith("bytes_"):
        return size_text(int(value))
    if unit == "B/s":
        return f"{size_text(int(value))}/s"
    if unit in ("us", "ms"):
        return format_duration(value / (1e6 if unit == "us" else 1e3))
    return f"{value}{unit}"


SPARK = 20  # sparkline width in the listeners panel
STATE_ORDER = (
    "LISTEN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "TIME-WAIT",
    "CLOSE",
    "UDP",
)


def render_listeners(listeners: Sequence[Listener], history: ListenerHistory, notation: Notation) -> Text:
    """One line per listener: queue gauge against the backlog, half-open, drops, trends."""
    out = Text(no_wrap=True, overflow="crop")
    out.append(
        f"{'Listener':<21} {'Accept queue':<17} {'Half-open':>9} {'Drops':>6} "
        f"{'Program':<12} {'Queue':<{SPARK}} New conn/s\n",
        style="bold",
    )
    if not listeners:
        out.append("no TCP listeners")
        return out
    ordered = sorted(listeners, key=lambda x: (-x.fill, x.endpoint.local_port))
    for lst in ordered:
        hist = history.get(lst)
        ep = lst.endpoint
        style = "bold red" if lst.full else ("yellow" if lst.fill >= 0.8 else "")
        out.append(f"{notation.local(ep):<21.21} ")
        out.append(gauge(lst), style=style or "green")
        out.append(f" {lst.accept_queue:>2}/{lst.capacity:<3}", style=style)
        drops = "-" if lst.drops is None else str(lst.drops)
        owner = format_owners(ep.owners[:1], "netstat")
        out.append(f" {len(lst.half_open):>9} {drops:>6} {owner:<12.12} ")
        out.append(f"{sparkline(hist.queue, SPARK):<{SPARK}} ", style="cyan")
        rate = hist.rate[-1] if hist.rate else 0.0
        out.append(f"{sparkline(hist.rate, SPARK):<{SPARK}}", style="magenta")
        out.append(f" {rate:.1f}\n")
    out.rstrip()
    return out


def _value(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, TcpState):
        return value.name
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _endpoint_fields(row: Row, user_name: str) -> list[tuple[str, str]]:
    ep = row.endpoint
    pairs = []
    for f in FIELDS:
        if (
            f.name in _NOT_ENDPOINT
            or f.name in ("rtt", "cwnd", "retrans")
            or f.name.startswith(("bytes_", "delivery"))
        ):
            continue  # TCP info has a section of its own
        value = user_name if f.name == "user" else _value(f.get(ep))
        pairs.append((f.header, value))
    pairs.append(("Queued", "yes: accepted by TCP, not yet by the application" if row.queued else "no"))
    pairs.append(("Cgroup", _value(ep.cgroup_id)))
    if ep.timer is not None:
        pairs.append(
            ("Timer", f"{ep.timer.kind} {ep.timer.expires_ms}ms (retransmits {ep.timer.retransmits})")
        )
    return pairs


def render_detail(row: Row | None, ctx: Context) -> Text:
    """Everything known about one row: fields, TCP info, owners, and its events."""
    out = Text()
    if row is None:
        out.append("no row selected")
        return out
    ep = row.endpoint
    nt = ctx.notation
    out.append(f"{ep.proto.value} {nt.local(ep)} -> {nt.remote(ep)}\n", style="bold")
    age = age_text(row_age(row, ctx.now))
    out.append(
        f"closed, lived {age}\n" if row.closed else f"seen for {age}\n", style="red" if row.closed else ""
    )
    user = ctx.user_name(ep.uid) if ep.uid is not None else "-"
    for header, value in _endpoint_fields(row, user):
        out.append(f"  {header + ':':<15}{value}\n")
    out.append("TCP info\n", style="bold")
    info = ep.tcp_info
    if info is None:
        out.append("  none (not TCP, or not dumped yet)\n")
    else:
        for name, value in info._asdict().items():
            out.append(f"  {name + ':':<18}{info_text(name, value)}\n")
    out.append("Owners\n", style="bold")
    for o in ep.owners:
        out.append(f"  pid {o.pid} {o.name} fd {o.fd}\n")
    if not ep.owners:
        out.append("  none (queued, TIME_WAIT, or not visible to you)\n")
    if row.process is not None and row.process not in ep.owners:
        out.append(f"  acted: pid {row.process.pid} {row.process.name}\n")
    out.append("Events\n", style="bold")
    for ev in row.history:
        clock = datetime.fromtimestamp(ev.time).strftime("%H:%M:%S.%f")[:-3]
        what = ev.kind.value
        if ev.old_state is not None:
            what += f" {ev.old_state.label(ep.proto)}->{ev.endpoint.state.label(ep.proto)}"
        if ev.duration is not None:
            what += f" after {format_duration(ev.duration)}"
        out.append(f"  {clock} {what} ({ev.source.value})\n")
    if not row.history:
        out.append("  none since top started\n")
    out.rstrip()
    return out


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What the status bar shows."""

    counts: Mapping[str, int]
    rate: float  # events per second
    stats: FeedStats
    privilege: str
    shown: int
    total: int
    paused: int | None = None  # batches waiting while paused
    filter_text: str = ""
    netns: str = ""


def render_status(info: StatusInfo) -> Text:
    """One line: states, events/s, lost, sources, privilege, pause and filter."""
    out = Text()
    if info.paused is not None:
        out.append(f" PAUSED ({info.paused} updates waiting) ", style="bold reverse yellow")
        out.append(" ")
    counts = " ".join(f"{k} {info.counts[k]}" for k in STATE_ORDER if info.counts.get(k))
    out.append(counts or "no sockets")
    out.append(f" | {info.rate:.1f} ev/s")
    lost = info.stats.lost
    out.append(" | lost ")
    out.append(str(lost), style="bold red" if lost else "")
    if info.stats.lost_closes:
        out.append(f" (+{info.stats.lost_closes} closes by dump)")
    out.append(f" | {','.join(info.stats.sources) or '-'}")
    if info.stats.done:
        out.append(" (end)")
    out.append(f" | {info.privilege}")
    if info.netns:
        out.append(f" | netns {info.netns}")
    out.append(f" | {info.shown}/{info.total} rows")
    if info.filter_text:
        out.append(f" | filter: {info.filter_text}", style="bold")
    return out
