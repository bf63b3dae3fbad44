"""A capture file read into connections (``--pcap``); the decoding itself is pure."""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

from sockscope.report.streams import Key, Stream, build_streams
from sockscope.wire.pcapng_read import CaptureError, parse_capture, parse_segment


def read_streams(path: str | Path) -> dict[Key, list[Stream]]:
    """Every TCP connection in the capture at ``path`` (mapped, not read into memory).

    Raises:
        CaptureError: not a capture, or one cut short.
        OSError: it cannot be opened.
    """
    with Path(path).open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise CaptureError("an empty file")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mapped)
        try:
            return build_streams(s for s in map(parse_segment, parse_capture(view)) if s is not None)
        finally:
            # After an error the decoder's frames (in the traceback) still hold views of
            # the mapping; it is then unmapped when they are freed.
            with contextlib.suppress(BufferError):
                view.release()
                mapped.close()
