"""What a process spent over a window, and what the BPF programs spent in the kernel.

A process's CPU: user and system time from ``/proc/PID/stat`` (clock ticks, 10 ms
each) for the split, and the total from the schedstat of each of its threads
(``/proc/PID/task/TID/schedstat``, nanoseconds) for the figure that is judged. Both cover
every thread of the process: ``/proc/PID/schedstat`` alone is its main thread's.

The BPF programs' run time: ``BPF_ENABLE_STATS`` turns on ``run_time_ns`` and
``run_cnt`` for every program while its fd is open; a watcher's programs are the ones
that appeared after it was launched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from sockscope.sources import bpf_syscalls as sc

CLK_TCK = os.sysconf("SC_CLK_TCK")


class CpuTimes(NamedTuple):
    """Seconds of CPU: user and system (ticks' precision) and their total (schedstat)."""

    user: float
    system: float
    total: float

    def __sub__(self, other: object) -> CpuTimes:
        assert isinstance(other, CpuTimes)
        return CpuTimes(self.user - other.user, self.system - other.system, self.total - other.total)


ZERO = CpuTimes(0.0, 0.0, 0.0)


def parse_stat(text: str, clk_tck: int = CLK_TCK) -> tuple[float, float]:
    """(utime, stime) in seconds from a ``/proc/PID/stat`` line.

    The command name (field 2) may hold spaces and parentheses: the fields are counted
    from the last ``)``; utime and stime are fields 14 and 15.
    """
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / clk_tck, int(fields[12]) / clk_tck


def parse_schedstat(text: str) -> float:
    """Seconds on the CPU from ``/proc/PID/schedstat`` (its first number, in ns)."""
    return int(text.split(maxsplit=1)[0]) / 1e9


def read_cpu(pid: int) -> CpuTimes | None:
    """The CPU ``pid`` has used so far (None once it is gone)."""
    try:
        user, system = parse_stat(Path(f"/proc/{pid}/stat").read_text())
        total = sum(
            parse_schedstat(task.read_text()) for task in Path(f"/proc/{pid}/task").glob("*/schedstat")
        )
    except (OSError, ValueError, IndexError):
        return None
    return CpuTimes(user, system, total)


def parse_proc_stat_busy(text: str) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``'s first line."""
    values = [int(x) for x in text.split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def read_host_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the host so far; two readings give its load between."""
    return parse_proc_stat_busy(Path("/proc/stat").read_text())


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all CPUs busy between two ``read_host_busy`` readings."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


# ----------------------------------------------------------------------------- BPF


@contextmanager
def bpf_stats() -> Iterator[None]:
    """BPF run-time statistics on for the body (for every program on the host)."""
    fd = sc.enable_stats()
    try:
        yield
    finally:
        os.close(fd)


def program_ids() -> set[int]:
    """The ids of the BPF programs loaded now."""
    return set(sc.prog_ids())


class BpfTime(NamedTuple):
    """The run time, run count and skipped runs of some BPF programs, summed.

    A run is skipped (``recursion_misses``) when the tracepoint fires while a BPF
    program is already running on that CPU: the kernel drops it, and the program never
    knows. sockscope reports its own as lost; for tcplife this is the only count.
    """

    ns: int
    runs: int
    skipped: int = 0

    def __sub__(self, other: object) -> BpfTime:
        assert isinstance(other, BpfTime)
        return BpfTime(self.ns - other.ns, self.runs - other.runs, self.skipped - other.skipped)


NO_BPF = BpfTime(0, 0)


def read_bpf_time(ids: Iterable[int]) -> BpfTime:
    """The summed run time of programs ``ids`` (the ones gone meanwhile count 0)."""
    ns = runs = skipped = 0
    for prog_id in ids:
        info = sc.prog_info_by_id(prog_id)
        if info is not None:
            ns, runs, skipped = ns + info.run_time_ns, runs + info.run_cnt, skipped + info.recursion_misses
    return BpfTime(ns, runs, skipped)


def bpf_links_of(pid: int) -> int:
    """How many BPF links ``pid`` holds open (an attached program has one)."""
    count = 0
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    try:
        entries = list(fdinfo.iterdir())
    except OSError:
        return 0
    for entry in entries:
        try:
            count += "\nlink_type:" in "\n" + entry.read_text()
        except OSError:
            continue
    return count
