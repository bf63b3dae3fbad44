"""A capture file read into connections (``--pcap``); the decoding itself is pure."""

from __future__ import annotations

import mmap
from pathlib import Path

from sockscope.model.streams import Key, Stream, build_streams
from sockscope.wire.pcapng_read import CaptureError, parse_capture, parse_segment


def read_streams(path: str | Path) -> dict[Key, list[Stream]]:
    """Every TCP connection in the capture at ``path`` (mapped, not read into memory).

    Raises:
        CaptureError: not a capture, or one cut short.
        OSError: it cannot be opened.
    """
    with Path(path).open("rb") as f:
        if Path(path).stat().st_size == 0:
            raise CaptureError("an empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            segments = (s for s in map(parse_segment, parse_capture(memoryview(mapped))) if s is not None)
            return build_streams(segments)
