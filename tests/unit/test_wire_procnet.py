"""/proc/net text decoding, on a recorded tree (tests/fixtures/procfs/primer/README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sockscope.api import snapshot
from sockscope.render.records import endpoint_record
from sockscope.sources.procfs import ProcFS
from sockscope.wire.errors import ParseError
from sockscope.wire.join import parse_fd_link
from sockscope.wire.procnet import parse_proc_net_inet, parse_proc_net_unix

FIX = Path(__file__).parents[1] / "fixtures"


def _key(rec: dict[str, object]) -> tuple[object, ...]:
    return (
        rec["proto"],
        rec["family"],
        rec["state"],
        rec["local_address"],
        rec["local_port"],
        rec["remote_address"],
        rec["remote_port"],
        rec["recv_q"],
        rec["uid"],
        rec["inode"],
    )


def test_procfs_tree_matches_the_netlink_recording() -> None:
    """Both recordings were taken of the same sockets: the endpoints must agree."""
    snap = snapshot(protocols=["tcp"], source="procfs", procfs=ProcFS(FIX / "procfs" / "primer"))
    expected = json.loads((FIX / "netlink" / "primer-tcp.expected.json").read_text())
    got = sorted((_key(endpoint_record(e)) for e in snap.endpoints), key=repr)
    assert got == sorted((_key(r) for r in expected), key=repr)


def test_byte_order_of_addresses() -> None:
    text = "header\n 0: 0100007F:0017 0200007F:C350 01 00000000:00000000 00:00000000 00000000  1000 0 42 1\n"
    (rec,) = parse_proc_net_inet(text, 4, byteorder="little")
    assert rec.src[:4] == bytes([127, 0, 0, 1]) and rec.sport == 23
    assert rec.dst[:4] == bytes([127, 0, 0, 2]) and rec.dport == 50000
    (big,) = parse_proc_net_inet(text.replace("0100007F", "7F000001"), 4, byteorder="big")
    assert big.src[:4] == bytes([127, 0, 0, 1])


def test_malformed_line_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="line 2"):
        parse_proc_net_inet("header\n 0: garbage\n", 4)


def test_unix_listener_and_abstract_names() -> None:
    text = (
        "Num RefCount Protocol Flags Type St Inode Path\n"
        "0000: 00000002 00000000 00010000 0001 01 1111 /run/x.sock\n"
        "0000: 00000003 00000000 00000000 0001 03 2222 @abstract\n"
    )
    recs = parse_proc_net_unix(text)
    assert [(r.state, r.inode, r.path) for r in recs] == [(10, 1111, "/run/x.sock"), (1, 2222, "@abstract")]


def test_fd_link_parsing() -> None:
    assert parse_fd_link("socket:[1234]") == 1234
    assert parse_fd_link("pipe:[1234]") is None
    assert parse_fd_link("socket:[x]") is None


def test_owner_scan_on_a_fake_tree(tmp_path: Path) -> None:
    for pid, links in {"10": {"3": "socket:[77]", "4": "/dev/null"}, "11": {"5": "socket:[77]"}}.items():
        (tmp_path / pid / "fd").mkdir(parents=True)
        (tmp_path / pid / "comm").write_text(f"proc{pid}\n")
        for fd, target in links.items():
            (tmp_path / pid / "fd" / fd).symlink_to(target)
    (tmp_path / "self").mkdir()
    owners, denied = ProcFS(tmp_path).read_owners()
    assert denied == 0
    assert sorted(owners[77]) == [(10, "proc10", 3), (11, "proc11", 5)]
