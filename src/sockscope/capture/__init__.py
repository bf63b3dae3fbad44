"""``sockscope capture``: packets in pcapng, each labelled with the process it belongs to.

``open_capture`` turns ``CaptureOptions`` into a running capture: the packet filter is
compiled, the ring opened, the watch engine started (for labels, a per-packet filter or
``until``) and only then the output created, so a failure at any step leaves no file.
``Capture.run`` reads until a limit or a stop request; ``Capture.close`` writes the
statistics, closes everything and returns the summary.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field

from sockscope.api import KernelFilter, Query
from sockscope.capture.feed import LabelFeed
from sockscope.capture.labels import LabelIndex
from sockscope.capture.output import OutputClosedError, OutputError, PcapngOutput, Rotation
from sockscope.capture.session import LABEL_WAIT, Limits, Session
from sockscope.model.event import Event
from sockscope.model.filter import Filter
from sockscope.model.filter.ast import field_names
from sockscope.model.states import ALL_STATES, Proto
from sockscope.query.packets import compute_packet_pushdown
from sockscope.sources.packet import CaptureError, NoSuchInterfaceError, PacketRing, namespace_identity
from sockscope.wire.packet_filter import (
    PacketFilterError,
    PktAnd,
    PktExpr,
    build_dispatch,
    build_handshakes,
    build_packet_filter,
)
from sockscope.wire.pcapng import build_section_header

__all__ = [
    "Capture",
    "CaptureError",
    "CaptureOptions",
    "Limits",
    "NoSuchInterfaceError",
    "OutputError",
    "PacketFilterError",
    "Rotation",
    "Summary",
    "open_capture",
]

DEFAULT_SNAPLEN = 262144
#: ``--handshakes`` keeps headers only: Ethernet (14), IPv4 with options (60), TCP with
#: options (60). An IPv6 handshake needs 114.
HEADERS_SNAPLEN = 134
VERSION = "0.1.0"


@dataclass
class CaptureOptions:
    """Everything a capture is asked for, resolved to plain values."""

    target: str = "-"
    interface: str | None = None  # None: every interface
    netns: str | None = None
    filter: Filter | None = None
    bpf: str | None = None
    handshakes: bool = False
    snaplen: int | None = None
    labels: bool = True
    until: Filter | None = None
    limits: Limits = field(default_factory=Limits)
    rotation: Rotation | None = None
    buffer_bytes: int = 32 << 20
    force: bool = False
    interval: float = 1.0
    sources: set[str] | None = None

    @property
    def effective_snaplen(self) -> int:
        """The snap length asked for, or the default for the mode."""
        if self.snaplen is not None:
            return self.snaplen
        return HEADERS_SNAPLEN if self.handshakes else DEFAULT_SNAPLEN


@dataclass
class Summary:
    """What a finished capture did."""

    written: int
    files: list[str]
    accepted: int  # by the kernel's filter
    dropped: int  # by the kernel, ring full
    freezes: int
    filtered: int  # by the per-packet filter
    unlabelled: int
    late: int
    stopped_by: str
    until: Event | None
    watcher_lost: int

    def render(self) -> str:
        """The summary as one line."""
        where = self.files[-1] if len(self.files) == 1 else f"{len(self.files)} files" if self.files else "-"
        text = (
            f"{self.written} packets written to {where}; the kernel's filter accepted {self.accepted}, "
            f"it dropped {self.dropped} (ring full {self.freezes} times)"
        )
        if self.filtered:
            text += f"; {self.filtered} left out by the per-packet filter"
        if self.unlabelled:
            text += f"; {self.unlabelled} without a process"
        if self.late:
            text += f" ({self.late} waited {LABEL_WAIT:g}s for the watcher in vain)"
        if self.watcher_lost:
            text += f"; socket events lost: {self.watcher_lost}"
        return text


def _kernel_expr(opts: CaptureOptions) -> tuple[PktExpr | bool, bool]:
    """The packet filter's expression, and whether packets need a test of their own."""
    parts: list[PktExpr | bool] = []
    exact = True
    if opts.filter is not None:
        push = compute_packet_pushdown(opts.filter.root)
        parts.append(push.kernel)
        exact = push.exact
    if opts.handshakes:
        parts.append(build_handshakes())
    if False in parts:
        return False, exact
    exprs = [p for p in parts if not isinstance(p, bool)]
    if not exprs:
        return True, exact
    return (exprs[0] if len(exprs) == 1 else PktAnd(tuple(exprs))), exact


def compile_program(opts: CaptureOptions) -> tuple[bytes, bool]:
    """The classic BPF program for the capture socket, and whether the filter needs a
    per-packet test against the socket table.

    Raises:
        PacketFilterError: the program is too long.
        PcapError, PcapMissingError: ``--bpf`` does not compile, or there is no libpcap.
    """
    expr, exact = _kernel_expr(opts)
    snaplen = opts.effective_snaplen
    tail = b""
    if opts.bpf:
        from sockscope.sources.pcap_compile import DLT_EN10MB, DLT_RAW, compile_pcap_filter  # noqa: PLC0415

        tail = build_dispatch(
            compile_pcap_filter(opts.bpf, DLT_EN10MB, snaplen),
            compile_pcap_filter(opts.bpf, DLT_RAW, snaplen),
            snaplen,
        )
    program = build_packet_filter(expr, snaplen, skip_loopback_outgoing=opts.interface is None, tail=tail)
    return program, not exact


