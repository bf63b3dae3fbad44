"""The query layer's vocabulary: what to read (``Query``) and what the kernel filters
(``KernelFilter``), resolved from flags and a filter. Pure values, no I/O."""

from __future__ import annotations

from sockscope._namedtuple import NamedTuple
from sockscope.model.states import ALL_STATES, Proto, TcpState

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see _namedtuple)
if TYPE_CHECKING:
    from sockscope.query.pushdown import PortSpan


# No dataclasses here: ``dataclasses`` imports ``inspect`` (~10 ms), which every
# 'sockscope list' would pay at start-up. The frozen records are NamedTuples; Query,
# which callers may adjust in place, is a plain class with the dataclass's behaviour.
class KernelFilter(NamedTuple):
    """What the kernel can filter for us: which dumps, which states, a bytecode program,
    and the ports every match has one of (for the watcher's tracepoint and destroy
    messages, which have no bytecode)."""

    states: frozenset[TcpState] = ALL_STATES
    bytecode: bytes | None = None
    ports: tuple[PortSpan, ...] | None = None


class Query:
    """Everything ``snapshot`` was asked for, resolved to plain values."""

    __slots__ = ("families", "kernel", "memory", "netns", "processes", "protocols", "source", "tcp_info")
    _FIELDS = ("protocols", "families", "kernel", "processes", "tcp_info", "memory", "netns", "source")
    # Mutable, so unhashable, as the dataclass was.
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        protocols: tuple[Proto, ...] = (Proto.TCP, Proto.UDP),
        families: tuple[int, ...] = (4, 6),
        kernel: KernelFilter | None = None,
        processes: bool = False,
        tcp_info: bool = False,
        memory: bool = False,
        netns: str | None = None,
        source: str = "auto",
    ) -> None:
        self.protocols = protocols
        self.families = families
        self.kernel = KernelFilter() if kernel is None else kernel
        self.processes = processes
        self.tcp_info = tcp_info
        self.memory = memory
        self.netns = netns
        self.source = source

    def _astuple(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"Query({inner})"
