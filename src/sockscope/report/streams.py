"""TCP segments of a capture (pure) grouped into connections, and matched to a recording.

A connection is the segments between two (address, port) ends from a SYN to its FINs
or RST; a SYN that comes after those (or after data) starts the next connection on the
same four-tuple. Retransmitted SYNs stay in theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sockscope.wire.pcapng_read import Segment

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
Key = tuple[tuple[str, int], tuple[str, int]]


def conn_key(a: str, aport: int, b: str, bport: int) -> Key:
    """The same key from either end."""
    x, y = (a, aport), (b, bport)
    return (x, y) if x <= y else (y, x)


@dataclass
class Stream:
    """One TCP connection seen in a capture."""

    client: tuple[str, int]  # who sent the SYN (or the first segment, without one)
    server: tuple[str, int]
    packets: int = 0
    first_frame: int = 0
    syn_frame: int | None = None
    fin_frames: tuple[int, ...] = ()  # the first FIN from each end
    rst_frame: int | None = None
    first: float | None = None
    last: float | None = None
    only_syns: bool = True
    fin_from: set[tuple[str, int]] = field(default_factory=set, repr=False)

    def add(self, seg: Segment) -> None:
        """Count one segment of this connection."""
        self.packets += 1
        if seg.time is not None:
            self.first = seg.time if self.first is None else self.first
            self.last = seg.time
        flags = seg.flags
        if flags & SYN and not flags & ACK and self.syn_frame is None:
            self.syn_frame = seg.frame
        if not (flags & SYN and not flags & ACK):
            self.only_syns = False
        if flags & FIN:
            sender = (str(seg.src), seg.sport)
            if sender not in self.fin_from:
                self.fin_from.add(sender)
                self.fin_frames = (*self.fin_frames, seg.frame)
        if flags & RST and self.rst_frame is None:
            self.rst_frame = seg.frame

    @property
    def ended(self) -> bool:
        """A FIN or RST was seen."""
        return bool(self.fin_frames) or self.rst_frame is not None


def build_streams(segments: Iterable[Segment]) -> dict[Key, list[Stream]]:
    """Every connection of the capture, by four-tuple, in the order they started."""
    out: dict[Key, list[Stream]] = {}
    for seg in segments:
        src, dst = (str(seg.src), seg.sport), (str(seg.dst), seg.dport)
        key = (src, dst) if src <= dst else (dst, src)
        streams = out.setdefault(key, [])
        syn_only = seg.flags & SYN and not seg.flags & ACK
        if not streams or (syn_only and (streams[-1].ended or not streams[-1].only_syns)):
            streams.append(Stream(src, dst, first_frame=seg.frame))
        streams[-1].add(seg)
    return out


def match_stream(streams: Sequence[Stream], closed_at: float, duration: float | None) -> Stream | None:
    """The connection of a four-tuple that a recorded close belongs to.

    The one whose capture times best cover the recorded life (opened at ``closed_at -
    duration``); with no times (Simple Packet Blocks), the last one.
    """
    if not streams:
        return None
    opened = closed_at - (duration or 0.0)

    def distance(s: Stream) -> float:
        if s.first is None or s.last is None:
            return 0.0
        return abs(s.first - opened) + abs(s.last - closed_at)

    return min(reversed(streams), key=distance)
