"""Pure: a small eBPF assembler (instructions as values, labels, bytes out).

An instruction is ``struct bpf_insn`` (``include/uapi/linux/bpf.h``): an 8-bit opcode,
the destination and source registers in one byte (dst in the low nibble), a signed
16-bit offset and a signed 32-bit immediate, little-endian. ``ld_imm64`` takes two
slots, the second holding the upper 32 bits. Jump offsets count slots from the one after
the jump; here jumps name labels, resolved when the program is assembled.

Immediates are where programs go quietly wrong: the kernel sign-extends a 32-bit
immediate for 64-bit operations, so ``if r1 != 0xf0000000`` (JMP) compares against
0xfffffffff0000000. The assembler refuses such a value for 64-bit operations and
encodes it as its two's complement for 32-bit ones (ALU, JMP32, narrow stores), where
the kernel uses only the low 32 bits.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Literal

from sockscope._namedtuple import NamedTuple

# Instruction classes (include/uapi/linux/bpf_common.h, bpf.h).
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07
# Sizes.
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18
# Modes.
BPF_IMM = 0x00
BPF_MEM = 0x60
BPF_ATOMIC = 0xC0
# Operand source.
BPF_K = 0x00
BPF_X = 0x08
# ALU operations.
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_MOD = 0x90
BPF_XOR = 0xA0
BPF_MOV = 0xB0
BPF_ARSH = 0xC0
# Jump operations.
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xA0
BPF_JLE = 0xB0
BPF_JSLT = 0xC0
BPF_JSLE = 0xD0
#: ``src_reg`` of an ``ld_imm64`` whose immediate is a map's file descriptor.
BPF_PSEUDO_MAP_FD = 1

ALU_OPS = frozenset(
    {BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR, BPF_MOV}
    | {BPF_ARSH}
)
JUMP_OPS = frozenset(
    {BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE}
)
SHIFTS = frozenset({BPF_LSH, BPF_RSH, BPF_ARSH})
SIZE_CODE = {1: BPF_B, 2: BPF_H, 4: BPF_W, 8: BPF_DW}
SIZE_CODE_BYTES = {code: size for size, code in SIZE_CODE.items()}
INSN = struct.Struct("<BBhi")
INSN_SIZE = INSN.size

Size = Literal[1, 2, 4, 8]


class Reg(IntEnum):
    """The eleven registers: r0 return value, r1-r5 arguments (clobbered by calls),
    r6-r9 kept across calls, r10 the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


class Helper(IntEnum):
    """Helper ids: the position in ``__BPF_FUNC_MAPPER`` (include/uapi/linux/bpf.h)."""

    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    ktime_get_ns = 5
    get_current_pid_tgid = 14
    get_current_comm = 16
    probe_read_kernel = 113
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ringbuf_query = 134


class AsmError(ValueError):
    """An instruction the kernel would misread or refuse: a bad immediate, offset, label."""


class Insn(NamedTuple):
    """One instruction slot; ``off`` is a label name until the program is assembled."""

    code: int
    dst: int
    src: int
    off: int | str
    imm: int


def imm32(value: int, *, wide: bool) -> int:
    """``value`` as the signed 32-bit field holds it.

    ``wide``: the kernel sign-extends it to 64 bits, so only -2**31..2**31-1 mean what
    they say. Otherwise only the low 32 bits count and 2**31..2**32-1 are accepted too.
    """
    top = 1 << 31 if wide else 1 << 32
    if not -(1 << 31) <= value < top:
        kind = "a 64-bit operation (sign-extended)" if wide else "a 32-bit field"
        raise AsmError(f"immediate {value:#x} does not fit {kind}")
    return value - (1 << 32) if value >= 1 << 31 else value


def _off16(value: int) -> int:
    if not -(1 << 15) <= value < 1 << 15:
        raise AsmError(f"offset {value} does not fit 16 bits")
    return value


