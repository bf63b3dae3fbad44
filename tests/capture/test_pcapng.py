"""The pcapng writer, read back by the real tshark and capinfos."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sockscope.wire import pcapng as p
from tests.helpers.bpf import ipv4_packet
from tests.helpers.pcapng_blocks import blocks, isb_options, options

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/test installs it)")
T0 = 1_700_000_000_123_456_789  # ns


def _file(tmp_path: Path) -> Path:
    syn = ipv4_packet(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 6, 40000, 80, 0x02)
    data = (
        p.build_section_header("sockscope test", "Linux 6.18", "x86_64")
        + p.build_interface_description(
            p.LINKTYPE_ETHERNET, 262144, "lo", "port == 80", comment="netns: blue"
        )
        + p.build_enhanced_packet(
            0,
            T0,
            syn,
            len(syn),
            p.build_flags_option(p.EPB_OUTBOUND)
            + b"".join(
                map(p.build_comment, p.build_process_comments(1234, "nginx", "nginx: worker", 33, "www-data"))
            ),
        )
        + p.build_enhanced_packet(
            0, T0 + 1_000_000_001, syn[:34], len(syn), p.build_flags_option(p.EPB_INBOUND)
        )
        + p.build_interface_statistics(
            0, T0 + 2_000_000_000, start=T0, end=T0 + 2, received=3, os_dropped=1, delivered=2
        )
    )
    path = tmp_path / "t.pcapng"
    path.write_bytes(data)
    return path


def _tshark(*args: str) -> list[list[str]]:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, *args], capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@needs_tshark
def test_tshark_reads_packets_comments_directions_and_times(tmp_path: Path) -> None:
    rows = _tshark(
        "-r", str(_file(tmp_path)), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.p2p_dir",
        "-e", "frame.comment", "-e", "frame.cap_len", "-e", "frame.len", "-e", "tcp.dstport",
    )  # fmt: skip
    assert rows[0][0] == "1700000000.123456789"
    assert rows[0][1] == "0"  # outbound: frame.p2p_dir 0, "sent"
    assert rows[0][2] == r"PID: 1234\nCmd: nginx\nArgs: nginx: worker,UserId: 33\nUserName: www-data"
    assert rows[0][3:] == ["54", "54", "80"]
    assert rows[1][:2] == ["1700000001.123456790", "1"]  # inbound: 1, "received"
    assert rows[1][3:5] == ["34", "54"]  # cut to 34 bytes of 54


@needs_tshark
def test_capinfos_reads_the_interface_and_its_statistics(tmp_path: Path) -> None:
    out = subprocess.run(
        ["capinfos", str(_file(tmp_path))], capture_output=True, text=True, check=True
    ).stdout
    for line in (
        "Name = lo",
        "Filter string = port == 80",
        "Comment = netns: blue",
        "Time precision = nanoseconds (9)",
        "Number of stat entries = 1",
        "Capture application: sockscope test",
    ):
        assert line in out


def test_blocks_are_whole_and_padded(tmp_path: Path) -> None:
    data = _file(tmp_path).read_bytes()
    found, rest = blocks(data)
    assert rest == 0
    assert [b.kind for b in found] == [p.SHB_TYPE, p.IDB_TYPE, p.EPB_TYPE, p.EPB_TYPE, p.ISB_TYPE]
    assert all(len(b.body) % 4 == 0 for b in found)
    magic, major, minor, length = struct.unpack_from("=IHHq", found[0].body)
    assert (magic, major, minor, length) == (0x1A2B3C4D, 1, 0, -1)
    stats = isb_options(found[4])
    assert stats[p.ISB_IFRECV] == 3
    assert stats[p.ISB_OSDROP] == 1
    assert stats[p.ISB_USRDELIV] == 2
    # A file cut inside its last block still holds every block before it.
    cut, rest = blocks(data[:-7])
    assert [b.kind for b in cut] == [p.SHB_TYPE, p.IDB_TYPE, p.EPB_TYPE, p.EPB_TYPE]
    assert rest > 0


def test_options_are_padded_and_ended() -> None:
    opt = p.build_comment("abcde")
    assert opt == struct.pack("=HH", 1, 5) + b"abcde\0\0\0"
    idb = p.build_interface_description(1, 100, name="eth0")
    codes = [code for code, _ in options(idb[16:-4])]
    assert codes == [p.IF_NAME, p.IF_TSRESOL]
    assert idb[-8:-4] == b"\0\0\0\0"  # opt_endofopt


def test_process_comments_stay_one_value_a_line() -> None:
    comments = p.build_process_comments(7, "sh", "sh -c 'a\nb'", None, "", "")
    assert comments == ["PID: 7\nCmd: sh\nArgs: sh -c 'a b'"]
    with_all = p.build_process_comments(7, "sh", "", 0, "root", "ab" * 32)
    assert with_all == ["PID: 7\nCmd: sh\nArgs: sh", "UserId: 0\nUserName: root", "ContainerId: " + "ab" * 32]
