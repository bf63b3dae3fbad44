"""sockscope: see what TCP/IP does with the ports of a Linux server.

The library API, usable without the command line::

    import sockscope
    snap = sockscope.snapshot(protocols=["tcp"], processes=True)
    for ep in snap.endpoints:
        print(ep.local_address, ep.local_port, ep.state.name, ep.owners)
    for lst in sockscope.listeners():
        print(lst.endpoint.local_port, lst.accept_queue, "of", lst.capacity)
"""

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
