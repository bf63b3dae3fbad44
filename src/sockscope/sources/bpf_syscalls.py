"""Thin I/O: the ``bpf(2)`` and ``perf_event_open(2)`` system calls, through ctypes.

Each command's ``union bpf_attr`` member (``include/uapi/linux/bpf.h``) is packed by hand
into a zeroed buffer: the kernel refuses a non-zero byte past the fields it knows, so
the same buffer works on older kernels as long as we leave the newer fields zero.
Pointers in an attribute are the addresses of ctypes buffers kept alive for the call.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import struct

from sockscope._namedtuple import NamedTuple

#: (bpf, perf_event_open, membarrier) per machine (arch/*/include/uapi/asm/unistd*.h,
#: include/uapi/asm-generic/unistd.h for aarch64).
SYSCALLS = {"x86_64": (321, 298, 324), "aarch64": (280, 241, 283)}

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_LINK_CREATE = 28
BPF_ENABLE_STATS = 32
# enum bpf_map_type
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_TRACEPOINT = 5  # enum bpf_prog_type
BPF_PERF_EVENT = 41  # enum bpf_attach_type: a link on a perf event
BPF_STATS_RUN_TIME = 0
BPF_ANY = 0
BPF_OBJ_NAME_LEN = 16
ATTR_SIZE = 144  # covers every command used here; the rest stays zero
# include/uapi/linux/perf_event.h
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE_VER5 = 112  # known to every kernel with a BPF ring buffer
PERF_EVENT_IOC_ENABLE = 0x2400
# struct bpf_prog_info: where the fields read here sit
PROG_INFO_SIZE = 232
PROG_INFO = {"id": (4, "I"), "run_time_ns": (192, "Q"), "run_cnt": (200, "Q")}
PROG_INFO |= {"recursion_misses": (208, "Q"), "verified_insns": (216, "I")}
PROG_NAME_AT = 64
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1

_libc: ctypes.CDLL | None = None


class BpfSyscallError(OSError):
    """A bpf() or perf_event_open() call failed; ``log`` is the verifier's, if any."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.log = log


class ProgInfo(NamedTuple):
    id: int
    name: str
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int


def syscall_numbers(machine: str | None = None) -> tuple[int, int, int]:
    """(bpf, perf_event_open, membarrier) for this machine; ``OSError`` elsewhere."""
    machine = machine or platform.machine()
    numbers = SYSCALLS.get(machine)
    if numbers is None:
        raise OSError(errno.ENOSYS, f"no bpf() system call numbers for {machine} (known: x86_64, aarch64)")
    return numbers


