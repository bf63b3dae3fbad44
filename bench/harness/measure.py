"""One load under one watcher, everything counted: a ``Row``.

The window: the watcher's CPU and its programs' BPF run time are read just before the
load and ``tail`` seconds after it (its catch-up included), then it is stopped. Whether
it had caught up by then is checked, not assumed: its output as it was at the window's
end is matched to nginx's log too, and must already hold every connection it finally
reports (sockscope writes each batch as it goes; tcplife's output is block-buffered, so
its check is skipped).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.counts import Addr, Tally, parse_output, parse_summary, summary_lost, tally
from harness.cpu import NO_BPF, ZERO, BpfTime, CpuTimes, read_bpf_time, read_cpu
from harness.stage import LoadResult, Stage
from harness.watchers import Running, WatcherSpec, launch

TAIL = 3.0


@dataclass
class Row:
    """One measurement: a watcher (``key``) in round ``round`` of the load."""

    key: str
    round: int
    load: LoadResult = field(default_factory=LoadResult)
    logged: int = 0  # connections in nginx's log
    cpu: CpuTimes = ZERO  # the watcher's, over the window
    bpf: BpfTime = NO_BPF  # its programs', over the window
    tally: Tally | None = None
    caught_up: bool | None = None  # everything it reported was out by the window's end
    summary: dict[str, str] = field(default_factory=dict)  # sockscope's closing lines
    exit: int | None = None
    error: str = ""

    def per_conn_us(self) -> float | None:
        """The watcher's CPU (schedstat total) per logged connection, in µs (None: no
        watcher, or no connection)."""
        return 1e6 * self.cpu.total / self.logged if self.logged and self.tally is not None else None

    def bpf_per_conn_ns(self) -> float | None:
        return self.bpf.ns / self.logged if self.logged and self.bpf.runs else None

    @property
    def lost(self) -> int | None:
        """What the watcher said it lost: its summary, or its lost events / lines."""
        if self.summary:
            return summary_lost(self.summary)
        return self.tally.lost if self.tally is not None else None


def measure(
    stage: Stage,
    spec: WatcherSpec,
    load: Callable[[], LoadResult],
    sockscope: str,
    files: Path,
    round_: int = 1,
    tail: float = TAIL,
    expected: Callable[[], tuple[Counter[Addr], int]] | None = None,
) -> Row:
    """Run ``load`` under ``spec``'s watcher and count what it saw (files under ``files``).

    The connections looked for are the ones nginx logged during the run, on its port;
    ``expected`` gives others instead, once the load is over: (client address and port
    -> connections, the server's port).
    """
    row = Row(spec.key, round_)
    offset = stage.offset()
    running = launch(spec, stage, sockscope, files)
    try:
        before = _readings(running)
        row.load = load()
        time.sleep(tail)
        after = _readings(running)
        size_at_end = running.output_size() if running is not None else 0
    finally:
        if running is not None:
            running.stop()
    logged, port = expected() if expected is not None else (stage.logged_since(offset), stage.port)
    row.logged = sum(logged.values())
    if running is None:
        return row
    row.cpu, row.bpf = after[0] - before[0], after[1] - before[1]
    _count(row, running, logged, port, size_at_end)
    return row


def _readings(running: Running | None) -> tuple[CpuTimes, BpfTime]:
    if running is None:
        return ZERO, NO_BPF
    return read_cpu(running.pid) or ZERO, read_bpf_time(running.programs)


def _count(row: Row, running: Running, logged: Counter[Addr], port: int, size_at_end: int) -> None:
    spec, stderr = running.spec, running.stderr()
    row.exit = running.returncode
    if running.killed:
        row.error = "did not stop on SIGINT: killed"
    data = running.out.read_bytes()
    text = data.decode(errors="replace")
    client = row.load.client
    row.tally = tally(parse_output(spec.output, text, stderr), logged, port, client_name=client)
    if spec.kind == "sockscope":
        # With --jsonl the summary goes to stderr, else after the events.
        row.summary = parse_summary(stderr if spec.output == "jsonl" else text)
        if not row.summary:
            row.error = row.error or f"no summary: {stderr[-200:]!r}"
        head = data[:size_at_end].rsplit(b"\n", 1)[0].decode(errors="replace")
        early = tally(parse_output(spec.output, head), logged, port, client_name=client)
        row.caught_up = _ends(early) == _ends(row.tally)


def _ends(t: Tally) -> tuple[int, ...]:
    return tuple(
        n
        for end in (t.server, t.client)
        for n in (end.opened, end.closed, end.opened_named, end.closed_named)
    )
