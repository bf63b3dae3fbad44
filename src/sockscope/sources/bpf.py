"""Thin I/O: the ``bpf`` event source. Loads the tracepoint program built in
``wire/ebpf/program.py``, attaches it to ``sock:inet_sock_set_state``, checks it with a
connection of its own, and reads its ring buffer.

Everything it holds is a file descriptor (maps, program, perf event, link): closing them
detaches and frees the program, and so does the kernel when the process dies, even by
SIGKILL. Nothing is pinned.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import time
from pathlib import Path
from types import TracebackType

from sockscope._namedtuple import NamedTuple
from sockscope.sources import bpf_syscalls as sc
from sockscope.sources.bpf_ring import RingReader
from sockscope.sources.bpf_selftest import (
    SelfTestError,
    await_closes,
    check_closes,
    is_probe_record,
    make_connection,
)
from sockscope.wire.ebpf import maps as m
from sockscope.wire.ebpf.btf import BtfError, parse_btf
from sockscope.wire.ebpf.codegen import MapFds
from sockscope.wire.ebpf.layout import CtxLayout, KernelOffsets, kernel_offsets, parse_ctx_layout
from sockscope.wire.ebpf.program import LICENSE, ProgramConfig, build_program, ports_pass
from sockscope.wire.ebpf.records import KIND_LISTEN, BpfRecord, Row
from sockscope.wire.ftrace import FormatError

VMLINUX = Path("/sys/kernel/btf/vmlinux")
LOCKDOWN = Path("/sys/kernel/security/lockdown")
TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
EVENT = "events/sock/inet_sock_set_state"
MIN_KERNEL = (5, 8)  # BPF_MAP_TYPE_RINGBUF
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
VERIFIER_LINES = 6  # of the verifier's log, in the error shown to the user
DEFAULT_MAX_CONNS = 65536  # ~6 MiB of kernel memory, preallocated
DEFAULT_MAX_LISTENERS = 8192
#: After the namespace filter changes, runs that read the old one have long finished
#: (a program runs for a microsecond, without being preempted).
SETTLE_SECONDS = 0.01


class BpfUnavailableError(Exception):
    """The eBPF source cannot run here; ``str()`` is one line saying why."""


class BpfCounters(NamedTuple):
    """What the program could not record, since it was loaded."""

    reserve_failed: int  # records lost: the ring buffer was full
    map_full: int  # connections whose start and owner were lost: conns was full
    listener_map_full: int  # listeners whose owner was lost (their children go unnamed)
    close_without_entry: int  # closes of sockets opened before the start (or refused)
    recursion_misses: int  # runs skipped: another program was running on that CPU


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split("-", maxsplit=1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def _capable() -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    caps = next((int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("CapEff:")), 0)
    both = (caps >> CAP_BPF) & 1 and (caps >> CAP_PERFMON) & 1
    return bool(both or (caps >> CAP_SYS_ADMIN) & 1)


def _tracefs() -> Path | None:
    found = next((root for root in TRACEFS_ROOTS if (root / EVENT / "format").exists()), None)
    if found is None and os.geteuid() == 0:
        # Not mounted here (``ip netns exec`` mounts a fresh /sys, without it): mount
        # it, as the tracefs source does; a failure leaves the reason to the caller.
        subprocess.run(
            ["mount", "-t", "tracefs", "nodev", str(TRACEFS_ROOTS[0])], capture_output=True, check=False
        )
        found = next((root for root in TRACEFS_ROOTS if (root / EVENT / "format").exists()), None)
    return found


def bpf_available() -> str | None:
    """None if the source can load here, else the reason, one line for the user."""
    try:
        sc.syscall_numbers()
    except OSError as exc:
        return f"eBPF source unavailable: {exc.strerror}"
    return _privileges() or _kernel_support()


def _privileges() -> str | None:
    if not _capable():
        return "eBPF needs root (CAP_BPF and CAP_PERFMON)"
    release = os.uname().release
    if _kernel_version(release) < MIN_KERNEL:
        return f"kernel {release} is older than 5.8 (no BPF ring buffer)"
    return None


def _kernel_support() -> str | None:
    try:
        if "[confidentiality]" in LOCKDOWN.read_text():
            return "kernel lockdown (confidentiality) forbids eBPF reads of kernel memory"
    except OSError:
        pass  # no lockdown LSM: nothing locked down
    if not VMLINUX.exists():
        return f"no BTF ({VMLINUX} missing: kernel built without CONFIG_DEBUG_INFO_BTF)"
    if _tracefs() is None:
        return "no tracefs with the sock:inet_sock_set_state tracepoint (is tracefs mounted?)"
    return None


def _possible_cpus() -> int:
    """CPUs a per-CPU map has a slot for (``/sys/devices/system/cpu/possible``: "0-3")."""
    return m.parse_cpu_count(Path("/sys/devices/system/cpu/possible").read_text())


def _own_netns() -> int:
    """The namespace sockets made by this thread live in."""
    return os.stat("/proc/thread-self/ns/net").st_ino


class BpfSource:
    """The loaded, self-tested, attached program and its ring buffer.

    ``netns_inode``: the namespace whose sockets are recorded (0: every one).
    ``ports``: (local?, lo, hi) spans as ``query.pushdown.pushdown(flt).ports`` gives them; records
    of other ports stay in the kernel (``port_filtered`` says whether they could).
    ``want_open``/``want_state``: also write OPEN and STATE records.
    Raises ``BpfUnavailableError`` with a one-line reason.
    """

    def __init__(
        self,
        *,
        netns_inode: int,
        families: tuple[int, ...] = (4, 6),
        ports: tuple[tuple[bool, int, int], ...] | None = None,
        want_open: bool = False,
        want_state: bool = False,
        ring_bytes: int = 8 << 20,
        max_conns: int = DEFAULT_MAX_CONNS,
        max_listeners: int = DEFAULT_MAX_LISTENERS,
        enable_stats: bool = False,
    ) -> None:
        reason = bpf_available()
        if reason is not None:
            raise BpfUnavailableError(reason)
        if ring_bytes < os.sysconf("SC_PAGE_SIZE") or ring_bytes & (ring_bytes - 1):
            raise ValueError(f"ring_bytes {ring_bytes} is not a power of 2 of at least a page")
        self._fds: list[int] = []
        self._ring: RingReader | None = None
        self._pending: list[BpfRecord] = []
        self.malformed_rows = 0  # rows read whole that did not decode (counted by the reader)
        self._seed_refused = 0
        self._ncpus = _possible_cpus()
        self._stats_fd: int | None = None
        config = self._config = ProgramConfig(frozenset(families), ports, want_open, want_state, ring_bytes)
        try:
            self._load(netns_inode, config, max_conns, max_listeners)
            if enable_stats:
                self._stats_fd = self._keep(sc.enable_stats())
        except BaseException:
            self.close()
            raise

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _load(self, netns: int, config: ProgramConfig, max_conns: int, max_listeners: int) -> None:
        ctx, offsets = _layouts()
        self.maps = self._create_maps(config.ring_bytes, max_conns, max_listeners)
        program = build_program(ctx, offsets, self.maps, config)
        self.port_filtered = program.port_filtered
        self.instructions = len(program.insns) // 8
        self._set_config(_own_netns(), all_ports=True)  # the self-test's connection is made here
        try:
            prog_fd = sc.prog_load(sc.BPF_PROG_TYPE_TRACEPOINT, program.insns, LICENSE, "sockscope")
        except sc.BpfSyscallError as exc:
            raise BpfUnavailableError(_refusal(exc)) from None
        self.prog_fd = self._keep(prog_fd)
        self._attach(ctx.event_id)
        self._ring = RingReader(self.maps.rb, config.ring_bytes)
        self._self_test(netns)

    def _create_maps(self, ring_bytes: int, max_conns: int, max_listeners: int) -> MapFds:
        specs = [
            (sc.BPF_MAP_TYPE_HASH, m.CONN_KEY.size, m.CONN_VALUE.size, max_conns, "ss_conns"),
            (sc.BPF_MAP_TYPE_HASH, m.LISTENER_KEY.size, m.LISTENER_VALUE.size, max_listeners, "ss_listeners"),
            (sc.BPF_MAP_TYPE_RINGBUF, 0, 0, ring_bytes, "ss_rb"),
            (sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, m.N_STATS, "ss_stats"),
            (sc.BPF_MAP_TYPE_ARRAY, m.CONFIG_KEY.size, m.CONFIG_VALUE.size, 1, "ss_config"),
        ]
        return MapFds(*(self._keep(_map_create(*spec)) for spec in specs))

    def _attach(self, event_id: int) -> None:
        try:
            perf_fd = self._keep(sc.perf_event_open_tracepoint(event_id))
            self._keep(sc.link_perf_event(self.prog_fd, perf_fd))
            sc.perf_event_enable(perf_fd)
        except OSError as exc:
            raise BpfUnavailableError(f"cannot attach to sock:inet_sock_set_state: {exc.strerror}") from None

    def _self_test(self, netns: int) -> None:
        own = _own_netns()
        try:
            probe = make_connection()
            records = await_closes(self._read_ring, probe, own)
            check_closes(records, probe, own)
        except (SelfTestError, OSError) as exc:
            raise BpfUnavailableError(f"eBPF self-test failed: {exc}") from None
        self._set_config(netns, all_ports=False)
        time.sleep(SETTLE_SECONDS)
        self._read_ring(records)
        # What came from the self-test, or from our own namespace while we tested in it,
        # is not the user's.
        self._pending = [r for r in records if not is_probe_record(r, probe, own) and self._wanted(r, netns)]

    def _wanted(self, r: BpfRecord, netns: int) -> bool:
        """Whether a record of the self-test's time (when the filters were open) passes
        the filters the program applies from now on."""
        if netns not in (0, r.netns):
            return False
        spans = self._config.ports
        return (
            r.kind == KIND_LISTEN
            or not self.port_filtered
            or spans is None
            or ports_pass(spans, r.sport, r.dport)
        )

    def _read_ring(self, out: list[BpfRecord]) -> int:
        return self._ring.read(out) if self._ring is not None else 0

    # -- the API ------------------------------------------------------------------------

    def _set_config(self, netns_inode: int, *, all_ports: bool) -> None:
        """Record only sockets of this namespace from now on (0: every namespace)."""
        value = m.build_config(netns_inode, all_ports=all_ports)
        sc.map_update(self.maps.config, m.CONFIG_KEY.pack(0), value)

    def fileno(self) -> int:
        """The ring buffer's fd: readable when the program forces a wake-up (the ring is
        a quarter full); otherwise read on a timer (~20 ms)."""
        return self.maps.rb

    def read(self, out: list[BpfRecord]) -> int:
        """Appends every record committed now, decoded, to ``out``; returns how many."""
        if self._pending:
            n = len(self._pending)
            out.extend(self._pending)
            self._pending = []
            return n + self._read_ring(out)
        return self._read_ring(out)

    def read_rows(self, rows: list[Row], records: list[BpfRecord]) -> int:
        """Appends every record committed now to ``rows`` undecoded (``records.ROW``), and
        any held back from the start's self-test to ``records``; returns how many."""
        n = 0
        if self._pending:
            n = len(self._pending)
            records += self._pending
            self._pending = []
        return n + (self._ring.read_rows(rows) if self._ring is not None else 0)

    def unreadable(self) -> int:
        """Records read that did not decode, or that the program discarded."""
        ring = self._ring
        return self.malformed_rows + (ring.malformed + ring.discarded if ring is not None else 0)

    def ring_backlog_max(self) -> int:
        """The most bytes found waiting in the ring at one read."""
        return self._ring.max_backlog if self._ring is not None else 0

    def ring_snapshot(self) -> tuple[int, int, bytes]:
        """(consumer, producer, data area): the ring's raw state (tools/record_ring_pages.py)."""
        if self._ring is None:
            raise ValueError("the source is closed")
        return self._ring.snapshot()

    def counters(self) -> BpfCounters:
        values = []
        for index in range(m.N_STATS):
            raw = sc.map_lookup(self.maps.stats, m.CONFIG_KEY.pack(index), 8 * self._ncpus)
            values.append(m.parse_percpu_u64(raw, self._ncpus) if raw else 0)
        values[m.STAT_LISTENER_MAP_FULL] += self._seed_refused
        misses = sc.prog_info(self.prog_fd).recursion_misses
        return BpfCounters(values[0], values[1], values[2], values[3], misses)

    def seed_listener(self, netns_inode: int, family: int, port: int, pid: int, comm: str) -> None:
        """A listener that existed before the start: its owner names what it accepts."""
        key = m.build_listener_key(netns_inode, family, port)
        old = sc.map_lookup(self.maps.listeners, key, m.LISTENER_VALUE.size)
        count = m.parse_listener_value(old)[1] + 1 if old else 1
        try:
            sc.map_update(self.maps.listeners, key, m.build_listener_value(pid, comm, count))
        except sc.BpfSyscallError:
            self._seed_refused += 1

    def run_stats(self) -> tuple[int, int] | None:
        """(run_time_ns, run_cnt) of the program, when BPF statistics are on."""
        if self._stats_fd is None and not _stats_sysctl():
            return None
        info = sc.prog_info(self.prog_fd)
        return info.run_time_ns, info.run_cnt

    def close(self) -> None:
        """Detach and free everything (idempotent)."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self) -> BpfSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _layouts() -> tuple[CtxLayout, KernelOffsets]:
    root = _tracefs()
    try:
        ctx = parse_ctx_layout((root or TRACEFS_ROOTS[0]).joinpath(EVENT, "format").read_text())
    except (OSError, FormatError) as exc:
        raise BpfUnavailableError(f"cannot read the tracepoint's format: {exc}") from None
    try:
        return ctx, kernel_offsets(parse_btf(VMLINUX.read_bytes()))
    except (OSError, BtfError) as exc:
        raise BpfUnavailableError(f"cannot read the kernel's BTF: {exc}") from None


def _map_create(map_type: int, key_size: int, value_size: int, entries: int, name: str) -> int:
    try:
        return sc.map_create(map_type, key_size, value_size, entries, name)
    except sc.BpfSyscallError as exc:
        if exc.errno != errno.EPERM:
            raise BpfUnavailableError(f"cannot create BPF map {name}: {exc.strerror}") from None
    # Kernels before 5.11 charge maps to RLIMIT_MEMLOCK (64 KiB by default), not memcg.
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    try:
        return sc.map_create(map_type, key_size, value_size, entries, name)
    except sc.BpfSyscallError as exc:
        raise BpfUnavailableError(f"cannot create BPF map {name}: {exc.strerror}") from None


def _refusal(exc: sc.BpfSyscallError) -> str:
    """The verifier's complaint, in the last lines of its log (where it says what failed)."""
    if exc.errno == errno.EAGAIN:
        # Its log then ends mid-program, with no complaint: signals kept interrupting it.
        return (
            f"the kernel's verifier was interrupted by signals {sc.LOAD_ATTEMPTS} times in a row"
            " (a profiler or debugger attached?): try again"
        )
    lines = [ln for ln in exc.log.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-VERIFIER_LINES:]) if lines else exc.strerror
    return f"the kernel's verifier refused the eBPF program: {tail}"


def _stats_sysctl() -> bool:
    try:
        return Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip() == "1"
    except OSError:
        return False
