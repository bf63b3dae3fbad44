"""top under Textual's Pilot: keys pressed, rows and highlights asserted, on scripted events."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input

from sockscope.model.event import EventKind, Source
from sockscope.model.states import TcpState
from sockscope.sources.kill import CloseError, SignalError
from sockscope.tui import TopApp, TopOptions
from sockscope.tui import actions as actions_module
from sockscope.tui.model import Status
from sockscope.tui.names import Names
from sockscope.tui.screens import ConfirmScreen, HelpScreen, SaveScreen, SignalScreen
from sockscope.tui.table import ConnTable
from tests.tui.helpers import PYTHON, SERVER, Clock, batch, ep, ev, info, screen_text

GREEN, YELLOW, RED = (0x40, 0xD0, 0x40), (0xE8, 0xC0, 0x20), (0xFF, 0x40, 0x40)

LISTENER = ep(2323, None, TcpState.LISTEN, laddr="0.0.0.0", owners=(SERVER,), send_q=4, drops=0)
CLIENT = ep(40000, 2323, owners=(PYTHON,), tcp_info=info(rtt_us=45, sent=200_000))
SERVER_END = ep(2323, 40000, owners=(SERVER,), tcp_info=info(received=200_000))


def no_dns(addrs: object) -> dict[object, str]:
    return {}


def make_app(clock: Clock, **options: object) -> TopApp:
    opts = TopOptions(refresh=3600, numeric=True, privilege="root", **options)  # type: ignore[arg-type]
    return TopApp(opts, None, clock=clock, names=Names(resolve=no_dns))  # type: ignore[arg-type]


Scenario = Callable[[TopApp, Pilot[int], Clock], Awaitable[None]]


def run(scenario: Scenario, size: tuple[int, int] = (150, 30), **options: object) -> None:
    clock = Clock()

    async def go() -> None:
        app = make_app(clock, **options)
        async with app.run_test(size=size, notifications=True) as pilot:
            app.receive(batch(initial=True, table=[LISTENER]))
            await pilot.pause()
            await scenario(app, pilot, clock)

    asyncio.run(asyncio.wait_for(go(), 60))


async def connect(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
    clock.advance(1)
    app.receive(
        batch(
            ev(EventKind.OPENED, CLIENT, 0.5),
            ev(EventKind.OPENED, SERVER_END, 0.5),
            at=1,
            table=[LISTENER, CLIENT, SERVER_END],
        )
    )
    app.tick()
    await pilot.pause()


def table_lines(app: TopApp) -> list[str]:
    t = app.table
    return [t.line_text(i) for i in range(len(t.view))]


def color_of(app: TopApp, port: int, rport: int | None) -> tuple[int, int, int] | None:
    t = app.table
    for i in range(len(t.view)):
        row = t.view.row_at(i)
        if (row.endpoint.local_port, row.endpoint.remote_port) == (port, rport):
            strip = t.render_line(i + 1 - round(t.scroll_offset.y))
            style = next(iter(strip)).style
            assert style is not None
            return style.color.triplet if style.color and style.color.triplet else None  # type: ignore[return-value]
    raise AssertionError(f"no row {port}->{rport}")


def test_new_rows_green_changed_yellow_closed_red_then_gone() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        assert color_of(app, 2323, None) != GREEN  # there when top started: not new
        await connect(app, pilot, clock)
        assert color_of(app, 40000, 2323) == GREEN
        assert color_of(app, 2323, 40000) == GREEN
        clock.advance(3)
        app.receive(
            batch(
                ev(
                    EventKind.STATE,
                    SERVER_END._replace(state=TcpState.CLOSE_WAIT),
                    4,
                    old=TcpState.ESTABLISHED,
                ),
                at=4,
            )
        )
        app.tick()
        assert color_of(app, 40000, 2323) not in (GREEN, RED)  # highlight faded
        assert color_of(app, 2323, 40000) == YELLOW
        clock.advance(1)
        app.receive(batch(ev(EventKind.CLOSED, CLIENT, 5, duration=4.5, source=Source.DESTROY), at=5))
        app.tick()
        assert color_of(app, 40000, 2323) == RED
        clock.advance(5)
        app.tick()
        assert [ln.split()[1] for ln in table_lines(app)] == ["0.0.0.0:2323", "127.0.0.1:2323"]

    run(scenario)


def test_a_connection_shorter_than_a_refresh_still_flashes_red() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        short = ep(40009, 2323)
        app.receive(
            batch(
                ev(EventKind.OPENED, short, 0.1, source=Source.TRACE),
                ev(EventKind.CLOSED, short, 0.2, duration=0.0004, source=Source.DESTROY),
            )
        )
        app.receive(batch(ev(EventKind.CLOSED, ep(40010, 2323), 0.3, duration=0.0002, source=Source.DESTROY)))
        app.tick()
        assert color_of(app, 40009, 2323) == RED
        assert color_of(app, 40010, 2323) == RED

    run(scenario)


def test_filter_bar_checks_as_typed_and_applies_on_enter() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("slash")
        assert app.focused is not None and app.focused.id == "filter-input"
        for key in "lport == ":
            await pilot.press(key if key != " " else "space")
        await pilot.pause()
        text = screen_text(app)
        assert "bad filter at column 10" in text and "^" in text
        assert len(app.view) == 3
        for key in "40000":
            await pilot.press(key)
        await pilot.pause()
        assert "bad filter" not in screen_text(app)
        assert len(app.view) == 3 and app.filter is None  # valid, but not submitted
        await pilot.press("enter")
        assert isinstance(app.focused, ConnTable)
        assert [ln.split()[1] for ln in table_lines(app)] == ["127.0.0.1:40000"]
        assert "filter: lport == 40000" in screen_text(app)
        # The bar selects its text: typing replaces it. What is typed and left with Esc
        # is dropped: the filter in force stays.
        await pilot.press("slash", "x", "escape")
        assert app.filter is not None and app.filter.text == "lport == 40000"
        assert len(app.view) == 1

    run(scenario)


def test_the_filter_in_force_is_only_ever_one_submitted_whole() -> None:
    """'lport == 9999' parses on the way to 'lport == 99999 and (': it must never apply."""

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("slash", *"lport == 99999 and (", "enter")
        await pilot.pause()
        assert app.filter is None and len(app.view) == 3
        assert app.part("#filter-bar", Widget).display  # still open, with the error
        assert "bad filter" in screen_text(app)
        await pilot.press("escape")
        assert app.filter is None and not app.part("#filter-bar", Widget).display
        await pilot.press("slash", *"lport == 2323", "enter", "slash", *"lport == 232", "escape")
        assert app.filter is not None and app.filter.text == "lport == 2323" and len(app.view) == 2

    run(scenario)


def test_sort_by_key_click_and_reverse() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("greater_than_sign")  # laddr -> raddr
        assert app.sort == "raddr"
        assert [ln.split()[2] for ln in table_lines(app)] == [
            "0.0.0.0:*",
            "127.0.0.1:2323",
            "127.0.0.1:40000",
        ]
        await pilot.press("r")
        assert table_lines(app)[0].split()[2] == "127.0.0.1:40000"
        assert "\u25bc" in screen_text(app).splitlines()[0]
        # Clicking the PID header sorts by it.
        header = screen_text(app).splitlines()[0]
        await pilot.click(ConnTable, offset=(header.index("PID"), 0))
        await pilot.pause()
        assert app.sort == "pid"
        assert [ln.split()[5] for ln in table_lines(app)] == ["4242", "4243", "4243"]

    run(scenario)


def test_pause_keeps_everything_and_applies_it_on_resume() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("space")
        assert "PAUSED" in screen_text(app)
        for i in range(5):
            clock.advance(0.2)
            e = ep(41000 + i, 2323)
            app.receive(batch(ev(EventKind.OPENED, e, i * 0.2), ev(EventKind.CLOSED, e, i * 0.2)))
            app.tick()
        assert len(app.view) == 1  # frozen
        assert "5 updates waiting" in screen_text(app)
        await pilot.press("space")
        assert len(app.view) == 6
        assert all(color_of(app, 41000 + i, 2323) == RED for i in range(5))

    run(scenario)


def test_toggles_numeric_bsd_processes_listening() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("b")
        assert table_lines(app)[0].split()[:3] == ["tcp4", "*.2323", "*.*"]
        await pilot.press("b", "p")
        assert "Program" not in screen_text(app).splitlines()[0]
        await pilot.press("p", "l")
        assert len(app.view) == 1 and app.view.row_at(0).endpoint.state is TcpState.LISTEN
        await pilot.press("l")
        assert len(app.view) == 3
        app.names.hosts[CLIENT.local_address] = "localhost"  # type: ignore[index]
        app.names.generation += 1
        await pilot.press("n")  # names on: hosts from the cache, ports from services
        assert "localhost:2323" in table_lines(app)[1]

    run(scenario)


def test_detail_pane_has_fields_tcp_info_owners_and_history() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("down", "down", "enter")  # the client end (sorted by local address)
        text = screen_text(app)
        assert "tcp 127.0.0.1:40000 -> 127.0.0.1:2323" in text
        for words in (
            "State:",
            "ESTABLISHED",
            "Cookie:",
            "rtt_us:",
            "45us",
            "Owners",
            "pid 4242 python3 fd 5",
            "Events",
            "opened (poll)",
        ):
            assert words in text, words
        await pilot.press("d")
        assert "rtt_us:" not in screen_text(app)

    run(scenario, size=(160, 60))


def test_close_connection_asks_then_closes_or_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def refuse(endpoint: object) -> None:
        calls.append(endpoint)
        raise CloseError(
            "closing a connection needs CAP_NET_ADMIN in its network namespace (run sockscope as root)"
        )

    monkeypatch.setattr(actions_module, "destroy_socket", refuse)

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("down", "down", "c")
        assert isinstance(app.screen, ConfirmScreen)
        assert "127.0.0.1:40000 -> 127.0.0.1:2323" in screen_text(app)
        await pilot.press("n")
        assert not calls and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("c", "enter")  # Enter is on "No": nothing happens by accident
        assert not calls
        await pilot.press("c", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert calls == [CLIENT]
        assert "needs CAP_NET_ADMIN" in screen_text(app)

    run(scenario)


def test_signal_process_defaults_to_term(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []

    def fake(pid: int, inode: int, sig: int = 15) -> None:
        assert inode == CLIENT.inode
        sent.append((pid, sig))
        if len(sent) > 1:
            raise SignalError(f"process {pid} is already gone")

    monkeypatch.setattr(actions_module, "signal_process", fake)

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("down", "down", "k")
        assert isinstance(app.screen, SignalScreen)
        await pilot.press("escape")
        assert not sent
        await pilot.press("k", "enter")
        await pilot.pause()
        assert sent == [(4242, 15)]
        assert "sent SIGTERM to python3 (pid 4242)" in screen_text(app)
        await pilot.press("k", "enter")
        await pilot.pause()
        assert "already gone" in screen_text(app)

    run(scenario)


def test_nothing_to_act_on_in_a_replay() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "nothing live to act on" in screen_text(app)

    run(scenario, can_act=False)


def test_save_csv_and_json(tmp_path: Path) -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        for name in ("view.csv", "view.json"):
            await pilot.press("s")
            assert isinstance(app.screen, SaveScreen)
            box = app.screen.query_one("#path")
            box.value = str(tmp_path / name)  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause()
        rows = list(csv.DictReader((tmp_path / "view.csv").open()))
        assert [r["local_port"] for r in rows] == ["2323", "2323", "40000"]
        assert rows[2]["owners"] == "4242/python3/5" and rows[2]["status"] == "new"
        assert rows[2]["bytes_sent"] == "200000"
        doc = json.loads((tmp_path / "view.json").read_text())
        assert doc["count"] == 3 and doc["sort"] == "laddr"
        assert doc["endpoints"][0]["state"] == "LISTEN"

    run(scenario)


def test_help_lists_every_key() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key in (
            "space",
            "close the selected connection",
            "signal",
            "BSD notation",
            "listening sockets only",
            "save the rows",
            "(laddr) local address",
        ):
            assert key in text, key
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    run(scenario, size=(120, 50))


def test_status_bar_and_listeners_panel() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        status = screen_text(app).splitlines()[-2]
        assert "LISTEN 1 ESTAB 2" in status and "lost 0" in status
        assert "poll,destroy" in status and "root" in status and "3/3 rows" in status
        queued = [ep(2323, 40100 + i, inode=0) for i in range(5)]
        half = [ep(2323, 40200 + i, TcpState.SYN_RECV, inode=0) for i in range(2)]
        full = LISTENER._replace(recv_q=5, drops=7)
        clock.advance(1)
        app.receive(batch(at=2, table=[full, CLIENT, SERVER_END, *queued, *half]))
        app.tick()
        text = screen_text(app)
        line = next(ln for ln in text.splitlines() if ln.strip().startswith("0.0.0.0:2323"))
        assert "\u2588" * 10 in line and " 5/5 " in line  # a full gauge: backlog 4 admits 5
        assert line.split()[3:5] == ["2", "7"]  # half-open, drops
        assert "ESTAB(queued)" in text
        await pilot.press("Q")
        assert "Half-open" not in screen_text(app)

    run(scenario)


def test_rows_missing_a_status_keep_the_cursor_on_their_row() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("down", "down")
        row = app.table.cursor_row
        assert row is not None and row.endpoint.local_port == 40000
        app.receive(batch(ev(EventKind.OPENED, ep(100, 2323)), at=1))  # sorts above it
        app.tick()
        assert app.table.cursor_row is row
        assert row.status is Status.NEW

    run(scenario)


def test_keys_typed_right_after_slash_reach_the_bar() -> None:
    """A burst (a paste, a fast typist, tmux send-keys) is routed before '/' has run."""

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        for ch in "/raddr in 127.0.0.0/8 and lport == 40000\r":
            key = {"/": "slash", " ": "space", "=": "equals_sign", ".": "full_stop", "\r": "enter"}.get(
                ch, ch
            )
            app.post_message(events.Key(key, ch))  # no pause between keys
        await pilot.pause()
        await pilot.pause()
        assert app.part("#filter-input", Input).value == "raddr in 127.0.0.0/8 and lport == 40000"
        assert app.filter is not None and not app.options.listening and app.options.processes
        assert [ln.split()[1] for ln in table_lines(app)] == ["127.0.0.1:40000"]

    run(scenario)


def test_a_slash_in_the_save_dialog_is_part_of_the_path(tmp_path: Path) -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("s")
        box = app.screen.query_one("#path", Input)
        box.value = str(tmp_path)
        box.cursor_position = len(box.value)
        await pilot.press("slash", "v", "enter")
        await pilot.pause()
        assert (tmp_path / "v").exists()

    run(scenario)


def test_filters_on_event_fields_see_each_rows_latest_event() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        app.receive(batch(ev(EventKind.CLOSED, CLIENT, 2, duration=1.5, source=Source.DESTROY), at=2))
        app.tick()
        await pilot.press("slash", *"event == closed and duration > 1s", "enter")
        assert [ln.split()[1] for ln in table_lines(app)] == ["127.0.0.1:40000"]

    run(scenario)


def test_ctrl_c_quits() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.return_code == 0 and not app.is_running

    run(scenario)


def test_ctrl_c_quits_from_the_filter_bar_too() -> None:
    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await pilot.press("slash", "p", "o")
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running

    run(scenario)


def test_a_connection_closed_with_c_does_not_read_as_queued() -> None:
    """The destroy message of an aborted socket has no inode (it is orphaned)."""

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        aborted = CLIENT._replace(inode=0, tcp_info=info(sent=43_000_000))
        clock.advance(1)
        app.receive(batch(ev(EventKind.CLOSED, aborted, 2, duration=1.0, source=Source.DESTROY), at=2))
        app.tick()
        await pilot.pause()
        line = next(ln for ln in table_lines(app) if "127.0.0.1:40000" in ln.split()[1])
        assert "ESTABLISHED" in line and "queued" not in line, line
        await pilot.press("down", "down", "enter")
        text = screen_text(app)
        assert "Queued:        no" in text and "closed, lived" in text

    run(scenario, size=(160, 60))


def test_c_refuses_a_listener_and_says_what_closing_it_would_do(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(actions_module, "destroy_socket", calls.append)

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await pilot.press("home", "c")  # the first row: the listener on 0.0.0.0:2323
        await pilot.pause()
        assert app.table.cursor_row is not None and app.table.cursor_row.endpoint == LISTENER
        assert not isinstance(app.screen, ConfirmScreen) and not calls
        await pilot.pause(0.2)  # the toast's first frame
        text = screen_text(app)
        assert "LISTEN is a listener, not a" in text and "server's accept()" in text

    run(scenario)


def test_k_refuses_a_closed_row_whose_pid_may_have_been_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[object] = []
    monkeypatch.setattr(actions_module, "signal_process", lambda *a: sent.append(a))

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        clock.advance(1)
        app.receive(batch(ev(EventKind.CLOSED, CLIENT, 2, duration=1.0, source=Source.DESTROY), at=2))
        app.tick()
        await pilot.pause()
        await pilot.press("down", "down", "k")
        await pilot.pause(0.2)
        assert app.table.cursor_row is not None and app.table.cursor_row.closed
        assert not isinstance(app.screen, SignalScreen) and not sent
        assert "the connection is closed: nothing shows that pid 4242" in screen_text(app)

    run(scenario)


async def save_as(app: TopApp, pilot: Pilot[int], path: Path) -> None:
    await pilot.press("s")
    box = app.screen.query_one("#path", Input)
    box.value = str(path)
    await pilot.press("enter")
    await pilot.pause()


def test_save_never_follows_a_planted_link_nor_overwrites(tmp_path: Path) -> None:
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    (tmp_path / "view.csv").symlink_to(victim)
    (tmp_path / "old.json").write_text("{}")

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await save_as(app, pilot, tmp_path / "view.csv")
        await save_as(app, pilot, tmp_path / "old.json")
        await pilot.pause(0.2)
        assert "already exists" in screen_text(app)

    run(scenario)
    assert victim.read_text() == "root:x:0:0\n" and (tmp_path / "view.csv").is_symlink()
    assert (tmp_path / "old.json").read_text() == "{}"


@pytest.mark.parametrize(("private", "mode"), [(True, 0o600), (False, 0o644)])
def test_a_saved_view_of_privileged_data_is_the_owners_only(tmp_path: Path, private: bool, mode: int) -> None:
    import os  # noqa: PLC0415

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        await save_as(app, pilot, tmp_path / "view.csv")

    old = os.umask(0o022)
    try:
        run(scenario, private_output=private)
    finally:
        os.umask(old)
    assert (tmp_path / "view.csv").stat().st_mode & 0o777 == mode


def test_a_refused_close_says_how_to_run_top_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno  # noqa: PLC0415

    def refuse(endpoint: object) -> None:
        raise CloseError("closing a connection needs CAP_NET_ADMIN in its network namespace", errno.EPERM)

    monkeypatch.setattr(actions_module, "destroy_socket", refuse)
    told: list[str] = []

    async def scenario(app: TopApp, pilot: Pilot[int], clock: Clock) -> None:
        await connect(app, pilot, clock)
        app.notify = lambda message, **kw: told.append(str(message))  # type: ignore[method-assign,assignment]
        await pilot.press("down", "down", "c", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert told == [
            "closing a connection needs CAP_NET_ADMIN in its network namespace; "
            "run top as root: sudo /opt/bin/sockscope top -n"
        ]

    run(scenario, root_command="sudo /opt/bin/sockscope top -n")
