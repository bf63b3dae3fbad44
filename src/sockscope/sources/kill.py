"""Thin I/O: closing a connection (``SOCK_DESTROY``, as ``ss -K``) and signalling a process.

Both are destructive: the front doors ask for confirmation first. Failures come back as
one exception type each with a message a person can act on (no privilege, a kernel
without ``CONFIG_INET_DIAG_DESTROY``, a socket or process that is already gone).
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
from collections.abc import Callable

from sockscope.model.endpoint import Endpoint
from sockscope.model.states import Proto
from sockscope.sources.netlink import DiagSocket, open_diag_socket
from sockscope.sources.netns import NetnsError, entered_netns
from sockscope.wire.errors import ParseError
from sockscope.wire.sock_destroy import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    SockId,
    build_sock_destroy,
    parse_ack,
)

ACK_TIMEOUT_S = 2.0
_seq = itertools.count(1)

_CLOSE_ERRORS = {
    errno.EPERM: "closing a connection needs CAP_NET_ADMIN in its network namespace (run sockscope as root)",
    errno.EACCES: "closing a connection needs CAP_NET_ADMIN in its network namespace (run sockscope as root)",
    errno.EOPNOTSUPP: "the kernel cannot close this socket (built without "
    "CONFIG_INET_DIAG_DESTROY, or no destroy support for this protocol)",
    errno.ENOENT: "the socket is already gone",
    errno.ESTALE: "the socket is already gone (another socket now has its addresses)",
}


#: "Any cookie" (``include/uapi/linux/inet_diag.h``): the kernel matches the 4-tuple alone.
INET_DIAG_NOCOOKIE = (1 << 64) - 1


class CloseError(Exception):
    """The connection could not be closed; ``str()`` says why, for a person."""

    def __init__(self, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.errno = err


class SignalError(Exception):
    """The process could not be signalled; ``str()`` says why, for a person."""


def sock_id(ep: Endpoint) -> SockId:
    """The exact ``inet_diag_sockid`` of ``ep``.

    Raises:
        CloseError: not a TCP/UDP socket, or no kernel cookie (read from ``/proc``).
    """
    if ep.proto not in (Proto.TCP, Proto.UDP) or ep.local_address is None:
        raise CloseError("only TCP and UDP sockets can be closed")
    if ep.cookie is None and (ep.proto is not Proto.TCP or ep.remote_address is None or not ep.remote_port):
        raise CloseError(
            "this socket has no kernel cookie (it was read from /proc), so it cannot be picked out exactly"
        )
    return SockId(
        ep.family,
        IPPROTO_TCP if ep.proto is Proto.TCP else IPPROTO_UDP,
        ep.local_address,
        ep.local_port,
        ep.remote_address,
        ep.remote_port or 0,
        ep.iface,
        # A connection seen so far only by the kernel-side sources has no cookie yet: its
        # full 4-tuple names one live socket, as ss -K names it.
        INET_DIAG_NOCOOKIE if ep.cookie is None else ep.cookie,
    )


def destroy_socket(ep: Endpoint, *, socket_factory: Callable[[], DiagSocket] = open_diag_socket) -> None:
    """Abort ``ep`` inside its own network namespace; its owner sees ``ECONNABORTED``.

    Raises:
        CloseError: with the reason (privilege, kernel support, already gone...).
    """
    ident = sock_id(ep)
    seq = next(_seq)
    request = build_sock_destroy(ident, seq)
    try:
        with entered_netns(ep.netns or None):
            sock = socket_factory()
        try:
            settimeout = getattr(sock, "settimeout", None)
            if settimeout is not None:
                settimeout(ACK_TIMEOUT_S)
            sock.send(request)
            err = _read_ack(sock, seq)
        finally:
            sock.close()
    except NetnsError as exc:
        raise CloseError(str(exc)) from None
    except TimeoutError:
        raise CloseError("the kernel did not answer the close request") from None
    except OSError as exc:
        raise CloseError(_close_message(exc.errno or 0), exc.errno or 0) from None
    except ParseError as exc:
        raise CloseError(f"could not decode the kernel's answer: {exc}") from None
    if err:
        raise CloseError(_close_message(err), err)


def _read_ack(sock: DiagSocket, seq: int) -> int:
    buf = bytearray(8192)
    for _ in range(16):  # other messages (none expected) are skipped, not waited on forever
        n = sock.recv_into(buf)
        if n == 0:
            raise ParseError("netlink socket closed before the acknowledgement")
        err = parse_ack(buf, n, seq)
        if err is not None:
            return err
    raise ParseError("no acknowledgement for the close request")


def _close_message(err: int) -> str:
    known = _CLOSE_ERRORS.get(err)
    if known is not None:
        return known
    name = errno.errorcode.get(err, str(err))
    return f"the kernel refused to close the socket: {name} ({os.strerror(err)})"


def signal_process(pid: int, inode: int, sig: int = signal.SIGTERM, *, proc_root: str = "/proc") -> None:
    """Send ``sig`` to ``pid``, only if it is still the process shown: the one holding
    socket ``inode``.

    The process is pinned by a pidfd first, then checked through ``/proc``, then
    signalled through the pidfd: had the shown process exited and its pid gone to
    another, the check fails on the stranger (it holds no such socket), and a process
    that exits after the check makes the signal fail instead of reaching whoever gets
    the pid next.

    Raises:
        SignalError: the process is gone, is not the one shown, or belongs to someone
            we may not signal.
    """
    if pid <= 1:
        raise SignalError(f"refusing to signal pid {pid}")
    if inode <= 0:
        raise SignalError(f"cannot tell that process {pid} is the one shown: its socket has no inode")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise SignalError(f"process {pid} is already gone") from None
    try:
        if not _holds(proc_root, pid, inode):
            raise SignalError(
                f"process {pid} no longer holds the socket shown (it closed it, or exited and "
                "its pid was reused): nothing sent"
            )
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise SignalError(f"process {pid} is already gone") from None
    except PermissionError:
        name = signal.Signals(sig).name
        raise SignalError(
            f"not permitted to send {name} to process {pid}: it belongs to "
            "another user (run sockscope as root)"
        ) from None
    finally:
        os.close(pidfd)


def _holds(proc_root: str, pid: int, inode: int) -> bool:
    """Whether process ``pid`` has socket ``inode`` among its open files."""
    wanted = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"{proc_root}/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{proc_root}/{pid}/fd/{fd}") == wanted:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


CAP_NET_ADMIN = 12  # include/uapi/linux/capability.h


def read_privilege(status_path: str = "/proc/self/status") -> str:
    """What this process may do, for the status bar: ``root``, ``CAP_NET_ADMIN`` or ``user``."""
    if os.geteuid() == 0:
        return "root"
    try:
        with open(status_path, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:") and int(line.split()[1], 16) >> CAP_NET_ADMIN & 1:
                    return "CAP_NET_ADMIN"
    except (OSError, ValueError, IndexError):
        pass
    return "user (cannot close connections; no tracepoint)"
