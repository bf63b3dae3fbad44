"""Tracepoint records, turned into events once they are known to be ours.

The tracepoint is host-wide, its records carry no namespace and no cookie, only the
4-tuple. A record is ours when it happened in the context of a process of the watched
namespace, or when a dump or a destroy broadcast of that namespace shows the same 4-tuple.
Until then it waits; records that stay unconfirmed belong to another namespace.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sockscope.model.diff import Key
from sockscope.model.endpoint import Endpoint, IPAddress, Owner
from sockscope.model.event import Event, EventKind, Source
from sockscope.model.states import Proto, TcpState
from sockscope.sources.netns import resolve_netns
from sockscope.sources.tracefs import TraceSession, saved_comm
from sockscope.watch.aging import forget_before, touch
from sockscope.wire.ftrace import IPPROTO_TCP, StateChange

if TYPE_CHECKING:
    from sockscope.query.spec import Query
    from sockscope.watch.engine import Watcher

TKey = tuple[str, IPAddress | None, int, IPAddress | None, int]
_new = tuple.__new__
_TCP, _TRACE = Proto.TCP, Source.TRACE
#: How long a record may wait for confirmation, beyond one poll interval.
CONFIRM_GRACE = 2.0
#: How long a transition to CLOSE waits for its destroy broadcast (final counters).
CLOSE_GRACE = 2.0
#: How long a close reported from the tracepoint alone still absorbs its late destroy.
LATE_DESTROY = 60.0


def _ns_inode(netns: str | None) -> int:
    path = resolve_netns(netns) if netns else "/proc/self/ns/net"
    return os.stat(path).st_ino


class TraceMerger:
    """Holds, confirms and converts tracepoint records for one watcher."""

    def __init__(self, session: TraceSession, query: Query, watcher: Watcher) -> None:
        self.session = session
        self.watcher = watcher
        self.netns = query.netns or ""
        self.wall_offset = time.time() - time.monotonic()  # refreshed at every read
        self.families = set(query.families)
        self.ns_inode = _ns_inode(query.netns)
        self.pid_in_ns: dict[int, bool] = {}
        self.confirmed: set[TKey] = set()
        self.pending: dict[TKey, list[Event]] = {}
        self.pending_since: dict[TKey, float] = {}
        self.opened_at: dict[TKey, float] = {}
        self.last_state: dict[TKey, TcpState] = {}
        self.process: dict[TKey, Owner] = {}
        self.closing: dict[TKey, tuple[Event, float]] = {}
        # connect() moves a socket to SYN_SENT before it picks its source port, so that
        # record has port 0; it is matched to the next SYN_SENT exit to the same peer.
        self.connecting: dict[tuple[object, object, int], deque[StateChange]] = {}
        self.listener_owner: dict[tuple[int, int], Owner] = {}  # (family, port) -> owner
        self.tasks: dict[int, Owner] = {}  # thread id -> its process
        self.closed_here: dict[TKey, float] = {}  # closes reported without a destroy, oldest first
        # Closed connections whose 4-tuple was reused before their destroy came:
        # (close event and time, opened, last state, process), oldest first.
        self.retired: dict[
            TKey, deque[tuple[tuple[Event, float], float | None, TcpState | None, Owner | None]]
        ] = {}

    def fds(self) -> list[int]:
        """For select()."""
        return self.session.fds

    def read(self, max_pages: int = 1 << 30) -> list[Event]:
        """Events from the records of up to ``max_pages`` pages read now (confirmed ones;
        the rest wait)."""
        out: list[Event] = []
        families = self.families
        self.wall_offset = time.time() - time.monotonic()
        for rec in self.session.read(max_pages):
            if rec.proto == IPPROTO_TCP and rec.family in families:
                out.extend(self._on_change(rec))
        return out

    def read_upto(self) -> float:
        """Every record of a transition before this monotonic time has been read."""
        return self.session.upto

    def _on_change(self, rec: StateChange) -> list[Event]:
        raddr = None if rec.remote_port == 0 and rec.remote_address.is_unspecified else rec.remote_address
        tkey: TKey = ("tcp", rec.local_address, rec.local_port, raddr, rec.remote_port)
        if rec.new_state is TcpState.CLOSE:
            # Reported by the destroy broadcast, with the final counters.
            self.last_state[tkey] = rec.old_state
            ev = self._event(rec, tkey, raddr, EventKind.CLOSED)
            self.closing[tkey] = (ev, rec.mono)
            return []
        kind = EventKind.STATE
        if rec.old_state is TcpState.CLOSE and rec.new_state is TcpState.SYN_SENT and rec.local_port == 0:
            peer = (rec.local_address, rec.remote_address, rec.remote_port)
            self.connecting.setdefault(peer, deque()).append(rec)
            return []
        opened: list[Event] = []
        if rec.old_state is TcpState.SYN_SENT:
            opened = self._connected(rec, tkey, raddr)
        if rec.old_state is TcpState.CLOSE and rec.new_state is TcpState.SYN_SENT:
            kind = EventKind.OPENED  # a socket bound before connect(): its port is known
            self._retire(tkey)
            if not rec.in_irq:
                self.process[tkey] = self._owner(rec)
        elif rec.old_state is TcpState.LISTEN and rec.new_state is TcpState.SYN_RECV:
            kind = EventKind.OPENED  # the kernel accepted a connection for a listener
            self._retire(tkey)
            owner = self.listener_owner.get((rec.family, rec.local_port)) or self.watcher.listener_owner(
                rec.local_port, rec.family
            )
            if owner is not None:
                self.process[tkey] = owner
        elif rec.new_state is TcpState.LISTEN:
            kind = EventKind.LISTEN
            if not rec.in_irq:
                owner = self._owner(rec)
                self.process[tkey] = owner
                if self._ours(rec, tkey):  # another namespace may listen on the same port
                    self.listener_owner[(rec.family, rec.local_port)] = owner
        if kind is not EventKind.STATE:
            self.opened_at.setdefault(tkey, rec.mono)
        return self._admit(rec, tkey, [*opened, self._event(rec, tkey, raddr, kind)])

    def _owner(self, rec: StateChange) -> Owner:
        """The process (thread group) of the task in the record's header, as a socket owner.

        The header names the thread; a socket belongs to its process, so the thread id is
        mapped to its thread group id through ``/proc/TID/status``, once per thread for
        the watcher's life (a per-watcher cache, since thread ids are reused).
        """
        known = self.tasks.get(rec.pid)
        if known is not None:
            return known
        name, tgid = "", rec.pid
        try:
            with open(f"/proc/{rec.pid}/status", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Tgid:"):
                        tgid = int(line.split()[1])
                        break
            with open(f"/proc/{tgid}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip() or name
        except (OSError, ValueError):
            pass  # the task is gone already
        if not name:
            name = saved_comm(rec.pid) or "?"  # what tracefs remembered of it
        owner = self.tasks[rec.pid] = Owner(tgid, name if name != "<...>" else "?", -1)
        return owner

    def _admit(self, rec: StateChange, tkey: TKey, events: list[Event]) -> list[Event]:
        if tkey in self.confirmed and tkey not in self.pending:
            return events  # the common case: a known socket of ours, nothing waiting
        if self._ours(rec, tkey):
            return [*self._flush(tkey), *events]
        self.pending.setdefault(tkey, []).extend(events)
        self.pending_since.setdefault(tkey, rec.mono)
        return []

    def _connected(self, rec: StateChange, tkey: TKey, raddr: object) -> list[Event]:
        """The ``opened`` event of a connect(), now that its source port is known."""
        queue = self.connecting.get((rec.local_address, rec.remote_address, rec.remote_port))
        if not queue:
            return []
        start = queue.popleft()
        if not queue:
            del self.connecting[(rec.local_address, rec.remote_address, rec.remote_port)]
        self._retire(tkey)
        if not start.in_irq:
            self.process[tkey] = self._owner(start)
            # The connecting process's namespace decides for the whole connection.
            self._ours(start, tkey)
        self.opened_at.setdefault(tkey, start.mono)
        return [self._event(start._replace(local_port=rec.local_port), tkey, raddr, EventKind.OPENED)]

    def _event(self, rec: StateChange, tkey: TKey, raddr: object, kind: EventKind) -> Event:
        proc = self.process.get(tkey)
        # Built with tuple.__new__, field by field (see Endpoint and Event): this runs for
        # every record, and the keyword form costs twice as much.
        ep = _new(
            Endpoint,
            (
                _TCP,
                rec.family,
                rec.new_state,
                rec.local_address,
                rec.local_port,
                raddr,
                rec.remote_port if raddr is not None else None,
                0,
                0,
                None,
                0,
                None,
                0,
                None,
                None,
                None,
                None,
                (proc,) if proc else (),
                self.netns,
                None,
                None,
                None,
            ),
        )
        return _new(
            Event,
            (
                kind,
                ep,
                rec.mono,
                rec.mono + self.wall_offset,
                _TRACE,
                rec.old_state if kind is EventKind.STATE else None,
                None,
                None,
                proc,
            ),
        )

    def _ours(self, rec: StateChange, tkey: TKey) -> bool:
        if tkey in self.confirmed:
            return True
        if rec.in_irq or rec.pid == 0:
            return False
        known = self.pid_in_ns.get(rec.pid)
        if known is None:
            try:
                known = os.stat(f"/proc/{rec.pid}/ns/net").st_ino == self.ns_inode
            except OSError:
                known = False  # the process is gone: decide by dump or destroy instead
            self.pid_in_ns[rec.pid] = known
        if known:
            self.confirmed.add(tkey)
        return known

    def _flush(self, tkey: TKey) -> list[Event]:
        self.confirmed.add(tkey)
        self.pending_since.pop(tkey, None)
        return self.pending.pop(tkey, [])

    def confirm_table(self, table: Mapping[Key, Endpoint]) -> list[Event]:
        """A dump of the namespace shows these sockets: their waiting records are ours."""
        if not self.pending:
            return []
        from sockscope.watch.engine import tuple_key  # noqa: PLC0415 - avoids a cycle

        present = {tuple_key(ep) for ep in table.values()}
        out: list[Event] = []
        for tkey in [k for k in self.pending if k in present]:
            out.extend(self._flush(tkey))
        return out

    def covers(self, ev: Event) -> bool:
        """Whether the tracepoint already reported this socket's transitions."""
        from sockscope.watch.engine import tuple_key  # noqa: PLC0415

        return tuple_key(ev.endpoint) in self.confirmed

    def closed(
        self, tkey: TKey, opened: float | None, last_state: TcpState | None
    ) -> tuple[list[Event], float | None, TcpState | None, Owner | None, float | None]:
        """The destroy broadcast for ``tkey`` came: flush its records, give what we know.

        Returns the flushed events, when it opened, its last state, the process, and the
        exact time it closed (from the tracepoint) when known.
        """
        older = self.retired.get(tkey)
        if older:
            closing_old, t_old, state_old, proc_old = older.popleft()
            if not older:
                del self.retired[tkey]
            return (
                [],
                t_old if t_old is not None else opened,
                state_old or last_state,
                proc_old,
                closing_old[0].mono,
            )
        flushed = self._flush(tkey) if tkey in self.pending else []
        closing = self.closing.pop(tkey, None)
        self.confirmed.discard(tkey)
        t_open = self.opened_at.pop(tkey, None)
        if t_open is not None and (opened is None or t_open < opened):
            opened = t_open
        state = self.last_state.pop(tkey, None) or last_state
        return (
            flushed,
            opened,
            state,
            self.process.pop(tkey, None),
            closing[0].mono if closing is not None else None,
        )

    def _retire(self, tkey: TKey) -> None:
        """A new connection reuses ``tkey`` while the last one's destroy is still due.

        Its records move aside, oldest first, so the late destroy finds the connection it
        belongs to and the new one starts clean (fast clients reuse 4-tuples within ms).
        """
        closing = self.closing.pop(tkey, None)
        if closing is None:
            return
        self.retired.setdefault(tkey, deque()).append(
            (
                closing,
                self.opened_at.pop(tkey, None),
                self.last_state.pop(tkey, None),
                self.process.pop(tkey, None),
            )
        )

    def reset_close(self, local_port: int) -> TKey | None:
        """The 4-tuple of a socket a reset wiped (its destroy message has port 0 for a peer)."""
        for tkey in (*self.retired, *self.closing):  # retired ones closed first
            if tkey[2] == local_port:
                return tkey
        return None

    def expire(self, now: float, horizon: float) -> list[Event]:
        """Drop records never confirmed (another namespace); close what lost its destroy.

        Waits are measured from the record's own time to ``horizon``, the watcher's
        progress through the destroy messages (see ``Watcher.destroy_horizon``), so a
        watcher that lags behind a burst does not give up on what it has yet to read.
        """
        out: list[Event] = []
        limit = self.watcher.interval + CONFIRM_GRACE
        settled = min(now, horizon)
        for tkey, since in list(self.pending_since.items()):
            if settled - since > limit:
                self.watcher.stats.foreign += len(self.pending.pop(tkey, []))
                del self.pending_since[tkey]
                self.opened_at.pop(tkey, None)
                self.process.pop(tkey, None)
                self.closing.pop(tkey, None)
        upto = self.read_upto()  # a connect's pair is read after it, however late that is
        for peer, queue in list(self.connecting.items()):
            while queue and upto - queue[0].mono > limit:
                queue.popleft()
            if not queue:
                del self.connecting[peer]
        for tkey, (ev, since) in list(self.closing.items()):
            if horizon - since > CLOSE_GRACE and tkey in self.confirmed:
                del self.closing[tkey]
                self.confirmed.discard(tkey)
                opened = self.opened_at.pop(tkey, None)
                state = self.last_state.pop(tkey, None)
                proc = self.process.pop(tkey, None)
                out.append(
                    ev._replace(
                        endpoint=ev.endpoint._replace(state=state or ev.endpoint.state),
                        duration=None if opened is None else ev.mono - opened,
                        process=proc,
                    )
                )
                touch(self.closed_here, tkey, now)
                self.watcher.stats.closes_from_trace += 1
        for tkey, older in list(self.retired.items()):
            while older and horizon - older[0][0][1] > CLOSE_GRACE:
                (ev, _since), opened, state, proc = older.popleft()
                out.append(
                    ev._replace(
                        endpoint=ev.endpoint._replace(state=state or ev.endpoint.state),
                        duration=None if opened is None else ev.mono - opened,
                        process=proc,
                    )
                )
                self.watcher.stats.closes_from_trace += 1
            if not older:
                del self.retired[tkey]
        forget_before(self.closed_here, now - LATE_DESTROY, float)
        return out

    def already_closed(self, tkey: TKey) -> bool:
        """Whether ``tkey``'s close was reported from the tracepoint, its destroy message
        having come too late (a lagging reader); the late message must not close it twice."""
        return self.closed_here.pop(tkey, None) is not None
