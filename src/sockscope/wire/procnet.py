"""Pure: ``/proc/net/{tcp,tcp6,udp,udp6,unix}`` text into records.

Byte order trap: the kernel prints each 32-bit word of an address in host order
(``%08X`` of a ``__be32`` read as a native integer), so on little-endian machines
each word's bytes are reversed; ports are printed as plain numbers.
"""

from __future__ import annotations

import sys

from sockscope._namedtuple import NamedTuple
from sockscope.wire.errors import ParseError


class ProcNetInet(NamedTuple):
    """One line of ``/proc/net/{tcp,udp}[6]``, addresses as 16 raw network-order bytes."""

    family: int  # 4 or 6
    state: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    tx_queue: int
    rx_queue: int
    timer: int
    expires_jiffies: int
    retransmits: int
    uid: int
    inode: int


class ProcNetUnix(NamedTuple):
    """One line of ``/proc/net/unix``."""

    sock_type: int
    state: int  # already in the TCP numbering that unix_diag reports
    inode: int
    path: str | None


def _addr(hex_words: str, byteorder: str) -> bytes:
    raw = b"".join(
        int(hex_words[i : i + 8], 16).to_bytes(4, byteorder)  # type: ignore[arg-type]
        for i in range(0, len(hex_words), 8)
    )
    return raw.ljust(16, b"\0")


def parse_proc_net_inet(text: str, family: int, byteorder: str = sys.byteorder) -> list[ProcNetInet]:
    """Parse the whole file; the header line is skipped.

    ``byteorder`` is the byte order of the machine that wrote the text.

    Raises:
        ParseError: a line without the expected columns.
    """
    out: list[ProcNetInet] = []
    lines = text.splitlines()
    for lineno, line in enumerate(lines[1:], start=2):
        cols = line.split()
        if not cols:
            continue
        try:
            local, remote, state, queues, timer = cols[1], cols[2], cols[3], cols[4], cols[5]
            lhex, lport = local.split(":")
            rhex, rport = remote.split(":")
            tx, rx = queues.split(":")
            tmr, when = timer.split(":")
            out.append(
                ProcNetInet(
                    family,
                    int(state, 16),
                    _addr(lhex, byteorder),
                    int(lport, 16),
                    _addr(rhex, byteorder),
                    int(rport, 16),
                    int(tx, 16),
                    int(rx, 16),
                    int(tmr, 16),
                    int(when, 16),
                    int(cols[6], 16),
                    int(cols[7]),
                    int(cols[9]),
                )
            )
        except (IndexError, ValueError) as exc:
            raise ParseError(f"line {lineno}: unexpected /proc/net format: {line.strip()!r}") from exc
    return out


# socket_state (include/uapi/linux/net.h) and __SO_ACCEPTCON (include/linux/net.h)
SS_CONNECTING = 2
SS_CONNECTED = 3
SO_ACCEPTCON = 0x10000


def _unix_state(flags: int, st: int) -> int:
    """Map the file's socket_state to the TCP numbers unix_diag uses."""
    if flags & SO_ACCEPTCON:
        return 10  # TCP_LISTEN
    if st == SS_CONNECTED:
        return 1  # TCP_ESTABLISHED
    if st == SS_CONNECTING:
        return 2  # TCP_SYN_SENT
    return 7  # TCP_CLOSE


def parse_proc_net_unix(text: str) -> list[ProcNetUnix]:
    """Parse ``/proc/net/unix``.

    Raises:
        ParseError: a line without the expected columns.
    """
    out: list[ProcNetUnix] = []
    for lineno, line in enumerate(text.splitlines()[1:], start=2):
        cols = line.split(maxsplit=7)
        if not cols:
            continue
        try:
            path = cols[7] if len(cols) > 7 else None
            flags, st = int(cols[3], 16), int(cols[5], 16)
            out.append(ProcNetUnix(int(cols[4], 16), _unix_state(flags, st), int(cols[6]), path))
        except (IndexError, ValueError) as exc:
            raise ParseError(f"line {lineno}: unexpected /proc/net/unix format") from exc
    return out
