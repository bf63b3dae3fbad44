"""Just enough pcapng reading for tests: the blocks of a file and their options.

(The tests' real reader is tshark; this checks what tshark does not show, such as
statistics blocks and where a file written by a killed capture ends.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass
class Block:
    kind: int
    body: bytes


def blocks(data: bytes) -> tuple[list[Block], int]:
    """The whole blocks of a host-order pcapng stream, and the bytes after the last one."""
    out: list[Block] = []
    at = 0
    while at + 12 <= len(data):
        kind, total = struct.unpack_from("=II", data, at)
        if total < 12 or at + total > len(data):
            break
        assert struct.unpack_from("=I", data, at + total - 4)[0] == total, "trailing length differs"
        out.append(Block(kind, data[at + 8 : at + total - 4]))
        at += total
    return out, len(data) - at


def options(raw: bytes) -> list[tuple[int, bytes]]:
    """``(code, value)`` of an option list, up to its end."""
    out = []
    at = 0
    while at + 4 <= len(raw):
        code, length = struct.unpack_from("=HH", raw, at)
        if code == 0:
            break
        out.append((code, raw[at + 4 : at + 4 + length]))
        at += 4 + length + (-length & 3)
    return out


def isb_options(block: Block) -> dict[int, int | str]:
    """An Interface Statistics Block's counters (u64) and comment."""
    out: dict[int, int | str] = {}
    for code, value in options(block.body[12:]):
        if code == 1:
            out[code] = value.decode()
        elif code in (2, 3):
            hi, lo = struct.unpack("=II", value)
            out[code] = hi << 32 | lo
        else:
            out[code] = struct.unpack("=Q", value)[0]
    return out
