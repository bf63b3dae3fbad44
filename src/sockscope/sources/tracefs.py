"""Thin I/O: a private tracefs instance with ``sock:inet_sock_set_state`` enabled (root).

A private instance keeps our buffer and settings away from anyone else's tracing; it is
removed on every exit path (the caller turns SIGTERM into an exception so ``close`` runs).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
EVENT = "events/sock/inet_sock_set_state"
BUFFER_KB = 16384  # per CPU: bursts of tens of thousands of transitions fit


class TraceUnavailableError(Exception):
    """tracefs or the tracepoint cannot be used here (not root, no tracefs...)."""


def _ensure_mounted() -> None:
    if (TRACEFS / "instances").is_dir():
        return
    if os.geteuid() != 0:
        raise TraceUnavailableError("the state-change tracepoint needs root")
    res = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0 or not (TRACEFS / "instances").is_dir():
        raise TraceUnavailableError(f"cannot mount tracefs: {res.stderr.strip() or 'unknown error'}")


def _remove_stale_instances() -> None:
    """Remove instances left by watchers that were killed (SIGKILL runs no cleanup)."""
    for inst in (TRACEFS / "instances").glob("sockscope-*"):
        pid = inst.name.removeprefix("sockscope-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                (inst / EVENT / "enable").write_text("0")
            with contextlib.suppress(OSError):
                inst.rmdir()


class TraceSession:
    """Reads state changes from a private instance's ``trace_pipe``."""

    def __init__(self, name: str | None = None) -> None:
        if os.geteuid() != 0:
            raise TraceUnavailableError("the state-change tracepoint needs root")
        _ensure_mounted()
        if not (TRACEFS / EVENT).is_dir():
            raise TraceUnavailableError("this kernel has no sock:inet_sock_set_state tracepoint")
        _remove_stale_instances()
        self.path = TRACEFS / "instances" / (name or f"sockscope-{os.getpid()}")
        try:
            self.path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise TraceUnavailableError(f"cannot create a tracefs instance: {exc}") from None
        self.fd = -1
        try:
            self._write("trace_clock", "mono")  # timestamps comparable with time.monotonic()
            self._write("buffer_size_kb", str(BUFFER_KB))
            self._write(f"{EVENT}/enable", "1")
            self.fd = os.open(self.path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self.close()
            raise TraceUnavailableError(f"cannot enable the tracepoint: {exc}") from None
        self._partial = b""
        self._lines: list[str] = []
        self.caught_up_at = 0.0  # monotonic time the pipe was last found empty

    def _write(self, rel: str, value: str) -> None:
        (self.path / rel).write_text(value)

    def fileno(self) -> int:
        """For select()."""
        return self.fd

    def read_lines(self, limit: int = 1 << 30) -> list[str]:
        """Up to ``limit`` complete lines; the rest wait for the next call.

        Callers that also read a netlink socket keep ``limit`` small, so a burst of
        tracepoint lines cannot keep them from draining that socket's smaller buffer.
        """
        if len(self._lines) < limit:
            chunks = [self._partial]
            size = 0
            while size < limit * 128:  # about 250 bytes a line: enough for this slice
                try:
                    data = os.read(self.fd, 1 << 20)
                except BlockingIOError:
                    # Empty right now: every record written before this moment is read.
                    self.caught_up_at = time.monotonic()
                    break
                if not data:
                    break
                chunks.append(data)
                size += len(data)
            body, _, self._partial = b"".join(chunks).rpartition(b"\n")
            if body:
                self._lines.extend(body.decode("utf-8", "replace").splitlines())
        out, self._lines = self._lines[:limit], self._lines[limit:]
        return out

    def pending(self) -> bool:
        """Whether lines already read are waiting to be handed out."""
        return bool(self._lines)

    def overruns(self) -> int:
        """Events the ring buffer lost because we read too slowly (all CPUs)."""
        total = 0
        for stats in (self.path / "per_cpu").glob("cpu*/stats"):
            with contextlib.suppress(OSError, ValueError):
                for line in stats.read_text().splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split()[1])
        return total

    def close(self) -> None:
        """Disable the event and remove the instance."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            self._write(f"{EVENT}/enable", "0")
        with contextlib.suppress(OSError):
            self.path.rmdir()
