"""A small eBPF interpreter for the tracepoint program's unit tests (no kernel, no root).

It runs the instructions the builder emits with the helpers the program calls, on
fake maps, a fake ring buffer and fake kernel memory, so the program's logic (births,
owners, filters, counters) is tested on any machine. It checks what the verifier would
reject at run time in the paths a test takes: unknown opcodes, memory outside any
region, a reservation never submitted, r0 unset at exit. The kernel's verifier is the
final judge; the root tests load the same bytes into it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from sockscope.wire.ebpf import asm
from sockscope.wire.ebpf.asm import Insn, parse_insns

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
E2BIG, ENOENT, EFAULT = 7, 2, 14
STACK, CTX, MAPS, HEAP = 0x1000_0000, 0x2000_0000, 0x5000_0000, 0x6000_0000
HASH, ARRAY, PERCPU_ARRAY, RINGBUF = 1, 2, 6, 27
SIZES = {asm.BPF_B: 1, asm.BPF_H: 2, asm.BPF_W: 4, asm.BPF_DW: 8}


class VmError(Exception):
    """The program did something the kernel would not allow."""


@dataclass
class FakeMap:
    kind: int
    key_size: int
    value_size: int
    max_entries: int
    entries: dict[bytes, int] = field(default_factory=dict)  # key -> value address

    def values(self, vm: Vm) -> dict[bytes, bytes]:
        return {k: bytes(vm.region(a)) for k, a in self.entries.items()}


@dataclass
class Vm:
    maps: dict[int, FakeMap]
    kernel: dict[int, bytearray] = field(default_factory=dict)  # address -> memory
    now: int = 1_000_000
    pid_tgid: int = 0
    comm: bytes = b""
    ring_full: bool = False
    ring_avail: int = 0
    submitted: list[tuple[bytes, int]] = field(default_factory=list)  # (record, flags)
    _regions: dict[int, bytearray] = field(default_factory=dict)
    _next: int = HEAP
    _reserved: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for m in self.maps.values():
            if m.kind in (ARRAY, PERCPU_ARRAY):
                for i in range(m.max_entries):
                    m.entries[struct.pack("<I", i)] = self.alloc(bytearray(m.value_size))

    def alloc(self, mem: bytearray) -> int:
        base = self._next
        self._next += max(len(mem), 1) + 0x1000 - max(len(mem), 1) % 0x1000
        self._regions[base] = mem
        return base

    def region(self, addr: int) -> bytearray:
        return self._regions[addr]

    def _locate(self, addr: int, size: int) -> tuple[bytearray, int]:
        for base, mem in self._regions.items():
            if base <= addr and addr + size <= base + len(mem):
                return mem, addr - base
        raise VmError(f"access of {size} bytes at {addr:#x} outside any region")

    def read(self, addr: int, size: int) -> bytes:
        mem, off = self._locate(addr, size)
        return bytes(mem[off : off + size])

    def write(self, addr: int, data: bytes) -> None:
        mem, off = self._locate(addr, len(data))
        mem[off : off + len(data)] = data

    # -- running ------------------------------------------------------------------------

    def run(self, program: bytes, ctx: bytes, max_steps: int = 100_000) -> int:
        """Runs the program once on a tracepoint record; returns r0."""
        insns = parse_insns(program)
        stack = bytearray(512)
        self._regions[STACK] = stack
        self._regions[CTX] = bytearray(ctx)
        regs = [0] * 11
        regs[1], regs[10] = CTX, STACK + 512
        pc = steps = 0
        while True:
            steps += 1
            if steps > max_steps:
                raise VmError("too many steps")
            insn = insns[pc]
            cls = insn.code & 0x07
            if cls in (asm.BPF_ALU, asm.BPF_ALU64):
                self._alu(insn, regs)
            elif cls in (asm.BPF_JMP, asm.BPF_JMP32):
                op = insn.code & 0xF0
                if op == asm.BPF_EXIT:
                    if self._reserved:
                        raise VmError("exit with a ring reservation neither submitted nor discarded")
                    return regs[0]
                if op == asm.BPF_CALL:
                    regs[0] = self._call(insn.imm, regs) & MASK64
                    regs[1:6] = [0xDEAD] * 5  # clobbered
                elif self._taken(insn, regs, cls == asm.BPF_JMP32):
                    pc += int(insn.off)
            elif cls == asm.BPF_LD:
                regs[insn.dst] = self._ld_imm64(insn, insns[pc + 1])
                pc += 1
            else:
                self._memory(insn, regs)
            pc += 1

    def _ld_imm64(self, insn: Insn, nxt: Insn) -> int:
        if insn.code != asm.BPF_LD | asm.BPF_DW | asm.BPF_IMM:
            raise VmError(f"opcode {insn.code:#x}")
        if insn.src == asm.BPF_PSEUDO_MAP_FD:
            if insn.imm not in self.maps:
                raise VmError(f"no map fd {insn.imm}")
            return MAPS + insn.imm
        return ((nxt.imm & MASK32) << 32 | (insn.imm & MASK32)) & MASK64

    def _alu(self, insn: Insn, regs: list[int]) -> None:
        wide = insn.code & 0x07 == asm.BPF_ALU64
        mask = MASK64 if wide else MASK32
        src = regs[insn.src] if insn.code & asm.BPF_X else insn.imm & MASK64
        dst = regs[insn.dst] & mask
        src &= mask
        op = insn.code & 0xF0
        ops: dict[int, Callable[[int, int], int]] = {
            asm.BPF_ADD: lambda a, b: a + b,
            asm.BPF_SUB: lambda a, b: a - b,
            asm.BPF_MUL: lambda a, b: a * b,
            asm.BPF_OR: lambda a, b: a | b,
            asm.BPF_AND: lambda a, b: a & b,
            asm.BPF_XOR: lambda a, b: a ^ b,
            asm.BPF_LSH: lambda a, b: a << b,
            asm.BPF_RSH: lambda a, b: a >> b,
            asm.BPF_MOV: lambda a, b: b,
        }
        if op not in ops:
            raise VmError(f"ALU operation {op:#x} not in this interpreter")
        regs[insn.dst] = ops[op](dst, src) & mask

    def _taken(self, insn: Insn, regs: list[int], narrow: bool) -> bool:
        op = insn.code & 0xF0
        if op == asm.BPF_JA:
            return True
        mask = MASK32 if narrow else MASK64
        a = regs[insn.dst] & mask
        b = (regs[insn.src] if insn.code & asm.BPF_X else insn.imm) & mask
        tests = {
            asm.BPF_JEQ: a == b,
            asm.BPF_JNE: a != b,
            asm.BPF_JGT: a > b,
            asm.BPF_JGE: a >= b,
            asm.BPF_JLT: a < b,
            asm.BPF_JLE: a <= b,
            asm.BPF_JSET: bool(a & b),
        }
        if op not in tests:
            raise VmError(f"jump operation {op:#x} not in this interpreter")
        return tests[op]

    def _memory(self, insn: Insn, regs: list[int]) -> None:
        cls, size, mode = insn.code & 0x07, SIZES[insn.code & 0x18], insn.code & 0xE0
        if cls == asm.BPF_LDX and mode == asm.BPF_MEM:
            addr = regs[insn.src] + int(insn.off)
            if insn.src == 1 and regs[1] == CTX and int(insn.off) < 8:
                raise VmError("the context's first 8 bytes may not be read")
            regs[insn.dst] = int.from_bytes(self.read(addr, size), "little")
            return
        addr = regs[insn.dst] + int(insn.off)
        if addr % size:
            raise VmError(f"unaligned {size}-byte access at {addr:#x}")
        value = regs[insn.src] if cls == asm.BPF_STX else insn.imm
        if cls == asm.BPF_STX and mode == asm.BPF_ATOMIC:
            if insn.imm != asm.BPF_ADD:
                raise VmError("only atomic add")
            value += int.from_bytes(self.read(addr, size), "little")
        elif mode != asm.BPF_MEM:
            raise VmError(f"opcode {insn.code:#x}")
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    # -- helpers ------------------------------------------------------------------------

    def _map(self, handle: int) -> FakeMap:
        if handle - MAPS not in self.maps:
            raise VmError(f"{handle:#x} is not a map")
        return self.maps[handle - MAPS]

    def _call(self, helper: int, r: list[int]) -> int:
        h = asm.Helper
        if helper == h.map_lookup_elem:
            m = self._map(r[1])
            return m.entries.get(self.read(r[2], m.key_size), 0)
        if helper == h.map_update_elem:
            return self._update(self._map(r[1]), self.read(r[2], self._map(r[1]).key_size), r[3])
        if helper == h.map_delete_elem:
            m = self._map(r[1])
            return 0 if m.entries.pop(self.read(r[2], m.key_size), None) is not None else -ENOENT
        if helper == h.ktime_get_ns:
            self.now += 1000
            return self.now
        if helper == h.get_current_pid_tgid:
            return self.pid_tgid
        if helper == h.get_current_comm:
            self.write(r[1], self.comm[: r[2] - 1].ljust(r[2], b"\0"))
            return 0
        if helper == h.probe_read_kernel:
            return self._probe_read(r[1], r[2], r[3])
        return self._ring_call(helper, r)

    def _update(self, m: FakeMap, key: bytes, value_addr: int) -> int:
        value = self.read(value_addr, m.value_size)
        if key in m.entries:
            self.write(m.entries[key], value)
            return 0
        if len(m.entries) >= m.max_entries:
            return -E2BIG
        m.entries[key] = self.alloc(bytearray(value))
        return 0

    def _probe_read(self, dst: int, size: int, src: int) -> int:
        """Kernel memory only (the program's own is read with loads); a bad address
        reads as zeros and fails, as the helper does."""
        for base, mem in self.kernel.items():
            if base <= src and src + size <= base + len(mem):
                self.write(dst, bytes(mem[src - base : src - base + size]))
                return 0
        if any(base <= src < base + len(mem) for base, mem in self._regions.items()):
            raise VmError("probe_read_kernel of the program's own memory")
        self.write(dst, bytes(size))
        return -EFAULT

    def _ring_call(self, helper: int, r: list[int]) -> int:
        h = asm.Helper
        if helper == h.ringbuf_reserve:
            self._map(r[1])
            if self.ring_full:
                return 0
            addr = self.alloc(bytearray(r[2]))
            self._reserved.add(addr)
            return addr
        if helper == h.ringbuf_submit:
            if r[1] not in self._reserved:
                raise VmError("submit of memory not reserved")
            self._reserved.discard(r[1])
            self.submitted.append((bytes(self.region(r[1])), r[2]))
            return 0
        if helper == h.ringbuf_query:
            return self.ring_avail
        raise VmError(f"helper {helper} not in this interpreter")
