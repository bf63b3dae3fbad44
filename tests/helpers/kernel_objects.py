"""What a sockscope process leaves in the kernel: eBPF programs and tracefs instances."""

from __future__ import annotations

import time
from pathlib import Path

from sockscope.sources import bpf_syscalls as sc


def sockscope_programs() -> set[int]:
    """Ids of the loaded eBPF programs sockscope names its own."""
    out = set()
    for prog_id in sc.prog_ids():
        info = sc.prog_info_by_id(prog_id)
        if info is not None and info.name == "sockscope":
            out.add(prog_id)
    return out


def trace_instance(pid: int) -> Path:
    """The tracefs instance a watcher with this pid would make."""
    return Path(f"/sys/kernel/tracing/instances/sockscope-{pid}")


def left_behind(before: set[int], pid: int, wait: float = 3.0) -> list[str]:
    """What a finished process ``pid`` left: programs not in ``before``, its tracefs
    instance. The kernel frees programs a moment after their last fd closes."""
    deadline = time.monotonic() + wait
    while True:
        found = [f"eBPF program {i}" for i in sorted(sockscope_programs() - before)]
        if trace_instance(pid).exists():
            found.append(f"tracefs instance {trace_instance(pid)}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
