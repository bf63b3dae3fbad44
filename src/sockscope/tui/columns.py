"""The table's columns: header and help from the field registry, a formatter and a sort key.

Every column but ``age`` is a registry field, so the UI calls a field what ``list``,
the JSON keys and the filter language call it. Formatting is pure: names (hosts,
services, users) come through the ``Context`` the app prepared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sockscope.model.endpoint import Endpoint, TcpInfo
from sockscope.model.fields import FIELDS_BY_NAME
from sockscope.model.states import TcpState
from sockscope.render.addresses import Notation
from sockscope.render.events import format_size
from sockscope.render.listing import proto_label, state_label
from sockscope.tui.model import Row


@dataclass(frozen=True, slots=True)
class Context:
    """What formatting needs besides the row: notation, the time, user names."""

    notation: Notation
    now: float
    user_name: Callable[[int], str]


Format = Callable[[Row, Context], str]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``name`` is the registry field (the filter language's name)."""

    name: str
    header: str
    help: str
    width: int
    fmt: Format
    key: Callable[[Row], object]
    right: bool = False
    process: bool = False  # hidden with the processes toggle off
    grow: bool = False  # shares the width left over


size_text = format_size  # one size notation for watch lines and top's columns


def age_text(seconds: float) -> str:
    """``0.4s``, ``12s``, ``5m02s``, ``3h07m``: short enough for a narrow column."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def row_age(row: Row, now: float) -> float:
    """Seconds since the socket opened (or, ``row.age_lower_bound``, was first seen); a
    closed one stops at its close."""
    end = row.closed_at if row.closed_at is not None else now
    return end - row.first_seen


def _owner_text(row: Row) -> str:
    owner = row.owner
    if owner is None:
        return "-"
    extra = len({o.pid for o in row.endpoint.owners} - {owner.pid})
    return f"{owner.name}+{extra}" if extra else owner.name


def _end(ep: Endpoint, local: bool) -> tuple[int, int]:
    addr = ep.local_address if local else ep.remote_address
    port = ep.local_port if local else ep.remote_port
    return (int(addr) if addr is not None else -1, port if port is not None else -1)


def _addr_key(ep: Endpoint, local: bool) -> object:
    """By this end, then the other: a server's connections line up by peer."""
    return (ep.family, _end(ep, local), _end(ep, not local))


def _tcp_info(row: Row) -> TcpInfo | None:
    ep = row.endpoint
    return None if ep.state is TcpState.LISTEN else ep.tcp_info  # a listener's are all 0


def _info(attr: str) -> Callable[[Row], int | None]:
    def get(row: Row) -> int | None:
        info = _tcp_info(row)
        return None if info is None else int(getattr(info, attr))

    return get


def _state(row: Row) -> str:
    # The primer's ESTABLISHED(queued) does not fit a narrow column; ss's name does.
    ep = row.endpoint
    if not row.queued:
        return ep.state.label(ep.proto)
    if ep.state is TcpState.ESTABLISHED:
        return "ESTAB(queued)"
    return state_label(ep, "top")


def rtt_text(us: int) -> str:
    """``0.04ms``, ``123ms``, ``3.04s``: at most 7 characters."""
    if us < 10_000:
        return f"{us / 1000:.2f}ms"
    if us < 1_000_000:
        return f"{us / 1000:.0f}ms"
    return f"{us / 1e6:.2f}s"


def _rtt(row: Row, _ctx: Context) -> str:
    info = _tcp_info(row)
    return "" if info is None else rtt_text(info.rtt_us)


def _field(
    name: str,
    width: int,
    fmt: Format,
    key: Callable[[Row], object],
    *,
    right: bool = False,
    process: bool = False,
    grow: bool = False,
) -> Column:
    f = FIELDS_BY_NAME[name]
    return Column(name, f.header, f.help, width, fmt, key, right, process, grow)


def _bsd(ctx: Context) -> str:
    return "bsd" if ctx.notation.bsd else "netstat"


_sent = _info("bytes_sent")
_received = _info("bytes_received")

COLUMNS: tuple[Column, ...] = (
    _field(
        "proto",
        5,
        lambda r, c: proto_label(r.endpoint, _bsd(c)),
        lambda r: (r.endpoint.proto.value, r.endpoint.family),
    ),
    _field(
        "laddr",
        19,
        lambda r, c: c.notation.local(r.endpoint),
        lambda r: _addr_key(r.endpoint, True),
        grow=True,
    ),
    _field(
        "raddr",
        19,
        lambda r, c: c.notation.remote(r.endpoint),
        lambda r: _addr_key(r.endpoint, False),
        grow=True,
    ),
    _field("state", 13, lambda r, c: _state(r), lambda r: int(r.endpoint.state)),
    _field(
        "process",
        10,
        lambda r, c: _owner_text(r),
        lambda r: r.owner.name.lower() if r.owner else None,
        process=True,
    ),
    _field(
        "pid",
        7,
        lambda r, c: str(r.owner.pid) if r.owner else "-",
        lambda r: r.owner.pid if r.owner else None,
        right=True,
        process=True,
    ),
    _field(
        "user",
        6,
        lambda r, c: "-" if r.endpoint.uid is None else c.user_name(r.endpoint.uid),
        lambda r: r.endpoint.uid,
    ),
    _field("recv_q", 6, lambda r, c: str(r.endpoint.recv_q), lambda r: r.endpoint.recv_q, right=True),
    _field("send_q", 6, lambda r, c: str(r.endpoint.send_q), lambda r: r.endpoint.send_q, right=True),
    _field("rtt", 7, _rtt, _info("rtt_us"), right=True),
    _field("bytes_sent", 7, lambda r, c: size_text(_sent(r)), _sent, right=True),
    _field("bytes_received", 8, lambda r, c: size_text(_received(r)), _received, right=True),
    # Not an endpoint field: how long top has known the socket (its duration once closed).
    Column(
        "age",
        "Age",
        "time since the socket was first seen; once closed, how long it lived",
        6,
        lambda r, c: (">" if r.age_lower_bound else "") + age_text(row_age(r, c.now)),
        lambda r: -r.first_seen,
        right=True,
    ),
)

COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
DEFAULT_SORT = "laddr"


def layout(columns: Sequence[Column], width: int) -> list[int]:
    """Column widths for a screen ``width`` wide: the growing columns share what is left."""
    widths = [c.width for c in columns]
    used = sum(widths) + len(columns) - 1
    growers = [i for i, c in enumerate(columns) if c.grow]
    if width > used and growers:
        extra = width - used
        for n, i in enumerate(growers):
            share = extra // len(growers) + (1 if n < extra % len(growers) else 0)
            widths[i] += min(share, 47 - widths[i])  # an IPv6 address and port: 47
    return widths


def render_cells(row: Row, columns: Sequence[Column], widths: Sequence[int], ctx: Context) -> str:
    """One table line: every cell cut or padded to its width, one space between."""
    parts = []
    for col, w in zip(columns, widths, strict=True):
        text = col.fmt(row, ctx)
        if len(text) > w:
            text = text[: w - 1] + "\u2026"
        parts.append(text.rjust(w) if col.right else text.ljust(w))
    return " ".join(parts)


def render_header(columns: Sequence[Column], widths: Sequence[int], sort: str, reverse: bool) -> str:
    """The header line, with an arrow on the sort column."""
    parts = []
    for col, w in zip(columns, widths, strict=True):
        text = col.header + ((" \u25bc" if reverse else " \u25b2") if col.name == sort else "")
        text = text[:w]
        parts.append(text.rjust(w) if col.right else text.ljust(w))
    return " ".join(parts)
