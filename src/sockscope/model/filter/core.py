"""Pure: ``Filter``, a parsed, type-checked expression ready to match endpoints."""

from __future__ import annotations

from sockscope.model.endpoint import Endpoint
from sockscope.model.filter.ast import Node, field_names
from sockscope.model.filter.evaluate import compile_node
from sockscope.model.filter.parser import parse_tree
from sockscope.model.filter.values import Resolver

#: Fields read from tcp_info, the process scan, and socket memory counters.
TCP_INFO_FIELDS = frozenset(
    {"rtt", "cwnd", "retrans", "bytes_sent", "bytes_acked", "bytes_received", "delivery_rate"}
)
PROCESS_FIELDS = frozenset({"pid", "process"})
MEMORY_FIELDS = frozenset({"drops"})


class Filter:
    """A parsed filter: ``matches`` evaluates it (``sockscope.query.pushdown`` says what the
    kernel can do of it)."""

    __slots__ = ("_pred", "needs_memory", "needs_processes", "needs_tcp_info", "root", "text")

    def __init__(self, text: str, root: Node) -> None:
        self.text = text
        self.root = root
        fields = field_names(root)
        self.needs_processes = bool(fields & PROCESS_FIELDS)
        self.needs_tcp_info = bool(fields & TCP_INFO_FIELDS)
        self.needs_memory = bool(fields & MEMORY_FIELDS)
        self._pred = compile_node(root)

    def matches(self, ep: Endpoint) -> bool:
        """Whether ``ep`` passes the filter."""
        return self._pred(ep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse_filter(
    text: str, resolve_service: Resolver | None = None, resolve_user: Resolver | None = None
) -> Filter:
    """Parse and type-check ``text``; an empty text matches everything.

    ``resolve_service`` maps a service name to a port (``telnet`` -> 23) and
    ``resolve_user`` a user name to a uid; without them only numbers are accepted.

    Raises:
        FilterError: the text is not a valid filter (with the column of the fault).
    """
    return Filter(text, parse_tree(text, resolve_service, resolve_user))
