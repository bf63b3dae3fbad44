"""Snapshots of top's main screens, as the text a person reads.

The screens are built from scripted events on a fixed clock, so they are the same on
every run. A deliberate change of the UI is recorded with
``SOCKSCOPE_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_snapshots.py``; read the diff of
``tests/tui/snapshots/`` before committing it. (Colors are checked by test_app.py.)
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from sockscope.model.event import EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.tui import TopApp
from tests.tui.helpers import PYTHON, SERVER, Clock, batch, ep, ev, info, screen_text
from tests.tui.test_app import make_app

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZE = (132, 34)

LISTENER = ep(2323, None, TcpState.LISTEN, laddr="0.0.0.0", owners=(SERVER,), send_q=4, drops=3, recv_q=2)
UDP = ep(5353, None, TcpState.CLOSE, proto=Proto.UDP, owners=(SERVER,))


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")  # the detail pane prints event times
    time.tzset()


def compare(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("SOCKSCOPE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path.name}: run with SOCKSCOPE_UPDATE_SNAPSHOTS=1"
    want = path.read_text(encoding="utf-8").rstrip("\n")
    if text != want:
        diff = "\n".join(
            difflib.unified_diff(want.splitlines(), text.splitlines(), "snapshot", "screen", lineterm="")
        )
        pytest.fail(f"{name} differs from its snapshot:\n{diff}")


async def busy(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
    """A listener with a queue, a download, a closing connection and a reset one."""
    queued = [ep(2323, 40100 + i, inode=0) for i in range(2)]
    cli = ep(40000, 2323, owners=(PYTHON,), tcp_info=info(rtt_us=45, received=200_000))
    srv = ep(2323, 40000, owners=(SERVER,), tcp_info=info(rtt_us=38, sent=200_000))
    app.receive(batch(initial=True, table=[LISTENER, UDP, cli, srv, *queued]))
    clock.advance(2)
    half = ep(2323, 40200, TcpState.SYN_RECV, inode=0)
    new = ep(40300, 2323, owners=(PYTHON,))
    closing = srv._replace(state=TcpState.CLOSE_WAIT)
    app.receive(
        batch(
            ev(EventKind.OPENED, new, 1.5),
            ev(EventKind.STATE, closing, 1.6, old=TcpState.ESTABLISHED),
            ev(EventKind.OPENED, ep(40400, 2323), 1.7, source=Source.TRACE),
            ev(EventKind.CLOSED, ep(40400, 2323), 1.7, duration=0.0003, source=Source.DESTROY),
            at=2,
            table=[LISTENER, UDP, cli, closing, new, half, *queued],
        )
    )
    app.tick()
    await pilot.pause()


Scenario = Callable[[TopApp, Pilot[int], Clock], Awaitable[None]]


def screen(scenario: Scenario, size: tuple[int, int] = SIZE) -> str:
    clock = Clock()
    out: list[str] = []

    async def go() -> None:
        app = make_app(clock)
        async with app.run_test(size=size) as pilot:
            await busy(app, pilot, clock)
            await scenario(app, pilot, clock)
            await pilot.pause()
            out.append(screen_text(app))

    asyncio.run(asyncio.wait_for(go(), 60))
    return out[0]


async def nothing(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
    pass


def test_main_screen() -> None:
    compare("main", screen(nothing))


def test_filter_with_an_error() -> None:
    async def typing(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("slash", *"state == estab", "space", *"and", "space", *"prot == 1")

    compare("filter-error", screen(typing))


def test_filtered_bsd_listening() -> None:
    async def keys(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("b", "l")
        app.clear_notifications()

    compare("bsd-listening", screen(keys))


def test_detail_pane() -> None:
    async def keys(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("end", "up", "enter")

    compare("detail", screen(keys, size=(132, 60)))


def test_close_confirmation() -> None:
    async def keys(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("end", "up", "c")

    compare("close-confirm", screen(keys))


def test_help() -> None:
    async def keys(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("question_mark")

    compare("help", screen(keys, size=(120, 50)))
