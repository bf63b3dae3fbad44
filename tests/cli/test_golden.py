"""The listings as text, on recorded kernel bytes and a recorded /proc: no root, no kernel.

Each case replays what the kernel answered when tools/record_fixtures.py --golden ran
the same command, checks that the same requests were sent, and expects the same text.
"""

from __future__ import annotations

import pytest

from tests.cli.golden_cases import CASES, GOLDEN, PROC
from tests.cli.helpers import run
from tests.helpers.replay import ReplaySocket, requests_in


@pytest.mark.parametrize("name", sorted(CASES))
def test_listing_text_matches_the_recording(name: str) -> None:
    replay = ReplaySocket.from_file(GOLDEN / f"{name}.nlhex")
    code, out, err = run(*CASES[name], socket_factory=lambda: replay, proc_root=str(PROC))
    assert (code, err) == (0, "")
    assert replay.sent == requests_in(GOLDEN / f"{name}.nlhex")
    assert out == (GOLDEN / f"{name}.txt").read_text()


def test_every_listing_format_is_covered() -> None:
    flags = {flag for argv in CASES.values() for flag in argv}
    assert {"--bsd", "--ss", "-tuane", "-tano", "-tuanp", "queues"} <= flags


def test_a_request_the_recording_never_answered_is_seen() -> None:
    replay = ReplaySocket.from_file(GOLDEN / "netstat.nlhex")
    code, _, _ = run("list", "-tuln", socket_factory=lambda: replay, proc_root=str(PROC))
    assert replay.sent != requests_in(GOLDEN / "netstat.nlhex") or code != 0
