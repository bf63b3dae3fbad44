"""A tape of what the loop fed the engine: record a real watch, replay it in a test.

Every call into ``Engine`` (and every answer ``Tasks`` gave it) becomes one JSON line, in
order, with the times the loop passed; ``replay`` feeds the same calls to a fresh engine
on the same clock. The engine is deterministic given its inputs, so a watch of real
sockets becomes a test that needs no root, no kernel and no waiting (the tests of the
engine's faults are recorded this way: ``tools/record_engine_tape.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from sockscope.model.endpoint import Endpoint, Owner, TcpInfo, Timer
from sockscope.model.event import Event, EventKind
from sockscope.model.states import Proto, TcpState
from sockscope.watch.engine import Engine, EngineConfig
from sockscope.watch.traced import Tasks
from sockscope.wire.ebpf.records import BpfRecord
from sockscope.wire.ftrace import StateChange

Line = dict[str, Any]


def encode_endpoint(ep: Endpoint) -> list[object]:
    """An endpoint as plain JSON values, field by field."""
    return [
        ep.proto.value,
        ep.family,
        int(ep.state),
        _addr(ep.local_address),
        ep.local_port,
        _addr(ep.remote_address),
        ep.remote_port,
        ep.recv_q,
        ep.send_q,
        ep.uid,
        ep.inode,
        ep.cookie,
        ep.iface,
        list(ep.timer) if ep.timer is not None else None,
        list(ep.tcp_info) if ep.tcp_info is not None else None,
        ep.drops,
        ep.cgroup_id,
        [list(o) for o in ep.owners],
        ep.netns,
        ep.path,
        ep.peer_inode,
        ep.sock_type,
    ]


def decode_endpoint(v: list[Any]) -> Endpoint:
    """The endpoint ``encode_endpoint`` wrote."""
    return Endpoint(
        Proto(v[0]),
        v[1],
        TcpState(v[2]),
        _ip(v[3]),
        v[4],
        _ip(v[5]),
        v[6],
        v[7],
        v[8],
        v[9],
        v[10],
        v[11],
        v[12],
        Timer(*v[13]) if v[13] is not None else None,
        TcpInfo(*v[14]) if v[14] is not None else None,
        v[15],
        v[16],
        tuple(Owner(*o) for o in v[17]),
        v[18],
        v[19],
        v[20],
        v[21],
    )


def encode_record(r: StateChange) -> list[object]:
    """A tracepoint record as plain JSON values."""
    return [
        r.mono,
        r.pid,
        r.family,
        r.proto,
        str(r.local_address),
        r.local_port,
        str(r.remote_address),
        r.remote_port,
        int(r.old_state),
        int(r.new_state),
        r.in_irq,
        r.skaddr,
    ]


def decode_record(v: list[Any]) -> StateChange:
    """The record ``encode_record`` wrote."""
    return StateChange(
        v[0],
        v[1],
        v[2],
        v[3],
        ip_address(v[4]),
        v[5],
        ip_address(v[6]),
        v[7],
        TcpState(v[8]),
        TcpState(v[9]),
        v[10],
        v[11],
    )


def encode_bpf(r: BpfRecord) -> list[object]:
    """An eBPF record as plain JSON values."""
    return [*r[:12], int(r.oldstate), int(r.newstate), str(r.saddr), str(r.daddr), *r[16:]]


def decode_bpf(v: list[Any]) -> BpfRecord:
    """The record ``encode_bpf`` wrote."""
    fields = [*v[:12], TcpState(v[12]), TcpState(v[13]), ip_address(v[14]), ip_address(v[15]), *v[16:]]
    return BpfRecord._make(fields)


def _addr(a: object) -> str | None:
    return None if a is None else str(a)


def _ip(a: str | None) -> IPv4Address | IPv6Address | None:
    return None if a is None else ip_address(a)


def encode_config(cfg: EngineConfig) -> Line:
    """The engine's configuration as JSON values."""
    return {
        "interval": cfg.interval,
        "netns": cfg.netns,
        "families": list(cfg.families),
        "destroy": sorted(p.value for p in cfg.destroy),
        "trace": cfg.trace,
        "bpf": cfg.bpf,
        "processes": cfg.processes,
        "kinds": None if cfg.kinds is None else sorted(k.value for k in cfg.kinds),
        "ns_inode": cfg.ns_inode,
    }


def decode_config(d: Line) -> EngineConfig:
    """The configuration ``encode_config`` wrote."""
    return EngineConfig(
        interval=d["interval"],
        netns=d["netns"],
        families=tuple(d["families"]),
        destroy=frozenset(Proto(p) for p in d["destroy"]),
        trace=d["trace"],
        bpf=d["bpf"],
        processes=d["processes"],
        kinds=None if d["kinds"] is None else frozenset(EventKind(k) for k in d["kinds"]),
        ns_inode=d["ns_inode"],
    )


