"""Pure pieces of the demo: TELNET decoding, line assembly, sizes and rates."""

from __future__ import annotations

import random

import pytest

from sockscope.demo.telnet import (
    AYT,
    DO,
    DONT,
    EC,
    EL,
    IAC,
    IP,
    SB,
    SE,
    WILL,
    WONT,
    LineAssembler,
    TelnetDecoder,
    nvt_text,
    printable,
)
from sockscope.demo.units import UnitError, format_rate, parse_rate, parse_size


def test_do_and_will_are_refused_dont_and_wont_are_not_answered() -> None:
    d = TelnetDecoder()
    out = d.feed(bytes([IAC, DO, 1, IAC, WILL, 24, IAC, DONT, 3, IAC, WONT, 1]))
    assert out.reply == bytes([IAC, WONT, 1, IAC, DONT, 24])  # no reply to DONT/WONT: no loop
    assert out.received == [("DO", 1), ("WILL", 24), ("DONT", 3), ("WONT", 1)]
    assert out.data == b""


def test_commands_split_across_chunks() -> None:
    d = TelnetDecoder()
    parts = [b"he", bytes([IAC]), bytes([DO]), bytes([3]) + b"lp", bytes([IAC]), bytes([IAC]), b"\r\n"]
    data, reply = b"", b""
    for p in parts:
        out = d.feed(p)
        data += out.data
        reply += out.reply
    assert data == b"help\xff\r\n"  # IAC IAC is a literal 255
    assert reply == bytes([IAC, WONT, 3])


def test_subnegotiation_is_skipped_and_editing_commands_edit() -> None:
    d = TelnetDecoder()
    out = d.feed(
        bytes([IAC, SB, 24, 0])
        + b"xterm"
        + bytes([IAC, IAC, IAC, SE])
        + b"ab"
        + bytes([IAC, EC])
        + b"c"
        + bytes([IAC, EL])
        + b"ok\r\n"
    )
    assert LineAssembler().feed(out.data)[0].text == b"ok"
    assert d.feed(bytes([IAC, AYT])).reply.strip().startswith(b"[sockscope demo")
    assert d.feed(bytes([IAC, IP])).interrupted


def test_decoder_survives_any_bytes() -> None:
    rng = random.Random(7)
    d = TelnetDecoder()
    for _ in range(200):
        out = d.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
        assert len(out.reply) % 3 == 0 or b"sockscope" in out.reply


def test_line_endings() -> None:
    la = LineAssembler()
    lines = la.feed(b"one\r\ntwo\r\x00three\nfour\rfive")
    assert [x.text for x in lines] == [b"one", b"two", b"three", b"four"]
    assert [x.text for x in la.feed(b"\r")] == [b"five"]
    assert la.feed(b"\n") == []  # the LF of a CR LF split across chunks is not a new line
    assert [x.text for x in la.feed(b"\n")] == [b""]  # but a second LF is an empty line


def test_over_long_line_is_reported_once_and_dropped() -> None:
    la = LineAssembler(limit=10)
    lines = la.feed(b"x" * 50)
    assert [x.too_long for x in lines] == [True]
    assert la.feed(b"y" * 10_000) == []  # still dropping; the buffer stays bounded
    assert [(x.text, x.too_long) for x in la.feed(b"\r\nhelp\r\n")] == [(b"help", False)]
    assert [x.text for x in la.feed(b"x" * 10 + b"\r\n")] == [b"x" * 10]  # the limit fits


def test_backspace_and_kill_line() -> None:
    la = LineAssembler()
    assert la.feed(b"helx\x7fp\r\n")[0].text == b"help"
    assert la.feed(b"junk\x15quit\r\n")[0].text == b"quit"


def test_text_for_the_wire() -> None:
    assert nvt_text("a\nb\r\n") == b"a\r\nb\r\n"
    assert nvt_text("\u00ff") == b"?"  # never an IAC byte
    assert printable(b"he\x00\xffl") == "he??l"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("64k", 64_000),
        ("10M", 10_000_000),
        ("10MB", 10_000_000),
        ("1MiB", 1 << 20),
        ("1.5kib", 1536),
        ("2G", 2 * 10**9),
    ],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "ten", "10X", "-5", "1e9", "M"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UnitError):
        parse_size(text)


def test_rates() -> None:
    assert parse_rate("1MB/s") == 1_000_000
    assert parse_rate("500k") == 500_000
    assert parse_rate("2MBps") == 2_000_000
    assert parse_rate("unlimited") is None and parse_rate("0") is None
    assert format_rate(None) == "unlimited" and format_rate(1_000_000) == "1.0 MB/s"
    with pytest.raises(UnitError):
        parse_rate("fast")
