"""The BTF reader: a cut of a real kernel's BTF (tests/fixtures/btf, tools/record_btf.py)
and small built blobs for the cases a kernel may or may not have."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sockscope.wire.ebpf import btf as b
from sockscope.wire.ebpf.btf import BtfMember, BtfType, build_btf, parse_btf
from sockscope.wire.ebpf.layout import KERNEL_MEMBERS, kernel_offsets

FIXTURES = Path(__file__).parents[1] / "fixtures" / "btf"
CUT = (FIXTURES / "vmlinux-cut.btf").read_bytes()
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
VMLINUX = Path("/sys/kernel/btf/vmlinux")


def test_the_recorded_cut_gives_the_recorded_kernels_offsets() -> None:
    cut = parse_btf(CUT)
    assert len(cut) == EXPECTED["types"]
    assert kernel_offsets(cut)._asdict() == EXPECTED["offsets"]


def test_members_are_found_through_anonymous_structs_and_unions() -> None:
    """skc_cookie and skc_net sit in sock_common, a named member of sock; inum sits in
    ns_common; on this kernel several of them hide in anonymous unions."""
    cut = parse_btf(CUT)
    sock_common = cut.type(cut.resolve(cut.type(cut.struct_id("sock")).members[0].type_id))
    assert sock_common.name == "sock_common"
    assert any(not m.name for m in sock_common.members)
    member = cut.member("sock", "__sk_common.skc_net.net")
    assert (member.offset, member.size) == (EXPECTED["offsets"]["skc_net"], 8)
    assert cut.member("net", "ns.inum").size == 4
    assert cut.member_offset("tcp_sock", "srtt_us") == EXPECTED["offsets"]["srtt_us"]


def test_a_real_bitfield_is_refused() -> None:
    cut = parse_btf(CUT)
    tcp_sock = cut.type(cut.struct_id("tcp_sock"))
    bitfields = [m.name for m in tcp_sock.members if m.bits]
    assert bitfields, "tcp_sock has bitfields (repair, ...) on every kernel"
    with pytest.raises(b.BtfError, match="bitfield"):
        cut.member("tcp_sock", bitfields[0])


def test_missing_structs_and_members_say_which() -> None:
    cut = parse_btf(CUT)
    with pytest.raises(b.BtfError, match="no struct udp_sock"):
        cut.member("udp_sock", "len")
    with pytest.raises(b.BtfError, match="no member bytes_nowhere"):
        cut.member("tcp_sock", "bytes_nowhere")
    with pytest.raises(b.BtfError, match=r"no member __sk_common\.nope"):
        cut.member("sock", "__sk_common.nope")


@pytest.mark.skipif(not VMLINUX.exists(), reason="this kernel has no /sys/kernel/btf/vmlinux")
def test_the_running_kernels_btf_matches_the_cut_when_it_is_that_kernel() -> None:
    live = kernel_offsets(parse_btf(VMLINUX.read_bytes()))
    if os.uname().release != EXPECTED["kernel"]:
        pytest.skip(f"the fixture is of {EXPECTED['kernel']}, this is {os.uname().release}")
    assert live._asdict() == EXPECTED["offsets"]


# -- built blobs ------------------------------------------------------------------------

U32 = BtfType(b.BTF_KIND_INT, "unsigned int", 4, encoding=32)


def struct(
    name: str, size: int, *members: tuple[str, int, int, int], kind: int = b.BTF_KIND_STRUCT
) -> BtfType:
    return BtfType(kind, name, size, members=tuple(BtfMember(*m) for m in members))


def blob() -> bytes:
    """struct outer { u32 a; union { struct { u32 b; u32 c:3, d:5; }; u32 e; }; const t f; }
    with typedef t = u32; an INT bitfield type (kind_flag off) and a struct using it; an
    array and a pointer."""
    types = [
        U32,  # 1
        struct("", 8, ("b", 1, 0, 0), ("c", 1, 32, 3), ("d", 1, 35, 5)),  # 2
        struct("", 8, ("", 2, 0, 0), ("e", 1, 0, 0), kind=b.BTF_KIND_UNION),  # 3
        BtfType(b.BTF_KIND_TYPEDEF, "t", 1),  # 4
        BtfType(b.BTF_KIND_CONST, "", 4),  # 5
        struct("outer", 16, ("a", 1, 0, 0), ("", 3, 32, 0), ("f", 5, 96, 0)),  # 6
        BtfType(b.BTF_KIND_INT, "u4", 4, encoding=4),  # 7: a 4-bit int, an old-style bitfield
        struct("old", 4, ("g", 7, 0, 0), ("h", 1, 4, 0)),  # 8
        BtfType(b.BTF_KIND_ARRAY, "", 0, array=(1, 1, 16)),  # 9
        BtfType(b.BTF_KIND_PTR, "", 6),  # 10
        struct("holder", 72, ("arr", 9, 0, 0), ("p", 10, 512, 0)),  # 11
    ]
    return build_btf(types)


def test_built_blob_offsets_through_anonymous_members_and_modifiers() -> None:
    t = parse_btf(blob())
    assert t.member("outer", "a") == (0, 4, 1)
    assert t.member("outer", "b") == (4, 4, 1)  # anonymous union, then anonymous struct
    assert t.member("outer", "e") == (4, 4, 1)
    member = t.member("outer", "f")  # const -> typedef -> unsigned int
    assert (member.offset, member.size) == (12, 4)
    assert t.member("holder", "arr").size == 64
    assert t.member("holder", "p") == (64, 8, 10)


def test_built_blob_bitfields_are_refused_both_ways() -> None:
    t = parse_btf(blob())
    with pytest.raises(b.BtfError, match="c is a bitfield"):
        t.member("outer", "c")  # kind_flag: width in the member's offset word
    with pytest.raises(b.BtfError, match="g is a bitfield"):
        t.member("old", "g")  # no kind_flag: the INT itself has 4 bits
    with pytest.raises(b.BtfError, match="h is a bitfield"):
        t.member("old", "h")  # starts at bit 4


def test_kind_flag_is_written_only_for_structs_with_bitfields() -> None:
    data = blob()
    t = parse_btf(data)
    assert [m.bits for m in t.type(2).members] == [0, 3, 5]
    assert t.type(6).members[1].bits == 0


def test_not_btf_and_cut_short_blobs_are_refused() -> None:
    with pytest.raises(b.BtfError, match="not BTF"):
        parse_btf(b"\x00" * 32)
    with pytest.raises(b.BtfError, match="too short"):
        parse_btf(b"\x9f\xeb")
    data = blob()
    with pytest.raises(b.BtfError, match="past the end"):
        parse_btf(data[:-5])


def test_an_unknown_kind_is_refused_rather_than_skipped_wrongly() -> None:
    data = bytearray(build_btf([U32]))
    hdr = b.BTF_HEADER.size
    data[hdr + 7] = 25  # info's kind byte: no kind 25 exists
    with pytest.raises(b.BtfError, match="unknown BTF kind 25"):
        parse_btf(bytes(data))


def test_every_member_the_program_needs_is_in_the_cut() -> None:
    cut = parse_btf(CUT)
    for struct_name, path, size in KERNEL_MEMBERS.values():
        assert cut.member(struct_name, path).size == size
