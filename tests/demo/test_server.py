"""The demo telnet server on loopback: commands, accept control, and a server that does
not die (a client leaving mid-download, garbage, an over-long line)."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from sockscope.demo.server import DemoServer, ServerConfig, ServerThread
from sockscope.demo.session import SessionConfig
from sockscope.demo.telnet import DO, DONT, GA, IAC, IP, SB, WILL, WONT
from tests.demo.helpers import PROMPT, ask, connect, greet, read_until, wait_for

LIMIT = 64


def start(**kw: object) -> ServerThread:
    session = SessionConfig(rate=None, line_limit=LIMIT)
    config = ServerConfig(bind="127.0.0.1", port=0, session=session, **kw)  # type: ignore[arg-type]
    return ServerThread(DemoServer(config), duration=60).start()


@pytest.fixture
def server() -> Iterator[ServerThread]:
    t = start()
    try:
        yield t
    finally:
        t.stop()


def test_banner_prompt_help_ports_quit(server: ServerThread) -> None:
    sock = connect(server.server.address)
    banner = read_until(sock, PROMPT)
    here = sock.getsockname()
    assert f"You are {here[0]}:{here[1]}".encode() in banner
    assert f"this end is 127.0.0.1:{server.server.address[1]}".encode() in banner
    # NVT: GO AHEAD after each prompt (the server never agreed to SUPPRESS-GO-AHEAD).
    sock.settimeout(2)
    after = banner.split(PROMPT, 1)[1] or sock.recv(2)
    assert after == bytes([IAC, GA])
    assert b"download SIZE" in ask(sock, b"help")
    assert f"you: 127.0.0.1:{here[1]}".encode() in ask(sock, b"ports")
    assert b"unknown command" in ask(sock, b"frobnicate")
    sock.sendall(b"quit\r\n")
    assert read_until(sock, b"bye\r\n").endswith(b"bye\r\n")
    assert sock.recv(100) == b""  # the server closed
    sock.close()


def test_negotiation_is_refused(server: ServerThread) -> None:
    sock = greet(server.server.address)
    sock.sendall(bytes([IAC, DO, 3, IAC, WILL, 24, IAC, DONT, 1, IAC, WONT, 1]) + b"ports\r\n")
    answer = read_until(sock, PROMPT)
    assert answer.startswith(bytes([IAC, WONT, 3, IAC, DONT, 24]))
    assert answer.count(bytes([IAC])) == 3  # two refusals and the GA; DONT/WONT unanswered
    assert ("DO", 3) in server.server.stats.refused and ("WILL", 24) in server.server.stats.refused
    sock.close()


def test_download_exact_size(server: ServerThread) -> None:
    sock = greet(server.server.address)
    sock.sendall(b"download 100k\r\n")
    data = read_until(sock, PROMPT, timeout=10)
    header, _, rest = data.partition(b"\r\n")
    assert b"downloading 100000 bytes" in header
    body, _, tail = rest.rpartition(b"\r\ndone: ")
    assert len(body) == 100_000 and b"100.0 kB" in tail
    assert b"usage: download" in ask(sock, b"download")
    assert b"not a size" in ask(sock, b"download lots")
    assert b"at most" in ask(sock, b"download 1000G")
    sock.close()


def test_download_rate_is_kept() -> None:
    t = start()
    try:
        sock = greet(t.server.address)
        began = time.monotonic()
        sock.sendall(b"download 200k 400k/s\r\n")
        read_until(sock, PROMPT, timeout=10)
        assert time.monotonic() - began >= 0.4  # 200 kB at 400 kB/s
        sock.close()
    finally:
        t.stop()


def test_client_leaving_mid_download(server: ServerThread) -> None:
    stats = server.server.stats
    for reset in (False, True):
        sock = greet(server.server.address)
        sock.sendall(b"download 1G 50MB/s\r\n")
        read_until(sock, b"downloading")
        if reset:  # leave with a reset instead of a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert wait_for(lambda: stats.downloads_cut == 2 and stats.active == 0)
    other = greet(server.server.address)  # the server goes on serving
    assert b"done:" in ask(other, b"download 10k")
    other.close()
    assert not stats.errors


def test_interrupt_process_stops_a_download(server: ServerThread) -> None:
    sock = greet(server.server.address)
    sock.sendall(b"download 1G 1MB/s\r\n")
    read_until(sock, b"downloading")
    sock.sendall(bytes([IAC, IP]))
    assert b"interrupted" in read_until(sock, PROMPT, timeout=5)
    assert b"you:" in ask(sock, b"ports")
    sock.close()


def test_garbage_bytes(server: ServerThread) -> None:
    rng = random.Random(1)
    # Garbage without IAC gets "unknown command" and the session goes on.
    sock = greet(server.server.address)
    junk = bytes(rng.randrange(255) for _ in range(40)).replace(b"\r", b"").replace(b"\n", b"")
    assert b"unknown command" in ask(sock, junk)
    assert b"you:" in ask(sock, b"ports")
    # Any bytes at all, IAC included (even an endless subnegotiation): the server lives on.
    for seed in range(5):
        rng = random.Random(seed)
        bad = connect(server.server.address)
        bad.sendall(bytes(rng.randrange(256) for _ in range(4096)) + bytes([IAC, SB]) + b"x" * 100)
        time.sleep(0.05)
        bad.close()
    assert b"you:" in ask(sock, b"ports")
    assert b"you:" in ask(greet(server.server.address), b"ports")
    assert not server.server.stats.errors
    sock.close()


def test_over_long_line(server: ServerThread) -> None:
    sock = greet(server.server.address)
    answer = ask(sock, b"A" * (LIMIT * 100))
    assert f"line longer than {LIMIT} bytes".encode() in answer
    assert b"you:" in ask(sock, b"ports")  # the same client goes on
    # A megabyte with no end of line: one error, a bounded buffer, then normal service.
    sock.sendall(b"B" * 1_000_000)
    read_until(sock, b"line longer")
    sock.sendall(b"\r\nports\r\n")
    assert b"line longer" not in read_until(sock, b"you: ")  # reported once, not per chunk
    assert server.server.stats.long_lines == 2
    sock.close()


def test_no_accept_keeps_the_queue_until_asked() -> None:
    t = start(accept=False, backlog=1)
    try:
        a, b = connect(t.server.address), connect(t.server.address)  # backlog 1 admits 2
        a.settimeout(0.5)
        with pytest.raises(TimeoutError):
            a.recv(100)  # nobody accept()ed: no banner
        assert t.server.stats.accepted == 0
        peers = t.accept_waiting(1)
        assert [p[1] for p in peers] == [a.getsockname()[1]]  # first come, first accepted
        assert b"sockscope demo" in read_until(a, PROMPT)
        assert t.accept_waiting(5) == [("127.0.0.1", b.getsockname()[1])]
        assert t.accept_waiting(1) == []  # nothing else waits
        a.close()
        b.close()
    finally:
        t.stop()


def test_accept_delay_spaces_accepts() -> None:
    t = start(accept_delay=0.4)
    try:
        began = time.monotonic()
        socks = [connect(t.server.address) for _ in range(3)]
        for s in socks:
            read_until(s, PROMPT)
        assert time.monotonic() - began >= 1.0  # three accepts, 0.4 s before each
        for s in socks:
            s.close()
    finally:
        t.stop()


def test_duration_stops_the_server_and_closes_everything() -> None:
    srv = DemoServer(ServerConfig(bind="127.0.0.1", port=0))
    address = srv.address
    began = time.monotonic()
    client: list[socket.socket] = []

    async def main() -> None:
        task = asyncio.create_task(srv.serve(duration=0.5))
        await asyncio.sleep(0.1)
        client.append(await asyncio.to_thread(greet, address))
        await task

    asyncio.run(main())
    assert time.monotonic() - began < 3
    assert srv.sock.fileno() == -1
    client[0].settimeout(2)
    assert client[0].recv(100) == b""  # its session was closed too
    with pytest.raises(ConnectionRefusedError):
        connect(address)
    client[0].close()


def test_stop_during_a_download_with_typed_ahead_lines() -> None:
    """Stopping the server ends every session at once, even one waiting on its download."""
    t = start()
    sock = greet(t.server.address)
    sock.sendall(b"download 1G 1MB/s\r\nports\r\n")  # 'ports' waits for the download
    read_until(sock, b"downloading")
    began = time.monotonic()
    t.stop()
    assert time.monotonic() - began < 3
    sock.settimeout(5)
    while sock.recv(65536):  # the rest of the download, then the end
        pass
    assert t.server.stats.active == 0 and t.server.stats.downloads_cut == 1
    sock.close()


def test_interrupt_after_a_line_typed_during_a_download(server: ServerThread) -> None:
    """A typed line waits for the download; the interrupt after it still acts at once."""
    sock = greet(server.server.address)
    sock.sendall(b"download 1G 1MB/s\r\n")
    read_until(sock, b"downloading")
    sock.sendall(b"ports\r\n")
    time.sleep(0.2)
    sock.sendall(bytes([IAC, IP]))
    began = time.monotonic()
    text = read_until(sock, b"you:", timeout=5)  # the interrupt, then the typed line
    assert time.monotonic() - began < 2
    assert b"interrupted" in text and text.index(b"interrupted") < text.index(b"you:")
    sock.close()


def test_lines_typed_during_a_download_run_after_it_in_order(server: ServerThread) -> None:
    sock = greet(server.server.address)
    sock.sendall(b"download 64k\r\nports\r\nhelp\r\n")
    text = read_until(sock, b"commands:", timeout=10)
    assert text.index(b"done:") < text.index(b"you:") < text.index(b"commands:")
    sock.close()
