"""Pure: lines of the ``sock:inet_sock_set_state`` tracepoint from tracefs's ``trace_pipe``.

Line layout (``include/trace/events/sock.h`` print fmt, after ftrace's context header)::

    python3-4242    [001] ..s1.  1234.567890: inet_sock_set_state: family=AF_INET \
protocol=IPPROTO_TCP sport=2323 dport=40000 saddr=127.0.0.1 daddr=127.0.0.1 \
saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV

The header's task is whoever was running: the process itself for a ``connect()`` or a
``close()``, but any task (or ``<idle>-0``) when the change happens in softirq, as it does
for the server side of a handshake.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from sockscope.model.endpoint import IPAddress
from sockscope.model.states import TcpState

MARKER = ": inet_sock_set_state: "
PROTOCOLS = {"IPPROTO_TCP": "tcp", "IPPROTO_SCTP": "sctp", "IPPROTO_MPTCP": "mptcp"}


class StateChange(NamedTuple):
    """One transition of one socket."""

    mono: float  # the tracepoint's clock; "mono" when the instance uses that clock
    comm: str
    pid: int
    family: int  # 4 or 6
    proto: str
    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    old_state: TcpState
    new_state: TcpState
    in_irq: bool  # the header's task only happened to be running: not the socket's owner

    @property
    def tuple_key(self) -> tuple[str, IPAddress, int, IPAddress, int]:
        """The connection's 4-tuple from this end, the only identity the tracepoint gives."""
        return (self.proto, self.local_address, self.local_port, self.remote_address,
                self.remote_port)


_STATES = {f"TCP_{s.name}": s for s in TcpState}


_ADDRESSES: dict[str, IPAddress] = {}
_ADDRESS_CACHE_MAX = 65536


def _address(text: str, family: int) -> IPAddress:
    # A busy host repeats a few addresses thousands of times a second; an ipaddress
    # object costs about a microsecond to build. Bounded, so a scan of many peers
    # cannot grow it without limit.
    addr = _ADDRESSES.get(text)
    if addr is None:
        addr = IPv4Address(text) if family == 4 else IPv6Address(text)
        if len(_ADDRESSES) >= _ADDRESS_CACHE_MAX:
            _ADDRESSES.clear()
        _ADDRESSES[text] = addr
    return addr


def parse_state_change(line: str) -> StateChange | None:
    """Decode one ``trace_pipe`` line; None for other events or malformed lines."""
    head, sep, body = line.partition(MARKER)
    if not sep:
        return None
    try:
        task, _cpu, flags, stamp = head.rsplit(None, 3)
        comm, _, pid = task.rpartition("-")
        # The print fmt fixes the order: family protocol sport dport saddr daddr saddrv6
        # daddrv6 oldstate newstate. Reading by position is twice as fast as a dict.
        (family, protocol, sport, dport, saddr, daddr, saddr6, daddr6, oldstate,
         newstate) = (f.partition("=")[2] for f in body.split())
        old, new = _STATES.get(oldstate), _STATES.get(newstate)
        if old is None or new is None:
            return None
        if family == "AF_INET":
            fam = 4
            laddr, raddr = _address(saddr, 4), _address(daddr, 4)
        else:
            fam = 6
            laddr, raddr = _address(saddr6, 6), _address(daddr6, 6)
        return StateChange(
            float(stamp.rstrip(":")), comm.strip(), int(pid), fam,
            PROTOCOLS.get(protocol, protocol.lower()),
            laddr, int(sport), raddr, int(dport), old, new,
            # irq-info flags: the third is 'h'/'s'/'H' in hard or soft interrupt context.
            len(flags) > 2 and flags[2] in "hsH",
        )
    except ValueError:  # a field missing, extra, or not a number
        return None
