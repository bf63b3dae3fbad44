"""The harness against the real thing (root): nginx in its own namespace, ab and the paced
client against it, sockscope and libbpf-tools tcplife watching, every connection counted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from harness.cpu import bpf_stats
from harness.measure import measure
from harness.pacer import run_paced
from harness.stage import Stage
from harness.verdict import Target, misses
from harness.watchers import WatcherSpec

from tests.conftest import needs_root

SOCKSCOPE = str(Path(sys.executable).parent / "sockscope")
WATCH = WatcherSpec("default", "sockscope --jsonl", "sockscope", ("--jsonl",))
TCPLIFE = WatcherSpec("tcplife", "tcplife", "tcplife")


@needs_root
def test_a_small_load_is_counted_whole(tmp_path):
    with bpf_stats(), Stage() as stage:
        ns = stage.ns
        seen = measure(stage, WATCH, lambda: stage.ab(100, 5), SOCKSCOPE, tmp_path / "w", tail=0.5)
        peer = measure(stage, TCPLIFE, lambda: stage.ab(100, 5), SOCKSCOPE, tmp_path / "t", tail=0.5)
        paced = measure(
            stage, WATCH, lambda: run_paced(stage, 500.0, 0.4, processes=2), SOCKSCOPE, tmp_path / "p"
        )
    assert not Path(f"/run/netns/{ns}").exists(), "the namespace goes with the stage"
    assert seen.logged == 100
    assert misses(seen, Target("default")) == []
    assert seen.caught_up is True
    assert seen.summary["sources"].split(", ") == ["poll", "bpf", "destroy"]
    assert seen.cpu.total > 0
    assert seen.bpf.runs >= 5 * 2 * 100, "every transition of both ends ran the program"
    assert peer.logged == 100
    assert misses(peer, Target("tcplife", opens=False, named=False)) == []
    assert peer.bpf.runs > 0
    assert (paced.load.complete, paced.load.failed, paced.logged) == (200, 0, 200)
    assert paced.load.client == paced.tally.client.names.most_common(1)[0][0]  # type: ignore[union-attr]
    assert misses(paced, Target("default")) == []


@needs_root
def test_a_watcher_that_cannot_start_is_reported(tmp_path):
    from harness.watchers import LaunchError, launch  # noqa: PLC0415

    bad = WatcherSpec("bad", "bad", "sockscope", ("--source", "nonsense"))
    with Stage() as stage, pytest.raises(LaunchError, match="exited 2"):
        launch(bad, stage, SOCKSCOPE, tmp_path / "bad")
