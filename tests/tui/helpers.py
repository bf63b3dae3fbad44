"""Scripted endpoints, events and batches for ``top``'s tests, and the screen as text."""

from __future__ import annotations

import io
from ipaddress import ip_address

from rich.console import Console
from textual.app import App

from sockscope.model.endpoint import Endpoint, Owner, TcpInfo
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.listener import build_listeners
from sockscope.model.states import Proto, TcpState
from sockscope.tui.feed import Batch, FeedStats, state_counts

T0 = 1000.0  # the tests' monotonic clock starts here
WALL0 = 1_790_000_000.0  # and the wall clock here (fixed: screens are compared as text)

PYTHON = Owner(4242, "python3", 5)
SERVER = Owner(4243, "server", 6)


def info(rtt_us: int = 40, sent: int = 0, received: int = 0) -> TcpInfo:
    return TcpInfo(
        rtt_us, 20, 200_000, 10, 65483, 0, 0, 0, 0, sent, sent, received, 0, 1, 1, 0, 0, rtt_us, 0, 0
    )


def ep(
    lport: int,
    rport: int | None = None,
    state: TcpState = TcpState.ESTABLISHED,
    *,
    cookie: int | None = None,
    laddr: str = "127.0.0.1",
    raddr: str = "127.0.0.1",
    proto: Proto = Proto.TCP,
    owners: tuple[Owner, ...] = (),
    recv_q: int = 0,
    send_q: int = 0,
    inode: int = 1,
    tcp_info: TcpInfo | None = None,
    drops: int | None = None,
    uid: int | None = 0,
) -> Endpoint:
    """A loopback endpoint; ``cookie`` defaults to the ports, so each end is unique."""
    if cookie is None:
        cookie = lport * 100_000 + (rport or 0)
    return Endpoint(
        proto,
        4,
        state,
        ip_address(laddr),
        lport,
        ip_address(raddr) if rport is not None else None,
        rport,
        recv_q,
        send_q,
        uid,
        inode,
        cookie,
        tcp_info=tcp_info,
        owners=owners,
        drops=drops,
    )


def ev(
    kind: EventKind,
    endpoint: Endpoint,
    at: float = 0.0,
    *,
    old: TcpState | None = None,
    duration: float | None = None,
    source: Source = Source.POLL,
    process: Owner | None = None,
) -> Event:
    return Event(
        kind, endpoint, T0 + at, WALL0 + at, source, old_state=old, duration=duration, process=process
    )


def batch(
    *events: Event,
    at: float = 0.0,
    table: list[Endpoint] | None = None,
    gone: set[object] | None = None,
    initial: bool = False,
) -> Batch:
    """A batch; with ``table`` it carries a dump (``changed`` = those endpoints)."""
    b = Batch(
        list(events), T0 + at, stats=FeedStats(("poll", "destroy"), events=len(events)), initial=initial
    )
    if table is not None or initial:
        eps = table or []
        b.changed = {e.key: e for e in eps}
        b.gone = set(gone or ())  # type: ignore[arg-type]
        b.polled = True
        b.listeners = tuple(build_listeners(eps, 4096))
        b.counts = state_counts(eps)
    return b


def screen_text(app: App[object]) -> str:
    """The screen as plain text, line by line (what a person would read)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    lines = console.export_text(styles=False).splitlines()
    return "\n".join(line.rstrip() for line in lines)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