def filter_description(opts: CaptureOptions) -> str:
    """The filter as written in each interface's ``if_filter``."""
    parts = []
    if opts.filter is not None and opts.filter.text:
        parts.append(opts.filter.text)
    if opts.handshakes:
        parts.append("handshakes (SYN, FIN, RST)")
    if opts.bpf:
        parts.append(f"bpf({opts.bpf})")
    return " and ".join(f"({p})" if len(parts) > 1 else p for p in parts)


def watcher_query(opts: CaptureOptions, sockets: bool, processes: bool) -> Query:
    """What the watch engine is asked for: the sockets the packets can belong to when
    ``sockets`` are needed (labels, a per-packet filter), the ones ``until`` names, or,
    when both, every socket."""
    flt: Filter | None = None
    if not sockets:
        flt = opts.until
    elif opts.until is None:
        flt = opts.filter
    protocols: tuple[Proto, ...] = (Proto.TCP, Proto.UDP)
    families: tuple[int, ...] = (4, 6)
    kernel = KernelFilter(states=ALL_STATES)
    if flt is not None:
        from sockscope.query.pushdown import pushdown  # noqa: PLC0415 - a filtered capture only

        push = pushdown(flt)
        if push.protocols is not None:
            protocols = tuple(p for p in protocols if p in push.protocols) or protocols
        if push.families is not None:
            families = tuple(f for f in families if f in push.families) or families
        kernel = KernelFilter(ALL_STATES, push.bytecode, push.ports)
    return Query(protocols=protocols, families=families, kernel=kernel, processes=processes, netns=opts.netns)


class Capture:
    """A capture set up and ready to ``run``."""

    def __init__(self, ring: PacketRing, feed: LabelFeed | None, session: Session) -> None:
        self.ring, self.feed, self.session = ring, feed, session
        self.error = ""  # a failure while closing (the disk filled up...)

    @property
    def warnings(self) -> list[str]:
        """What the user should know about the labels (a missing source...)."""
        return self.feed.warnings if self.feed is not None else []

    @property
    def sources(self) -> tuple[str, ...]:
        """The watch engine's sources, when it runs."""
        return self.feed.sources if self.feed is not None else ()

    def run(self, interrupted: Callable[[], bool] = lambda: False) -> None:
        """Capture until a limit, ``until``, or ``interrupted()``."""
        feed = self.feed

        def stop_requested() -> str:
            if feed is not None and feed.matched is not None:
                return "until"
            if feed is not None and feed.error is not None:
                raise CaptureError(f"the watch engine failed: {feed.error}")
            return "interrupted" if interrupted() else ""

        self.session.run(stop_requested)

    def close(self) -> Summary:
        """Drain the ring, write the statistics, close everything; the summary."""
        session = self.session
        try:
            try:
                session.finish()
            finally:
                if self.feed is not None:
                    self.feed.stop()
            session.out.close(session.statistics_blocks())
        except OutputClosedError:
            session.out.close([])
        except OutputError as exc:
            self.error = str(exc)
            session.out.close([])
        finally:
            accepted, dropped, freezes = self.ring.statistics()
            self.ring.close()
        c = session.counts
        return Summary(
            written=c.written,
            files=list(session.out.files[session.out.deleted :]),
            accepted=accepted,
            dropped=dropped,
            freezes=freezes,
            filtered=c.filtered,
            unlabelled=c.unlabelled,
            late=c.late,
            stopped_by=session.stop_reason,
            until=self.feed.matched if self.feed is not None else None,
            watcher_lost=self.feed.lost if self.feed is not None else 0,
        )


def _label_feed(opts: CaptureOptions, per_packet: bool) -> LabelFeed | None:
    """The watch engine, when labels, a per-packet filter or ``until`` need it."""
    if not (opts.labels or per_packet or opts.until is not None):
        return None
    needs_processes = opts.labels or any(
        f is not None and f.needs_processes for f in (opts.filter, opts.until)
    )
    return LabelFeed(
        watcher_query(opts, opts.labels or per_packet, needs_processes),
        LabelIndex(),
        until=opts.until.matches if opts.until is not None else None,  # type: ignore[arg-type]  # an EventView
        interval=opts.interval,
        sources=opts.sources,
        states=per_packet and opts.filter is not None and "state" in field_names(opts.filter.root),
    )


def _output(opts: CaptureOptions) -> PcapngOutput:
    header = build_section_header(
        f"sockscope {VERSION} capture", f"Linux {platform.release()}", platform.machine()
    )
    return PcapngOutput(opts.target, header, rotation=opts.rotation, force=opts.force)


def open_capture(opts: CaptureOptions) -> Capture:
    """Set a capture up, in the order that leaves nothing behind when a step fails.

    Raises:
        PacketFilterError, PcapError, PcapMissingError: the filter.
        CaptureError, NoSuchInterfaceError, NetnsError: the capture socket.
        OutputError: the output file.
    """
    program, per_packet = compile_program(opts)
    ring = PacketRing(program, opts.interface, opts.netns, opts.buffer_bytes)
    feed: LabelFeed | None = None
    try:
        feed = _label_feed(opts, per_packet)
        inode, path = namespace_identity(opts.netns)
        session = Session(
            ring,
            _output(opts),
            snaplen=opts.effective_snaplen,
            index=feed.index if feed is not None else None,
            labels=opts.labels,
            matcher=opts.filter.matches if per_packet and opts.filter is not None else None,
            limits=opts.limits,
            filter_text=filter_description(opts),
            netns_comment=f"netNsInode: {inode}, netNsPath: {path}"
            + (f", netns: {opts.netns}" if opts.netns else ""),
            ask_dump=feed.watcher.request_poll if feed is not None else None,
        )
    except BaseException:
        if feed is not None:
            feed.stop()
        ring.close()
        raise
    if feed is not None:
        feed.start()
    return Capture(ring, feed, session)