class TapeTasks:
    """``Tasks`` that answer what the recording's tasks answered."""

    def __init__(self) -> None:
        self.owners: dict[int, Owner | None] = {}
        self.netnses: dict[int, int | None] = {}

    def owner(self, tid: int) -> Owner | None:
        """As recorded (None: the task was never asked about)."""
        return self.owners.get(tid)

    def netns(self, tid: int) -> int | None:
        """As recorded."""
        return self.netnses.get(tid)


class TapeRecorder:
    """Writes every call into an engine, and every ``Tasks`` answer, as tape lines."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def config(self, cfg: EngineConfig) -> None:
        """The tape's first line."""
        self._line({"op": "config", "config": encode_config(cfg)})

    def call(self, op: str, now: float, wall_offset: float, **args: object) -> None:
        """One call into the engine (its inputs encoded by op)."""
        line: Line = {"op": op, "now": now, "wall_offset": wall_offset}
        a: dict[str, Any] = args
        if op == "dump":
            line["endpoints"] = [encode_endpoint(ep) for ep in a["endpoints"]]
            line["first"] = a["first"]
        elif op == "destroyed":
            line["messages"] = [[encode_endpoint(ep), at] for ep, at in a["messages"]]
            line["overruns"], line["horizon"] = a["overruns"], a["horizon"]
        elif op == "trace":
            line["records"] = [encode_record(r) for r in a["records"]]
            line["upto"] = a["upto"]
        elif op == "bpf":
            line["records"] = [encode_bpf(r) for r in a["records"]]
        else:
            line.update(a)
        self._line(line)

    def tasks(self, inner: Tasks) -> Tasks:
        """``inner``, with each answer written to the tape."""
        return _RecordedTasks(inner, self)

    def _line(self, line: Line) -> None:
        self.write(json.dumps(line, separators=(",", ":")) + "\n")


class _RecordedTasks:
    def __init__(self, inner: Tasks, tape: TapeRecorder) -> None:
        self.inner = inner
        self.tape = tape

    def owner(self, tid: int) -> Owner | None:
        owner = self.inner.owner(tid)
        self._note(tid)
        return owner

    def netns(self, tid: int) -> int | None:
        ns = self.inner.netns(tid)
        self._note(tid)
        return ns

    def _note(self, tid: int) -> None:
        owner = self.inner.owner(tid)
        self.tape._line(
            {
                "op": "task",
                "tid": tid,
                "owner": list(owner) if owner else None,
                "netns": self.inner.netns(tid),
            }
        )


def replay(lines: Iterable[str], config: EngineConfig | None = None) -> tuple[Engine, list[Event]]:
    """Feed a tape's calls to a new engine; the engine and every event it returned.

    ``config`` replaces the recorded configuration (to replay the same inputs with other
    kinds asked for, say).
    """
    entries = list(_entries(lines))
    # A task's answers are written when the engine asks, after the call that made it
    # ask; the recorder looked each task up once, so they are known for the whole tape.
    tasks = TapeTasks()
    for entry in entries:
        if entry["op"] == "task":
            owner = entry["owner"]
            tasks.owners[entry["tid"]] = Owner(*owner) if owner is not None else None
            tasks.netnses[entry["tid"]] = entry["netns"]
    engine: Engine | None = None
    out: list[Event] = []
    for entry in entries:
        op = entry["op"]
        if op == "config":
            engine = Engine(config or decode_config(entry["config"]), tasks)
            continue
        if op == "task":
            continue
        assert engine is not None, "a tape starts with its config"
        engine.wall_offset = entry.get("wall_offset", engine.wall_offset)
        out += _feed(engine, entry)
    assert engine is not None, "an empty tape"
    return engine, out


def _feed(engine: Engine, e: Line) -> list[Event]:
    feed = _FEEDS.get(e["op"])
    if feed is None:
        raise ValueError(f"unknown tape entry {e['op']!r}")
    return feed(engine, e, e["now"])


_FEEDS: dict[str, Callable[[Engine, Line, float], list[Event]]] = {
    "dump": lambda g, e, now: g.on_dump([decode_endpoint(v) for v in e["endpoints"]], now, first=e["first"]),
    "destroyed": lambda g, e, now: g.on_destroyed(
        [(decode_endpoint(v), at) for v, at in e["messages"]], e["overruns"], e["horizon"], now
    ),
    "trace": lambda g, e, now: g.on_trace([decode_record(v) for v in e["records"]], e["upto"], now),
    "trace_overruns": lambda g, e, now: g.on_trace_overruns(e["total"], now),
    "bpf": lambda g, e, now: g.on_bpf([decode_bpf(v) for v in e["records"]], now),
    "bpf_losses": lambda g, e, now: g.on_bpf_losses(e["lost"], e["recursion"], e["map_full"], now),
    "bpf_closed": lambda g, e, now: g.on_bpf_closed(e["cookies"], now),
    "settle": lambda g, e, now: g.settle(now),
}


def _entries(lines: Iterable[str]) -> Iterator[Line]:
    for line in lines:
        if line.strip() and not line.startswith("#"):
            yield json.loads(line)
