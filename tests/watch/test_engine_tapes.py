"""The engine on recorded inputs (tests/fixtures/engine, tools/record_engine_tape.py): real
watches replayed on their own clock, without root or a kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sockscope.model.event import Event, EventKind, EventView
from sockscope.model.filter import parse_filter
from sockscope.watch.tape import replay

TAPES = Path(__file__).parents[1] / "fixtures" / "engine"


def load(name: str) -> tuple[dict[str, object], list[str]]:
    lines = (TAPES / f"{name}.tape").read_text().splitlines(keepends=True)
    facts = next(json.loads(ln.removeprefix("# facts ")) for ln in lines if ln.startswith("# facts "))
    return facts, lines


def client_ends(events: list[Event], kind: EventKind, port: int = 40404) -> list[Event]:
    return [e for e in events if e.kind is kind and e.endpoint.local_port == port]


@pytest.mark.parametrize("sources", ["bpf-destroy-poll", "destroy-poll-trace", "destroy-poll"])
def test_another_namespace_reusing_the_4_tuple_is_left_out(sources: str) -> None:
    # Both namespaces ran the same loop on the same 4-tuple (5 connections here, 9
    # there, interleaved): only ours are reported, each once, with our process.
    facts, tape = load(f"reuse-{sources}")
    _, events = replay(tape)
    closed = client_ends(events, EventKind.CLOSED)
    assert len(closed) == facts["connections"]
    server = [e for e in events if e.kind is EventKind.CLOSED and e.endpoint.remote_port == 40404]
    assert len(server) == facts["connections"]
    # Without the tracepoint, a short connection's client end is never seen alive (no
    # owner); its server end belongs to the listener's owner.
    named = closed + server if sources != "destroy-poll" else server
    for ev in named:
        assert ev.owner is not None and ev.owner.pid == facts["pid"], ev
    if sources != "destroy-poll":
        opened = client_ends(events, EventKind.OPENED)
        assert len(opened) == facts["connections"]
        assert all(e.owner is not None and e.owner.pid == facts["pid"] for e in opened)


@pytest.mark.parametrize("sources", ["bpf-destroy-poll", "destroy-poll-trace", "destroy-poll"])
def test_a_connection_killed_after_the_start_closes_once_and_at_once(sources: str) -> None:
    facts, tape = load(f"killed-{sources}")
    _, events = replay(tape)
    port = facts["client_port"]
    assert isinstance(port, int)
    ends = [
        e
        for e in events
        if e.kind is EventKind.CLOSED and port in (e.endpoint.local_port, e.endpoint.remote_port)
    ]
    assert sorted(e.endpoint.local_port for e in ends) == sorted([port, 2323]), ends  # each end once
    killed_at = facts["killed_at"]
    assert isinstance(killed_at, float)
    # The tracepoint sees the abort at once; a dump, at the next poll (0.5 s).
    bound = 0.5 + 0.2 if sources == "destroy-poll" else 0.2
    for ev in ends:
        assert ev.mono - killed_at < bound, f"reported {ev.mono - killed_at:.2f}s after the kill"
        assert ev.lower_bound  # it opened before the watch began


@pytest.mark.parametrize("sources", ["bpf-destroy-poll", "destroy-poll-trace", "destroy-poll"])
def test_a_connection_older_than_the_watch_has_a_lower_bound_duration(sources: str) -> None:
    facts, tape = load(f"held-{sources}")
    _, events = replay(tape)
    port = facts["client_port"]
    closed = [e for e in events if e.kind is EventKind.CLOSED and e.endpoint.local_port == port]
    assert len(closed) == 1
    ev = closed[0]
    assert ev.lower_bound and ev.duration is not None
    true_life = float(facts["closed_at"]) - float(facts["opened_at"])  # type: ignore[arg-type]
    assert 2.5 < ev.duration < true_life  # counted from the watch's first sight: ~3 of 6 s
    view = EventView(ev)
    assert not parse_filter("duration < 1s").matches(view)
    assert not parse_filter("not duration > 5s").matches(view)  # it lived 6 s: unknown, not true
    assert parse_filter("duration > 2s").matches(view)


def test_a_replay_is_deterministic() -> None:
    _, tape = load("reuse-destroy-poll-trace")
    _, first = replay(tape)
    _, second = replay(tape)
    assert first == second and first


def test_a_fin_wait2_remnant_is_not_a_connection() -> None:
    # An orphaned FIN_WAIT2 is a timewait minisock at once; a dump shows it in FIN_WAIT2
    # with a fresh cookie after the eBPF close of its socket was reported. Its coming
    # and going in the dumps make no event (they made a second close before).
    from ipaddress import ip_address  # noqa: PLC0415

    from sockscope.model.endpoint import Endpoint, Timer  # noqa: PLC0415
    from sockscope.model.states import Proto, TcpState  # noqa: PLC0415
    from sockscope.watch.engine import Engine, EngineConfig  # noqa: PLC0415

    lo = ip_address("127.0.0.1")
    remnant = Endpoint(
        Proto.TCP, 4, TcpState.FIN_WAIT2, lo, 80, lo, 41000, 0, 0, 0, 0, 77, timer=Timer("timewait", 3000, 0)
    )
    engine = Engine(EngineConfig(bpf=True))
    engine.on_dump([], 1.0, first=True)
    got = engine.on_dump([remnant], 2.0) + engine.on_dump([], 3.0)
    engine.bpf_upto = 4.0
    got += engine.settle(4.0)
    assert got == []
