"""Thin I/O: a private tracefs instance with ``sock:inet_sock_set_state`` enabled (root).

Records are read in binary from the per-CPU ``trace_pipe_raw`` files (see wire/ftrace).

A private instance keeps our buffer and settings away from anyone else's tracing; it is
removed on every exit path (the caller turns SIGTERM into an exception so ``close`` runs).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from bisect import bisect_right
from pathlib import Path

from sockscope.wire.ftrace import FormatError, StateChange, decode_page, parse_format

TRACEFS = Path("/sys/kernel/tracing")
EVENT = "events/sock/inet_sock_set_state"
BUFFER_KB = 16384  # per CPU: bursts of tens of thousands of transitions fit
#: One read returns at most one ring-buffer page (4 KiB, or the sub-buffer size).
READ_SIZE = 1 << 16
#: How far back from an empty read a record may still be on its way into the buffer.
WRITE_SKEW = 0.001


class TraceUnavailableError(Exception):
    """tracefs or the tracepoint cannot be used here (not root, no tracefs...)."""


def _ensure_mounted() -> None:
    if (TRACEFS / "instances").is_dir():
        return
    if os.geteuid() != 0:
        raise TraceUnavailableError("the state-change tracepoint needs root")
    res = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, text=True, check=False
    )
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
    """Reads state changes from a private instance's per-CPU ``trace_pipe_raw`` files.

    Each CPU's buffer is in time order; the CPUs' records are merged by time. A record
    is handed out only once every CPU's buffer has been read past its time (or found
    empty after it): a transition that ran on another CPU a microsecond earlier cannot
    come out after it. ``upto`` is that point.
    """

    def __init__(self, name: str | None = None, event_filter: str | None = None) -> None:
        if os.geteuid() != 0:
            raise TraceUnavailableError("the state-change tracepoint needs root")
        _ensure_mounted()
        if not (TRACEFS / EVENT).is_dir():
            raise TraceUnavailableError("this kernel has no sock:inet_sock_set_state tracepoint")
        try:
            self.layout = parse_format((TRACEFS / EVENT / "format").read_text())
        except (OSError, FormatError) as exc:
            raise TraceUnavailableError(f"cannot read the tracepoint's format: {exc}") from None
        _remove_stale_instances()
        self.path = TRACEFS / "instances" / (name or f"sockscope-{os.getpid()}")
        try:
            self.path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise TraceUnavailableError(f"cannot create a tracefs instance: {exc}") from None
        self._reaper = _start_reaper(self.path)
        self.fds: list[int] = []
        try:
            self._write("trace_clock", "mono")  # timestamps comparable with time.monotonic()
            self._write("buffer_size_kb", str(BUFFER_KB))
            if (self.path / "buffer_percent").exists():
                self._write("buffer_percent", "0")  # wake a reader on the first record
            #: What the kernel records (the event's filter); None: every transition.
            self.event_filter = self._set_filter(event_filter) if event_filter else None
            self._write(f"{EVENT}/enable", "1")
            for cpu in sorted((self.path / "per_cpu").glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
                self.fds.append(os.open(cpu / "trace_pipe_raw", os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            self.close()
            raise TraceUnavailableError(f"cannot enable the tracepoint: {exc}") from None
        if not self.fds:
            self.close()
            raise TraceUnavailableError("the tracefs instance has no per-CPU buffers")
        self.upto = time.monotonic()
        self._held: list[StateChange] = []
        self._more = False
        self.bad_pages = 0  # pages that did not decode (counted with the overruns)

    def _set_filter(self, text: str) -> str | None:
        # Records the reader would drop anyway are never written: the cost of a busy
        # host's other connections stays in the kernel. A kernel that refuses the
        # expression gets none; the reader filters every record as before.
        try:
            self._write(f"{EVENT}/filter", text)
        except OSError:
            with contextlib.suppress(OSError):
                self._write(f"{EVENT}/filter", "0")
            return None
        return text

    def _write(self, rel: str, value: str) -> None:
        (self.path / rel).write_text(value)

    def read(self, max_pages: int = 1 << 30) -> list[StateChange]:
        """Records up to ``upto``, oldest first, reading at most ``max_pages`` pages.

        Callers that also read a netlink socket keep ``max_pages`` small, so a burst
        cannot keep them from it for long; ``pending()`` says whether more was left.
        """
        budget = max(1, max_pages // len(self.fds))
        new: list[StateChange] = []
        reached: list[float] = []
        more = False
        for fd in self.fds:
            last = 0.0
            for _ in range(budget):
                before = time.monotonic()
                try:
                    page = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    # Empty: everything before this moment is read, but for a record
                    # the CPU was writing just then.
                    last = before - WRITE_SKEW
                    break
                except OSError:  # an offline CPU's buffer (ENODEV): nothing to wait for
                    last = before - WRITE_SKEW
                    break
                if not page:
                    last = before - WRITE_SKEW
                    break
                try:
                    res = decode_page(page, self.layout)
                except ValueError:
                    self.bad_pages += 1
                    continue
                new.extend(res.records)
                last = res.last_ns / 1e9
            else:
                more = True
            reached.append(last)
        self._more = more
        upto = min(reached)
        records = self._held + new if self._held else new
        records.sort(key=_mono)
        cut = bisect_right(records, upto, key=_mono)
        self._held = records[cut:]
        self.upto = max(self.upto, upto)
        return records[:cut] if self._held else records

    def pending(self) -> bool:
        """Whether a buffer still held records when ``read`` stopped."""
        return self._more

    def overruns(self) -> int:
        """Events the ring buffer lost because we read too slowly (all CPUs)."""
        total = self.bad_pages
        for stats in (self.path / "per_cpu").glob("cpu*/stats"):
            with contextlib.suppress(OSError, ValueError):
                for line in stats.read_text().splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split()[1])
        return total

    def close(self) -> None:
        """Disable the event and remove the instance."""
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        with contextlib.suppress(OSError):
            self._write(f"{EVENT}/enable", "0")
        with contextlib.suppress(OSError):
            self.path.rmdir()
        reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper.stdin is not None:
            reaper.stdin.close()  # it finds the instance gone and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(1)


def _mono(rec: StateChange) -> float:
    return rec.mono


def saved_comm(pid: int) -> str | None:
    """The name tracefs remembered for ``pid`` (``saved_cmdlines``), once the task is gone."""
    with contextlib.suppress(OSError):
        for line in (TRACEFS / "saved_cmdlines").read_text().splitlines():
            num, _, comm = line.partition(" ")
            if num == str(pid):
                return comm.strip() or None
    return None


#: Run beside a watcher: when its pipe closes (the watcher exited, even by SIGKILL, which
#: runs no cleanup), it disables and removes the watcher's instance, whose buffers (16 MiB
#: a CPU) would otherwise stay allocated and recording until the next watcher starts.
_REAPER = """
import os, sys, time
sys.stdin.buffer.read()
path = sys.argv[1]
try:
    with open(os.path.join(path, "events/sock/inet_sock_set_state/enable"), "w") as f:
        f.write("0")
except OSError:
    pass
# The watcher's own files in the instance close as its process exits, maybe just after
# the pipe did: the instance is busy until then.
for _ in range(100):
    try:
        os.rmdir(path)
        break
    except FileNotFoundError:
        break
    except OSError:
        time.sleep(0.05)
"""


def _start_reaper(path: Path) -> subprocess.Popen[bytes] | None:
    """A process that removes ``path`` once this one is gone (None if none could start)."""
    import sys  # noqa: PLC0415 - tracefs sessions only

    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-c", _REAPER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's hangup must not take it down first
            close_fds=True,
        )
    except OSError:
        return None
