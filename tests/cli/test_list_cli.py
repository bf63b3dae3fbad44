"""``sockscope list`` driven in-process through ``main(argv, env)`` on the real kernel."""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from tests.helpers.netns import socket_in

KEYS = {
    "proto",
    "family",
    "state",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "recv_q",
    "send_q",
    "uid",
    "inode",
    "cookie",
    "owners",
}


def run(*argv: str, width: int = 80) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Env(stdout=out, stderr=err, width=width))
    return code, out.getvalue(), err.getvalue()


def test_bundled_flags_and_processes(primer: str) -> None:
    code, out, _ = run("-tanp", "--netns", primer)  # no subcommand: list
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["Proto", "Recv-Q", "Send-Q"]
    assert lines[1].endswith("PID/Program name")
    listener = next(ln for ln in lines if "0.0.0.0:2323" in ln)
    assert listener.split()[4] == "0.0.0.0:*" and listener.split()[5] == "LISTEN"
    assert "/" in listener.split()[6]


def test_default_shows_connections_only(primer: str) -> None:
    _, out, _ = run("list", "-tn", "--netns", primer)
    assert "LISTEN" not in out and "ESTABLISHED" in out
    _, out, _ = run("list", "-ltn", "--netns", primer)
    body = out.splitlines()[2:]
    assert body and all(ln.split()[5] == "LISTEN" for ln in body)


def test_json_envelope_and_keys(primer: str) -> None:
    code, out, _ = run("list", "-tuan", "--json", "--netns", primer)
    doc = json.loads(out)
    assert code == 0 and doc["source"] == "netlink" and doc["netns"] == primer
    assert {"time", "host", "kernel", "warnings", "endpoints"} <= set(doc)
    eps = doc["endpoints"]
    assert all(set(e) >= KEYS for e in eps)
    lst = next(e for e in eps if e["state"] == "LISTEN" and e["local_port"] == 2323)
    assert lst["local_address"] == "0.0.0.0" and lst["remote_address"] is None
    assert lst["remote_port"] is None and lst["send_q"] == 16 and lst["family"] == 4
    udp = next(e for e in eps if e["proto"] == "udp")
    assert udp["state"] == "UNCONN"
    v6 = next(e for e in eps if e["family"] == 6 and e["state"] == "LISTEN")
    assert v6["local_address"] == "::"


def test_jsonl_and_csv_have_the_same_keys(primer: str) -> None:
    _, out, _ = run("list", "-tan", "--jsonl", "-i", "--netns", primer)
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert recs and all(KEYS | {"rtt", "bytes_sent", "bytes_received"} <= set(r) for r in recs)
    _, out, _ = run("list", "-tan", "--csv", "--netns", primer)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(recs) and set(rows[0]) >= KEYS


def test_output_does_not_depend_on_terminal_width(primer: str) -> None:
    narrow = run("list", "-tuanep", "--netns", primer, width=40)[1]
    wide = run("list", "-tuanep", "--netns", primer, width=250)[1]
    assert narrow == wide


def test_long_addresses_never_run_columns_together(netns: str) -> None:
    subprocess_ip = [
        "ip",
        "-n",
        netns,
        "addr",
        "add",
        "fd00:1234:5678:9abc:def0:1234:5678:9abc/64",
        "dev",
        "lo",
        "nodad",
    ]
    import subprocess  # noqa: PLC0415

    subprocess.run(subprocess_ip, check=True)
    srv = socket_in(netns, socket.AF_INET6)
    srv.bind(("fd00:1234:5678:9abc:def0:1234:5678:9abc", 40000))
    srv.listen()
    cli = socket_in(netns, socket.AF_INET6)
    cli.connect(("fd00:1234:5678:9abc:def0:1234:5678:9abc", 40000))
    try:
        for layout in ([], ["--ss"], ["--bsd"]):
            _, out, _ = run("list", "-tan", *layout, "--netns", netns)
            body = [ln for ln in out.splitlines() if "fd00" in ln]
            assert len(body) == 3
            assert all(len(ln.split()) == 6 for ln in body), out
    finally:
        cli.close()
        srv.close()


def test_summary_counts(primer: str) -> None:
    _, out, _ = run("list", "-s", "-ta", "--netns", primer)
    assert "tcp   LISTEN" in out and "Total: tcp" in out


def test_names_without_n(netns: str) -> None:
    srv = socket_in(netns)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 23))
    srv.listen()
    try:
        _, out, _ = run("list", "-lt", "--netns", netns)
        assert "localhost:telnet" in out
        _, out, _ = run("list", "-lt", "--bsd", "-n", "--netns", netns)
        assert "127.0.0.1.23" in out
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["list", "--bogus"], 2, "unrecognized arguments"),
        (["list", "-f", "ipx"], 2, "invalid choice"),
        (["list", "--netns", "does-not-exist-anywhere"], 1, "does-not-exist-anywhere"),
        (["help", "nosuchtopic"], 2, "no help topic"),
    ],
)
def test_bad_input_is_one_line_with_the_right_code(argv: list[str], code: int, needle: str) -> None:
    got, _, err = run(*argv)
    assert got == code and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_help_has_examples() -> None:
    code, out, _ = run("list", "--help")
    assert code == 0 and "examples:" in out and "-tanp" in out
