"""The eBPF assembler: exact bytes of small programs, labels, immediates' signs."""

from __future__ import annotations

import pytest

from sockscope.wire.ebpf.asm import (
    BPF_ADD,
    BPF_JEQ,
    BPF_JNE,
    BPF_LSH,
    BPF_RSH,
    Asm,
    AsmError,
    Helper,
    Insn,
    Reg,
    imm32,
    parse_insns,
)

R0, R1, R2, R6, R10 = Reg.R0, Reg.R1, Reg.R2, Reg.R6, Reg.R10


def hexes(a: Asm) -> list[str]:
    data = a.assemble()
    return [data[i : i + 8].hex() for i in range(0, len(data), 8)]


def test_return_zero() -> None:
    """`r0 = 0; exit`, as `llvm-objdump -d` prints it: b7 00 .. and 95 00 .."""
    a = Asm()
    a.mov(R0, 0)
    a.exit()
    assert hexes(a) == ["b700000000000000", "9500000000000000"]


def test_registers_offsets_and_immediates_sit_where_the_kernel_reads_them() -> None:
    a = Asm()
    a.mov(R6, R1)  # bf 16: dst in the low nibble, src in the high one
    a.load(8, R1, R6, 8)  # 79 61 0800: r1 = *(u64 *)(r6 + 8)
    a.store(8, R10, -8, R1)  # 7b 1a f8ff
    a.store(4, R10, -16, 7)  # 62 0a f0ff 07000000
    a.alu(BPF_ADD, R2, -24)  # 07 02 0000 e8ffffff
    a.call(Helper.ktime_get_ns)  # 85 00 0000 05000000
    assert hexes(a) == [
        "bf16000000000000",
        "7961080000000000",
        "7b1af8ff00000000",
        "620af0ff07000000",
        "07020000e8ffffff",
        "8500000005000000",
    ]


def test_labels_resolve_to_slot_offsets_forward_and_back() -> None:
    a = Asm()
    a.label("top")
    a.jump(BPF_JEQ, R1, 0, "end")  # skips the next two slots
    a.alu(BPF_ADD, R1, 1)
    a.goto("top")  # back over itself and the two before
    a.label("end")
    a.exit()
    insns = a.resolve()
    assert [i.off for i in insns] == [2, 0, -3, 0]
    assert hexes(a)[0] == "1501020000000000"
    assert hexes(a)[2] == "0500fdff00000000"


def test_ld_imm64_takes_two_slots_and_jumps_count_them() -> None:
    a = Asm()
    a.jump(BPF_JNE, R1, 0, "after")
    a.ld_map_fd(R1, 5)  # two slots, src_reg 1 = BPF_PSEUDO_MAP_FD
    a.label("after")
    a.exit()
    assert hexes(a) == ["5501020000000000", "1811000005000000", "0000000000000000", "9500000000000000"]


def test_a_64_bit_constant_splits_into_low_and_high_words() -> None:
    a = Asm()
    a.ld_imm64(R2, 0x1122334455667788)
    assert hexes(a) == ["1802000088776655", "0000000044332211"]


def test_u32_immediates_are_two_complement_where_only_32_bits_count() -> None:
    """JMP32 compares the low 32 bits: an inode number above 2**31 is encoded as its
    two's complement and means what it says; a 64-bit jump would sign-extend it."""
    a = Asm()
    a.jump32(BPF_JNE, R1, 0xF0000001, "x")
    a.label("x")
    assert a.resolve()[0] == Insn(0x56, 1, 0, 0, -0x0FFFFFFF)
    assert hexes(a)[0] == "56010000010000f0"
    with pytest.raises(AsmError, match="sign-extended"):
        Asm().jump(BPF_JNE, R1, 0xF0000001, "x")
    with pytest.raises(AsmError, match="sign-extended"):
        Asm().alu(BPF_ADD, R1, 1 << 31)
    assert imm32(-1, wide=True) == -1
    assert imm32(0xFFFFFFFF, wide=False) == -1
    with pytest.raises(AsmError):
        imm32(1 << 32, wide=False)


def test_narrow_stores_check_their_width() -> None:
    a = Asm()
    a.store(1, R10, -1, 0xFF)
    a.store(2, R10, -2, -1)
    a.store(4, R10, -8, 0xFFFFFFFF)  # a u32 constant: stored as its 32 bits
    assert [i.imm for i in a.resolve()] == [255, -1, -1]
    with pytest.raises(AsmError, match="1-byte"):
        a.store(1, R10, -1, 256)
    with pytest.raises(AsmError, match="sign-extended"):
        a.store(8, R10, -8, 0xFFFFFFFF)  # a 64-bit store would write 0xffffffffffffffff


def test_atomic_add_encodes_bpf_atomic_with_bpf_add() -> None:
    a = Asm()
    a.atomic_add(8, R0, 0, R1)
    a.atomic_add(4, R0, 4, R1)
    assert hexes(a) == ["db10000000000000", "c310040000000000"]


def test_mistakes_are_refused_not_encoded() -> None:
    a = Asm()
    with pytest.raises(AsmError, match="read-only"):
        a.mov(R10, 0)
    with pytest.raises(AsmError, match="shift"):
        a.alu(BPF_LSH, R1, 64)
    a.alu32(BPF_RSH, R1, 31)
    with pytest.raises(AsmError, match="shift"):
        a.alu32(BPF_RSH, R1, 32)
    with pytest.raises(AsmError, match="16 bits"):
        a.load(8, R1, R10, -40000)
    with pytest.raises(AsmError, match="unknown jump"):
        a.jump(0x80, R1, 0, "x")  # BPF_CALL is not a comparison
    a.label("x")
    with pytest.raises(AsmError, match="twice"):
        a.label("x")
    b = Asm()
    b.goto("nowhere")
    with pytest.raises(AsmError, match="undefined label"):
        b.assemble()


def test_a_jump_too_far_for_16_bits_is_refused() -> None:
    a = Asm()
    a.goto("far")
    for _ in range(1 << 15):
        a.mov(R0, 0)
    a.label("far")
    with pytest.raises(AsmError, match="16 bits"):
        a.assemble()


def test_fresh_labels_never_repeat() -> None:
    a = Asm()
    names = {a.fresh("x") for _ in range(100)}
    assert len(names) == 100


def test_bytes_parse_back_to_the_same_instructions() -> None:
    a = Asm()
    a.mov(R0, -5)
    a.ld_imm64(R1, 1 << 40)
    a.jump32(BPF_JEQ, R1, R2, "e")
    a.label("e")
    a.exit()
    assert parse_insns(a.assemble()) == a.resolve()
    with pytest.raises(AsmError):
        parse_insns(b"\0" * 7)
