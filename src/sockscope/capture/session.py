"""The capture loop: ring -> process labels and the per-packet filter -> pcapng blocks.

A packet whose socket is not known yet (a connection opened after the last event the
watcher handed over) waits, with every packet after it so the file stays in time
order, until the watcher names it, for at most ``LABEL_WAIT`` seconds and
``HOLD_BYTES`` bytes; then it is written without a label and counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from sockscope.capture.labels import Entry, LabelIndex
from sockscope.capture.output import PcapngOutput
from sockscope.model.endpoint import Endpoint, IPAddress, Owner
from sockscope.model.states import Proto, TcpState
from sockscope.sources.packet import PacketRing
from sockscope.wire.pcapng import build_enhanced_packet_parts, build_flags_option, build_interface_description
from sockscope.wire.tpacket import ARPHRD_LOOPBACK, Flow, Frame, linktype_for, packet_flags, parse_flow

LABEL_WAIT = 1.5
#: UDP sockets are known from dumps alone: a packet of one not known yet asks the watcher
#: for a dump at once (a flow shorter than the poll interval would go unlabelled), at
#: most this often.
DUMP_ASK_EVERY = 0.2
IPPROTO_UDP = 17
HOLD_BYTES = 64 << 20
TICK = 0.1
#: At the end, packets still waiting for their process wait at most this much more.
FINAL_WAIT = 0.5
#: The statistics blocks grow as their counts gain digits: this much room is kept.
STATS_SLACK = 128
#: Stop reasons after which nothing more is written.
FULL = frozenset({"packets", "filesize", "files"})

Matcher = Callable[[Endpoint], bool]


@dataclass
class Limits:
    """dumpcap's ``-a``: when to stop (None: never)."""

    duration: float | None = None
    packets: int | None = None
    filesize: int | None = None  # bytes, without -b
    files: int | None = None  # with -b


@dataclass
class Counts:
    """What the capture did with the packets the kernel handed it."""

    written: int = 0
    filtered: int = 0  # left out by the per-packet filter
    unlabelled: int = 0  # TCP/UDP packets written without a process
    late: int = 0  # written unlabelled because the wait for the watcher ran out
    per_interface: list[int] = field(default_factory=list)
    stopped_by: str = ""


