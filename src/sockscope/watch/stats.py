"""What a watch saw, and what it could not see: counted, never hidden."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sockscope.model.event import EventKind


@dataclass
class WatchStats:
    """Counters kept by the engine and the loop that feeds it."""

    events: Counter[EventKind] = field(default_factory=Counter)  # reported, by kind
    destroy_overruns: int = 0  # destroy messages the kernel dropped (ENOBUFS)
    trace_overruns: int = 0  # tracepoint records the ring buffer dropped
    bpf_lost: int = 0  # records the eBPF ring buffer had no room for
    bpf_recursion: int = 0  # program runs the kernel skipped (another program on the CPU)
    bpf_unreadable: int = 0  # eBPF records that did not decode (a layout mismatch: never seen)
    bpf_map_full: int = 0  # connections the eBPF map had no room for (their opening is lost)
    lost_closes: int = 0  # closes seen only as a socket missing from a dump
    closes_from_trace: int = 0  # closes whose destroy message never came (the tracepoint's)
    opens_missed: int = 0  # eBPF closes of sockets whose opening no source saw
    closes_recovered: int = 0  # TCP closes the eBPF records lost, told by a destroy message
    foreign: int = 0  # tracepoint records left out: another namespace
    sources: tuple[str, ...] = ()
    #: Why a source was not used, by name, for the start line.
    refused: dict[str, str] = field(default_factory=dict)
    #: Sources whose kernel side drops other ports' sockets (the filter's port spans).
    port_filtered: tuple[str, ...] = ()

    @property
    def lost(self) -> int:
        """Events known to be lost (0 when none)."""
        bpf = self.bpf_lost + self.bpf_recursion + self.bpf_unreadable
        return self.destroy_overruns + self.trace_overruns + bpf
