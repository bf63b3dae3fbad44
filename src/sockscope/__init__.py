"""sockscope: see what TCP/IP does with the ports of a Linux server.

The library API, usable without the command line::

    import sockscope
    snap = sockscope.snapshot(protocols=["tcp"], processes=True)
    for ep in snap.endpoints:
        print(ep.local_address, ep.local_port, ep.state.name, ep.owners)
    for lst in sockscope.listeners():
        print(lst.endpoint.local_port, lst.accept_queue, "of", lst.capacity)
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's, which costs ~3 ms to import (see _namedtuple)
if TYPE_CHECKING:
    from sockscope.api import QueueReport, listeners, queue_report, snapshot
    from sockscope.model.endpoint import Endpoint, Owner, Snapshot, TcpInfo, Timer
    from sockscope.model.listener import Listener
    from sockscope.model.states import Proto, TcpState

__all__ = [
    "Endpoint",
    "Listener",
    "Owner",
    "Proto",
    "QueueReport",
    "Snapshot",
    "TcpInfo",
    "TcpState",
    "Timer",
    "listeners",
    "queue_report",
    "snapshot",
]
__version__ = "0.1.0"

# The public names load on first use (PEP 562): every 'sockscope' command imports this
# package first, and most need only a part of the library.
_HOMES = {
    "QueueReport": "sockscope.api",
    "listeners": "sockscope.api",
    "queue_report": "sockscope.api",
    "snapshot": "sockscope.api",
    "Endpoint": "sockscope.model.endpoint",
    "Owner": "sockscope.model.endpoint",
    "Snapshot": "sockscope.model.endpoint",
    "TcpInfo": "sockscope.model.endpoint",
    "Timer": "sockscope.model.endpoint",
    "Listener": "sockscope.model.listener",
    "Proto": "sockscope.model.states",
    "TcpState": "sockscope.model.states",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sockscope' has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415 - only on first use of a name

    value = getattr(import_module(home), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
