"""What a capture reports at its end: Interface Statistics Blocks and a summary line.

The kernel counts for the capture socket as a whole (``PACKET_STATISTICS``): packets
its filter accepted, those it dropped because the ring was full, and how often the
ring filled up. They go on the first interface's statistics block, with a comment
saying so; each interface's block gives the packets written for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sockscope.wire.pcapng import build_interface_statistics

if TYPE_CHECKING:
    from sockscope.capture.session import Session


def kernel_comment(
    accepted: int, dropped: int, freezes: int, written: int, filtered: int, unlabelled: int
) -> str:
    """The counts in words, for the statistics block's comment and the summary."""
    return (
        f"capture socket, every interface: {accepted} packets accepted by its filter, "
        f"{dropped} dropped by the kernel (ring full {freezes} times); {written} written, "
        f"{filtered} left out by the per-packet filter, {unlabelled} without a process"
    )


def statistics_blocks(session: Session) -> list[bytes]:
    """One Interface Statistics Block per interface written so far."""
    accepted, dropped, freezes = session.ring.statistics()
    counts = session.counts
    now = time.time_ns()
    blocks = []
    for iface, written in enumerate(counts.per_interface):
        first = iface == 0
        blocks.append(
            build_interface_statistics(
                iface,
                now,
                start=session.started_ns,
                end=now,
                received=accepted if first else None,
                os_dropped=dropped if first else None,
                delivered=written,
                comment=kernel_comment(
                    accepted, dropped, freezes, counts.written, counts.filtered, counts.unlabelled
                )
                if first
                else "",
            )
        )
    return blocks
