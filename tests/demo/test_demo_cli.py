"""``sockscope demo`` on the command line: help, bad input, serve and clients end to end."""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.demo.server import DemoServer, ServerConfig, ServerThread
from sockscope.demo.session import SessionConfig
from tests.demo.helpers import PROMPT, connect, read_until


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Env(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [("demo",), ("demo", "serve"), ("demo", "clients"), ("demo", "tour")])
def test_help_has_examples(argv: tuple[str, ...]) -> None:
    code, out, _ = run(*argv, "--help")
    assert code == 0 and "examples:" in out and "sockscope demo" in out


def test_demo_is_listed_in_the_main_help() -> None:
    _, out, _ = run("--help")
    assert re.search(r"^\s+demo\s+the primer live", out, re.MULTILINE)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("demo",), "which demo"),
        (("demo", "bogus"), "invalid choice"),
        (("demo", "serve", "--port", "70000"), "port must be 0..65535"),
        (("demo", "serve", "--port", "x"), "not a port"),
        (("demo", "serve", "--bind", "nowhere"), "not an IP address"),
        (("demo", "serve", "--backlog", "-1"), "backlog"),
        (("demo", "serve", "--rate", "fast"), "not a rate"),
        (("demo", "serve", "--accept-delay", "soon"), "not a number of seconds"),
        (("demo", "serve", "--no-accept", "--accept-delay", "1"), "not allowed with"),
        (("demo", "clients"), "required"),
        (("demo", "clients", "0"), "number of clients must be"),
        (("demo", "clients", "3", "--mix", "idle,bogus"), "unknown role 'bogus'"),
        (("demo", "clients", "3", "--size", "huge"), "not a size"),
        (("demo", "tour", "--fast"), "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: tuple[str, ...], needle: str) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sockscope: ") and needle in err, err


def test_serve_port_in_use_is_a_runtime_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run("demo", "serve", "--bind", "127.0.0.1", "--port", str(port))
    assert code == 1 and err.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in err


def test_serve_on_an_address_this_host_lacks() -> None:
    code, _, err = run("demo", "serve", "--bind", "192.0.2.77", "--port", "0")
    assert code == 1 and "192.0.2.77 is not an address of this host" in err


def test_serve_stops_by_itself_after_its_duration() -> None:
    began = time.monotonic()
    code, out, _ = run("demo", "serve", "--bind", "127.0.0.1", "--port", "0", "--duration", "0.5")
    assert code == 0 and time.monotonic() - began < 5
    assert re.search(r"telnet server on 127\.0\.0\.1:\d+, backlog 5, accept\(\) at once", out)
    assert "stopped; 0 connections served" in out


def test_serve_no_accept_and_sigusr1() -> None:
    """The real command: the queue holds connections until SIGUSR1 accepts one."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockscope",
            "demo",
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--backlog",
            "1",
            "--no-accept",
            "--duration",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "accept() never (kill -USR1 accepts one)" in first
        port = int(re.search(r":(\d+),", first).group(1))  # type: ignore[union-attr]
        client = connect(("127.0.0.1", port))
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(100)  # queued: the handshake is done, nobody accept()ed it
        proc.send_signal(signal.SIGUSR1)
        assert b"sockscope demo telnet server" in read_until(client, PROMPT)
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped; 1 connections served" in out


@pytest.fixture
def server() -> Iterator[ServerThread]:
    config = ServerConfig(bind="127.0.0.1", port=0, session=SessionConfig(rate=None))
    t = ServerThread(DemoServer(config), duration=60).start()
    try:
        yield t
    finally:
        t.stop()


def test_clients_mix_against_the_server(server: ServerThread) -> None:
    port = server.server.address[1]
    began = time.monotonic()
    code, out, err = run("demo", "clients", "6", "--port", str(port), "--duration", "1.5", "--size", "2M")
    assert code == 0, err
    assert time.monotonic() - began < 8  # bounded: the duration plus a quit's grace
    summary = out.splitlines()[-1]
    conns, ports, downloads = (
        int(x)
        for x in re.search(r"(\d+) connections from (\d+) ephemeral ports, (\d+) downloads", summary).groups()
    )  # type: ignore[union-attr]
    assert conns == ports and conns > 6  # the short-lived ones reconnect, each on a new port
    assert downloads >= 2 and "0 errors" in summary
    stats = server.server.stats
    assert stats.accepted == conns and stats.downloads_done >= downloads


def test_clients_with_no_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    code, _, err = run("demo", "clients", "2", "--port", str(port), "--duration", "0.5")
    assert code == 1 and "no client could connect" in err and "refused" in err
