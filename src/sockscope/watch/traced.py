"""Tracepoint records into events: pure, each socket followed by its kernel address.

The tracepoint (read through tracefs) is host-wide and its records carry no namespace and
no cookie: a 4-tuple, the socket's address (``skaddr``) and the task that was running.
A socket's records are therefore held until its namespace is known, and decided once:

- a birth in process context (``connect()``: CLOSE->SYN_SENT, ``listen()``), or any later
  transition in process context (``close()``: ->FIN_WAIT1, ->LAST_ACK), names a task: when
  that task lives in the watched namespace, so does the socket. A task elsewhere proves
  less (a process may create sockets in a namespace it does not live in, with setns):
  the socket is then only probably foreign, and waits like an undecided one;
- a connection the kernel accepted (LISTEN->SYN_RECV, in softirq) names no task: it is
  decided when its worker closes it (in process context) or as below;
- otherwise a dump or a destroy broadcast of the watched namespace showing the 4-tuple
  decides, but only when exactly one undecided socket has that 4-tuple: namespaces reuse
  4-tuples freely (two containers' clients of 127.0.0.1:80), so a 4-tuple alone never
  decides between two candidates.

Records of sockets never decided are dropped after a grace period and counted as foreign.
No clock and no I/O here: times come with the records and calls, and the namespace of a
task comes from an injected ``Tasks``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sockscope.model.endpoint import Endpoint, Owner, TKey
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.watch.aging import forget_before, touch
from sockscope.wire.ftrace import IPPROTO_TCP, StateChange

_new = tuple.__new__
_TCP, _TRACE = Proto.TCP, Source.TRACE
_CLOSE, _SYN_SENT, _SYN_RECV, _LISTEN = TcpState.CLOSE, TcpState.SYN_SENT, TcpState.SYN_RECV, TcpState.LISTEN
#: Transitions a socket's own process makes (close(), shutdown(), connect(), listen()):
#: the task in such a record is the socket's owner, when it is not an interrupt's.
_OWN_CONTEXT = frozenset({TcpState.FIN_WAIT1, TcpState.LAST_ACK, TcpState.SYN_SENT, TcpState.LISTEN})
#: How long a record may wait for its namespace, beyond one poll interval.
CONFIRM_GRACE = 2.0
#: How long a transition to CLOSE waits for its destroy broadcast (final counters).
CLOSE_GRACE = 0.5
#: How long a close reported from the tracepoint alone still absorbs its late destroy.
LATE_DESTROY = 60.0
#: A 4-tuple closed this recently may be the one a dump saw: it decides nothing.
REUSE_WINDOW = 1.0
#: Times closer than this are the same moment (a dump's clock against a record's).
SAME_MOMENT = 0.001

ListenerOwner = Callable[[int, int], "Owner | None"]
#: States a connection leaves for CLOSE only when aborted (reset, ``ss -K``, SO_LINGER 0).
_ABORTABLE = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECV})


class Tasks(Protocol):
    """What the merger needs to know of a task (I/O, injected)."""

    def owner(self, tid: int) -> Owner | None:
        """The process (thread group) the task belongs to, as an owner; None if gone."""

    def netns(self, tid: int) -> int | None:
        """The inode of the task's network namespace; None if it is gone."""


@dataclass(slots=True, eq=False)
class _Sock:
    """One socket seen on the tracepoint, until its transition to CLOSE."""

    tkey: TKey
    opened: float | None  # its birth's time; None: it was born before we looked
    process: Owner | None
    ours: bool | None = None  # None: not decided yet
    elsewhere: bool = False  # its task lives in another namespace: probably foreign
    held: list[Event] = field(default_factory=list)
    since: float = 0.0  # the first held record's time
    connecting: float | None = None  # connect()'s start, whose port is not known yet


class Closing:
    """A socket the tracepoint saw close, waiting for its destroy message (final counters)."""

    __slots__ = ("elsewhere", "event", "held", "opened", "ours", "process", "state")

    def __init__(self, event: Event, sk: _Sock, state: TcpState) -> None:
        self.event = event
        self.opened = sk.opened
        self.state = state
        self.process = sk.process
        self.ours = sk.ours
        self.elsewhere = sk.elsewhere
        self.held = sk.held  # records of the socket still waiting for its namespace


class TraceStats:
    """What the merger left out or settled on its own."""

    __slots__ = ("closes_from_trace", "foreign")

    def __init__(self) -> None:
        self.foreign = 0  # records of other namespaces (or never decided)
        self.closes_from_trace = 0  # closes whose destroy message never came