class Asm:
    """Collects instructions and labels; ``assemble`` resolves jumps and packs them."""

    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self.insns)

    def fresh(self, stem: str) -> str:
        """A label name no other call returns, for pieces emitted more than once."""
        self._serial += 1
        return f"{stem}.{self._serial}"

    def label(self, name: str) -> None:
        if name in self.labels:
            raise AsmError(f"label {name!r} defined twice")
        self.labels[name] = len(self.insns)

    def _emit(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append(Insn(code, dst, src, off, imm))

    # -- moves and arithmetic ----------------------------------------------------------

    def mov(self, dst: Reg, src: Reg | int) -> None:
        """dst = src (64 bits)."""
        self.alu(BPF_MOV, dst, src)

    def alu(self, op: int, dst: Reg, src: Reg | int) -> None:
        """dst op= src, on all 64 bits."""
        self._alu(BPF_ALU64, op, dst, src)

    def alu32(self, op: int, dst: Reg, src: Reg | int) -> None:
        """dst op= src on the low 32 bits; the upper 32 become zero."""
        self._alu(BPF_ALU, op, dst, src)

    def _alu(self, cls: int, op: int, dst: Reg, src: Reg | int) -> None:
        if op not in ALU_OPS:
            raise AsmError(f"unknown ALU operation {op:#x}")
        if dst == Reg.R10:
            raise AsmError("r10 (the frame pointer) is read-only")
        if isinstance(src, Reg):
            self._emit(cls | op | BPF_X, dst, src)
            return
        if op in SHIFTS and not 0 <= src < (64 if cls == BPF_ALU64 else 32):
            raise AsmError(f"shift by {src}")
        self._emit(cls | op | BPF_K, dst, 0, 0, imm32(src, wide=cls == BPF_ALU64))

    def ld_imm64(self, dst: Reg, value: int, src: int = 0) -> None:
        """dst = a 64-bit constant (two slots)."""
        if not -(1 << 63) <= value < 1 << 64:
            raise AsmError(f"immediate {value:#x} does not fit 64 bits")
        value &= (1 << 64) - 1
        low, high = value & 0xFFFFFFFF, value >> 32
        self._emit(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, imm32(low, wide=False))
        self._emit(0, 0, 0, 0, imm32(high, wide=False))

    def ld_map_fd(self, dst: Reg, fd: int) -> None:
        """dst = the map behind file descriptor ``fd`` (the kernel swaps in its address)."""
        if fd < 0:
            raise AsmError(f"map fd {fd}")
        self.ld_imm64(dst, fd, BPF_PSEUDO_MAP_FD)

    # -- memory ------------------------------------------------------------------------

    def load(self, size: Size, dst: Reg, base: Reg, off: int) -> None:
        """dst = *(size *)(base + off), zero-extended."""
        self._emit(BPF_LDX | SIZE_CODE[size] | BPF_MEM, dst, base, _off16(off))

    def store(self, size: Size, base: Reg, off: int, src: Reg | int) -> None:
        """*(size *)(base + off) = src (a register, or a constant)."""
        if isinstance(src, Reg):
            self._emit(BPF_STX | SIZE_CODE[size] | BPF_MEM, base, src, _off16(off))
            return
        if size < 4 and not -(1 << (8 * size - 1)) <= src < 1 << (8 * size):
            raise AsmError(f"constant {src:#x} does not fit a {size}-byte store")
        imm = imm32(src, wide=size == 8)
        self._emit(BPF_ST | SIZE_CODE[size] | BPF_MEM, base, 0, _off16(off), imm)

    def atomic_add(self, size: Literal[4, 8], base: Reg, off: int, src: Reg) -> None:
        """*(size *)(base + off) += src, atomically (``BPF_ATOMIC`` with ``BPF_ADD``)."""
        self._emit(BPF_STX | SIZE_CODE[size] | BPF_ATOMIC, base, src, _off16(off), BPF_ADD)

    # -- control flow ------------------------------------------------------------------

    def jump(self, op: int, dst: Reg, src: Reg | int, target: str) -> None:
        """if (dst op src) goto target, comparing 64 bits."""
        self._jump(BPF_JMP, op, dst, src, target)

    def jump32(self, op: int, dst: Reg, src: Reg | int, target: str) -> None:
        """if (dst op src) goto target, comparing the low 32 bits (``BPF_JMP32``)."""
        self._jump(BPF_JMP32, op, dst, src, target)

    def _jump(self, cls: int, op: int, dst: Reg, src: Reg | int, target: str) -> None:
        if op not in JUMP_OPS:
            raise AsmError(f"unknown jump operation {op:#x}")
        if isinstance(src, Reg):
            self._emit(cls | op | BPF_X, dst, src, target)
        else:
            self._emit(cls | op | BPF_K, dst, 0, target, imm32(src, wide=cls == BPF_JMP))

    def goto(self, target: str) -> None:
        self._emit(BPF_JMP | BPF_JA, 0, 0, target)

    def call(self, helper: Helper) -> None:
        """r0 = helper(r1, ..., r5); r1-r5 are clobbered."""
        self._emit(BPF_JMP | BPF_CALL, 0, 0, 0, int(helper))

    def exit(self) -> None:
        self._emit(BPF_JMP | BPF_EXIT)

    # -- output ------------------------------------------------------------------------

    def resolve(self) -> list[Insn]:
        """The instructions with every label replaced by its relative slot offset."""
        out = []
        for pc, insn in enumerate(self.insns):
            if not isinstance(insn.off, str):
                out.append(insn)
                continue
            target = self.labels.get(insn.off)
            if target is None:
                raise AsmError(f"jump to undefined label {insn.off!r}")
            out.append(insn._replace(off=_off16(target - pc - 1)))
        return out

    def assemble(self) -> bytes:
        """The program as ``bpf_insn`` bytes, for ``BPF_PROG_LOAD``."""
        return b"".join(build_insn(i) for i in self.resolve())


def build_insn(insn: Insn) -> bytes:
    """One resolved instruction as its 8 bytes."""
    if isinstance(insn.off, str):
        raise AsmError(f"unresolved label {insn.off!r}")
    return INSN.pack(insn.code, insn.dst | (insn.src << 4), insn.off, insn.imm)


def parse_insns(data: bytes) -> list[Insn]:
    """Bytes back to instructions (for tests and for reading a verifier's complaint)."""
    if len(data) % INSN_SIZE:
        raise AsmError(f"{len(data)} bytes is not a whole number of instructions")
    return [Insn(code, regs & 0x0F, regs >> 4, off, imm) for code, regs, off, imm in INSN.iter_unpack(data)]


_ALU_TEXT = {
    BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=", BPF_LSH: "<<=",
    BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_MOV: "=", BPF_ARSH: "s>>=",
}  # fmt: skip
_JMP_TEXT = {
    BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=", BPF_JSGT: "s>", BPF_JSGE: "s>=",
    BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<", BPF_JSLE: "s<=",
}  # fmt: skip
_SIZE_TEXT = {BPF_B: "u8", BPF_H: "u16", BPF_W: "u32", BPF_DW: "u64"}


def describe_insn(insn: Insn) -> str:
    """One instruction in the verifier log's notation (``r1 = *(u64 *)(r6 +8)``)."""
    cls = insn.code & 0x07
    if insn.code == 0:
        return f"(upper half of ld_imm64: {insn.imm})"
    if cls in (BPF_ALU, BPF_ALU64):
        width = "r" if cls == BPF_ALU64 else "w"
        src = f"{width}{insn.src}" if insn.code & BPF_X else str(insn.imm)
        return f"{width}{insn.dst} {_ALU_TEXT.get(insn.code & 0xF0, '?')} {src}"
    if cls in (BPF_JMP, BPF_JMP32):
        return _describe_jump(insn)
    return _describe_memory(insn)


def _describe_jump(insn: Insn) -> str:
    op = insn.code & 0xF0
    if op == BPF_CALL:
        known = insn.imm in Helper._value2member_map_
        return f"call {Helper(insn.imm).name if known else insn.imm}"
    if op in (BPF_EXIT, BPF_JA):
        return "exit" if op == BPF_EXIT else f"goto {insn.off:+}"
    width = "r" if insn.code & 0x07 == BPF_JMP else "w"
    src = f"{width}{insn.src}" if insn.code & BPF_X else str(insn.imm)
    return f"if {width}{insn.dst} {_JMP_TEXT.get(op, '?')} {src} goto {insn.off:+}"


def _describe_memory(insn: Insn) -> str:
    cls, size = insn.code & 0x07, _SIZE_TEXT.get(insn.code & 0x18, "?")
    if cls == BPF_LD:
        return f"r{insn.dst} = {'map_fd ' if insn.src == BPF_PSEUDO_MAP_FD else ''}{insn.imm} ll"
    if cls == BPF_LDX:
        return f"r{insn.dst} = *({size} *)(r{insn.src} {insn.off:+})"
    if cls == BPF_STX and insn.code & 0xE0 == BPF_ATOMIC:
        return f"lock *({size} *)(r{insn.dst} {insn.off:+}) += r{insn.src}"
    value = f"r{insn.src}" if cls == BPF_STX else str(insn.imm)
    return f"*({size} *)(r{insn.dst} {insn.off:+}) = {value}"