def _syscall(number: int, *args: object) -> int:
    global _libc  # noqa: PLW0603 - loaded once, on first use (ctypes is slow to load)
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    ret: int = _libc.syscall(number, *args)
    return ret


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    """bpf(cmd, &attr, sizeof attr); raises ``BpfSyscallError``."""
    ret = _syscall(syscall_numbers()[0], ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        raise BpfSyscallError(ctypes.get_errno(), what)
    return ret


def _attr(fmt: str, *values: object, at: int = 0) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(fmt, buf, at, *values)
    return buf


def _addr(buf: ctypes.Array[ctypes.c_char] | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _name(name: str) -> bytes:
    return name.encode()[: BPF_OBJ_NAME_LEN - 1]


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, name: str) -> int:
    """A new map's fd (close-on-exec, as every bpf() fd)."""
    attr = _attr("<IIIII", map_type, key_size, value_size, max_entries, 0)
    struct.pack_into("16s", attr, 28, _name(name))
    return bpf(BPF_MAP_CREATE, attr, f"creating map {name}")


def _elem(cmd: int, fd: int, key: bytes | None, value: ctypes.Array[ctypes.c_char] | None, flags: int) -> int:
    k = ctypes.create_string_buffer(key, len(key)) if key is not None else None
    attr = _attr("<IxxxxQQQ", fd, _addr(k), _addr(value), flags)
    return bpf(cmd, attr, "map element")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under ``key``, or None if there is none."""
    value = ctypes.create_string_buffer(value_size)
    try:
        _elem(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0)
    except BpfSyscallError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return value.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _elem(BPF_MAP_UPDATE_ELEM, fd, key, ctypes.create_string_buffer(value, len(value)), flags)


def map_delete(fd: int, key: bytes) -> bool:
    """Whether there was such a key."""
    try:
        _elem(BPF_MAP_DELETE_ELEM, fd, key, None, 0)
    except BpfSyscallError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def map_keys(fd: int, key_size: int, limit: int = 1 << 20) -> list[bytes]:
    """Every key (``BPF_MAP_GET_NEXT_KEY`` from none), at most ``limit``."""
    keys: list[bytes] = []
    nxt = ctypes.create_string_buffer(key_size)
    while len(keys) < limit:
        try:
            _elem(BPF_MAP_GET_NEXT_KEY, fd, keys[-1] if keys else None, nxt, 0)
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:
                break
            raise
        keys.append(nxt.raw)
    return keys


#: The verifier gives up with EAGAIN when a signal arrives while it works (a terminal
#: resized, a child exited, a profiler's sampling): the load is tried again, as libbpf does.
LOAD_ATTEMPTS = 5


def prog_load(prog_type: int, insns: bytes, license: str, name: str, log_size: int = 1 << 22) -> int:
    """A loaded program's fd. On a refusal the load is repeated with the verifier's log
    on, and ``BpfSyscallError.log`` holds it."""
    try:
        return _load_retrying(prog_type, insns, license, name, None)
    except BpfSyscallError as first:
        log = ctypes.create_string_buffer(log_size)
        try:
            return _load_retrying(prog_type, insns, license, name, log)
        except BpfSyscallError as exc:
            text = log.value.decode(errors="replace")
            raise BpfSyscallError(
                exc.errno or first.errno or errno.EINVAL, "loading the program", text
            ) from None


def _load_retrying(
    prog_type: int, insns: bytes, license: str, name: str, log: ctypes.Array[ctypes.c_char] | None
) -> int:
    for attempt in range(LOAD_ATTEMPTS):
        try:
            return _prog_load(prog_type, insns, license, name, log)
        except BpfSyscallError as exc:
            if exc.errno != errno.EAGAIN or attempt == LOAD_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _prog_load(
    prog_type: int, insns: bytes, license: str, name: str, log: ctypes.Array[ctypes.c_char] | None
) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    level, size = (1, len(log)) if log is not None else (0, 0)
    attr = _attr("<IIQQIIQ", prog_type, len(insns) // 8, _addr(code), _addr(lic), level, size, _addr(log))
    struct.pack_into("16s", attr, 48, _name(name))
    return bpf(BPF_PROG_LOAD, attr, "loading the program")


def prog_info(fd: int) -> ProgInfo:
    info = ctypes.create_string_buffer(PROG_INFO_SIZE)
    bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("<IIQ", fd, PROG_INFO_SIZE, _addr(info)), "program info")
    values = {key: struct.unpack_from("<" + code, info, at)[0] for key, (at, code) in PROG_INFO.items()}
    name = info.raw[PROG_NAME_AT : PROG_NAME_AT + BPF_OBJ_NAME_LEN].split(b"\0", 1)[0].decode()
    return ProgInfo(name=name, **values)


def prog_info_by_id(prog_id: int) -> ProgInfo | None:
    """The info of a loaded program (None if it went meanwhile)."""
    try:
        fd = bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", prog_id), "program by id")
    except BpfSyscallError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


def enable_stats() -> int:
    """An fd that keeps run-time statistics (run_time_ns, run_cnt) on while it is open."""
    return bpf(BPF_ENABLE_STATS, _attr("<I", BPF_STATS_RUN_TIME), "enabling BPF statistics")


def prog_ids() -> list[int]:
    """The ids of every program loaded in the kernel."""
    ids: list[int] = []
    while True:
        attr = _attr("<I", ids[-1] if ids else 0)
        try:
            bpf(BPF_PROG_GET_NEXT_ID, attr, "listing programs")
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:
                return ids
            raise
        ids.append(struct.unpack_from("<I", attr, 4)[0])


def link_perf_event(prog_fd: int, perf_fd: int) -> int:
    """Attach the program to a perf event with a BPF link (its fd); closing the link's
    fd detaches it."""
    attr = _attr("<IIII", prog_fd, perf_fd, BPF_PERF_EVENT, 0)
    return bpf(BPF_LINK_CREATE, attr, "attaching the program")


def perf_event_open_tracepoint(tracepoint_id: int) -> int:
    """A perf event on a tracepoint (all tasks, CPU 0: a program attached to it runs on
    every CPU, since tracepoint programs hang off the event's call, not the CPU)."""
    attr = ctypes.create_string_buffer(PERF_ATTR_SIZE_VER5)
    # struct perf_event_attr: type, size, config; no sampling (the program returns 0,
    # so the event never records a sample of its own)
    struct.pack_into("<IIQ", attr, 0, PERF_TYPE_TRACEPOINT, len(attr), tracepoint_id)
    number = syscall_numbers()[1]
    fd = _syscall(number, attr, ctypes.c_int(-1), ctypes.c_int(0), ctypes.c_int(-1), PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise BpfSyscallError(ctypes.get_errno(), "perf_event_open on the tracepoint")
    return fd


def perf_event_enable(fd: int) -> None:
    fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)


def memory_barrier() -> None:
    """A full barrier on this CPU, for reading the ring on weakly ordered machines
    (``membarrier`` runs ``smp_mb()`` in the caller before and after its work)."""
    number = syscall_numbers()[2]
    if _syscall(number, ctypes.c_int(MEMBARRIER_CMD_GLOBAL_EXPEDITED), ctypes.c_int(0)) < 0:
        raise BpfSyscallError(ctypes.get_errno(), "membarrier")
