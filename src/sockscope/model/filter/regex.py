"""Pure: a user's regular expression searched in time linear in the text.

Python's ``re`` backtracks: ``(a+)+$`` against ``aaa...a!`` takes exponential time, and
``a*a*a*b`` polynomial, which would stall a listing, the watcher or the UI. A pattern
whose shape cannot backtrack much (at most one repetition, holding no repetition or
alternative) runs on ``re``, which is fastest. Any other runs here, on a Thompson
automaton turned lazily into a DFA, as RE2 does: each character of the text is one
table lookup once its step has been seen, and a step that has not costs time linear in
the pattern. Nothing backtracks, so the time is linear in the text whatever the pattern.

The automaton knows characters, classes, alternatives, groups, repetitions (counted
ones unrolled, within a size bound), ``^``/``\\A`` and ``$``/``\\Z``. What needs
backtracking to mean anything (backreferences, lookaround, atomic groups, possessive
repetition, conditionals) or a look at the neighbours (``\\b``, ``\\B``, multi-line
anchors) is refused with ``UnsupportedRegexError``, which says which construct it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _parser  # type: ignore[attr-defined]  # the parser re itself uses
from typing import Any

#: re's parse tree: (op, argument) pairs whose argument's shape depends on the op.
Arg = Any
Tree = list[tuple[Any, Any]]

Search = Callable[[str], bool]
CharTest = Callable[[str], bool]

#: NFA states a pattern may unroll into (``(a{100}){100}`` would need 10,000).
MAX_STATES = 4000
#: DFA states kept before the cache is dropped and rebuilt as the text needs it.
MAX_DFA_STATES = 2000

_I, _M, _S, _A = re.IGNORECASE, re.MULTILINE, re.DOTALL, re.ASCII
_REFUSED = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a lookahead or lookbehind",
    "ASSERT_NOT": "a lookahead or lookbehind",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive repetition",
}
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


class UnsupportedRegexError(ValueError):
    """A pattern that could not be searched in bounded time; ``str()`` says why."""


def compile_search(pattern: str, *, automaton: bool = False) -> Search:
    """``text -> bool``: whether ``pattern`` occurs in ``text`` (``re.search``'s answer).

    ``automaton`` runs every pattern on the automaton (tests compare the two).

    Raises:
        re.error: the pattern does not parse.
        UnsupportedRegexError: the pattern needs a construct that only backtracking gives.
    """
    tree = _parser.parse(pattern)
    if not automaton and _backtracks_little(tree):
        rx = re.compile(pattern)
        return lambda text: rx.search(text) is not None
    return _Dfa(_Nfa(tree, tree.state.flags)).search


def _backtracks_little(tree: Tree) -> bool:
    """At most one choice point (a repetition, optional ones included, or alternatives):
    ``re`` then tries each start once and each choice a number of ways bounded by the
    text's length. Two of them multiply (``a*a*b``, ``(a|a)(a|a)``), nested ones
    explode (``(a+)+``): those go to the automaton."""
    choices = [op for op, av in _walk(tree) if str(op) in _REPEATS or (str(op) == "BRANCH" and av)]
    return len(choices) <= 1


def _walk(tree: Tree) -> list[tuple[Any, Any]]:
    """Every (op, argument) in the tree, nested ones included."""
    out: list[tuple[Any, Any]] = []
    for op, av in tree:
        out.append((op, av))
        name = str(op)
        if name in _REPEATS:
            out += _walk(av[2])
        elif name == "SUBPATTERN":
            out += _walk(av[3])
        elif name == "BRANCH":
            for alt in av[1]:
                out += _walk(alt)
        elif name in ("ASSERT", "ASSERT_NOT"):
            out += _walk(av[1])
        elif name == "ATOMIC_GROUP":
            out += _walk(av)
    return out


# -- the automaton ------------------------------------------------------------------

CHAR, SPLIT, BOL, EOL, EOS, MATCH = range(6)


class _Nfa:
    """Thompson's construction; states are indexes into parallel lists."""

    def __init__(self, tree: Tree, flags: int) -> None:
        self.kind: list[int] = []
        self.test: list[CharTest | None] = []
        self.outs: list[list[int]] = []
        self.match = self._new(MATCH)
        self.start = self._seq(tree, self.match, flags)

    def _new(self, kind: int, test: CharTest | None = None, outs: list[int] | None = None) -> int:
        if len(self.kind) >= MAX_STATES:
            raise UnsupportedRegexError("its counted repetitions unroll into too many states")
        self.kind.append(kind)
        self.test.append(test)
        self.outs.append(outs or [])
        return len(self.kind) - 1

    def _seq(self, items: Tree, nxt: int, flags: int) -> int:
        """The items in order, built backwards so each knows what follows it."""
        for op, av in reversed(list(items)):
            nxt = self._item(str(op), av, nxt, flags)
        return nxt

    def _item(self, name: str, av: Arg, nxt: int, flags: int) -> int:
        if name in _REFUSED:
            raise UnsupportedRegexError(f"{_REFUSED[name]} cannot be searched without backtracking")
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, hi, body = av
            return self._repeat(lo, hi, body, nxt, flags)
        if name == "SUBPATTERN":
            _, add, remove, body = av
            return self._seq(body, nxt, (flags | add) & ~remove)
        if name == "BRANCH":
            return self._new(SPLIT, outs=[self._seq(alt, nxt, flags) for alt in av[1]])
        if name == "AT":
            return self._anchor(str(av), nxt, flags)
        return self._new(CHAR, _char_test(name, av, flags), [nxt])

    def _repeat(self, lo: int, hi: int, body: Tree, nxt: int, flags: int) -> int:
        if hi == _parser.MAXREPEAT:
            loop = self._new(SPLIT)
            self.outs[loop] = [self._seq(body, loop, flags), nxt]
            start = loop
        else:
            start = nxt
            for _ in range(hi - lo):  # each optional copy may be skipped to what follows
                start = self._new(SPLIT, outs=[self._seq(body, start, flags), nxt])
        for _ in range(lo):
            start = self._seq(body, start, flags)
        return start

    def _anchor(self, at: str, nxt: int, flags: int) -> int:
        if at in ("AT_BEGINNING", "AT_END") and flags & _M:
            raise UnsupportedRegexError("'^' and '$' of a multi-line (?m) pattern are not supported")
        kinds = {"AT_BEGINNING": BOL, "AT_BEGINNING_STRING": BOL, "AT_END": EOL, "AT_END_STRING": EOS}
        if at not in kinds:
            raise UnsupportedRegexError("a word boundary (\\b, \\B) cannot be searched without backtracking")
        return self._new(kinds[at], outs=[nxt])

    def closure(self, states: list[int], *, bol: bool, end: tuple[int, ...] = ()) -> frozenset[int]:
        """The states reachable without reading a character; ``^`` holds when ``bol``,
        the anchors in ``end`` (``EOL`` for ``$``, ``EOS`` for ``\\Z``) hold; the others
        wait in the set."""
        seen: set[int] = set()
        todo = list(states)
        kind, outs = self.kind, self.outs
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            k = kind[s]
            if k == SPLIT or (k == BOL and bol) or k in end:
                todo.extend(outs[s])
        return frozenset(s for s in seen if kind[s] in (CHAR, MATCH, EOL, EOS))


class _State:
    """One DFA state: the NFA states it stands for and the steps out of it seen so far."""

    __slots__ = ("matched", "next", "nfa")

    def __init__(self, nfa: frozenset[int], matched: bool) -> None:
        self.nfa = nfa
        self.matched = matched
        self.next: dict[str, _State] = {}


class _Dfa:
    """The NFA's state sets, built as the texts searched need them."""

    def __init__(self, nfa: _Nfa) -> None:
        self.nfa = nfa
        # A search may start anywhere: the start's closure joins every step (where '^'
        # no longer holds).
        self.restart = nfa.closure([nfa.start], bol=False)
        self.states: dict[frozenset[int], _State] = {}
        self.initial = self._state(nfa.closure([nfa.start], bol=True))

    def _state(self, nfa_states: frozenset[int]) -> _State:
        state = self.states.get(nfa_states)
        if state is None:
            if len(self.states) >= MAX_DFA_STATES:
                self.states.clear()  # the texts' own steps come back as needed
            state = _State(nfa_states, self.nfa.match in nfa_states)
            self.states[nfa_states] = state
        return state

    def _step(self, state: _State, ch: str) -> _State:
        nfa = self.nfa
        kind, test, outs = nfa.kind, nfa.test, nfa.outs
        moved = [outs[s][0] for s in state.nfa if kind[s] == CHAR and test[s](ch)]  # type: ignore[misc]
        nxt = self._state(nfa.closure(moved, bol=False) | self.restart)
        state.next[ch] = nxt
        return nxt

    def _ends(self, state: _State, anchors: tuple[int, ...], *, empty: bool) -> bool:
        """Whether a match ends here once the ``anchors`` waiting in ``state`` hold."""
        nfa = self.nfa
        waiting = [s for s in state.nfa if nfa.kind[s] in anchors]
        return bool(waiting) and nfa.match in nfa.closure(waiting, bol=empty, end=anchors)

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``."""
        state = self.initial
        body = text[:-1] if text.endswith("\n") else text
        for ch in body:
            if state.matched:
                return True
            nxt = state.next.get(ch)
            state = nxt if nxt is not None else self._step(state, ch)
        if state.matched:
            return True
        if len(body) < len(text):
            # '$' also holds before the final newline ('\\Z' does not): that newline is
            # read from the state where the '$' waiting in it have passed.
            state = self._state(self.nfa.closure(list(state.nfa), bol=not body, end=(EOL,)))
            if state.matched:
                return True
            nxt = state.next.get("\n")
            state = nxt if nxt is not None else self._step(state, "\n")
            if state.matched:
                return True
        return self._ends(state, (EOL, EOS), empty=not text)


# -- characters -----------------------------------------------------------------------


def _char_test(name: str, av: Arg, flags: int) -> CharTest:
    if name == "LITERAL":
        lit = chr(av)
        base: CharTest = lit.__eq__
    elif name == "NOT_LITERAL":
        lit = chr(av)
        base = lit.__ne__
    elif name == "ANY":
        return (lambda ch: True) if flags & _S else "\n".__ne__
    elif name == "IN":
        base = _class_test(av, flags)
    else:
        raise UnsupportedRegexError(f"{name.lower()} is not supported in a pattern this complex")
    if not flags & _I:
        return base
    if name == "NOT_LITERAL":
        return lambda ch: base(ch) and base(ch.lower()) and base(ch.upper())
    return lambda ch: base(ch) or _cased(base, ch)


def _cased(base: CharTest, ch: str) -> bool:
    low, up = ch.lower(), ch.upper()
    return (len(low) == 1 and base(low)) or (len(up) == 1 and base(up))


def _class_test(items: Tree, flags: int) -> CharTest:
    negate = bool(items) and str(items[0][0]) == "NEGATE"
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    cats: list[CharTest] = []
    for op, av in items[1:] if negate else items:
        name = str(op)
        if name == "LITERAL":
            chars.add(chr(av))
        elif name == "RANGE":
            ranges.append(av)
        elif name == "CATEGORY":
            cats.append(_category(str(av), ascii_only=bool(flags & _A)))
        else:
            raise UnsupportedRegexError(f"{name.lower()} in a class is not supported")

    def test(ch: str) -> bool:
        hit = ch in chars or any(lo <= ord(ch) <= hi for lo, hi in ranges) or any(c(ch) for c in cats)
        return hit != negate

    return test


def _category(name: str, *, ascii_only: bool) -> CharTest:
    """``\\d \\w \\s`` and their negations, with re's Unicode (or ASCII) meaning."""
    if ascii_only:
        digit: CharTest = lambda ch: "0" <= ch <= "9"  # noqa: E731
        word: CharTest = lambda ch: ch.isascii() and (ch.isalnum() or ch == "_")  # noqa: E731
        space: CharTest = lambda ch: ch in " \t\n\r\f\v"  # noqa: E731
    else:
        digit = str.isdecimal
        word = lambda ch: ch.isalnum() or ch == "_"  # noqa: E731
        space = str.isspace
    tests = {"DIGIT": digit, "WORD": word, "SPACE": space}
    kind = name.removeprefix("CATEGORY_")
    if kind.startswith("NOT_"):
        inner = tests[kind[4:]]
        return lambda ch: not inner(ch)
    return tests[kind]
