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
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from ipaddress import IPv6Address

from sockscope.model.endpoint import Endpoint
from sockscope.model.fields import FIELDS_BY_NAME
from sockscope.model.filter.ast import (
    And,
    Cmp,
    Item,
    Node,
    Not,
    Or,
    Range,
    Regex,
    StateIn,
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
        return lambda v: bool(v == wanted)
    compare = _ORDER[op]
    if isinstance(wanted, str):
        return lambda v: False  # the parser orders numbers only

    def test(value: object) -> bool:
        return isinstance(value, int | float) and compare(value, wanted)

    return test


def _member_test(items: tuple[Item, ...]) -> Test:
    singles = {i for i in items if isinstance(i, int | float | str)}
    ranges = [(i.lo, i.hi) for i in items if isinstance(i, Range)]
    nets = [i for i in items if not isinstance(i, int | float | str | Range)]

    def test(value: object) -> bool:
        if isinstance(value, IPv6Address):
            value = value.ipv4_mapped or value
        if value in singles:
            return True
        if isinstance(value, int | float) and any(lo <= value <= hi for lo, hi in ranges):
            return True
        return any(value in net for net in nets)

    return test


def _regex_test(pattern: str) -> Test:
    search = compile_search(pattern)  # linear in the text, whatever the pattern
    return lambda v: isinstance(v, str) and search(v)
