"""Pure: the layouts of the program's maps, shared by the program and its loader.

- ``conns`` (HASH): key the ``struct sock`` address (u64) -> ``CONN_VALUE``: what is known
  of a live connection (birth, owner, namespace). Added at birth, removed at CLOSE.
- ``listeners`` (HASH): ``LISTENER_KEY`` (netns inode, local port, AF_*) ->
  ``LISTENER_VALUE`` (owner, how many listening sockets share the key). The owner names
  the connections the kernel accepts on it until their own process acts on them.
- ``rb`` (RINGBUF): the records (``records.py``).
- ``stats`` (PERCPU_ARRAY of u64): what could not be recorded, ``STAT_*``.
- ``config`` (ARRAY, one ``CONFIG_VALUE``): the namespace to watch, and whether the port
  spans apply (the self-test's connection must pass them), changeable while it runs.

All little-endian and aligned: the program reads them with plain loads.
"""

from __future__ import annotations

import struct

from sockscope._namedtuple import NamedTuple

AF_INET, AF_INET6 = 2, 10

# struct conn { u64 start_ns; u32 pid; u32 flags; char comm[16]; u32 netns; u32 pad; }
CONN_KEY = struct.Struct("<Q")
CONN_VALUE = struct.Struct("<QII16sI4x")
CONN_START, CONN_PID, CONN_FLAGS, CONN_COMM, CONN_NETNS = 0, 8, 12, 16, 32

# struct listener_key { u32 netns; u16 port; u16 family; }
LISTENER_KEY = struct.Struct("<IHH")
# struct listener { u32 pid; u32 count; char comm[16]; }
LISTENER_VALUE = struct.Struct("<II16s")
LISTENER_PID, LISTENER_COUNT, LISTENER_COMM = 0, 4, 8

# struct config { u32 netns; u32 all_ports; }: netns 0 keeps every namespace; all_ports
# non-zero lets every port's records out whatever spans the program was built with.
CONFIG_KEY = struct.Struct("<I")
CONFIG_VALUE = struct.Struct("<II")
CONFIG_NETNS, CONFIG_ALL_PORTS = 0, 4

STAT_RESERVE_FAILED = 0  # bpf_ringbuf_reserve found no room: a record lost
STAT_MAP_FULL = 1  # conns refused an entry: that connection's start and owner lost
STAT_LISTENER_MAP_FULL = 2  # listeners refused an entry: its accepted connections unnamed
STAT_CLOSE_WITHOUT_ENTRY = 3  # a CLOSE of a socket never seen before (opened earlier)
N_STATS = 4
U64 = struct.Struct("<Q")

COMM_LEN = 16


class ConnEntry(NamedTuple):
    start_ns: int
    pid: int
    flags: int
    comm: str
    netns: int


def build_listener_key(netns: int, family: int, port: int) -> bytes:
    """The ``listeners`` key of a listener on ``port``; ``family`` is 4 or 6."""
    return LISTENER_KEY.pack(netns, port, AF_INET if family == 4 else AF_INET6)


def build_listener_value(pid: int, comm: str, count: int = 1) -> bytes:
    return LISTENER_VALUE.pack(pid, count, comm.encode()[: COMM_LEN - 1])


def parse_listener_value(data: bytes) -> tuple[int, int, str]:
    """(pid, count, comm) of a ``listeners`` value."""
    pid, count, comm = LISTENER_VALUE.unpack_from(data)
    return pid, count, comm.split(b"\0", 1)[0].decode(errors="replace")


def parse_conn_value(data: bytes) -> ConnEntry:
    start, pid, flags, comm, netns = CONN_VALUE.unpack_from(data)
    return ConnEntry(start, pid, flags, comm.split(b"\0", 1)[0].decode(errors="replace"), netns)


def build_config(netns: int, *, all_ports: bool = False) -> bytes:
    return CONFIG_VALUE.pack(netns, int(all_ports))


def parse_cpu_count(text: str) -> int:
    """How many CPUs a list like ``/sys/devices/system/cpu/possible``'s names ("0-3,8")."""
    count = 0
    for span in text.strip().split(","):
        first, _, last = span.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def parse_percpu_u64(data: bytes, ncpus: int) -> int:
    """The sum over CPUs of a ``PERCPU_ARRAY`` u64 value (one 8-byte slot per possible CPU)."""
    return sum(U64.unpack_from(data, 8 * cpu)[0] for cpu in range(ncpus))
