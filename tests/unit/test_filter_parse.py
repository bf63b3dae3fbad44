"""The filter language's lexer and parser: trees, both syntaxes, errors with carets."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import pytest

from sockscope.model.fields import FIELDS
from sockscope.model.filter import FilterError, parse_filter, render_filter_help
from sockscope.model.filter.ast import TRUE, Cmp, Member, Node, Not, Or, Range, Regex, StateIn
from sockscope.model.filter.lexer import Tok, tokenize
from sockscope.model.filter.parser import MAX_DEPTH
from sockscope.model.states import (
    ALL_STATES,
    CONNECTED_STATES,
    SYNCHRONIZED_STATES,
    TcpState,
)

SERVICES = {"ssh": 22, "telnet": 23, "http": 80, "https": 443, "domain": 53}
USERS = {"root": 0, "alice": 1000}


def tree(text: str) -> Node:
    return parse_filter(text, SERVICES.get, USERS.get).root


def error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(text, SERVICES.get, USERS.get)
    return info.value


# -- lexer ----------------------------------------------------------------------------


def test_lexer_kinds_and_columns() -> None:
    toks = tokenize("port==22&&!(laddr in {10.0.0.0/8, ::1}) || p ~ 'a b'")
    assert [(t.kind, t.text, t.start) for t in toks] == [
        (Tok.WORD, "port", 0),
        (Tok.OP, "==", 4),
        (Tok.WORD, "22", 6),
        (Tok.AND, "&&", 8),
        (Tok.NOT, "!", 10),
        (Tok.LPAREN, "(", 11),
        (Tok.WORD, "laddr", 12),
        (Tok.WORD, "in", 18),
        (Tok.LBRACE, "{", 21),
        (Tok.WORD, "10.0.0.0/8", 22),
        (Tok.COMMA, ",", 32),
        (Tok.WORD, "::1", 34),
        (Tok.RBRACE, "}", 37),
        (Tok.RPAREN, ")", 38),
        (Tok.OR, "||", 40),
        (Tok.WORD, "p", 43),
        (Tok.OP, "~", 45),
        (Tok.STRING, "a b", 47),
        (Tok.EOF, "", 52),
    ]


def test_lexer_canonical_operators() -> None:
    ops = [t.text for t in tokenize("a = 1 b =~ x c <= 2 d != 3 e >= 4") if t.kind is Tok.OP]
    assert ops == ["==", "~", "<=", "!=", ">="]


def test_lexer_string_escapes() -> None:
    (tok, _) = tokenize(r'"a\"b\\c"')
    assert tok.text == 'a"b\\c'


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("port == 22 & lport == 1", 11, "did you mean '&&'"),
        ("a | b", 2, "did you mean '||'"),
        ("process ~ 'nginx", 10, "unterminated string"),
    ],
)
def test_lexer_errors(text: str, column: int, fragment: str) -> None:
    err = error(text)
    assert err.column == column
    assert fragment in err.message


# -- trees ---------------------------------------------------------------------------


def test_canonical_atoms() -> None:
    assert tree("port == telnet") == Cmp("port", "==", 23)
    assert tree("lport != 80") == Not(Cmp("lport", "==", 80))
    assert tree("rport in 1024..65535") == Member("rport", (Range(1024, 65535),))
    assert tree("port in {80 443, 8000..8099}") == Member("port", (80, 443, Range(8000, 8099)))
    assert tree("raddr in 10.0.0.0/8") == Member("raddr", (IPv4Network("10.0.0.0/8"),))
    assert tree("addr == ::1") == Member("addr", (IPv6Network("::1/128"),))
    assert tree("state == listen") == StateIn(frozenset({TcpState.LISTEN}))
    assert tree("state == connected") == StateIn(CONNECTED_STATES)
    assert tree("state in {established, close_wait}") == StateIn(
        frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})
    )
    assert tree("state != listen") == StateIn(ALL_STATES - {TcpState.LISTEN})
    assert tree("not state == listen") == tree("state != listen")
    assert tree("process ~ ngin.") == Regex("process", "ngin.")
    assert tree("user == root") == Cmp("user", "==", 0)
    assert tree("user == 1000") == Cmp("user", "==", 1000)
    assert tree("proto == TCP") == Cmp("proto", "==", "tcp")
    assert tree("family == inet6") == Cmp("family", "==", 6)
    assert tree("") == TRUE
    assert tree("   ") == TRUE


def test_units() -> None:
    assert tree("rtt > 200ms") == Cmp("rtt", ">", 200 * 1e-3)
    assert tree("rtt < 5s") == Cmp("rtt", "<", 5.0)
    assert tree("rtt <= 50us") == Cmp("rtt", "<=", 50 * 1e-6)
    assert tree("rtt < 2m") == Cmp("rtt", "<", 120.0)
    assert tree("send_q > 10kB") == Cmp("send_q", ">", 10_000)
    assert tree("bytes_sent >= 10MB") == Cmp("bytes_sent", ">=", 10_000_000)
    assert tree("recv_q > 4KiB") == Cmp("recv_q", ">", 4096)
    assert tree("recv_q > 4k") == Cmp("recv_q", ">", 4000)
    assert tree("cookie == 0x10") == Cmp("cookie", "==", 16)


def test_precedence_and_juxtaposition() -> None:
    a, b, c = Cmp("lport", "==", 1), Cmp("lport", "==", 2), Cmp("lport", "==", 3)
    assert tree("lport == 1 or lport == 2 and lport == 3") == Or((a, tree("lport == 2 and lport == 3")))
    assert tree("lport == 2 lport == 3") == tree("lport == 2 && lport == 3")
    assert tree("(lport == 1 or lport == 2) lport == 3") == tree("(lport == 1 || lport == 2) and lport == 3")
    assert tree("lport == 1 or lport == 2 or lport == 3") == Or((a, b, c))  # flat
    assert tree("not not lport == 1") == a
    assert tree("!(lport == 1)") == Not(a)


def test_wireshark_aliases_and_bare_words() -> None:
    assert tree("tcp.port == 443") == tree("port == 443")
    assert tree("ip.src == 10.1.2.3") == tree("laddr == 10.1.2.3")
    assert tree("tcp.dstport == 80") == tree("rport == 80")
    assert tree("tcp and ipv6") == tree("proto == tcp and family == 6")


@pytest.mark.parametrize(
    ("ss", "ours"),
    [
        ("state established", "state == established"),
        ("state connected", "state == connected"),
        ("state synchronized", "state in {synchronized}"),
        ("state established state syn-sent", "state in {established, syn-sent}"),
        ("exclude listening", "state != listen"),
        ("state all exclude time-wait", "state != time_wait"),
        ("sport = :ssh", "lport == ssh"),
        ("sport == :22", "tcp.srcport == 22"),
        ("sport eq :22", "lport == 22"),
        ("dport != :80", "rport != 80"),
        ("dport ne :http", "not rport == 80"),
        ("sport >= :1024", "lport >= 1024"),
        ("sport ge :1024", "lport >= 1024"),
        ("sport lt :1024", "lport < 1024"),
        ("dport gt :1024", "rport > 1024"),
        ("dport le :1024", "rport <= 1024"),
        ("src 127.0.0.1", "laddr == 127.0.0.1"),
        ("src 127.0.0.1", "laddr in 127.0.0.1/32"),
        ("dst 10.0.0.0/8", "raddr in 10.0.0.0/8"),
        ("dst 10.0.0.0/8:443", "raddr in 10.0.0.0/8 and rport == 443"),
        ("src [::1]:22", "laddr == ::1 and lport == 22"),
        ("src [::1]", "laddr == ::1"),
        ("src ::1", "laddr == ::1"),
        ("src *:22", "lport == 22"),
        ("src :ssh", "lport == 22"),
        ("dst ::ffff:10.0.0.1", "raddr == 10.0.0.1"),
        (
            "state established ( dport = :ssh or sport = :ssh )",
            "state == established and (rport == ssh or lport == ssh)",
        ),
        (
            "state established '( dport = :ssh or sport = :ssh )'",
            "state == established && (rport == 22 || lport == 22)",
        ),
        ("not dst 10.0.0.1", "raddr != 10.0.0.1"),
        ("sport = :22 and not dport = :22", "lport == 22 && !(rport == 22)"),
    ],
)
def test_ss_syntax_gives_the_same_tree(ss: str, ours: str) -> None:
    assert tree(ss) == tree(ours)


def test_ss_state_runs() -> None:
    assert tree("exclude listening exclude closed") == StateIn(ALL_STATES - {TcpState.LISTEN, TcpState.CLOSE})
    assert tree("state synchronized exclude established") == StateIn(
        SYNCHRONIZED_STATES - {TcpState.ESTABLISHED}
    )
    # With operators it is our syntax, where juxtaposition is 'and'.
    assert tree("state == listen state == established") == tree("state == listen and state == established")


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("prot == tcp", 0, "unknown field 'prot'; did you mean 'proto'?"),
        ("lprot == 22", 0, "unknown field 'lprot'; did you mean 'lport'?"),
        ("tcp.prot == 22", 0, "unknown field 'tcp.prot'; did you mean 'tcp.port'?"),
        ("state == estab1ished", 9, "unknown state 'estab1ished'; did you mean 'established'?"),
        ("proto == tpc", 9, "unknown protocol 'tpc'; did you mean 'tcp'?"),
        ("port == banana", 8, "'banana' is not a port number or a known service name"),
        ("port == 70000", 8, "port 70000 is out of range (0..65535)"),
        ("laddr > 5", 6, "'>' does not apply to 'laddr' (address); use ==, != or in"),
        ("state < listen", 6, "'<' does not apply to 'state' (state); use ==, != or in"),
        ("port ~ 22", 5, "'~' matches text; 'port' is a port"),
        ("laddr == 5", 9, "'5' is not an IP address or network"),
        ("rtt > 5parsecs", 6, "'5parsecs' is not a duration (e.g. 5s, 200ms)"),
        ("send_q > 10XB", 9, "'10XB' is not a size"),
        ("user == nobody_here", 8, "'nobody_here' is not a user id or a known user name"),
        ("port in 100..10", 8, "empty range '100..10': 100 is above 10"),
        ("port", 4, "expected an operator after 'port'"),
        ("port 22", 5, "expected an operator after 'port'"),
        ("port ==", 7, "expected a value after '=='"),
        ("(port == 22", 11, "expected ')' to close the '(' at column 1"),
        ("port == 22)", 10, "unbalanced ')'"),
        ("()", 1, "empty parentheses"),
        ("port in {}", 8, "empty set"),
        ("port in {1 2", 8, "unclosed '{'"),
        ("port == 22 or", 13, "expected a field name, '(' or 'not'"),
        ("port == 22 in", 11, "expected 'and', 'or' or the end of the filter, found 'in'"),
        ("listen", 0, "'listen' is a state, not a field; write 'state == listen'"),
        ("80", 0, "expected a field name before '80'"),
        ("port < {1 2}", 5, "a set needs 'in'"),
        ("process ~ '('", 10, "bad regular expression"),
        ("src 10.0.0.1:", 4, "'10.0.0.1:' has no port after ':'"),
    ],
)
def test_errors(text: str, column: int, message: str) -> None:
    err = error(text)
    assert err.column == column, err.render()
    assert err.message.startswith(message), err.render()
    assert err.expression == text


def test_error_render_has_caret_under_fault() -> None:
    err = error("state == listen and prot == tcp")
    lines = err.render().splitlines()
    assert lines[0] == ("bad filter at column 21: unknown field 'prot'; did you mean 'proto'?")
    assert lines[1] == "  state == listen and prot == tcp"
    assert lines[2] == "  " + " " * 20 + "^"
    assert str(err) == "unknown field 'prot'; did you mean 'proto'? (column 21)"
    assert isinstance(err, ValueError)


def test_error_inside_quoted_subfilter_points_into_it() -> None:
    err = error("state established '( dport = :nope )'")
    assert err.column == 29
    assert err.expression[err.column :].startswith(":nope")


def test_without_resolvers_names_are_refused() -> None:
    with pytest.raises(FilterError, match="not a port number or a known service"):
        parse_filter("port == ssh")
    with pytest.raises(FilterError, match="not a user id"):
        parse_filter("user == root")
    assert parse_filter("port == 22").root == Cmp("port", "==", 22)


def test_nesting_is_bounded() -> None:
    ok = "(" * MAX_DEPTH + "port == 1" + ")" * MAX_DEPTH
    assert parse_filter(ok).root == Cmp("port", "==", 1)
    err = error("(" * (MAX_DEPTH + 1) + "port == 1" + ")" * (MAX_DEPTH + 1))
    assert err.column == MAX_DEPTH and "nested too deeply" in err.message
    err = error("not " * 5000 + "port == 1")
    assert "nested too deeply" in err.message
    err = error("!" * 100_000)
    assert "nested too deeply" in err.message


def test_long_flat_expressions_do_not_recurse() -> None:
    text = " or ".join(f"lport == {i % 65536}" for i in range(20_000))
    node = parse_filter(text).root
    assert isinstance(node, Or) and len(node.items) == 20_000


# -- help ------------------------------------------------------------------------------


def test_help_lists_every_field_and_the_ss_syntax() -> None:
    text = render_filter_help(width=400)  # one line per field
    for field in FIELDS:
        line = next(li for li in text.splitlines() if li.split()[:1] == [field.name])
        assert field.kind.value in line and field.example in line
    for needle in (
        "tcp.port",
        "ip.addr",
        "connected",
        "synchronized",
        "listening",
        "sport = :ssh",
        "dst 10.0.0.0/8:443",
        "10MB",
        "200ms",
        "'!=' means",
    ):
        assert needle in text, needle
    for example in [li.strip() for li in text.split("Examples\n")[1].splitlines()]:
        parse_filter(example, SERVICES.get, USERS.get)  # every example parses
