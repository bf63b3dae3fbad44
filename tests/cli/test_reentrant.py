"""``main`` has no process-wide side effects: twice in a row, or in two threads at once."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import build_parser, main
from sockscope.cli.parser import Parser
from tests.cli.golden_cases import CASES, GOLDEN, PROC
from tests.cli.helpers import run
from tests.helpers.replay import ReplaySocket


class WatchedReplay(ReplaySocket):
    """A replay that notes whether the cyclic collector ran while it was asked."""

    collecting: list[bool]

    def send(self, data: bytes, /) -> int:
        self.collecting.append(gc.isenabled())
        return super().send(data)


def listing(name: str, collecting: list[bool] | None = None) -> tuple[int, str, str]:
    replay = WatchedReplay.from_file(GOLDEN / f"{name}.nlhex")
    replay.collecting = collecting if collecting is not None else []
    return run(*CASES[name], socket_factory=lambda: replay, proc_root=str(PROC))


def test_main_twice_gives_the_same_text() -> None:
    assert listing("processes") == listing("processes")
    assert listing("processes")[1] == (GOLDEN / "processes.txt").read_text()


def test_two_threads_each_write_to_their_own_streams(capsys: pytest.CaptureFixture[str]) -> None:
    names = ("netstat", "queues-verbose", "ss", "processes")
    results: dict[str, list[str]] = {name: [] for name in names}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for _ in range(15):
                code, out, err = listing(name)
                results[name].append(out if (code, err) == (0, "") else f"{code} {err}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name in names:
        assert results[name] == [(GOLDEN / f"{name}.txt").read_text()] * 15, name
    assert capsys.readouterr() == ("", "")  # nothing reached the process's own streams


def test_the_collector_is_left_alone() -> None:
    thresholds = gc.get_threshold()
    seen: list[bool] = []
    listing("netstat", seen)
    listing("queues", seen)
    assert seen and all(seen), "main or the library turned the cyclic collector off"
    assert gc.isenabled() and gc.get_threshold() == thresholds


def test_parsers_hold_their_env_per_instance() -> None:
    first, second = io.StringIO(), io.StringIO()
    parser = build_parser(Env(stdout=first))
    build_parser(Env(stdout=second))  # a second command starting meanwhile
    parser.print_help()
    assert first.getvalue().startswith("usage: sockscope") and second.getvalue() == ""
    assert "env" not in vars(Parser)


@pytest.mark.parametrize(
    ("argv", "collecting"),
    [
        (["list", "-tan"], False),
        (["-tan"], False),
        (["queues"], False),
        (["queues", "--watch"], True),
        (["watch"], True),
        (["top"], True),
        (["demo", "serve"], True),
    ],
)
def test_the_console_script_tunes_the_collector_for_one_shot_listings(
    argv: list[str], collecting: bool
) -> None:
    code = f"import gc; from sockscope.cli.main import _tune_gc; _tune_gc({argv!r}); print(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(collecting)


def test_watch_runs_from_a_thread_other_than_the_main_one() -> None:
    # Signal handlers belong to the main thread; watch must not need them to run.
    got: dict[str, object] = {}

    def go() -> None:
        out, err = io.StringIO(), io.StringIO()
        got["code"] = main(["watch", "--duration", "0.3s", "--source", "poll"], Env(stdout=out, stderr=err))
        got["err"] = err.getvalue()

    thread = threading.Thread(target=go)
    thread.start()
    thread.join(20)
    assert got["code"] == 0, got["err"]
    assert "Traceback" not in str(got["err"])
