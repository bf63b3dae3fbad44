"""top fed for real, on its worker thread: a replayed recording, and a live namespace."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from sockscope.api import Query
from sockscope.model.event import EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.record.sqlite import Recorder, read_events
from sockscope.tui import ReplayFeed, TopApp, TopOptions, WatchFeed
from sockscope.tui.feed import Batch, table_delta
from sockscope.tui.model import Status
from sockscope.tui.names import Names
from sockscope.tui.screens import ConfirmScreen
from sockscope.watch import Watcher
from tests.helpers.netns import socket_in
from tests.tui.helpers import PYTHON, ep, ev, info, screen_text


async def wait_for(pilot: Pilot[int], cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


def test_table_delta() -> None:
    a, b, c = ep(1, 2), ep(3, 4), ep(5, 6)
    changed, gone = table_delta({a.key: a, b.key: b}, {a.key: a, b.key: b._replace(recv_q=9), c.key: c})
    assert set(changed) == {b.key, c.key} and gone == set()
    assert table_delta({a.key: a}, {}) == ({}, {a.key})
    # An idle connection's "ms since the last data" ticking is not a change; bytes are.
    busy = a._replace(tcp_info=info(sent=10))
    idle = busy._replace(
        tcp_info=busy.tcp_info._replace(
            last_data_recv_ms=999,  # type: ignore[union-attr]
            last_ack_recv_ms=5,
        )
    )
    assert table_delta({a.key: busy}, {a.key: idle}) == ({}, set())
    more = busy._replace(tcp_info=info(sent=11))
    assert table_delta({a.key: busy}, {a.key: more})[0] == {a.key: more}


def test_a_recording_replayed_through_the_worker(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    rec = Recorder(db)
    lst = ep(2323, None, TcpState.LISTEN, laddr="0.0.0.0")
    cli, srv = ep(40000, 2323), ep(2323, 40000)
    for e in (
        ev(EventKind.LISTEN, lst, 0.0),
        ev(EventKind.OPENED, cli, 0.1, process=PYTHON),
        ev(EventKind.OPENED, srv, 0.1),
        ev(EventKind.CLOSED, cli, 0.2, duration=0.1, source=Source.DESTROY),
    ):
        rec.write(e)
    rec.close()
    events = list(read_events(db))
    assert len(events) == 4

    async def go() -> None:
        app = TopApp(
            TopOptions(refresh=0.1, numeric=True, can_act=False),
            ReplayFeed(events, speed=0),
            names=Names(resolve=lambda a: {}),
        )
        async with app.run_test(size=(132, 30)) as pilot:
            await wait_for(pilot, lambda: app.stats.done and len(app.board) == 3, "3 rows")
            await wait_for(pilot, lambda: not app.pending, "applied")
            rows = {(r.endpoint.local_port, r.endpoint.remote_port): r for r in app.view}
            assert rows[(40000, 2323)].status is Status.CLOSED
            assert rows[(40000, 2323)].process is not None
            assert rows[(2323, 40000)].status is Status.NEW
            assert "replay (end)" in screen_text(app)
        # Quitting stops the worker thread (it would hold the interpreter otherwise).
        assert not [t for t in threading.enumerate() if "sockscope" in t.name]

    asyncio.run(asyncio.wait_for(go(), 60))


def test_live_feed_batches(netns: str) -> None:
    """The feed hands over a poll's dump at once: a new connection within ~one interval.

    Without owners: their scan walks every process's fds on the host, which is as slow
    as whatever else runs there.
    """
    watcher = Watcher(
        Query(protocols=(Proto.TCP,), processes=False, netns=netns), interval=0.2, sources={"poll", "destroy"}
    )
    feed = WatchFeed(watcher, 4096)
    batches: list[Batch] = []
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(batches.append, stop.is_set))
    thread.start()
    lst = socket_in(netns)
    try:
        lst.bind(("127.0.0.1", 2323))
        lst.listen(8)
        cli = socket_in(netns)
        cli.connect(("127.0.0.1", 2323))
        srv, _ = lst.accept()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and not any(
            e.remote_port == 2323 for b in batches for e in b.changed.values()
        ):
            time.sleep(0.02)
        seen = time.monotonic() - t0
        assert seen < 1.0, seen
        polled = [b for b in batches if b.polled]
        assert polled[0].initial
        assert any(lst_.endpoint.local_port == 2323 for lst_ in polled[-1].listeners)
        assert polled[-1].counts.get("ESTAB") == 2
        cli.close()
        srv.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and not any(
            ev.kind is EventKind.CLOSED for b in batches for ev in b.events
        ):
            time.sleep(0.02)
        assert any(ev.kind is EventKind.CLOSED for b in batches for ev in b.events)
    finally:
        stop.set()
        thread.join(timeout=5)
        lst.close()
    assert not thread.is_alive()
    assert watcher.destroy is None  # closed by the feed


def test_live_top_sees_a_connection_and_closes_it(netns: str) -> None:
    """Headless: a new connection appears green; the close action turns it red."""
    watcher = Watcher(Query(protocols=(Proto.TCP,), processes=True, netns=netns), interval=0.2)
    watcher.query.tcp_info = True
    app = TopApp(
        TopOptions(refresh=0.2, numeric=True, netns=netns, privilege="root"),
        WatchFeed(watcher, 4096),
        names=Names(resolve=lambda a: {}),
    )
    lst = socket_in(netns)
    lst.bind(("127.0.0.1", 2323))
    lst.listen(8)
    conns: list[socket.socket] = []

    def client_row() -> object:
        return next(
            (
                r
                for r in app.view
                if r.endpoint.remote_port == 2323 and r.endpoint.cookie is not None and not r.closed
            ),
            None,
        )

    async def go() -> None:
        async with app.run_test(size=(132, 30), notifications=True) as pilot:
            await wait_for(
                pilot, lambda: any(r.endpoint.state is TcpState.LISTEN for r in app.view), "the listener"
            )
            cli = socket_in(netns)
            cli.connect(("127.0.0.1", 2323))
            conns.extend([cli, lst.accept()[0]])
            await wait_for(pilot, lambda: client_row() is not None, "the new connection")
            row = client_row()
            assert row.status is Status.NEW  # type: ignore[attr-defined]
            app.table.select_row(row)  # type: ignore[arg-type]
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: row.closed, "the closed row")  # type: ignore[attr-defined]
            assert "closed tcp 127.0.0.1:" in screen_text(app)
            cli.settimeout(5)
            try:
                cli.recv(1)
                raise AssertionError("the connection was not aborted")
            except ConnectionAbortedError:
                pass

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        for s in (lst, *conns):
            s.close()
    assert watcher.destroy is None and watcher.trace is None  # tracefs instance removed
