"""The tracepoint program on recorded layouts, run in the interpreter (tests/helpers/bpf_vm.py)
with fake sockets: what its unit tests and golden fixture share."""

from __future__ import annotations

import json
import struct
from ipaddress import ip_address
from pathlib import Path

from sockscope.wire.ebpf import maps as m
from sockscope.wire.ebpf.codegen import MapFds
from sockscope.wire.ebpf.layout import KernelOffsets, parse_ctx_layout
from sockscope.wire.ebpf.program import ProgramConfig, build_program
from sockscope.wire.ebpf.records import BpfRecord, parse_record
from tests.helpers.bpf_vm import ARRAY, HASH, PERCPU_ARRAY, RINGBUF, FakeMap, Vm

FIXTURES = Path(__file__).parents[1] / "fixtures"
CTX = parse_ctx_layout((FIXTURES / "ftrace" / "format.txt").read_text())
OFF = KernelOffsets(**json.loads((FIXTURES / "btf" / "expected.json").read_text())["offsets"])
FDS = MapFds(conns=3, listeners=4, rb=5, stats=6, config=7)
NETNS = 0xF000_0001  # past 2**31, as real inode numbers are
SOCK_SIZE = 2304  # struct tcp_sock on the fixture's kernel
SOCKS, NETS = 0xFFFF_8880_0000_0000, 0xFFFF_8881_0000_0000


class Sock:
    """A fake ``struct tcp_sock`` in kernel memory, its namespace behind ``skc_net``."""

    def __init__(self, h: Harness, netns: int, port: int, peer: int, family: int = 4) -> None:
        self.addr = SOCKS + 0x1000 * len(h.vm.kernel)
        self.sport, self.dport, self.family = port, peer, family
        self.mem = bytearray(SOCK_SIZE)
        net = h.net(netns)
        struct.pack_into("<Q", self.mem, OFF.skc_net, net)
        h.vm.kernel[self.addr] = self.mem

    def counters(
        self, *, sent: int, acked: int, received: int, srtt8: int, retrans: int, cookie: int
    ) -> None:
        for off, fmt, value in (
            (OFF.bytes_sent, "Q", sent), (OFF.bytes_acked, "Q", acked), (OFF.bytes_received, "Q", received),
            (OFF.srtt_us, "I", srtt8), (OFF.total_retrans, "I", retrans), (OFF.skc_cookie, "Q", cookie),
        ):  # fmt: skip
            struct.pack_into("<" + fmt, self.mem, off, value)


class Harness:
    """One built program, its fake maps, and a way to feed it transitions."""

    def __init__(
        self, config: ProgramConfig | None = None, *, netns: int = NETNS, max_conns: int = 64
    ) -> None:
        self.program = build_program(CTX, OFF, FDS, config or ProgramConfig())
        maps = {
            FDS.conns: FakeMap(HASH, 8, m.CONN_VALUE.size, max_conns),
            FDS.listeners: FakeMap(HASH, 8, m.LISTENER_VALUE.size, 16),
            FDS.rb: FakeMap(RINGBUF, 0, 0, 0),
            FDS.stats: FakeMap(PERCPU_ARRAY, 4, 8, m.N_STATS),
            FDS.config: FakeMap(ARRAY, 4, 8, 1),
        }
        self.vm = Vm(maps)
        self._nets: dict[int, int] = {}
        self.set_netns(netns)

    def net(self, inode: int) -> int:
        """The address of a fake ``struct net`` with this inode number."""
        if inode not in self._nets:
            mem = bytearray(OFF.ns_inum + 8)
            struct.pack_into("<I", mem, OFF.ns_inum, inode)
            self._nets[inode] = NETS + 0x1000 * len(self._nets)
            self.vm.kernel[self._nets[inode]] = mem
        return self._nets[inode]

    def set_netns(self, inode: int, *, all_ports: bool = False) -> None:
        addr = self.vm.maps[FDS.config].entries[m.CONFIG_KEY.pack(0)]
        self.vm.write(addr, m.build_config(inode, all_ports=all_ports))

    def sock(self, port: int, peer: int = 0, *, netns: int = NETNS, family: int = 4) -> Sock:
        return Sock(self, netns, port, peer, family)

    def step(
        self, s: Sock, old: int, new: int, *, pid: int = 0, comm: str = "", protocol: int = 6
    ) -> list[BpfRecord]:
        """One transition of ``s``, run by task ``pid``/``comm`` (0: an interrupt's
        borrowed task); the records it wrote."""
        self.vm.pid_tgid, self.vm.comm = (pid << 32) | (pid + 7), comm.encode()
        before = len(self.vm.submitted)
        assert self.vm.run(self.program.insns, ctx_record(s, old, new, protocol)) == 0
        return [parse_record(data) for data, _ in self.vm.submitted[before:]]

    def stats(self) -> list[int]:
        m_ = self.vm.maps[FDS.stats]
        return [
            struct.unpack("<Q", bytes(self.vm.region(m_.entries[struct.pack("<I", i)])))[0] for i in range(4)
        ]

    def conns(self) -> dict[int, m.ConnEntry]:
        values = self.vm.maps[FDS.conns].values(self.vm)
        return {struct.unpack("<Q", k)[0]: m.parse_conn_value(v) for k, v in values.items()}

    def listeners(self) -> dict[tuple[int, int, int], tuple[int, int, str]]:
        values = self.vm.maps[FDS.listeners].values(self.vm)
        return {m.LISTENER_KEY.unpack(k): m.parse_listener_value(v) for k, v in values.items()}


def ctx_record(s: Sock, old: int, new: int, protocol: int = 6) -> bytes:
    """The tracepoint's record for one transition, laid out as the fixture's format says."""
    rec = bytearray(72)
    local = ip_address("127.0.0.1" if s.family == 4 else "2001:db8::1").packed
    remote = ip_address("127.0.0.2" if s.family == 4 else "2001:db8::2").packed
    values = [
        (CTX.skaddr, "Q", s.addr), (CTX.oldstate, "i", old), (CTX.newstate, "i", new),
        (CTX.sport, "H", s.sport), (CTX.dport, "H", s.dport), (CTX.family, "H", 2 if s.family == 4 else 10),
        (CTX.protocol, "H", protocol),
    ]  # fmt: skip
    for off, fmt, value in values:
        struct.pack_into("<" + fmt, rec, off, value)
    if s.family == 4:
        rec[CTX.saddr : CTX.saddr + 4], rec[CTX.daddr : CTX.daddr + 4] = local, remote
        rec[CTX.saddr_v6 : CTX.saddr_v6 + 16] = b"\0" * 10 + b"\xff\xff" + local
        rec[CTX.daddr_v6 : CTX.daddr_v6 + 16] = b"\0" * 10 + b"\xff\xff" + remote
    else:
        rec[CTX.saddr_v6 : CTX.saddr_v6 + 16], rec[CTX.daddr_v6 : CTX.daddr_v6 + 16] = local, remote
    return bytes(rec)