class TraceMerger:
    """Turns ``StateChange`` records into events once each socket's namespace is known."""

    def __init__(
        self,
        *,
        families: Iterable[int],
        netns: str,
        ns_inode: int,
        tasks: Tasks,
        listener_owner: ListenerOwner,
        interval: float,
        awaits_destroy: bool,
        held_open: Callable[[TKey], bool] = lambda _tkey: False,
    ) -> None:
        self.families = frozenset(families)
        self.netns = netns
        self.ns_inode = ns_inode
        self.tasks = tasks
        self.listener_owner = listener_owner
        self.limit = interval + CONFIRM_GRACE
        self.awaits_destroy = awaits_destroy  # closes wait for their destroy message
        self.held_open = held_open  # whether a process holds the socket with this 4-tuple
        self.wall_offset = 0.0
        self.stats = TraceStats()
        self.socks: dict[int, _Sock] = {}
        self.by_tuple: dict[TKey, set[int]] = {}
        self.undecided: dict[int, _Sock] = {}  # held records, oldest first
        self.closing: dict[TKey, deque[Closing]] = {}
        self.closing_since: dict[TKey, float] = {}  # the oldest entry's time, oldest first
        self.closed_here: dict[TKey, float] = {}
        self.tuple_closed: dict[TKey, float] = {}  # when each 4-tuple last closed, oldest first
        self.ours_listening: dict[tuple[int, int], Owner | None] = {}
        self.pid_netns: dict[int, int | None] = {}

    # -- records ---------------------------------------------------------------------

    def on_records(self, records: Iterable[StateChange]) -> list[Event]:
        """Events of the records whose socket is known to be ours (the rest wait)."""
        out: list[Event] = []
        families = self.families
        for rec in records:
            if rec.proto == IPPROTO_TCP and rec.family in families:
                out.extend(self._on_record(rec))
        return out

    def _on_record(self, rec: StateChange) -> list[Event]:
        raddr = None if rec.remote_port == 0 and rec.remote_address.is_unspecified else rec.remote_address
        tkey: TKey = ("tcp", rec.local_address, rec.local_port, raddr, rec.remote_port)
        old, new = rec.old_state, rec.new_state
        birth = (
            (old is _CLOSE and new is _SYN_SENT) or (old is _LISTEN and new is _SYN_RECV) or new is _LISTEN
        )
        sk = self.socks.get(rec.skaddr)
        if sk is None or birth:
            if sk is not None:
                self._drop(rec.skaddr, sk)  # its close was never seen; the address is reused
            sk = self._born(rec, tkey, birth)
        elif sk.tkey != tkey:
            self._move(rec.skaddr, sk, tkey)
        own_context = not rec.in_irq and rec.pid != 0
        if own_context and (birth or new in _OWN_CONTEXT):
            sk.process = self.tasks.owner(rec.pid) or sk.process
        events = self._events(rec, sk, raddr, birth)
        if sk.ours is None:
            self._decide(rec, sk, own_context)
        if new is not _CLOSE:
            return self._release(rec.skaddr, sk, events)
        close = events.pop()
        return [*self._release(rec.skaddr, sk, events), *self._closed(rec, sk, close)]

    def _born(self, rec: StateChange, tkey: TKey, birth: bool) -> _Sock:
        sk = _Sock(tkey, rec.mono if birth else None, None)
        if rec.old_state is _LISTEN:  # a child of a listener: its owner accepted it
            sk.process = self.ours_listening.get((rec.family, rec.local_port)) or self.listener_owner(
                rec.local_port, rec.family
            )
        self.socks[rec.skaddr] = sk
        self.by_tuple.setdefault(tkey, set()).add(rec.skaddr)
        return sk

    def _move(self, skaddr: int, sk: _Sock, tkey: TKey) -> None:
        """connect() picked its local port: the socket's 4-tuple is complete now."""
        self._untuple(skaddr, sk.tkey)
        sk.tkey = tkey
        self.by_tuple.setdefault(tkey, set()).add(skaddr)

    def _untuple(self, skaddr: int, tkey: TKey) -> None:
        held = self.by_tuple.get(tkey)
        if held is not None:
            held.discard(skaddr)
            if not held:
                del self.by_tuple[tkey]

    def _drop(self, skaddr: int, sk: _Sock) -> None:
        self._untuple(skaddr, sk.tkey)
        self.socks.pop(skaddr, None)
        if self.undecided.pop(skaddr, None) is not None:
            self.stats.foreign += len(sk.held)

    def _events(self, rec: StateChange, sk: _Sock, raddr: object, birth: bool) -> list[Event]:
        old, new = rec.old_state, rec.new_state
        out: list[Event] = []
        if sk.connecting is not None and rec.local_port:
            # The connect() whose port was not known at its first transition.
            out.append(self._event(rec, sk, raddr, EventKind.OPENED, _SYN_SENT, sk.connecting))
            sk.connecting = None
        if new is _CLOSE:
            kind = EventKind.UNLISTEN if old is _LISTEN else EventKind.CLOSED
            out.append(self._event(rec, sk, raddr, kind, old, rec.mono))
        elif birth and new is _SYN_SENT and not rec.local_port:
            sk.connecting = rec.mono
        elif birth:
            kind = EventKind.LISTEN if new is _LISTEN else EventKind.OPENED
            out.append(self._event(rec, sk, raddr, kind, new, rec.mono))
        else:
            out.append(self._event(rec, sk, raddr, EventKind.STATE, new, rec.mono, old))
        return out

    def _event(
        self,
        rec: StateChange,
        sk: _Sock,
        raddr: object,
        kind: EventKind,
        state: TcpState,
        mono: float,
        old: TcpState | None = None,
    ) -> Event:
        proc = sk.process
        # Built with tuple.__new__, field by field (see Endpoint and Event): this runs for
        # every record, and the keyword form costs twice as much.
        ep = _new(
            Endpoint,
            (
                _TCP, rec.family, state, rec.local_address, rec.local_port, raddr,
                rec.remote_port if raddr is not None else None, 0, 0, None, 0, None, 0, None, None,
                None, None, (proc,) if proc else (), self.netns, None, None, None,
            ),
        )  # fmt: skip
        return _new(Event, (kind, ep, mono, mono + self.wall_offset, _TRACE, old, None, None, proc, False))

    # -- which namespace -------------------------------------------------------------

    def _decide(self, rec: StateChange, sk: _Sock, own_context: bool) -> None:
        if own_context:
            ns = self._task_netns(rec.pid)
            if ns == self.ns_inode:
                self._set_ours(rec.skaddr, sk, True)
                return
            sk.elsewhere = sk.elsewhere or ns is not None

    def _task_netns(self, pid: int) -> int | None:
        if pid not in self.pid_netns:  # a task's namespace is read once: tids are reused rarely
            self.pid_netns[pid] = self.tasks.netns(pid)
        return self.pid_netns[pid]

    def _set_ours(self, skaddr: int, sk: _Sock, ours: bool) -> None:
        sk.ours = ours
        self.undecided.pop(skaddr, None)

    def _release(self, skaddr: int, sk: _Sock, events: list[Event]) -> list[Event]:
        """``events`` out if the socket is ours; held if undecided; counted if foreign."""
        for ev in events:
            if ev.kind is EventKind.LISTEN:
                self._note_listener(ev, sk)
        if sk.ours:
            if sk.held:
                events, sk.held = [*sk.held, *events], []
            return events
        if sk.ours is False:
            self.stats.foreign += len(events) + len(sk.held)
            sk.held = []
            return []
        if events:
            if not sk.held:
                sk.since = events[0].mono
            sk.held.extend(events)
            self.undecided.setdefault(skaddr, sk)
        return []

    def _note_listener(self, ev: Event, sk: _Sock) -> None:
        port = (ev.endpoint.family, ev.endpoint.local_port)
        if sk.ours:
            self.ours_listening[port] = sk.process

    def confirm_present(self, present: dict[TKey, float], taken_at: float) -> list[Event]:
        """A dump of the watched namespace, taken at ``taken_at``, shows these 4-tuples
        (each with when a dump first showed its socket).

        A socket with records waiting is ours when the dump shows its 4-tuple, no other
        socket the tracepoint follows has had that 4-tuple around the dump's time, and
        the dump's socket is not older than ours: namespaces reuse 4-tuples freely, so
        the 4-tuple alone decides nothing.
        """
        out: list[Event] = []
        for skaddr, sk in list(self.undecided.items()):
            seen = present.get(sk.tkey)
            if seen is None or len(self.by_tuple.get(sk.tkey, ())) != 1:
                continue
            if sk.opened is not None and (seen < sk.opened - SAME_MOMENT or sk.opened > taken_at):
                continue  # the dump saw another socket with this 4-tuple, or none of ours yet
            if self.tuple_closed.get(sk.tkey, -1e18) > taken_at - REUSE_WINDOW:
                continue  # another socket had this 4-tuple a moment ago
            self._set_ours(skaddr, sk, True)
            out.extend(self._release(skaddr, sk, []))
        return out

    # -- closes ----------------------------------------------------------------------

    def _closed(self, rec: StateChange, sk: _Sock, close: Event) -> list[Event]:
        """The transition to CLOSE: the socket's tracepoint life is over. Its close goes
        out now, or waits for its destroy message (final counters, and proof of the
        namespace for a socket not decided yet)."""
        self.socks.pop(rec.skaddr, None)
        self._untuple(rec.skaddr, sk.tkey)
        self.undecided.pop(rec.skaddr, None)
        touch(self.tuple_closed, sk.tkey, rec.mono)
        if rec.old_state is _LISTEN and sk.ours:
            self.ours_listening.pop((rec.family, rec.local_port), None)
        closing = Closing(close, sk, rec.old_state)
        sk.held = []
        if sk.ours is False:
            self.stats.foreign += len(closing.held) + 1
            return []
        if sk.ours and (not self.awaits_destroy or (rec.old_state in _ABORTABLE and self.held_open(sk.tkey))):
            # No destroy message to wait for (none is read, or the socket was aborted while
            # a process still holds it: its message comes only when that process closes
            # it); the engine absorbs the message if it comes.
            return [*closing.held, self._close_event(closing)]
        queue = self.closing.get(sk.tkey)
        if queue is None:
            queue = self.closing[sk.tkey] = deque()
            self.closing_since[sk.tkey] = close.mono
        queue.append(closing)
        return []

    def _close_event(self, closing: Closing) -> Event:
        ev = closing.event
        ep = ev.endpoint if ev.endpoint.state is closing.state else ev.endpoint._replace(state=closing.state)
        opened = closing.opened
        return ev._replace(
            endpoint=ep, duration=None if opened is None else ev.mono - opened, process=closing.process
        )

    def take_close(self, tkey: TKey) -> tuple[list[Event], Closing] | None:
        """The destroy broadcast for ``tkey`` came: the oldest close waiting for it, and
        the records its socket held (a destroy message proves the namespace)."""
        queue = self.closing.get(tkey)
        if not queue:
            return None
        closing = _claimed(queue)
        if queue:
            touch(self.closing_since, tkey, queue[0].event.mono)  # keeps the table oldest first
        else:
            del self.closing[tkey]
            del self.closing_since[tkey]
        return closing.held, closing

    def reset_close(self, local_port: int) -> TKey | None:
        """The 4-tuple of a closed socket on ``local_port`` whose destroy message lost its
        peer to a reset (it says ``0.0.0.0:P -> D:0``)."""
        for tkey in self.closing:
            if tkey[2] == local_port:
                return tkey
        return None

    def already_closed(self, tkey: TKey) -> bool:
        """Whether ``tkey``'s close was reported from the tracepoint alone; its late
        destroy message must not close it twice."""
        return self.closed_here.pop(tkey, None) is not None

    def covers(self, tkey: TKey) -> bool:
        """Whether the tracepoint follows this socket (the poll need not report it)."""
        return tkey in self.by_tuple or tkey in self.closing

    def expire(self, now: float, horizon: float) -> list[Event]:
        """Records never decided are dropped (another namespace); closes whose destroy
        message did not come within ``CLOSE_GRACE`` of ``horizon`` are reported now.

        Waits are measured to ``horizon``, how far the destroy messages have been read,
        so a watcher behind a burst does not give up on messages it has not read yet.
        """
        settled = min(now, horizon)
        for skaddr, sk in list(self.undecided.items()):
            if settled - sk.since <= self.limit:
                break  # oldest first
            self.stats.foreign += len(sk.held)
            sk.held = []
            del self.undecided[skaddr]
        out: list[Event] = []
        for tkey, since in list(self.closing_since.items()):
            if horizon - since <= CLOSE_GRACE:
                break
            queue = self.closing[tkey]
            while queue and horizon - queue[0].event.mono > CLOSE_GRACE:
                out += self._give_up(tkey, queue.popleft(), now)
            if queue:
                touch(self.closing_since, tkey, queue[0].event.mono)
            else:
                del self.closing[tkey]
                del self.closing_since[tkey]
        forget_before(self.closed_here, now - LATE_DESTROY, float)
        forget_before(self.tuple_closed, now - REUSE_WINDOW - self.limit, float)
        return out

    def _give_up(self, tkey: TKey, closing: Closing, now: float) -> list[Event]:
        """A close whose destroy message never came: reported from the tracepoint alone
        (its final counters unknown), if the socket was ours."""
        if not closing.ours:
            self.stats.foreign += len(closing.held) + 1
            return []
        self.stats.closes_from_trace += 1
        touch(self.closed_here, tkey, now)
        return [*closing.held, self._close_event(closing)]


def _claimed(queue: deque[Closing]) -> Closing:
    """Which close a destroy message of the watched namespace is for, when several
    sockets with its 4-tuple closed: one known to be ours, else one not known to be
    elsewhere, else the oldest. It is then ours: the message proves it."""
    chosen = next((c for c in queue if c.ours), None) or next((c for c in queue if not c.elsewhere), queue[0])
    queue.remove(chosen)
    chosen.ours = True
    return chosen