class Session:
    """Reads ``ring`` into ``out`` until a limit, ``stop_requested`` or an interrupt."""

    def __init__(
        self,
        ring: PacketRing,
        out: PcapngOutput,
        *,
        snaplen: int,
        index: LabelIndex | None,
        labels: bool,
        matcher: Matcher | None,
        limits: Limits,
        filter_text: str,
        netns_comment: str,
        ask_dump: Callable[[], None] | None = None,
    ) -> None:
        self.ring, self.out, self.snaplen = ring, out, snaplen
        self.ask_dump = ask_dump
        self._checked_at = -DUMP_ASK_EVERY
        self.index = index
        self.labels = labels and index is not None
        self.matcher = matcher
        self.limits = limits
        self.filter_text = filter_text
        self.netns_comment = netns_comment
        self.counts = Counts()
        self.stop_reason = ""
        self.held: deque[tuple[Frame, Flow | None, float]] = deque()
        self.held_bytes = 0
        self._ifaces: dict[int, int] = {}
        self._flags: dict[tuple[int, int], bytes] = {}
        self._reserve = 0  # bytes the closing statistics blocks take
        self.started = time.monotonic()
        self.started_ns = time.time_ns()

    # -- the loop --------------------------------------------------------------------

    def run(self, stop_requested: Callable[[], str]) -> None:
        """Capture until a limit is reached or ``stop_requested`` names a reason."""
        deadline = None if self.limits.duration is None else self.started + self.limits.duration
        while not self.stop_reason:
            now = time.monotonic()
            reason = stop_requested()
            if reason:
                self.stop_reason = reason
                break
            if deadline is not None and now >= deadline:
                self.stop_reason = "duration"
                break
            self.ring.wait(TICK if deadline is None else min(TICK, deadline - now))
            self.step(self.ring.read(), time.monotonic())

    def step(self, frames: list[Frame], now: float) -> None:
        """Take in newly read packets, write what is ready, flush on the timer."""
        self.take(frames, now)
        self.release(now)
        if not self.stop_reason:
            self.out.flush_due(now)

    def finish(self) -> None:
        """Read what is left in the ring; give the packets still waiting for their
        process a last ``FINAL_WAIT``, then write them."""
        if self.stop_reason not in FULL:
            self.take(self.ring.drain(), time.monotonic())
        deadline = time.monotonic() + FINAL_WAIT
        while self.held and time.monotonic() < deadline:
            time.sleep(TICK / 2)
            self.release(time.monotonic())
        self.release(time.monotonic(), final=True)

    # -- packets ---------------------------------------------------------------------

    def take(self, frames: list[Frame], now: float) -> None:
        index = self.index
        held = self.held
        none: list[Entry] = []
        for frame in frames:
            if self.stop_reason in FULL:
                return
            if index is None:
                self.emit(frame, None, none)
                continue
            flow = parse_flow(frame.data, frame.l3)
            if not held:
                entries, complete = self._sides(frame, flow)
                if complete:
                    self.emit(frame, flow, entries)
                    continue
            held.append((frame, flow, now))
            self.held_bytes += len(frame.data)
            # Queued behind another packet or not, an unknown UDP socket asks for a dump
            # (looked at no more often than a dump may be asked for).
            if flow is not None and flow[0] == IPPROTO_UDP and now - self._checked_at >= DUMP_ASK_EVERY:
                self._ask_if_unknown(frame, flow, now)

    def _ask_if_unknown(self, frame: Frame, flow: Flow, now: float) -> None:
        self._checked_at = now
        if self.ask_dump is not None and not self._sides(frame, flow)[1]:
            self.ask_dump()

    def _sides(self, frame: Frame, flow: Flow | None) -> tuple[list[Entry], bool]:
        if flow is None or self.index is None:
            return [], True
        return self.index.sides(flow, frame.pkttype, frame.hatype == ARPHRD_LOOPBACK)

    def release(self, now: float, final: bool = False) -> None:
        """Write the waiting packets whose sockets are known, or whose wait is over."""
        held = self.held
        while held:
            frame, flow, since = held[0]
            entries, complete = self._sides(frame, flow)
            if not complete:
                if not (final or now - since >= LABEL_WAIT or self.held_bytes > HOLD_BYTES):
                    return
                self.counts.late += 1
            held.popleft()
            self.held_bytes -= len(frame.data)
            if self.stop_reason not in FULL:
                self.emit(frame, flow, entries)

    def emit(self, frame: Frame, flow: Flow | None, entries: list[Entry]) -> None:
        """Write one packet, labelled with ``entries`` (the sockets it belongs to)."""
        if self.matcher is not None and not self._matches(entries, flow):
            self.counts.filtered += 1
            return
        iface = self._ifaces.get(frame.ifindex)
        if iface is None:
            iface = self._new_interface(frame)
        key = (frame.pkttype, frame.status)
        options = self._flags.get(key)
        if options is None:
            options = self._flags[key] = build_flags_option(packet_flags(frame.pkttype, frame.status))
        if self.labels:
            if len(entries) == 2 and entries[0].blob == entries[1].blob:
                blobs = entries[0].blob  # both ends held by the same processes
            else:
                blobs = b"".join([e.blob for e in entries])
            if blobs:
                options += blobs
            elif flow is not None:
                self.counts.unlabelled += 1
        parts = build_enhanced_packet_parts(
            iface, frame.sec * 1_000_000_000 + frame.nsec, frame.data, frame.length, options
        )
        self._write(parts, iface)

    def _write(self, parts: tuple[bytes, bytes, bytes], iface: int) -> None:
        limits, out, counts = self.limits, self.out, self.counts
        # Room for the block and for the statistics that close the file.
        size = len(parts[0]) + len(parts[1]) + len(parts[2]) + self._reserve
        if limits.filesize is not None and not out.fits(size, limits.filesize):
            self.stop_reason = "filesize"
            return
        if out.due_rotation(size, time.monotonic()):
            if limits.files is not None and len(out.files) >= limits.files:
                self.stop_reason = "files"
                return
            out.rotate(self.statistics_blocks())
        out.write_packet(parts)
        counts.written += 1
        counts.per_interface[iface] += 1
        if limits.packets is not None and counts.written >= limits.packets:
            self.stop_reason = "packets"

    def _new_interface(self, frame: Frame) -> int:
        name = self.ring.interface_name(frame.ifindex)
        idb = build_interface_description(
            linktype_for(frame.hatype),
            self.snaplen,
            name=name,
            filter_text=self.filter_text,
            comment=f"ifIndex: {frame.ifindex}, {self.netns_comment}",
            os_name="Linux",
        )
        iface = self._ifaces[frame.ifindex] = self.out.add_interface(idb)
        self.counts.per_interface.append(0)
        if self.limits.filesize is not None or self.out.rotation is not None:
            self._reserve = sum(map(len, self.statistics_blocks())) + STATS_SLACK
        return iface

    def _matches(self, entries: list[Entry], flow: Flow | None) -> bool:
        matcher = self.matcher
        assert matcher is not None
        for entry in entries:
            ep = entry.endpoint
            if ep.remote_port is None and flow is not None:
                # A listener standing in for a child it has not handed out yet: the
                # child's own addresses, with the listener's processes.
                if any(
                    matcher(e)
                    for e in flow_endpoints(flow, ep.owners, ep.uid)
                    if e.local_port == ep.local_port
                ):
                    return True
                continue
            if entry.verdict is None:
                entry.verdict = matcher(ep)
            if entry.verdict:
                return True
        if entries or flow is None:
            return False
        return any(matcher(e) for e in flow_endpoints(flow, (), None))

    def statistics_blocks(self) -> list[bytes]:
        """Interface Statistics Blocks for the file being closed (see ``capture.stats``)."""
        from sockscope.capture.stats import statistics_blocks  # noqa: PLC0415 - once a file

        return statistics_blocks(self)


def flow_endpoints(flow: Flow, owners: tuple[Owner, ...], uid: int | None) -> tuple[Endpoint, Endpoint]:
    """A packet with no socket seen from its source, then from its destination."""
    proto_num, src, sport, dst, dport = flow
    proto = Proto.TCP if proto_num == 6 else Proto.UDP
    a, b = ip_address(src), ip_address(dst)
    family = a.version

    def end(local: IPAddress, lport: int, remote: IPAddress, rport: int) -> Endpoint:
        state = TcpState.ESTABLISHED
        return Endpoint(proto, family, state, local, lport, remote, rport, 0, 0, uid, 0, None, owners=owners)

    return end(a, sport, b, dport), end(b, dport, a, sport)
