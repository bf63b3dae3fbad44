"""The HTTP(S) server: a thread per connection, TLS set up in that thread.

prometheus_client's own server wraps the listening socket, so every TLS handshake runs
in the accepting thread: one client that connects and sends nothing stalls every scrape.
Here the handshake, with a timeout, runs in the connection's own thread. A plain HTTP
request to the TLS port gets a 400 that says so (as Go's server answers), not a hang or a
bare reset.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

#: Seconds a client has to finish the TLS handshake, and to send its request.
HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
_TLS_HANDSHAKE_RECORD = 0x16
PLAIN_TO_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


class ListenError(Exception):
    """The address cannot be listened on (in use, not local, not permitted)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT`` or ``:PORT`` (every address), as the toolkit takes.

    Raises:
        ValueError: not of that form, or the port is not 0-65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not ADDR:PORT: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets: {text!r}")
    return host or "::", int(port)


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401 - the base's signature
        """Requests are not logged."""


class ExporterServer(ThreadingMixIn, WSGIServer):
    """A threading WSGI server that may speak TLS."""

    daemon_threads = True
    request_queue_size = 256  # a hundred scrapes at once must not be refused
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        app: Callable[..., Any],
        tls: ssl.SSLContext | None = None,
        allowed_sans: tuple[str, ...] = (),
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.tls = tls
        self.allowed_sans = frozenset(allowed_sans)
        try:
            super().__init__(address, _Handler)
        except OSError as exc:
            raise ListenError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        self.set_app(app)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # ':PORT' means every address, IPv4 included.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return int(self.socket.getsockname()[1])

    def finish_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's
        conn = request
        if self.tls is not None:
            conn = self._accept_tls(request)
            if conn is None:
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            if conn is not request:
                with contextlib.suppress(OSError, ValueError):
                    conn.close()

    def _accept_tls(self, sock: socket.socket) -> ssl.SSLSocket | None:
        assert self.tls is not None
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first and first[0] != _TLS_HANDSHAKE_RECORD:
                sock.sendall(PLAIN_TO_TLS)
                return None
            if not first:
                return None
            conn = self.tls.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            return None
        if self.allowed_sans and not self._san_allowed(conn):
            conn.close()
            return None
        return conn

    def _san_allowed(self, conn: ssl.SSLSocket) -> bool:
        cert = conn.getpeercert() or {}
        sans: object = cert.get("subjectAltName", ())
        # (("DNS", "host.example"), ("IP Address", "10.0.0.1"), ...)
        return isinstance(sans, tuple) and any(
            isinstance(entry, tuple) and len(entry) == 2 and entry[1] in self.allowed_sans for entry in sans
        )
