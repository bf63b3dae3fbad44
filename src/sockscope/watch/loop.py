"""The watch loop: opens the sources, waits, reads, and feeds the engine.

Everything that touches the kernel or the clock is here; what the readings mean is the
engine's (``watch.engine``). Sources, chosen automatically unless named:

- ``bpf`` (root, TCP): sockscope's eBPF program on ``sock:inet_sock_set_state`` keeps
  each connection in the kernel and writes one record when it closes (and, when asked,
  when it opens and at each transition);
- ``trace`` (root, when ``bpf`` cannot load): the same tracepoint through tracefs,
  every transition as a record;
- ``destroy``: the kernel's destroy broadcasts (every close, no root needed); with
  ``bpf``, for UDP only: the program already reports every TCP close;
- ``poll``: a sock_diag dump every ``interval``: accepts, drops, UDP, and whatever the
  others missed.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from sockscope.model.diff import Key
from sockscope.model.endpoint import Endpoint
from sockscope.model.event import Event, EventKind
from sockscope.model.states import ALL_STATES, Proto, TcpState
from sockscope.query.dump import run_query
from sockscope.query.spec import KernelFilter, Query
from sockscope.sources.destroy import DestroySubscriber
from sockscope.sources.netns import entered_netns, resolve_netns
from sockscope.sources.procfs import ProcFS, ephemeral_port_range
from sockscope.watch.engine import Engine, EngineConfig
from sockscope.watch.owners import OwnerCache
from sockscope.watch.stats import WatchStats
from sockscope.watch.traced import Tasks
from sockscope.wire.ebpf.records import BpfRecord, RecordError, Row, record_of_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.sources.bpf import BpfSource
    from sockscope.sources.tracefs import TraceSession

SOURCES = ("bpf", "trace", "destroy", "poll")
#: eBPF records are written without waking the reader (a wake-up per record would cost
#: more than the record); it reads them this often, or when the kernel says the ring
#: is filling.
BPF_READ_EVERY = 0.02
#: ... backing off to this while nothing comes (an idle watcher costs next to nothing;
#: a burst fills a quarter of the ring, which wakes the reader at once, long before).
BPF_READ_IDLE = 0.1
#: A read of more records than this checks the program's loss counters at once (else
#: they are read at each poll).
LOSS_CHECK_AFTER = 1000
#: The shortest time between two wake-ups: events are handled in batches at least this
#: far apart (a latency no one watching can see).
MIN_STEP = 0.01
#: With destroy messages waiting for the tracepoint reader, wait no longer than this.
TRACE_LAG = 0.1
#: How far back from an empty select() a destroy message may still be on its way.
DESTROY_SKEW = 0.001
#: Tracepoint pages (about 50 records each) handled between two reads of the destroy
#: messages.
TRACE_SLICE = 40


class DirectLines(Protocol):
    """A consumer that turns the eBPF program's raw rows into its output itself (no
    ``Event`` made for most): ``render.bpf_lines.BpfLines`` for ``watch``."""

    def take(
        self,
        rows: Sequence[Row],
        wall_offset: float,
        counted: Counter[EventKind],
        slow: Callable[[Row], list[Event]],
    ) -> list[int]:
        """Output for ``rows`` in order (``slow`` gives the events of a row it cannot
        handle itself); returns the cookies of the closes it reported."""
        ...


class WatchSourceError(Exception):
    """A source that was asked for by name cannot run here (one line saying why)."""


class Watcher:
    """An iterator of ``Event``s, plus the live table of current sockets (``table``)."""

    def __init__(
        self,
        query: Query,
        *,
        interval: float = 1.0,
        sources: Iterable[str] | None = None,
        procfs: ProcFS | None = None,
        kinds: frozenset[EventKind] | None = None,
        tape: Callable[[str], None] | None = None,
        full_owners: bool = True,
        direct: DirectLines | None = None,
    ) -> None:
        # Two dumps a poll: everything but listeners on the fast path (no attributes), and
        # listeners alone with their memory counters (drops). TIME_WAIT remnants never
        # make an event and a busy server has tens of thousands of them: left in the kernel.
        kernel = query.kernel
        self.query = Query(
            protocols=query.protocols,
            families=query.families,
            kernel=KernelFilter(
                ALL_STATES - {TcpState.TIME_WAIT, TcpState.LISTEN}, kernel.bytecode, kernel.ports
            ),
            processes=False,
            tcp_info=query.tcp_info,
            netns=query.netns,
            source="netlink",
        )
        self.listen_query = Query(
            protocols=query.protocols,
            families=query.families,
            kernel=KernelFilter(frozenset({TcpState.LISTEN}), kernel.bytecode, kernel.ports),
            memory=True,
            netns=query.netns,
            source="netlink",
        )
        self.interval = interval
        self.kinds = kinds
        #: Owners for every socket of the table (top shows them), or only those events need.
        self.full_owners = full_owners
        self.procfs = procfs or ProcFS()
        self.owners = OwnerCache(self.procfs) if query.processes else None
        self.warnings: list[str] = []
        self.destroy: DestroySubscriber | None = None
        self.trace: TraceSession | None = None
        self.bpf: BpfSource | None = None
        self.polls = 0
        self.behind = False  # the last step left records unread
        #: A dump asked for from another thread (``request_poll``), and the pipe that
        #: wakes the loop for it.
        self._poll_asked = False
        self._owners_retry: float | None = None  # an asked dump's owner scan, put off until
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._last_step = 0.0
        self._busy = False  # the last step handled events: the next one pauses first
        self._bpf_every = BPF_READ_EVERY
        self._wanted: set[str] = set()
        self._bpf_records: list[BpfRecord] = []
        #: Takes the eBPF rows in place of the engine (see DirectLines), when given.
        self.direct = direct
        self._bpf_rows: list[Row] = []
        stats = WatchStats()
        try:
            ns_inode = self._open(set(sources) if sources is not None else None, stats)
            recorder = None
            if tape is not None:
                from sockscope.watch.tape import TapeRecorder  # noqa: PLC0415 - tools and tests only

                recorder = TapeRecorder(tape)
            self.engine = Engine(self._config(query, ns_inode), self._tasks(), recorder)
            self.engine.stats = stats
            self._poll(first=True)
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------

    def _open(self, asked: set[str] | None, stats: WatchStats) -> int:
        """Open the sources (``asked``, or the best this host allows); the namespace inode.

        A source asked for by name must run (``WatchSourceError`` says why it cannot);
        one named with a ``?`` (``bpf?``) is used where it can be, as ``auto`` would.
        """
        required: set[str] = set()
        wanted = {"bpf", "trace", "destroy", "poll"}
        if asked is not None:
            required = {name for name in asked if not name.endswith("?")}
            wanted = {name.rstrip("?") for name in asked}
        self._wanted = wanted
        q = self.query
        ns_inode = os.stat(resolve_netns(q.netns) if q.netns else "/proc/self/ns/net").st_ino
        active = ["poll"]
        if Proto.TCP in q.protocols:
            active += self._open_kernel(wanted, required, stats, ns_inode)
        if "destroy" in wanted:
            protocols = self.destroy_protocols(opening=True)
            if protocols:
                with entered_netns(q.netns):
                    self.destroy = DestroySubscriber(protocols, q.families, q.netns or "", q.kernel.ports)
                self.destroy.start()
                active.append("destroy")
        stats.sources = tuple(active)
        stats.port_filtered = tuple(name for name, took in self._kernel_filtered() if took)
        return ns_inode

    def _open_kernel(
        self, wanted: set[str], required: set[str], stats: WatchStats, ns_inode: int
    ) -> list[str]:
        """The kernel-side source: eBPF where it loads, else the tracepoint through tracefs."""
        for name in ("bpf", "trace"):
            if name not in wanted:
                continue
            reason = self._open_bpf(ns_inode) if name == "bpf" else self._open_trace()
            if reason is None:
                return [name]
            if name in required:
                raise WatchSourceError(f"the {name} source cannot run: {reason}")
            stats.refused[name] = reason
        if stats.refused:
            self.warnings.append(
                f"opens shorter than the {self.interval:g}s poll are not seen: "
                + "; ".join(f"{name}: {why}" for name, why in stats.refused.items())
            )
        return []

    def _kernel_filtered(self) -> list[tuple[str, bool]]:
        """Which sources drop other ports' sockets in the kernel."""
        ports = self.query.kernel.ports
        return [
            ("bpf", self.bpf is not None and self.bpf.port_filtered),
            ("destroy", self.destroy is not None and self.destroy.filtered),
            ("trace", self.trace is not None and ports is not None and self.trace.event_filter is not None),
        ]

    def _open_bpf(self, ns_inode: int) -> str | None:
        try:
            from sockscope.sources.bpf import BpfSource, BpfUnavailableError  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - the module ships with sockscope
            return f"not available ({exc})"
        kinds = self.kinds
        try:
            self.bpf = BpfSource(
                netns_inode=ns_inode,
                families=self.query.families,
                ports=self.query.kernel.ports,
                want_open=kinds is None or EventKind.OPENED in kinds,
                want_state=kinds is None or EventKind.STATE in kinds,
            )
        except BpfUnavailableError as exc:
            return str(exc)
        return None

    def _open_trace(self) -> str | None:
        from sockscope.sources.tracefs import TraceSession, TraceUnavailableError  # noqa: PLC0415
        from sockscope.wire.ftrace import filter_expression  # noqa: PLC0415

        q = self.query
        try:
            with entered_netns(q.netns):
                ephemeral = ephemeral_port_range()
            self.trace = TraceSession(event_filter=filter_expression(q.kernel.ports, q.families, ephemeral))
        except TraceUnavailableError as exc:
            return str(exc)
        return None

    def _config(self, query: Query, ns_inode: int) -> EngineConfig:
        destroyed = frozenset(self.destroy_protocols())
        return EngineConfig(
            interval=self.interval,
            netns=query.netns or "",
            families=query.families,
            destroy=destroyed,
            trace=self.trace is not None,
            bpf=self.bpf is not None,
            processes=self.owners is not None,
            kinds=self.kinds,
            ns_inode=ns_inode,
        )

    def destroy_protocols(self, opening: bool = False) -> tuple[Proto, ...]:
        """The protocols whose closes come as destroy messages (with eBPF, not TCP)."""
        if self.destroy is None and not opening:
            return ()
        return tuple(p for p in self.query.protocols if p is not Proto.TCP or self.bpf is None)

    def _tasks(self) -> Tasks | None:
        if self.trace is None:
            return None
        from sockscope.sources.tasks import ProcTasks  # noqa: PLC0415

        return ProcTasks()

    @property
    def stats(self) -> WatchStats:
        """What was seen and what was lost."""
        return self.engine.stats

    @property
    def table(self) -> dict[Key, Endpoint]:
        """The latest dump's sockets by identity (listeners with drops, SYN_RECV children)."""
        return self.engine.table

    def request_poll(self) -> None:
        """Ask for a dump now, from any thread: a consumer that met a socket no event told
        of (a UDP socket, which only dumps show) need not wait for the next interval."""
        self._poll_asked = True
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
            os.write(self._wake_w, b"!")

    def close(self) -> None:
        """Release every source (programs detached, tracefs instance removed); safe twice."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self.destroy is not None:
            self.destroy.close()
            self.destroy = None
        if self.trace is not None:
            if hasattr(self, "engine"):
                self.engine.stats.trace_overruns = self.trace.overruns()
            self.trace.close()
            self.trace = None
        if self.bpf is not None:
            if hasattr(self, "engine"):
                self.engine.stats.bpf_unreadable = self.bpf.unreadable()
            self.bpf.close()
            self.bpf = None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, until: float | None = None, idle: Callable[[], None] | None = None) -> Iterator[Event]:
        """Events as they happen, until the monotonic time ``until`` (forever with None).

        ``idle`` is called before every wait, once the events so far are handed out (a
        writer flushes there, a recorder commits).
        """
        for batch in self.batches(until, idle):
            yield from batch

    def batches(
        self, until: float | None = None, idle: Callable[[], None] | None = None
    ) -> Iterator[list[Event]]:
        """``events`` as the lists each wake-up delivered (never empty): a consumer that
        renders or counts a list at a time does it in one loop of its own."""
        next_poll = time.monotonic() + self.interval
        while until is None or time.monotonic() < until:
            if idle is not None:
                idle()
            retry = self._owners_retry
            wake = next_poll if retry is None else min(next_poll, retry)
            wake = wake if until is None else min(wake, until)
            batch = self.step(max(0.0, wake - time.monotonic()))
            if batch:
                yield batch
            now = time.monotonic()
            due = now >= next_poll
            retry_due = retry is not None and now >= retry
            if due or retry_due or self.engine.wants_dump or self._poll_asked:
                asked, wanted = self._poll_asked or retry_due, self.engine.wants_dump
                self.engine.wants_dump = self._poll_asked = False
                self._owners_retry = None
                polled = self._poll()
                if asked and self.owners is not None and self.owners.deferred:
                    # The asker needs the owners: dump again when a scan is allowed.
                    self._owners_retry = self.owners.next_scan
                if polled:
                    yield polled
                if due or wanted:  # a dump asked from outside leaves the interval's own be
                    next_poll = max(next_poll + self.interval, time.monotonic())

    def step(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` for the event sources and handle what they delivered."""
        ready = self._wait(timeout)
        self._last_step = now = time.monotonic()
        engine = self.engine
        engine.wall_offset = time.time() - now
        out: list[Event] = []
        if self.bpf is not None:
            out += self._read_bpf(now)
        if self.trace is not None:
            # Tracepoint records come in bursts of a hundred thousand; a step handles one
            # slice, so its events go out (and the destroy messages come in) in step with
            # the burst. What is left makes the next step start at once.
            out += engine.on_trace(self.trace.read(TRACE_SLICE), self.trace.upto, now)
            self.behind = self.trace.pending()
        destroy = self.destroy
        if destroy is not None:
            if any(fd in ready for fd in destroy.fds()) or self.trace is not None:
                gone, overruns = destroy.read()
                out += engine.on_destroyed(gone, overruns, destroy.horizon, time.monotonic())
            else:
                # select() just found nothing queued: no read (and no lock, no syscall)
                # is needed to know every message before now has been read.
                engine.destroy_horizon = max(engine.destroy_horizon, now - DESTROY_SKEW)
        out += engine.settle(time.monotonic())
        self._busy = bool(out)
        return out

    def _wait(self, timeout: float) -> list[int]:
        """Sleep until a source has something, at most ``timeout``; the fds ready."""
        fds = [*(self.destroy.fds() if self.destroy is not None else [])]
        if self.trace is not None:
            fds += self.trace.fds
            if self.engine.destroyed or self.engine.wiped:
                timeout = min(timeout, TRACE_LAG)
        if self.bpf is not None:
            fds.append(self.bpf.fileno())
            timeout = min(timeout, self._bpf_every)
        # Under load every source is ready all the time; waking for each message would
        # handle (and write out) a handful of events per wake-up. The kernel buffers hold
        # far more than one MIN_STEP's worth, so waiting costs nothing but latency.
        if self.behind:
            timeout = 0.0  # a backlog is waiting: no pause, no wait
        elif self._busy:
            pause = min(self._last_step + MIN_STEP - time.monotonic(), timeout)
            if pause > 0:
                time.sleep(pause)
                timeout -= pause
        if self._poll_asked:
            timeout = 0.0
        fds.append(self._wake_r)
        ready = select.select(fds, [], [], timeout)[0]
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)
        return ready

    def _read_bpf(self, now: float) -> list[Event]:
        bpf = self.bpf
        assert bpf is not None
        engine = self.engine
        records = self._bpf_records
        records.clear()
        # Once the destroy broadcasts stand in for lost records, every close goes the
        # engine's way (it matches the two); a tape records the engine's inputs whole.
        direct = self.direct if not engine.destroy_net and engine.tape is None else None
        if direct is None:
            bpf.read(records)
            n = len(records)
            out = engine.on_bpf(records, now) if records else []
        else:
            rows = self._bpf_rows
            rows.clear()
            n = bpf.read_rows(rows, records)
            out = engine.on_bpf(records, now) if records else []
            if rows:
                closed = direct.take(rows, engine.wall_offset, engine.stats.events, self._row)
                engine.on_bpf_closed(closed, now)
        self._bpf_every = BPF_READ_EVERY if n else min(BPF_READ_IDLE, self._bpf_every * 2)
        if n > LOSS_CHECK_AFTER:  # a burst: the ring may have filled
            out += self._bpf_losses(now)
        engine.bpf_upto = now
        return out

    def _row(self, row: Row) -> list[Event]:
        """The events of one row the direct consumer leaves to the engine."""
        try:
            record = record_of_row(row)
        except RecordError:
            assert self.bpf is not None
            self.bpf.malformed_rows += 1
            return []
        return self.engine.on_bpf([record], self._last_step)

    def _bpf_losses(self, now: float) -> list[Event]:
        assert self.bpf is not None
        c = self.bpf.counters()
        self.engine.stats.bpf_unreadable = self.bpf.unreadable()
        out = self.engine.on_bpf_losses(c.reserve_failed, c.recursion_misses, c.map_full, now)
        if (c.reserve_failed or c.recursion_misses) and not self.engine.destroy_net:
            out += self._engage_destroy_net(now)
        return out

    def _engage_destroy_net(self, now: float) -> list[Event]:
        """The eBPF records lost closes: from now on TCP's destroy messages come too, and
        report what the records miss (a new subscription for every protocol replaces the
        UDP one; what the old one still held is handled first, and the engine drops the
        messages both received)."""
        q = self.query
        if "destroy" not in self._wanted:
            return []  # not asked for: the losses are counted, and that is all
        with entered_netns(q.netns):
            net = DestroySubscriber(q.protocols, q.families, q.netns or "", q.kernel.ports)
        net.start()
        out: list[Event] = []
        old, self.destroy = self.destroy, net
        if old is not None:
            gone, overruns = old.read()
            out += self.engine.on_destroyed(gone, overruns, old.horizon, now)
            old.close()
        self.engine.cfg = self.engine.cfg._replace(destroy=frozenset(q.protocols))
        self.engine.engage_destroy_net()
        if "destroy" not in self.stats.sources:
            self.stats.sources = (*self.stats.sources, "destroy")
        self.warnings.append(
            "eBPF records were lost: TCP's destroy broadcasts now report the closes they miss"
        )
        return out

    def _poll(self, first: bool = False) -> list[Event]:
        snap = run_query(self.query, procfs=self.procfs)
        eps: list[Endpoint] = [*snap.endpoints]
        if Proto.TCP in self.query.protocols:
            eps += run_query(self.listen_query, procfs=self.procfs).endpoints
        self.polls += 1
        if self.owners is not None:
            self.owners.refresh_for(self._owner_inodes(eps), self._acceptors(eps))
            get = self.owners.get
            eps = [e._replace(owners=get(e.inode)) if e.inode else e for e in eps]
        now = snap.monotonic
        engine = self.engine
        out: list[Event] = []
        # Records are written before a socket leaves (or after it enters) the tables a
        # dump walks: read after the dump, they cover every socket it showed.
        if self.bpf is not None:
            out += self._read_bpf(time.monotonic())
            out += self._bpf_losses(now)
        if self.trace is not None:
            out += engine.on_trace(self.trace.read(), self.trace.upto, time.monotonic())
            out += engine.on_trace_overruns(self.trace.overruns(), now)
        out += engine.on_dump(eps, now, first=first)
        if first and self.bpf is not None:
            self._seed_listeners(eps)
        return out

    def _owner_inodes(self, eps: list[Endpoint]) -> list[int]:
        """The sockets whose owners are wanted. With the eBPF program naming every TCP
        connection's process, only what it cannot name: listeners, the connections on
        their ports (whoever accepted them), UDP, and accepts waiting for an owner. A
        full scan of /proc for every new client socket would cost more than the rest."""
        waiting = self.engine.owner_inodes()
        if self.bpf is None or self.full_owners:
            return [*(e.inode for e in eps), *waiting]
        listening = {e.local_port for e in eps if e.state is TcpState.LISTEN}
        return [
            *(e.inode for e in eps if e.proto is not Proto.TCP or e.local_port in listening),
            *waiting,
        ]

    @staticmethod
    def _acceptors(eps: list[Endpoint]) -> set[int]:
        """The processes holding listeners: who accepts the connections on their ports."""
        return {o.pid for e in eps if e.state is TcpState.LISTEN for o in e.owners}

    def _seed_listeners(self, eps: list[Endpoint]) -> None:
        """Tell the program who holds the listeners that existed before it: it names the
        connections they accept after those owners."""
        assert self.bpf is not None
        for ep in eps:
            if ep.state is TcpState.LISTEN and ep.owners:
                owner = ep.owners[0]
                self.bpf.seed_listener(
                    self.engine.cfg.ns_inode, ep.family, ep.local_port, owner.pid, owner.name
                )
