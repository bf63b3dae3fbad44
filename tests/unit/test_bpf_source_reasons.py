"""The eBPF source's pure-ish edges: why it cannot run, told in one line."""

from __future__ import annotations

import errno
import struct

import pytest

from sockscope.sources import bpf
from sockscope.sources import bpf_syscalls as sc
from sockscope.wire.ebpf.maps import parse_cpu_count, parse_percpu_u64


def test_system_call_numbers_per_machine_and_a_clear_refusal_elsewhere() -> None:
    assert sc.syscall_numbers("x86_64") == (321, 298, 324)
    assert sc.syscall_numbers("aarch64") == (280, 241, 283)
    with pytest.raises(OSError, match="no bpf\\(\\) system call numbers for riscv64"):
        sc.syscall_numbers("riscv64")


def test_kernel_versions_compare_by_major_and_minor() -> None:
    assert bpf._kernel_version("6.18.44-fc-v1272") == (6, 18)
    assert bpf._kernel_version("5.4.0-150-generic") < bpf.MIN_KERNEL <= bpf._kernel_version("5.8.0")
    assert bpf._kernel_version("weird") == (0, 0)


def test_a_verifier_refusal_is_told_in_one_line_from_the_logs_end() -> None:
    log = "func#0 @0\n0: (95) exit\nR0 !read_ok\nprocessed 1 insns (limit 1000000)\n\n"
    line = bpf._refusal(sc.BpfSyscallError(errno.EACCES, "loading", log))
    assert line == (
        "the kernel's verifier refused the eBPF program: "
        "func#0 @0 | 0: (95) exit | R0 !read_ok | processed 1 insns (limit 1000000)"
    )
    assert "Permission denied" in bpf._refusal(sc.BpfSyscallError(errno.EACCES, "loading"))


def test_a_load_interrupted_by_signals_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier returns EAGAIN when a signal is pending (a profiler's sampling did it):
    the load is repeated, and after LOAD_ATTEMPTS the error says what happened."""
    calls: list[int] = []

    def interrupted_twice(*args: object) -> int:
        calls.append(1)
        if len(calls) <= 2:
            raise sc.BpfSyscallError(errno.EAGAIN, "loading the program")
        return 42

    monkeypatch.setattr(sc, "_prog_load", interrupted_twice)
    assert sc.prog_load(sc.BPF_PROG_TYPE_TRACEPOINT, b"\0" * 8, "GPL", "x") == 42
    assert len(calls) == 3

    def always_interrupted(*args: object) -> int:
        raise sc.BpfSyscallError(errno.EAGAIN, "loading the program")

    monkeypatch.setattr(sc, "_prog_load", always_interrupted)
    with pytest.raises(sc.BpfSyscallError) as caught:
        sc.prog_load(sc.BPF_PROG_TYPE_TRACEPOINT, b"\0" * 8, "GPL", "x")
    line = bpf._refusal(caught.value)
    assert "interrupted by signals 5 times" in line and "\n" not in line


def test_bpf_available_gives_none_or_one_line() -> None:
    reason = bpf.bpf_available()
    assert reason is None or (reason and "\n" not in reason)


def test_possible_cpus_counts_ranges() -> None:
    assert [parse_cpu_count(t) for t in ("0-3\n", "0\n", "0-1,4-5\n")] == [4, 1, 4]
    assert bpf._possible_cpus() >= 1


def test_per_cpu_counters_are_summed() -> None:
    assert parse_percpu_u64(struct.pack("<QQQ", 1, 2, 40), 3) == 43
