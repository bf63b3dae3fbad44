"""Pure: protocols and TCP states, with the kernel's numbers (``include/net/tcp_states.h``)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Proto(StrEnum):
    """Transport protocol of an endpoint."""

    TCP = "tcp"
    UDP = "udp"
    UNIX = "unix"


class TcpState(IntEnum):
    """The kernel's socket state numbers; UDP and UNIX sockets reuse them."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12

    @property
    def ss_label(self) -> str:
        """The label ``ss`` prints (``ESTAB``, ``SYN-RECV``...)."""
        return _SS_LABELS[self]

    def label(self, proto: Proto) -> str:
        """The Linux name used in netstat text and JSON (UDP's CLOSE is ``UNCONN``)."""
        if self is TcpState.CLOSE and proto is not Proto.TCP:
            return "UNCONN"
        if self is TcpState.NEW_SYN_RECV:
            return "SYN_RECV"
        return self.name

    def ss_label_for(self, proto: Proto) -> str:
        """The ss label, with UDP/UNIX ``CLOSE`` shown as ``UNCONN`` as ss does."""
        if self is TcpState.CLOSE and proto is not Proto.TCP:
            return "UNCONN"
        return _SS_LABELS[self]


_SS_LABELS = {
    TcpState.ESTABLISHED: "ESTAB",
    TcpState.SYN_SENT: "SYN-SENT",
    TcpState.SYN_RECV: "SYN-RECV",
    TcpState.FIN_WAIT1: "FIN-WAIT-1",
    TcpState.FIN_WAIT2: "FIN-WAIT-2",
    TcpState.TIME_WAIT: "TIME-WAIT",
    TcpState.CLOSE: "CLOSE",
    TcpState.CLOSE_WAIT: "CLOSE-WAIT",
    TcpState.LAST_ACK: "LAST-ACK",
    TcpState.LISTEN: "LISTEN",
    TcpState.CLOSING: "CLOSING",
    TcpState.NEW_SYN_RECV: "SYN-RECV",
}

#: Indexable by the kernel's state number: faster than ``TcpState(n)`` on the hot path.
STATE_BY_NUMBER: tuple[TcpState, ...] = (TcpState.CLOSE, *TcpState)

ALL_STATES = frozenset(TcpState) - {TcpState.NEW_SYN_RECV}
#: ss's "connected": every state but LISTEN and CLOSE.
CONNECTED_STATES = ALL_STATES - {TcpState.LISTEN, TcpState.CLOSE}
#: ss's "synchronized": connected, less SYN_SENT.
SYNCHRONIZED_STATES = CONNECTED_STATES - {TcpState.SYN_SENT}
#: What netstat and ss show without -a: everything but listeners (and unbound UDP).
DEFAULT_STATES = CONNECTED_STATES
LISTENING_STATES = frozenset({TcpState.LISTEN, TcpState.CLOSE})

#: Names a person may type for a state or a group of states (ss and netstat spellings).
STATE_NAMES: dict[str, frozenset[TcpState]] = {
    **{s.name.lower(): frozenset({s}) for s in ALL_STATES},
    **{s.ss_label.lower(): frozenset({s}) for s in ALL_STATES},
    "established": frozenset({TcpState.ESTABLISHED}),
    "fin_wait_1": frozenset({TcpState.FIN_WAIT1}),
    "fin_wait_2": frozenset({TcpState.FIN_WAIT2}),
    "unconn": frozenset({TcpState.CLOSE}),
    "all": ALL_STATES,
    "connected": CONNECTED_STATES,
    "synchronized": SYNCHRONIZED_STATES,
    "bucket": frozenset({TcpState.SYN_RECV, TcpState.TIME_WAIT}),
    "big": ALL_STATES - {TcpState.SYN_RECV, TcpState.TIME_WAIT},
}


def states_mask(states: frozenset[TcpState]) -> int:
    """The ``idiag_states`` bit mask (bit N for state N) for a set of states."""
    mask = 0
    for state in states:
        mask |= 1 << int(state)
    if TcpState.SYN_RECV in states:
        # Request sockets are dumped only when TCPF_NEW_SYN_RECV is asked for too.
        mask |= 1 << int(TcpState.NEW_SYN_RECV)
    return mask
