"""Pure: the filter tree. Both syntaxes (sockscope's and ss's) parse into these nodes.

The tree is canonical so that equal meanings compare equal: ``!=`` is ``Not(==)``,
every state test is a ``StateIn`` set, an address test is a ``Member`` of networks,
fields are named by their registry name (never an alias), and ``And``/``Or`` are flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from sockscope.model.states import TcpState

Network = IPv4Network | IPv6Network
Number = int | float


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive range of numbers, ``lo..hi``."""

    lo: Number
    hi: Number


Item = int | float | str | Range | IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Cmp:
    """``field op value`` with op one of ``== < <= > >=``."""

    field: str
    op: str
    value: int | float | str


@dataclass(frozen=True, slots=True)
class Member:
    """``field in {items}``: a value equal to an item, inside a range or a network."""

    field: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class StateIn:
    """The socket's state is one of ``states``."""

    states: frozenset[TcpState]


@dataclass(frozen=True, slots=True)
class Regex:
    """``field ~ pattern``: a regular expression search on a text field."""

    field: str
    pattern: str


@dataclass(frozen=True, slots=True)
class And:
    """Every item holds; ``And(())`` always holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Some item holds; ``Or(())`` never holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not hold."""

    item: Node


Node = Cmp | Member | StateIn | Regex | And | Or | Not
TRUE = And(())
FALSE = Or(())


def make_and(items: list[Node]) -> Node:
    """A flat ``And`` of ``items`` (the item itself when there is one)."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def make_or(items: list[Node]) -> Node:
    """A flat ``Or`` of ``items`` (the item itself when there is one)."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def field_names(node: Node) -> set[str]:
    """Every field the tree mentions (``state`` included)."""
    stack, out = [node], set()
    while stack:
        cur = stack.pop()
        if isinstance(cur, And | Or):
            stack.extend(cur.items)
        elif isinstance(cur, Not):
            stack.append(cur.item)
        elif isinstance(cur, StateIn):
            out.add("state")
        else:
            out.add(cur.field)
    return out
