"""Pure: a classic BPF socket filter that keeps destroy messages of some ports only.

A watcher of one port on a busy host would otherwise be woken, and decode, for every
socket the host closes. Attached to the destroy subscription (``SO_ATTACH_FILTER``), the
program runs on each broadcast before it is queued: the rest never take room in the
receive buffer either.

The program reads the message as the kernel queues it: the 16-byte ``nlmsghdr``, then
``inet_diag_msg``, whose ``id.idiag_sport`` and ``id.idiag_dport`` (network byte order,
which is what BPF's 16-bit load reads) are at offsets 4 and 6.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
LOCAL_PORT_AT = 16 + 4
REMOTE_PORT_AT = 16 + 6
LDH_ABS = 0x28  # BPF_LD | BPF_H | BPF_ABS: A = the u16 at k
JEQ, JGT, JGE = 0x15, 0x25, 0x35  # BPF_JMP | BPF_JEQ/JGT/JGE | BPF_K
RET = 0x06  # BPF_RET | BPF_K: keep k bytes (0: drop)
KEEP_ALL = 0xFFFFFFFF
#: Jumps are 8-bit and forward only (each span is tested at both ends, in up to two
#: instructions): beyond this many spans, no filter (Python filters).
MAX_SPANS = 60


def port_filter(ports: Sequence[tuple[bool, int, int]]) -> bytes | None:
    """A program keeping messages with a port in one of ``ports`` (local, lo, hi) at
    either end, and those without a remote port (an unconnected socket, or one a reset
    wiped). None when there are too many spans.

    Either end, not just the span's: without the tracepoint, the addresses a reset
    wiped from a socket's message are rebuilt from its peer's, whose ports are the
    other way round; the reader applies the filter itself.
    """
    if not ports or len(ports) > MAX_SPANS:
        return None
    spans = sorted({(lo, hi) for _local, lo, hi in ports})
    # Built with jumps to "keep" as None, patched once its place is known.
    tests: list[tuple[int, int | None, int | None, int]] = []
    for lo, hi in spans:
        if lo == hi:
            tests.append((JEQ, None, 0, lo))
        else:  # lo <= A: test A <= hi (else the next span); A < lo: skip that test
            tests += [(JGE, 0, 1, lo), (JGT, 0, None, hi)]
    code = [
        (LDH_ABS, 0, 0, REMOTE_PORT_AT),
        (JEQ, None, 0, 0),
        *tests,
        (LDH_ABS, 0, 0, LOCAL_PORT_AT),
        *tests,
        (RET, 0, 0, 0),
    ]
    keep = len(code)
    code.append((RET, 0, 0, KEEP_ALL))
    return b"".join(
        SOCK_FILTER.pack(op, keep - pc - 1 if jt is None else jt, keep - pc - 1 if jf is None else jf, k)
        for pc, (op, jt, jf, k) in enumerate(code)
    )
