"""Where captured blocks go: a file, a ring of files, standard output or a FIFO.

Blocks are collected and written whole with one ``write`` per batch, at least every
``FLUSH_EVERY`` seconds, so a capture killed at any moment leaves a file readable up to
its last whole block. Files are created 0600, never through a symbolic link, and never
over an existing file unless asked (``--force``), as dumpcap creates captures readable
by their owner only.

Multiple files follow dumpcap's ``-b``: a new file when the current one would pass
``filesize`` bytes, holds ``packets`` packets or is ``duration`` seconds old, named
``STEM_NNNNN_YYYYmmddHHMMSS.SUFFIX``; with ``files`` only the newest that many are kept.
Each file is a whole pcapng section (header and interface blocks again).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

FLUSH_EVERY = 0.25
FLUSH_BYTES = 4 << 20
IOV_MAX = 1024  # writev's limit on pieces per call (sysconf(_SC_IOV_MAX) on Linux)


class OutputError(Exception):
    """The output cannot be created or written (one line for the user)."""


class OutputClosedError(OutputError):
    """The reader of standard output or of the FIFO went away."""


@dataclass(frozen=True)
class Rotation:
    """``-b``: when to start a new file, and how many to keep."""

    filesize: int | None = None  # bytes
    duration: float | None = None  # seconds
    packets: int | None = None
    files: int | None = None


def _create(path: str, force: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_TRUNC if force else os.O_EXCL
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISFIFO(os.stat(path, follow_symlinks=False).st_mode):
                return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        return os.open(path, flags, 0o600)
    except FileExistsError:
        if os.path.islink(path):  # O_EXCL refuses a symbolic link even to nothing
            raise OutputError(f"cannot write {path}: it is a symbolic link") from None
        raise OutputError(f"{path} exists; not overwritten without --force") from None
    except OSError as exc:
        # O_NOFOLLOW makes a symbolic link fail with ELOOP.
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise OutputError(f"cannot write {path}: {reason}") from None


class PcapngOutput:
    """The capture's destination; ``header`` is the Section Header Block of every file."""

    def __init__(
        self, target: str, header: bytes, *, rotation: Rotation | None = None, force: bool = False
    ) -> None:
        self.target = target
        self.header = header
        self.rotation = rotation
        self.force = force
        self.idbs: list[bytes] = []
        self.files: list[str] = []  # every file created, oldest first
        self.deleted = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._file_bytes = 0  # written to the current file, pending included
        self._file_packets = 0
        self._file_started = 0.0
        self._last_flush = time.monotonic()
        self._fd = -1
        self._open_next()

    @property
    def path(self) -> str:
        """The file being written ("-" for standard output)."""
        return self.files[-1] if self.files else self.target

    def _name(self) -> str:
        if self.rotation is None:
            return self.target
        p = Path(self.target)
        stamp = time.strftime("%Y%m%d%H%M%S")
        return str(p.with_name(f"{p.stem}_{len(self.files) + 1:05d}_{stamp}{p.suffix}"))

    def _open_next(self) -> None:
        if self.target == "-":
            self._fd = 1
        else:
            name = self._name()
            self._fd = _create(name, self.force)
            self.files.append(name)
        self._file_bytes = self._file_packets = 0
        self._file_started = time.monotonic()
        self._queue(self.header)
        for idb in self.idbs:
            self._queue(idb)
        self.flush()

    def add_interface(self, idb: bytes) -> int:
        """Write an Interface Description Block; returns its interface id."""
        self.idbs.append(idb)
        self._queue(idb)
        return len(self.idbs) - 1

    def fits(self, size: int, limit: int) -> bool:
        """Whether ``size`` more bytes keep the current file within ``limit``."""
        return self._file_bytes + size <= limit

    def due_rotation(self, size: int, now: float) -> bool:
        """Whether ``size`` more bytes (the next block and the closing ones) belong in a
        new file."""
        rot = self.rotation
        if rot is None or not self._file_packets:
            return False
        return (
            (rot.filesize is not None and self._file_bytes + size > rot.filesize)
            or (rot.packets is not None and self._file_packets >= rot.packets)
            or (rot.duration is not None and now - self._file_started >= rot.duration)
        )

    def rotate(self, closing: list[bytes]) -> None:
        """End the current file with ``closing`` blocks, start the next, drop the oldest."""
        for block in closing:
            self._queue(block)
        self.flush()
        self._close_fd()
        self._open_next()
        keep = self.rotation.files if self.rotation is not None else None
        while keep is not None and len(self.files) - self.deleted > keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.files[self.deleted])
            self.deleted += 1

    def write_packet(self, parts: tuple[bytes, bytes, bytes]) -> None:
        """Queue one Enhanced Packet Block, in the pieces ``build_enhanced_packet_parts``
        gives (written with ``writev``: a large packet is not copied into a block)."""
        self._file_packets += 1
        size = len(parts[0]) + len(parts[1]) + len(parts[2])
        self._pending.extend(parts)
        self._pending_bytes += size
        self._file_bytes += size
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def _queue(self, block: bytes) -> None:
        self._pending.append(block)
        self._pending_bytes += len(block)
        self._file_bytes += len(block)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush_due(self, now: float) -> None:
        """Write what is queued if the last write is ``FLUSH_EVERY`` old."""
        if self._pending and now - self._last_flush >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write every queued block now."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        pieces = self._pending
        self._pending = []
        self._pending_bytes = 0
        try:
            _write_all(self._fd, pieces)
        except BrokenPipeError:
            raise OutputClosedError(f"the reader of {self.path} went away") from None
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None

    def close(self, closing: list[bytes]) -> None:
        """Write ``closing`` blocks (statistics), everything queued, and close; safe to
        call again (it then only closes)."""
        if self._fd < 0:
            return
        try:
            for block in closing:
                self._queue(block)
            self.flush()
        finally:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd > 2:
            os.close(self._fd)
        self._fd = -1


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` in order, whole, however many calls ``writev`` needs."""
    at = 0
    while at < len(pieces):
        batch = pieces[at : at + IOV_MAX]
        wrote = os.writev(fd, batch)
        for piece in batch:
            if wrote < len(piece):
                if wrote:  # cut inside a piece: keep its rest for the next call
                    pieces[at] = piece[wrote:]
                break
            wrote -= len(piece)
            at += 1
