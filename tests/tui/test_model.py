"""The rows behind top, without a terminal: appear, change, close, linger, and stay sorted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.model.event import EventKind, Source
from sockscope.model.states import TcpState
from sockscope.tui.columns import COLUMNS, COLUMNS_BY_NAME, age_text, rtt_text, size_text
from sockscope.tui.model import GONE_GRACE, Board, Row, Status
from sockscope.tui.view import View
from tests.tui.helpers import PYTHON, T0, ep, ev, info

NOW = T0


def board(linger: float = 5.0, tables: bool = True, sort: str = "laddr") -> Board:
    return Board(View(COLUMNS_BY_NAME[sort].key), linger=linger, highlight=3.0, tables=tables)


def shown(b: Board) -> list[tuple[int, int | None, Status]]:
    return [(r.endpoint.local_port, r.endpoint.remote_port, r.status) for r in b.view]


def test_new_rows_are_green_then_normal() -> None:
    b = board()
    b.apply_events([ev(EventKind.OPENED, ep(40000, 2323))], NOW)
    assert shown(b) == [(40000, 2323, Status.NEW)]
    b.expire(NOW + 2.9)
    assert shown(b)[0][2] is Status.NEW
    b.expire(NOW + 3.0)
    assert shown(b)[0][2] is Status.NORMAL
    assert not b.hot  # nothing left to time


def test_a_state_change_is_yellow_unless_still_new() -> None:
    b = board()
    b.apply_delta({e.key: e for e in [ep(2323, 40000)]}, set(), NOW, NOW)
    assert shown(b) == [(2323, 40000, Status.NORMAL)]
    closing = ep(2323, 40000, TcpState.CLOSE_WAIT)
    b.apply_events([ev(EventKind.STATE, closing, old=TcpState.ESTABLISHED)], NOW)
    assert shown(b) == [(2323, 40000, Status.CHANGED)]
    assert b.rows[closing.key].endpoint.state is TcpState.CLOSE_WAIT
    b.apply_events(
        [
            ev(EventKind.OPENED, ep(40001, 2323, TcpState.SYN_SENT)),
            ev(EventKind.STATE, ep(40001, 2323), old=TcpState.SYN_SENT),
        ],
        NOW,
    )
    assert (40001, 2323, Status.NEW) in shown(b)


def test_closed_rows_are_red_for_the_linger_then_go() -> None:
    b = board(linger=5.0)
    e = ep(40000, 2323, owners=(PYTHON,))
    b.apply_events([ev(EventKind.OPENED, e)], NOW)
    closed = e._replace(owners=(), tcp_info=info(sent=10))
    b.apply_events([ev(EventKind.CLOSED, closed, 1.0, duration=1.0, source=Source.DESTROY)], NOW + 1)
    row = b.rows[e.key]
    assert row.status is Status.CLOSED and row.duration == 1.0
    assert row.owner == PYTHON  # the destroy message has no owner: the known one stays
    assert row.endpoint.tcp_info is not None  # its final counters
    b.expire(NOW + 5.9)
    assert e.key in b.rows
    b.expire(NOW + 6.0)
    assert not b.rows and not len(b.view)
    # A TIME_WAIT remnant with the same cookie does not bring it back.
    b.apply_delta({e.key: e._replace(state=TcpState.TIME_WAIT)}, set(), NOW + 7, NOW + 7)
    assert not b.rows


def test_opened_and_closed_between_two_refreshes_still_flashes_red() -> None:
    b = board()
    short = ep(40002, 2323)
    b.apply_events([ev(EventKind.OPENED, short, 0.1), ev(EventKind.CLOSED, short, 0.2)], NOW)
    assert shown(b) == [(40002, 2323, Status.CLOSED)]
    # Seen only by its destroy message (no tracepoint): it flashes too, with its life.
    only = ep(40003, 2323)
    b.apply_events([ev(EventKind.CLOSED, only, 0.5, duration=0.0003, source=Source.DESTROY)], NOW)
    row = b.rows[only.key]
    assert row.status is Status.CLOSED and row.duration == 0.0003
    assert abs(row.first_seen - (T0 + 0.5 - 0.0003)) < 1e-9


def test_lost_events_make_no_row() -> None:
    b = board()
    assert b.apply_events([ev(EventKind.LOST, ep(0, None))], NOW) == 0
    assert not b.rows


def test_a_tracepoint_row_takes_its_cookie_when_a_dump_shows_it() -> None:
    b = board()
    traced = ep(40000, 2323, TcpState.SYN_SENT)._replace(cookie=None, inode=0)
    b.apply_events([ev(EventKind.OPENED, traced, source=Source.TRACE, process=PYTHON)], NOW)
    b.apply_events(
        [
            ev(
                EventKind.STATE,
                traced._replace(state=TcpState.ESTABLISHED),
                old=TcpState.SYN_SENT,
                source=Source.TRACE,
            )
        ],
        NOW,
    )
    assert len(b) == 1
    dumped = ep(40000, 2323, cookie=77)
    b.apply_delta({dumped.key: dumped}, set(), NOW + 1, NOW + 1)
    assert list(b.rows) == [dumped.key]
    row = b.rows[dumped.key]
    assert row.status is Status.NEW and row.process == PYTHON and row.in_table
    assert len(row.history) == 2
    b.apply_events([ev(EventKind.CLOSED, dumped, 2, source=Source.DESTROY)], NOW + 2)
    assert row.closed and len(b) == 1


def test_a_tracepoint_close_finds_the_row_by_its_addresses() -> None:
    b = board()
    b.apply_delta({e.key: e for e in [ep(40000, 2323)]}, set(), NOW, NOW)
    wiped = ep(40000, 2323, TcpState.CLOSE)._replace(cookie=None)
    b.apply_events([ev(EventKind.STATE, wiped, old=TcpState.ESTABLISHED, source=Source.TRACE)], NOW)
    assert len(b) == 1 and shown(b)[0][2] is Status.CHANGED
    # But a cookie never matches another cookie's row by address.
    other = ep(40000, 2323, cookie=999)
    b.apply_events([ev(EventKind.OPENED, other)], NOW)
    assert len(b) == 2


def test_dumps_update_figures_quietly_and_close_what_they_lose() -> None:
    b = board()
    e = ep(2323, 40000)
    b.apply_delta({e.key: e}, set(), NOW, NOW)
    busier = e._replace(recv_q=5, tcp_info=info(sent=4096))
    b.apply_delta({e.key: busier}, set(), NOW + 1, NOW + 1)
    assert b.rows[e.key].endpoint.recv_q == 5 and shown(b)[0][2] is Status.NORMAL
    # Gone from the dump with no event (a TIME_WAIT remnant expiring): closed after a grace.
    b.apply_delta({}, {e.key}, NOW + 2, NOW + 2)
    b.expire(NOW + 2 + GONE_GRACE - 0.1)
    assert shown(b)[0][2] is Status.NORMAL
    b.expire(NOW + 2 + GONE_GRACE)
    assert shown(b)[0][2] is Status.CLOSED


def test_replays_do_not_close_rows_for_missing_dumps() -> None:
    b = board(tables=False)
    traced = ep(40000, 2323)._replace(cookie=None)
    b.apply_events([ev(EventKind.OPENED, traced, source=Source.TRACE)], NOW)
    b.expire(NOW + 1000)
    assert shown(b) == [(40000, 2323, Status.NORMAL)]


def test_view_filters_sorts_and_reverses() -> None:
    b = board(sort="raddr")
    eps = [ep(p, r) for p, r in ((40003, 2323), (40001, 2324), (2323, 40003))]
    b.apply_delta({e.key: e for e in eps}, set(), NOW, NOW)
    assert [r.endpoint.remote_port for r in b.view] == [2323, 2324, 40003]
    b.view.rebuild(b.rows.values(), reverse=True)
    assert [r.endpoint.remote_port for r in b.view] == [40003, 2324, 2323]
    first = b.view.row_at(0)
    assert b.view.index(first) == 0
    b.view.rebuild(b.rows.values(), accept=lambda r: r.endpoint.local_port != 2323)
    assert len(b.view) == 2 and b.view.index(first) is None
    # A change moves the row to its new place.
    moved = eps[0]._replace(remote_port=9)
    b.apply_delta({eps[0].key: moved}, set(), NOW, NOW)
    assert [r.endpoint.remote_port for r in b.view] == [2324, 9]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["open", "change", "close", "dump", "tick"]), st.integers(0, 30), st.integers(0, 5)
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(OPS, st.sampled_from([c.name for c in COLUMNS]), st.booleans())
def test_incremental_order_equals_a_full_sort(
    ops: list[tuple[str, int, int]], sort: str, reverse: bool
) -> None:
    """Whatever happens, the view is what sorting every accepted row from scratch gives."""
    b = board(linger=2.0, sort=sort)
    b.view.reverse = reverse
    b.view.accept = lambda r: r.endpoint.recv_q != 3  # a filter that rows move in and out of
    now = NOW
    for op, n, v in ops:
        e = ep(30000 + n, 2323, recv_q=v, send_q=n * v, tcp_info=info(rtt_us=v * 10, sent=n))
        if op == "open":
            b.apply_events([ev(EventKind.OPENED, e, now - T0)], now)
        elif op == "change":
            b.apply_events(
                [
                    ev(
                        EventKind.STATE,
                        e._replace(state=TcpState.CLOSE_WAIT),
                        now - T0,
                        old=TcpState.ESTABLISHED,
                    )
                ],
                now,
            )
        elif op == "close":
            b.apply_events([ev(EventKind.CLOSED, e, now - T0)], now)
        elif op == "dump":
            b.apply_delta({e.key: e}, set(), now, now)
        else:
            now += v
            b.expire(now)
    expected = View(b.view.key, reverse=reverse, accept=b.view.accept)
    expected.rebuild(b.rows.values())
    assert [r.seq for r in b.view] == [r.seq for r in expected]
    assert all(b.view.index(r) == i for i, r in enumerate(b.view))
    assert all(isinstance(r, Row) for r in b.view)


def test_only_a_dump_says_queued() -> None:
    """A tracepoint endpoint has no inode (unknown), which must not read as 'queued'."""
    b = board()
    traced = ep(34312, 2323, inode=0)._replace(cookie=None)
    b.apply_events([ev(EventKind.OPENED, traced, source=Source.TRACE, process=PYTHON)], NOW)
    row = b.find(traced)
    assert row is not None and row.owner == PYTHON
    assert COLUMNS_BY_NAME["state"].fmt(row, None) == "ESTABLISHED"  # type: ignore[arg-type]
    queued = ep(2323, 34312, inode=0)
    b.apply_delta({queued.key: queued}, set(), NOW, NOW)
    qrow = b.rows[queued.key]
    assert COLUMNS_BY_NAME["state"].fmt(qrow, None) == "ESTAB(queued)"  # type: ignore[arg-type]
    assert qrow.owner is None


def test_cell_formats_fit_their_columns() -> None:
    assert [rtt_text(u) for u in (40, 9_999, 123_456, 3_040_000)] == ["0.04ms", "10.00ms", "123ms", "3.04s"]
    assert [size_text(n) for n in (None, 830, 12_400, 3_100_000)] == ["", "830B", "12.4kB", "3.1MB"]
    assert [age_text(s) for s in (0.4, 12, 302, 11_220)] == ["0.4s", "12s", "5m02s", "3h07m"]


def test_a_big_dump_is_sorted_in_one_go_and_stays_consistent() -> None:
    b = board(sort="raddr")
    eps = [ep(20000 + i % 7, 30000 + (i * 7919) % 5000, cookie=i + 1) for i in range(3000)]
    b.apply_delta({e.key: e for e in eps}, set(), NOW, NOW)
    assert len(b.view) == 3000
    ports = [r.endpoint.remote_port for r in b.view]
    assert ports == sorted(ports)
    moved = eps[5]._replace(remote_port=1)
    b.apply_delta({moved.key: moved}, set(), NOW, NOW)  # small: row by row
    assert b.view.row_at(0).endpoint.remote_port == 1
    assert all(b.view.index(r) == i for i, r in enumerate(b.view))


def test_age_is_a_lower_bound_for_what_a_dump_showed_first() -> None:
    b = board()
    older = ep(2323, 40000)
    b.apply_delta({older.key: older}, set(), NOW + 5, NOW + 5)  # there before the watch
    b.apply_events([ev(EventKind.OPENED, ep(40001, 2323), 6.0, source=Source.BPF)], NOW + 6)
    cols = COLUMNS_BY_NAME["age"]
    by_port = {r.endpoint.local_port: r for r in b.view}
    assert by_port[2323].age_lower_bound and not by_port[40001].age_lower_bound
    ctx = type("Ctx", (), {"now": NOW + 17})()
    assert cols.fmt(by_port[2323], ctx).startswith(">")  # type: ignore[arg-type]
    assert not cols.fmt(by_port[40001], ctx).startswith(">")  # type: ignore[arg-type]
    # Its close from a source that saw it open gives the exact age.
    b.apply_events([ev(EventKind.CLOSED, older, 9.0, duration=8.5, source=Source.BPF)], NOW + 9)
    assert not b.rows[older.key].age_lower_bound and b.rows[older.key].first_seen == NOW + 0.5
