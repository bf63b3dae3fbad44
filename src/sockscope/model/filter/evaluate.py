"""Pure: turns a filter tree into a predicate over ``Endpoint``s.

Semantics, in one place:

- A comparison with an absent value (``None``: ``rport`` on a listener, ``rtt`` without
  tcp_info) is false, whatever the operator; ``!=`` is ``not ==``, so it is true there.
- ``port`` and ``addr`` hold when either end (local or remote) matches; fields with many
  values (``pid``, ``process``: every owning process) hold when any value matches. With
  ``!=`` being ``not ==``, ``port != 22`` means neither end is 22 and ``pid != 1`` means
  no owner is pid 1.
- An address test reads a v4-mapped IPv6 address (``::ffff:10.0.0.1``) as its IPv4
  address, as ss and the kernel's bytecode do.
- The kernel reports request sockets as SYN-RECV; ``NEW_SYN_RECV`` is read as SYN_RECV.
- A value known only from below (``AtLeast``: the duration of a connection that opened
  before it was first seen) matches only where every value it may stand for would:
  ``duration > 1s`` holds for at least 2 s, ``duration < 1s`` never does, and under
  ``not`` the test is evaluated in three values (true, false, unknown), unknown failing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from ipaddress import IPv6Address

from sockscope.model.endpoint import Endpoint
from sockscope.model.event import AtLeast
from sockscope.model.fields import FIELDS_BY_NAME
from sockscope.model.filter.ast import (
    And,
    Cmp,
    Item,
    Member,
    Node,
    Not,
    Or,
    Range,
    Regex,
    StateIn,
    field_names,
)
from sockscope.model.filter.regex import compile_search
from sockscope.model.states import TcpState

Predicate = Callable[[Endpoint], bool]
Test = Callable[[object], bool]

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compile_node(node: Node) -> Predicate:
    """A predicate that holds for the endpoints ``node`` matches."""
    if isinstance(node, And | Or):
        preds = [compile_node(item) for item in node.items]
        if isinstance(node, And):
            return lambda ep: all(p(ep) for p in preds)
        return lambda ep: any(p(ep) for p in preds)
    if isinstance(node, Not):
        if field_names(node.item) & BOUNDED_FIELDS:
            inner3 = compile_three(node.item)
            return lambda ep: inner3(ep) == FALSE
        inner = compile_node(node.item)
        return lambda ep: not inner(ep)
    if isinstance(node, StateIn):
        return _state_test(node.states)
    if isinstance(node, Regex):
        test = _regex_test(node.pattern)
    elif isinstance(node, Cmp):
        test = _cmp_test(node.op, node.value)
    else:
        test = _member_test(node.items)
    return _field_pred(node.field, test)


def _state_test(states: frozenset[TcpState]) -> Predicate:
    wanted = set(states)
    if TcpState.SYN_RECV in wanted:
        wanted.add(TcpState.NEW_SYN_RECV)
    return lambda ep: ep.state in wanted


def _field_pred(name: str, test: Test) -> Predicate:
    field = FIELDS_BY_NAME[name]
    getters = [FIELDS_BY_NAME[n].get for n in field.either] or [field.get]

    def pred(ep: Endpoint) -> bool:
        for get in getters:
            value = get(ep)
            if value is None:
                continue
            if isinstance(value, tuple):
                if any(test(v) for v in value):
                    return True
            elif test(value):
                return True
        return False

    return pred


def _cmp_test(op: str, wanted: float | str) -> Test:
    if op == "==":
        return lambda v: bool(v == wanted) and not isinstance(v, AtLeast)
    compare = _ORDER[op]
    if isinstance(wanted, str):
        return lambda v: False  # the parser orders numbers only
    upward = op in (">", ">=")  # the only tests a lower bound can pass for certain

    def test(value: object) -> bool:
        if isinstance(value, AtLeast) and not upward:
            return False
        return isinstance(value, int | float) and compare(value, wanted)

    return test


def _member_test(items: tuple[Item, ...]) -> Test:
    singles = {i for i in items if isinstance(i, int | float | str)}
    ranges = [(i.lo, i.hi) for i in items if isinstance(i, Range)]
    nets = [i for i in items if not isinstance(i, int | float | str | Range)]

    def test(value: object) -> bool:
        if isinstance(value, IPv6Address):
            value = value.ipv4_mapped or value
        elif isinstance(value, AtLeast):
            return False  # no set or range holds every value from a bound upwards
        if value in singles:
            return True
        if isinstance(value, int | float) and any(lo <= value <= hi for lo, hi in ranges):
            return True
        return any(value in net for net in nets)

    return test


def _regex_test(pattern: str) -> Test:
    search = compile_search(pattern)  # linear in the text, whatever the pattern
    return lambda v: isinstance(v, str) and search(v)


# -- three values, for fields that may hold a lower bound -------------------------------

#: Fields whose value may be an ``AtLeast``.
BOUNDED_FIELDS = frozenset({"duration"})
FALSE, UNKNOWN, TRUE = 0, 1, 2
Predicate3 = Callable[[Endpoint], int]


def compile_three(node: Node) -> Predicate3:
    """``node`` as a three-valued predicate (Kleene's logic: and is min, or is max)."""
    if isinstance(node, And | Or):
        preds = [compile_three(item) for item in node.items]
        pick = min if isinstance(node, And) else max
        return lambda ep: pick(p(ep) for p in preds)
    if isinstance(node, Not):
        inner = compile_three(node.item)
        return lambda ep: TRUE - inner(ep)
    exact = compile_node(node)
    if not isinstance(node, Cmp | Member) or node.field not in BOUNDED_FIELDS:
        return lambda ep: TRUE if exact(ep) else FALSE
    get = FIELDS_BY_NAME[node.field].get
    bound = _bound_test(node)

    def pred(ep: Endpoint) -> int:
        value = get(ep)
        if isinstance(value, AtLeast):
            return bound(float(value))
        return TRUE if exact(ep) else FALSE

    return pred


def _bound_test(node: Cmp | Member) -> Callable[[float], int]:
    """The atom on a value known to be ``low`` or more."""
    if isinstance(node, Member):
        tops = [
            float(i.hi) if isinstance(i, Range) else float(i)
            for i in node.items
            if isinstance(i, Range | int | float)
        ]
        return lambda low: FALSE if all(low > top for top in tops) else UNKNOWN
    x = float(node.value) if not isinstance(node.value, str) else 0.0
    rules: dict[str, Callable[[float], int]] = {
        ">": lambda low: TRUE if low > x else UNKNOWN,
        ">=": lambda low: TRUE if low >= x else UNKNOWN,
        "<": lambda low: FALSE if low >= x else UNKNOWN,
        "<=": lambda low: FALSE if low > x else UNKNOWN,
        "==": lambda low: FALSE if low > x else UNKNOWN,
    }
    return rules[node.op]
