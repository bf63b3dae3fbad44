"""What the commands say: titles, warnings, help that fits, the fields a filter knows."""

from __future__ import annotations

import pytest

from sockscope.model.endpoint import TcpInfo
from sockscope.model.event import Event, EventKind, EventView, Source
from sockscope.model.fields import FIELDS
from sockscope.model.filter import FilterError, parse_filter
from sockscope.tui.columns import Context
from sockscope.tui.model import Row
from sockscope.tui.panels import render_detail
from tests.cli.helpers import as_nobody, run
from tests.tui.helpers import ep


@pytest.mark.parametrize("width", [40, 80, 132])
def test_help_filters_fits_the_width_and_keeps_every_example(width: int) -> None:
    code, out, _ = run("help", "filters", width=width)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= width
    for field in FIELDS:
        assert field.name in out and " ".join(field.example.split()) in " ".join(out.split()), field.name


@pytest.mark.parametrize("warn", ["150%", "101", "0", "0%", "-5%", "1.5e3"])
def test_queues_refuses_a_warning_level_no_queue_reaches(warn: str) -> None:
    code, _, err = run("queues", "--warn", warn)
    assert code == 2 and "percentage above 0 and at most 100%" in err and err.count("\n") == 1


@pytest.mark.parametrize("warn", ["80%", "80", "0.8", "100%"])
def test_queues_takes_a_warning_level_as_percent_or_fraction(warn: str) -> None:
    code, _, err = run("queues", "--warn", warn, "--json")
    assert code == 0, err


def test_queues_without_p_as_a_user_warns_of_nothing_and_shows_unknown_owners(primer: str) -> None:
    def body() -> str:
        results = []
        for argv in (["queues"], ["queues", "-p"]):
            code, out, err = run(*argv)
            results.append(f"{code}\n{err}\n{out}")
        return "\0".join(results)

    plain, with_p = as_nobody(body, netns=primer).split("\0")
    code, err, out = plain.split("\n", 2)
    assert code == "0" and err == "", err
    listener = next(line for line in out.splitlines() if line.startswith("0.0.0.0:2323"))
    assert listener.split()[1] == "?"  # root's server: its owner is hidden, not absent
    code, err, _ = with_p.split("\n", 2)  # one line of stderr, then stdout
    assert code == "0" and err.startswith("sockscope: warning: not all processes could be examined")


@pytest.mark.parametrize(
    ("flags", "title"),
    [
        (["-x"], "Active UNIX domain sockets (w/o servers)"),
        (["-lx"], "Active UNIX domain sockets (only servers)"),
        (["-tx"], "Active Internet connections and UNIX domain sockets (w/o servers)"),
        (["-t"], "Active Internet connections (w/o servers)"),
        (["-f", "unix", "-a", "--bsd"], "Active UNIX domain sockets (including servers)"),
    ],
)
def test_the_title_names_what_is_listed(flags: list[str], title: str) -> None:
    code, out, _ = run("list", "-n", *flags)
    assert code == 0 and out.splitlines()[0] == title


def test_source_is_a_field_of_watch_filters() -> None:
    flt = parse_filter("source == trace and event == closed")
    closed = ep(40000, 2323)
    seen = [
        flt.matches(EventView(Event(EventKind.CLOSED, closed, 1.0, 1.0, source)))  # type: ignore[arg-type]
        for source in (Source.TRACE, Source.DESTROY, Source.POLL)
    ]
    assert seen == [True, False, False]
    with pytest.raises(FilterError, match="did you mean 'source'"):
        parse_filter("sourse == trace")


def test_replay_filters_on_source_are_accepted() -> None:
    code, _, err = run("replay", "/nonexistent.db", "source == destroy")
    assert "unknown field" not in err and code in (1, 2)


def test_the_detail_pane_shows_rates_and_times_in_units() -> None:
    info = TcpInfo(
        200, 20, 204_000, 10, 65483, 0, 0, 0, 0, 43_000_000, 1, 2, 0, 1, 1, 2_471_056_603, 0, 40, 7, 0
    )
    row = Row(("k",), ep(40000, 2323, tcp_info=info), 0.0, 1)  # type: ignore[arg-type]
    from sockscope.render.addresses import Notation  # noqa: PLC0415

    text = render_detail(row, Context(Notation(), 0.0, lambda uid: "root")).plain
    assert "delivery_rate:    2.5GB/s" in text and "2471056603" not in text
    assert "rto_us:           204.0ms" in text and "bytes_sent:       43.0MB" in text
