"""Fuzz: any text gives a Filter or a FilterError, never another exception or a hang."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint, Owner
from sockscope.model.filter import Filter, FilterError, parse_filter
from sockscope.model.states import Proto, TcpState
from sockscope.query.pushdown import pushdown

SERVICES = {"ssh": 22, "telnet": 23}.get
USERS = {"root": 0}.get

SAMPLES = (
    Endpoint(Proto.TCP, 4, TcpState.LISTEN, IPv4Address("0.0.0.0"), 22, None, None, 0, 128, 0, 5, 1),
    Endpoint(
        Proto.TCP,
        6,
        TcpState.ESTABLISHED,
        IPv6Address("::ffff:127.0.0.1"),
        22,
        IPv6Address("::1"),
        5000,
        0,
        0,
        0,
        6,
        2,
        owners=(Owner(1, "sshd", 3),),
    ),
    Endpoint(Proto.UNIX, 0, TcpState.CLOSE, None, 9, None, None, 0, 0, None, 9, None, path="@x"),
)

VOCAB = [
    "port",
    "lport",
    "rport",
    "laddr",
    "raddr",
    "addr",
    "state",
    "proto",
    "family",
    "pid",
    "process",
    "user",
    "uid",
    "rtt",
    "send_q",
    "path",
    "iface",
    "tcp.port",
    "ip.addr",
    "sport",
    "dport",
    "src",
    "dst",
    "exclude",
    "tcp",
    "udp",
    "ipv6",
    "prot",
    "==",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "=~",
    "in",
    "eq",
    "ne",
    "lt",
    "ge",
    "and",
    "or",
    "not",
    "&&",
    "||",
    "!",
    "&",
    "|",
    "(",
    ")",
    "{",
    "}",
    ",",
    "'",
    '"',
    "22",
    ":ssh",
    "ssh",
    "banana",
    "1024..65535",
    "65536",
    "0x1f",
    "10.0.0.0/8",
    "::1",
    "[::1]:22",
    "*:80",
    "127.0.0.1:",
    "::ffff:1.2.3.4",
    "listen",
    "established",
    "connected",
    "syn-sent",
    "200ms",
    "10MB",
    "5parsecs",
    "root",
    "nginx",
    ".*",
    "(a",
    "'( dport = :ssh )'",
    "\\",
    "%",
    "fe80::1%lo",
    "..",
    "1..",
    "..2",
    "5..1",
    "-1",
]


def check(text: str) -> None:
    try:
        f = parse_filter(text, SERVICES, USERS)
    except FilterError as err:
        assert 0 <= err.column <= len(text)
        assert err.expression == text
        rendered = err.render()
        assert rendered.count("\n") == 2 and rendered.endswith("^")
        return
    assert isinstance(f, Filter)
    for ep in SAMPLES:
        assert f.matches(ep) in (True, False)
    pushdown(f)


@settings(max_examples=1500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_random_text(text: str) -> None:
    check(text)


@settings(max_examples=1500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="portaddrsteinq=!<>~&|(){},:.'\" 0123456789/[]*", max_size=60))
def test_random_filter_characters(text: str) -> None:
    check(text)


@settings(max_examples=2500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=25), st.sampled_from([" ", ""]))
def test_random_token_sequences(tokens: list[str], sep: str) -> None:
    check(sep.join(tokens) if sep else " ".join(tokens).replace(" (", "("))


@settings(max_examples=50, deadline=5000)
@given(st.sampled_from(["(", "not ", "!", "'(", "{", "( ! "]), st.integers(60, 3000))
def test_deep_nesting_never_exhausts_the_stack(opening: str, depth: int) -> None:
    check(opening * depth + "port == 1" + ")" * depth)
