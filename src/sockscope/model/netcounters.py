"""Pure: the namespace counters of ``/proc/net/netstat`` and ``/proc/net/snmp`` worth
exporting, with names and help.

Each is a monotonic counter the kernel keeps per network namespace
(``include/uapi/linux/snmp.h``); most count packets or segments, not connections. The
kernel's names stay as the key (``TcpExt.ListenOverflows``); the metric name is the
snake_case form, since Prometheus' lint refuses camelCase.
"""

from __future__ import annotations

from typing import NamedTuple


class NetCounter(NamedTuple):
    """One kernel counter and how it is exported."""

    key: str  # "TcpExt.ListenOverflows": file group and field, as the kernel names them
    name: str  # metric name without prefix or _total: "tcpext_listen_overflows"
    help: str

    @property
    def file(self) -> str:
        """The /proc/net file it comes from."""
        return "snmp" if self.key.split(".", 1)[0] in ("Tcp", "Udp") else "netstat"


def _c(key: str, name: str, help_text: str) -> NetCounter:
    return NetCounter(key, name, help_text)


NET_COUNTERS: tuple[NetCounter, ...] = (
    # The listen queue (net/ipv4/tcp_ipv4.c, net/ipv4/inet_connection_sock.c).
    _c(
        "TcpExt.ListenOverflows",
        "tcpext_listen_overflows",
        "completed handshakes dropped because a listener's accept queue was full",
    ),
    _c(
        "TcpExt.ListenDrops",
        "tcpext_listen_drops",
        "SYNs and handshakes a listener dropped for any reason (overflows included)",
    ),
    _c(
        "TcpExt.TCPReqQFullDrop",
        "tcpext_tcp_req_q_full_drop",
        "SYNs dropped because the SYN queue was full and syncookies were off",
    ),
    _c(
        "TcpExt.TCPReqQFullDoCookies",
        "tcpext_tcp_req_q_full_do_cookies",
        "SYNs answered with a syncookie because the SYN queue was full",
    ),
    _c("TcpExt.SyncookiesSent", "tcpext_syncookies_sent", "syncookies sent"),
    _c("TcpExt.SyncookiesRecv", "tcpext_syncookies_recv", "valid syncookies received"),
    _c("TcpExt.SyncookiesFailed", "tcpext_syncookies_failed", "invalid syncookies received"),
    _c("TcpExt.TCPSynRetrans", "tcpext_tcp_syn_retrans", "SYN and SYN-ACK retransmissions"),
    _c(
        "TcpExt.TCPDeferAcceptDrop",
        "tcpext_tcp_defer_accept_drop",
        "handshakes dropped by TCP_DEFER_ACCEPT (no data came)",
    ),
    _c(
        "TcpExt.TCPBacklogDrop",
        "tcpext_tcp_backlog_drop",
        "segments dropped because a socket's backlog (while the user held it) was full",
    ),
    # Aborts: connections ended with a reset.
    _c("TcpExt.TCPAbortOnData", "tcpext_tcp_abort_on_data", "resets sent on close with unread data"),
    _c(
        "TcpExt.TCPAbortOnClose",
        "tcpext_tcp_abort_on_close",
        "resets sent because the application closed with data still to read",
    ),
    _c("TcpExt.TCPAbortOnMemory", "tcpext_tcp_abort_on_memory", "connections aborted for lack of memory"),
    _c(
        "TcpExt.TCPAbortOnTimeout",
        "tcpext_tcp_abort_on_timeout",
        "connections aborted after too many retransmission timeouts",
    ),
    _c(
        "TcpExt.TCPAbortOnLinger",
        "tcpext_tcp_abort_on_linger",
        "connections aborted when the linger timeout expired",
    ),
    _c("TcpExt.TCPAbortFailed", "tcpext_tcp_abort_failed", "resets that could not be sent"),
    _c("TcpExt.TCPTimeouts", "tcpext_tcp_timeouts", "retransmission timeouts"),
    _c("TcpExt.TW", "tcpext_tw", "TIME_WAIT sockets that ended normally"),
    _c("TcpExt.TWKilled", "tcpext_tw_killed", "TIME_WAIT sockets ended early"),
    # Tcp (RFC 4022's tcp group; /proc/net/snmp).
    _c("Tcp.ActiveOpens", "tcp_active_opens", "connections opened by connect() (SYN_SENT entered)"),
    _c("Tcp.PassiveOpens", "tcp_passive_opens", "connections accepted by listeners (SYN_RECV entered)"),
    _c("Tcp.AttemptFails", "tcp_attempt_fails", "connection attempts that failed"),
    _c("Tcp.EstabResets", "tcp_estab_resets", "ESTABLISHED or CLOSE_WAIT connections reset"),
    _c("Tcp.InSegs", "tcp_in_segs", "segments received"),
    _c("Tcp.OutSegs", "tcp_out_segs", "segments sent, retransmissions excluded"),
    _c("Tcp.RetransSegs", "tcp_retrans_segs", "segments retransmitted"),
    _c("Tcp.InErrs", "tcp_in_errs", "segments received in error"),
    _c("Tcp.OutRsts", "tcp_out_rsts", "segments sent with the RST flag"),
    # Udp.
    _c("Udp.InDatagrams", "udp_in_datagrams", "UDP datagrams delivered"),
    _c("Udp.NoPorts", "udp_no_ports", "UDP datagrams for a port nothing listened on"),
    _c("Udp.InErrors", "udp_in_errors", "UDP datagrams that could not be delivered"),
    _c("Udp.OutDatagrams", "udp_out_datagrams", "UDP datagrams sent"),
    _c(
        "Udp.RcvbufErrors",
        "udp_rcvbuf_errors",
        "UDP datagrams dropped because a socket's receive buffer was full",
    ),
    _c("Udp.SndbufErrors", "udp_sndbuf_errors", "UDP datagrams dropped for lack of send buffer"),
)
