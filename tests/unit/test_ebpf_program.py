"""The tracepoint program's bytes: pinned for fixed inputs (tests/fixtures/ebpf,
tools/record_ebpf_program.py), and the shape the verifier demands."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.record_ebpf_program import CONFIGS, listing

from sockscope.wire.ebpf import asm
from sockscope.wire.ebpf.asm import Helper, Insn, parse_insns
from sockscope.wire.ebpf.layout import parse_ctx_layout
from sockscope.wire.ebpf.program import LICENSE, MAX_PORT_SPANS, ProgramConfig, build_program, merge_spans
from sockscope.wire.ftrace import FormatError
from tests.helpers.ebpf import CTX, FDS, FIXTURES, OFF

FORMAT = (FIXTURES / "ftrace" / "format.txt").read_text()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_program_bytes_are_the_pinned_ones(name: str) -> None:
    """A change here changes what every kernel runs: re-record on purpose, review the
    listing's diff, and load it in a real kernel (the root tests)."""
    pinned = (Path(FIXTURES) / "ebpf" / f"program-{name}.txt").read_text().splitlines()
    program = build_program(CTX, OFF, FDS, CONFIGS[name])
    assert listing(program.insns).splitlines() == pinned[1:]


def program(config: ProgramConfig | None = None) -> list[Insn]:
    return parse_insns(build_program(CTX, OFF, FDS, config or CONFIGS["full"]).insns)


def calls(insns: list[Insn], helper: Helper) -> list[int]:
    return [i for i, x in enumerate(insns) if x.code == asm.BPF_JMP | asm.BPF_CALL and x.imm == helper]


def is_null_check(x: Insn, reg: int) -> bool:
    return (
        x.code & 0x07 == asm.BPF_JMP
        and x.code & 0xF0 in (asm.BPF_JEQ, asm.BPF_JNE)
        and x.dst == reg
        and x.imm == 0
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_lookup_and_reservation_is_null_checked_before_use(name: str) -> None:
    insns = program(CONFIGS[name])
    for helper in (Helper.map_lookup_elem, Helper.ringbuf_reserve):
        for at in calls(insns, helper):
            after = insns[at + 1]
            reg = after.dst if after.code == asm.BPF_ALU64 | asm.BPF_MOV | asm.BPF_X and after.src == 0 else 0
            check = insns[at + 2] if reg else after
            assert is_null_check(check, reg), f"{helper.name} at {at} is used unchecked"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_reservation_has_its_submit(name: str) -> None:
    insns = program(CONFIGS[name])
    reserves, submits = calls(insns, Helper.ringbuf_reserve), calls(insns, Helper.ringbuf_submit)
    assert len(reserves) == len(submits) > 0
    assert all(r < s for r, s in zip(reserves, submits, strict=True))
    assert not calls(insns, Helper.ringbuf_discard)


def test_context_reads_are_aligned_and_skip_the_common_fields() -> None:
    insns = program()
    ctx_loads = [x for x in insns if x.code & 0x07 == asm.BPF_LDX and x.src == 6]
    assert ctx_loads
    for x in ctx_loads:
        size = asm.SIZE_CODE_BYTES[x.code & 0x18]
        assert int(x.off) >= 8 and int(x.off) % size == 0, x


def test_stack_use_is_aligned_and_inside_the_frame() -> None:
    for x in program():
        cls = x.code & 0x07
        base = x.src if cls == asm.BPF_LDX else x.dst
        if cls in (asm.BPF_LDX, asm.BPF_ST, asm.BPF_STX) and base == 10:
            size = asm.SIZE_CODE_BYTES[x.code & 0x18]
            assert -512 <= int(x.off) < 0 and int(x.off) % size == 0, x


def test_one_way_out_with_r0_set() -> None:
    insns = program()
    exits = [i for i, x in enumerate(insns) if x.code == asm.BPF_JMP | asm.BPF_EXIT]
    assert exits == [len(insns) - 1]
    assert insns[-2] == Insn(asm.BPF_ALU64 | asm.BPF_MOV | asm.BPF_K, 0, 0, 0, 0)


def test_namespaces_are_compared_on_32_bits() -> None:
    jmp32 = [x for x in program() if x.code & 0x07 == asm.BPF_JMP32]
    assert len(jmp32) == 2 and all(x.code & asm.BPF_X and {x.dst, x.src} == {1, 9} for x in jmp32)


def test_the_license_is_gpl_compatible() -> None:
    assert "GPL" in LICENSE  # bpf_probe_read_kernel is refused to "MIT" alone


def test_what_is_not_asked_for_is_not_in_the_program() -> None:
    closes = program(ProgramConfig())
    assert len(calls(closes, Helper.ringbuf_reserve)) == 2  # CLOSE and LISTEN
    assert len(calls(program(ProgramConfig(want_open=True)), Helper.ringbuf_reserve)) == 3
    assert len(calls(program(ProgramConfig(want_state=True)), Helper.ringbuf_reserve)) == 3


def test_port_spans_cost_two_jumps_each_and_stop_at_the_limit() -> None:
    def size(n: int) -> int:
        spans = tuple((True, 1000 + 10 * i, 1005 + 10 * i) for i in range(n))
        return len(program(ProgramConfig(ports=spans)))

    assert size(2) - size(1) == 2  # one span per filtered record kind (only CLOSE here)
    assert size(MAX_PORT_SPANS) - size(1) == 2 * (MAX_PORT_SPANS - 1)
    assert size(MAX_PORT_SPANS + 1) == len(program(ProgramConfig()))


def test_spans_are_merged_per_end() -> None:
    spans = [(True, 10, 20), (False, 15, 30), (True, 21, 25), (True, 5, 12), (True, 80, 80)]
    assert merge_spans(spans) == [(False, 15, 30), (True, 5, 25), (True, 80, 80)]


def test_configs_the_program_cannot_serve_are_refused() -> None:
    with pytest.raises(ValueError, match="families"):
        build_program(CTX, OFF, FDS, ProgramConfig(families=frozenset()))
    with pytest.raises(ValueError, match="families"):
        build_program(CTX, OFF, FDS, ProgramConfig(families=frozenset({5})))
    with pytest.raises(ValueError, match="too large"):
        build_program(CTX, OFF, FDS, ProgramConfig(ring_bytes=1 << 33))


def test_the_format_file_gives_every_offset() -> None:
    assert (CTX.skaddr, CTX.oldstate, CTX.newstate, CTX.sport, CTX.protocol, CTX.saddr_v6) == (
        8,
        16,
        20,
        24,
        30,
        40,
    )
    assert CTX.event_id == int(FORMAT.split("ID:")[1].split()[0])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("field:const void * skaddr;", "field:const void * skother;"), "no field skaddr"),
        (("offset:56;\tsize:16;", "offset:60;\tsize:16;"), "cannot be loaded"),
        (("offset:56;\tsize:16;", "offset:56;\tsize:20;"), "20 bytes, not 16"),
    ],
)
def test_a_format_the_program_cannot_read_is_refused(change: tuple[str, str], error: str) -> None:
    old, new = change
    assert old in FORMAT
    with pytest.raises(FormatError, match=error):
        parse_ctx_layout(FORMAT.replace(old, new))
