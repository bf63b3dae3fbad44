"""The filter's regular expressions: re's answers, in time linear in the text."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.model.endpoint import Endpoint
from sockscope.model.filter import FilterError, parse_filter
from sockscope.model.filter.regex import MAX_STATES, UnsupportedRegexError, compile_search
from sockscope.model.states import Proto, TcpState

ATOMS = ["a", "b", "\\n", ".", "[ab]", "[^a]", "\\d", "\\w", "\\s", "\\W", "[a-c\\d]", "A", "7", " "]
TEXT = st.text(alphabet="abAB7 \n_-!é", max_size=12)


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    """Small patterns built from the constructs the automaton runs."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["atom", "atom", "group", "branch", "anchor"] if depth < 2 else ["atom"]))
        if kind == "atom":
            part = draw(st.sampled_from(ATOMS))
        elif kind == "group":
            part = f"({draw(patterns(depth + 1))})"
        elif kind == "branch":
            part = f"({draw(patterns(depth + 1))}|{draw(patterns(depth + 1))})"
        else:
            part = draw(st.sampled_from(["^", "$", "\\A", "\\Z"]))
        if kind != "anchor":
            part += draw(st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{0,2}", "*?", "+?"]))
        parts.append(part)
    flags = draw(st.sampled_from(["", "", "(?i)", "(?s)", "(?a)"])) if depth == 0 else ""
    return flags + "".join(parts)


@settings(max_examples=400, deadline=None)
@given(patterns(), st.lists(TEXT, min_size=1, max_size=5))
def test_the_automaton_answers_as_re_does(pattern: str, texts: list[str]) -> None:
    search = compile_search(pattern, automaton=True)
    for text in texts:
        assert search(text) == (re.search(pattern, text) is not None), (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^ab$", "ab\n", True),
        ("a\\Z", "a\n", False),
        ("$^", "", True),
        ("x$^", "x", False),
        ("(?i)straße", "STRASSE", False),
        ("(?i)[k-m]", "K", True),
        ("(?i)[^k]", "K", False),
        ("(a*)*b", "aaab", True),
        ("(a|ab)(c|bcd)(d*)", "abcd", True),
    ],
)
def test_edges_match_re(pattern: str, text: str, found: bool) -> None:
    assert compile_search(pattern, automaton=True)(text) is found
    assert (re.search(pattern, text) is not None) is found


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("(a+)+$", False),
        ("(a|a)*$", True),  # the empty string at the end
        ("(a|aa)+$", False),
        ("a*a*a*a*a*a*a*b", False),
        ("(\\w+\\s?)+$", False),
        ("(a?){30}a{30}", True),
    ],
)
def test_catastrophic_patterns_take_linear_time(pattern: str, found: bool) -> None:
    search = compile_search(pattern)
    text = "a" * 20_000 + "!"
    started = time.perf_counter()
    assert search(text) is found
    # re needs years for the first of these on 30 characters; linear is milliseconds here.
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("(a+)+\\1", "a backreference"),
        ("(?=a)a*b*", "a lookahead or lookbehind"),
        ("(?<!x)a*b*", "a lookahead or lookbehind"),
        ("(?>a*)b*", "an atomic group"),
        ("a*+b*", "a possessive repetition"),
        ("\\ba*b*", "a word boundary"),
        ("(?m)^a*b*", "multi-line"),
    ],
)
def test_constructs_that_need_backtracking_are_refused_by_name(pattern: str, construct: str) -> None:
    with pytest.raises(UnsupportedRegexError, match=construct):
        compile_search(pattern)
    with pytest.raises(FilterError) as info:
        parse_filter(f'path ~ "{pattern}"')
    assert info.value.message.startswith("regular expression refused: ") and info.value.column == 7


def test_simple_patterns_keep_re_and_its_constructs() -> None:
    assert compile_search("(a)\\1")("xaa") and compile_search("\\bnginx\\b")("/run/nginx.sock")


def test_huge_counted_repetitions_are_refused() -> None:
    n = int(MAX_STATES**0.5) + 1
    with pytest.raises(UnsupportedRegexError, match="too many states"):
        compile_search(f"(a{{{n}}}){{{n}}}b*")


def test_a_filter_on_a_hostile_name_returns() -> None:
    ep = Endpoint(
        Proto.UNIX, 0, TcpState.LISTEN, None, 9, None, None, 0, 0, None, 9, None, path="@" + "a" * 5000 + "!"
    )
    flt = parse_filter('path ~ "(a+)+$"')
    started = time.perf_counter()
    assert not flt.matches(ep)
    assert parse_filter('path ~ "(a+)+!$"').matches(ep)
    assert time.perf_counter() - started < 5
