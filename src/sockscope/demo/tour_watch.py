"""Step 6 of the tour: a large download and short connections, watched as they happen.

``sockscope watch`` streams the ports opening and closing while the workload runs, stops
by itself after a set number of events (or a few seconds), records them, and
``sockscope stats`` summarises the recording. The claims read the sockets and the
recording themselves, not the printed text.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

from sockscope.demo.claims import StepResult, explain, header, wait_for
from sockscope.demo.clients import ClientsConfig, ClientStats, run_clients
from sockscope.demo.server import ServerConfig
from sockscope.demo.session import SessionConfig
from sockscope.demo.stage import Stage
from sockscope.model.endpoint import Endpoint
from sockscope.model.event import EventKind
from sockscope.model.states import TcpState
from sockscope.record.sqlite import RecordingError, read_events

WATCH_EVENTS = 40  # stop after this many events...
WATCH_SECONDS = 6  # ...or this long, whichever comes first

DOWNLOAD = "4M"  # at RATE: two seconds of a connection that carries data
RATE = 2_000_000
RUN_SECONDS = 3.0
MIN_DOWNLOADED = 1_000_000


class _Workload:
    """One downloading client and two short-lived ones, in a thread, in the stage's netns."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.config = ClientsConfig(
            count=3,
            port=stage.port,
            duration=RUN_SECONDS,
            mix=("download", "short", "short"),
            size=DOWNLOAD,
            pause=0.3,
        )
        self.stats = ClientStats()
        self._thread = threading.Thread(target=self._main, name="sockscope-demo-clients", daemon=True)

    def _main(self) -> None:
        with self.stage.inside():  # the clients' sockets are made in this thread
            self.stats = asyncio.run(run_clients(self.config))

    def start(self) -> None:
        self._thread.start()
        self.stage.defer(lambda: self._thread.join(RUN_SECONDS + 10))

    def join(self) -> None:
        self._thread.join(RUN_SECONDS + 10)


def step_watch(stage: Stage) -> StepResult:
    """6. A large download and short connections (``watch`` hook: see the module)."""
    p = stage.port
    res = header(
        stage,
        6,
        f"One client downloads {DOWNLOAD}B at {RATE // 10**6} MB/s while two others "
        "connect, quit and connect again.",
    )
    stage.start_server(ServerConfig(port=p, session=SessionConfig(rate=RATE)))
    _snapshot_listing(stage)
    explain(stage, "Before: only the listener.")
    work = _Workload(stage)
    during: list[Endpoint] = []
    with tempfile.TemporaryDirectory(prefix="sockscope-tour-") as tmp:
        db = Path(tmp) / "tour.db"
        watcher = threading.Thread(target=lambda: _downloading_soon(stage, during), daemon=True)
        work.start()
        watcher.start()
        run = stage.run_live(
            "watch",
            f"port == {p}",
            "--events",
            "all",
            "--count",
            str(WATCH_EVENTS),
            "--duration",
            f"{WATCH_SECONDS}s",
            "--record",
            str(db),
        )
        explain(
            stage,
            "Each end of each connection has its own events: the client's "
            "connect (SYN_SENT), the server's accept (SYN_RECV), every state "
            "change, and the close with its duration and bytes. The watch "
            f"stopped by itself after {WATCH_EVENTS} events or {WATCH_SECONDS} s.",
        )
        stats = stage.run("stats", str(db), show=False, scoped=False)
        stage.write(f"$ sockscope stats tour.db\n{stats.stdout}{stats.stderr}")
        explain(
            stage,
            "stats summarises the recording: conversations per peer and port, "
            "the busiest ports, connections per second.",
        )
        work.join()
        watcher.join(RUN_SECONDS + 5)
        _watch_claims(res, p, run.code, db, stats.stdout)
    time.sleep(0.2)  # the last FINs
    _snapshot_listing(stage)
    explain(
        stage,
        f"After: the connections closed; the side that closed first (the server, "
        f"on :{p}) keeps each in TIME_WAIT for a while.",
    )
    _claims(res, stage, work.stats, during)
    return res


def _downloading_soon(stage: Stage, into: list[Endpoint]) -> None:
    wait_for(lambda: _downloading(stage, into), timeout=RUN_SECONDS)


def _watch_claims(res: StepResult, port: int, code: int, db: Path, stats_text: str) -> None:
    try:
        events = list(read_events(db))
    except RecordingError as exc:
        res.check("watch recorded the events", False, str(exc))
        return
    mine = [e for e in events if port in (e.endpoint.local_port, e.endpoint.remote_port)]
    opened = [e for e in mine if e.kind is EventKind.OPENED]
    closed = [e for e in mine if e.kind is EventKind.CLOSED]
    res.check(
        "watch showed ports opening and closing in real time, then stopped by itself",
        code == 0 and bool(closed) and 0 < len(events) <= WATCH_EVENTS,
        f"exit {code}; {len(events)} events recorded: {len(opened)} opened, {len(closed)} closed on :{port}",
    )
    res.check(
        "stats summarised the recording by peer and port",
        "Conversations" in stats_text
        and any(
            line.split()[1:2] == [str(port)] for line in stats_text.splitlines() if line and line[0].isdigit()
        ),
        next(
            (line for line in stats_text.splitlines() if f" {port} " in line),
            "no conversation row for the port",
        ),
    )


def _snapshot_listing(stage: Stage) -> None:
    stage.run("list", "-t", "-a", "-n", "-f", "inet", "--bsd")


def _downloading(stage: Stage, into: list[Endpoint]) -> bool:
    for e in stage.endpoints(tcp_info=True):
        info = e.tcp_info
        if (
            e.local_port == stage.port
            and e.state is TcpState.ESTABLISHED
            and info is not None
            and info.bytes_acked >= MIN_DOWNLOADED
        ):
            into.append(e)
            return True
    return False


def _claims(res: StepResult, stage: Stage, stats: ClientStats, during: list[Endpoint]) -> None:
    p = stage.port
    big = during[-1] if during else None
    acked = big.tcp_info.bytes_acked if big and big.tcp_info else 0
    res.check(
        "a large download shows as one ESTABLISHED connection carrying data",
        big is not None,
        f"server :{p} -> client :{big.remote_port}, {acked} bytes acknowledged so far"
        if big
        else f"no connection on :{p} had {MIN_DOWNLOADED} bytes acknowledged",
    )
    used = stats.local_ports
    res.check(
        f"every connection got its own ephemeral port, all to local port {p}",
        len(used) >= 3 and len(set(used)) == len(used),
        f"{len(used)} connections, {len(set(used))} distinct client ports; "
        f"{stats.downloads} downloads, {stats.bytes_received} bytes received",
    )
    mine = set(used)  # this run's connections only: an earlier run may have left some
    closed = [
        e
        for e in stage.endpoints()
        if e.state is TcpState.TIME_WAIT and (e.local_port in mine or e.remote_port in mine)
    ]
    res.check(
        "closed connections stay in TIME_WAIT on the side that closed first",
        bool(closed),
        f"{len(closed)} TIME_WAIT endpoints on :{p}, e.g. "
        + (
            f"{closed[0].local_address}:{closed[0].local_port} -> "
            f"{closed[0].remote_address}:{closed[0].remote_port}"
            if closed
            else "none"
        ),
    )
