"""The WSGI application: landing page, ``/metrics``, basic auth, rate limit, headers.

prometheus_client serves the metrics (content negotiation between the text format and
OpenMetrics, gzip); it has no server-side basic auth, so it is added here, as the
exporter-toolkit does it: bcrypt-hashed passwords, a fixed hash compared for unknown
users so a response's timing does not tell which users exist, one bcrypt at a time, and
successful checks remembered (a scrape every 15 s would otherwise pay bcrypt's ~50-250
ms each time). A failed check is never remembered, so guessing stays slow.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import html
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from sockscope.exporter.collector import SingleFlight
from sockscope.exporter.webconfig import WebConfig

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: bcrypt of a password nobody has, compared when the user is unknown (cost 10, as the
#: toolkit's own decoy).
DECOY_HASH = b"$2b$10$zOwHX7t3vhSnDPNFRxO.dOUMW7T1V.fIPr5N.KVLgsbv2/VGADtsi"
CACHE_SIZE = 100


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, remembering successes."""

    def __init__(self, users: dict[str, bytes]) -> None:
        import bcrypt  # noqa: PLC0415 - only a configuration with users needs it

        self._checkpw = bcrypt.checkpw
        self.users = users
        self._ok: dict[bytes, None] = {}  # insertion-ordered: the oldest goes first
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        self.checks = 0  # bcrypt comparisons made (the cache's misses)

    def allows(self, header: str | None) -> bool:
        """Whether the request's ``Authorization`` header names a user and its password."""
        creds = _basic_credentials(header)
        if creds is None:
            return False
        user, password = creds
        hashed = self.users.get(user)
        known = hashed is not None
        hashed = hashed if hashed is not None else DECOY_HASH
        # The key holds the hash too: a changed configuration does not reuse old checks.
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password))).digest()
        with self._lock:
            if key in self._ok:
                return True
        with self._bcrypt:
            self.checks += 1
            good = self._checkpw(password, hashed)
        if not (good and known):
            return False
        with self._lock:
            self._ok[key] = None
            while len(self._ok) > CACHE_SIZE:
                del self._ok[next(iter(self._ok))]
        return True


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password


class TokenBucket:
    """``rate_limit``: one request per ``interval``, bursts of up to ``burst``."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether a request may go ahead now."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) / self.interval)
            self.at = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


def metrics_app(registry: Any) -> App:  # noqa: ANN401 - prometheus_client's registry
    """``/metrics``: prometheus_client's encoders, with the rendering shared.

    Like the reading under it (``collector.SingleFlight``), a body is shared by the
    requests that arrived before its rendering started, one rendering per format: a
    hundred scrapes at once render the text a couple of times, not a hundred. A request
    that selects families (``name[]``) renders its own.
    """
    from prometheus_client.exposition import choose_encoder, gzip_accepted  # noqa: PLC0415

    flights: dict[str, SingleFlight[bytes]] = {}
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT") or "")
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        if names:
            body = encoder(registry.restricted_registry(names))
        else:
            with lock:
                flight = flights.get(content_type)
                if flight is None:
                    flight = flights[content_type] = SingleFlight(partial(encoder, registry))
            body = flight()
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


def landing_page(summary: Callable[[], list[tuple[str, str]]]) -> bytes:
    """The page at ``/``: what this is, a link to the metrics, what is watched."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sockscope exporter</title></head>"
        "<body><h1>sockscope exporter</h1>"
        "<p>Every listener's accept queue, sockets by state and each port's connection churn, "
        "read from the kernel at each scrape.</p>"
        "<p><a href='metrics'>Metrics</a></p>"
        f"<table>{rows}</table></body></html>\n"
    ).encode()


def build_app(metrics: App, config: WebConfig, summary: Callable[[], list[tuple[str, str]]]) -> App:
    """The whole application: rate limit, then headers, then auth, then the routes."""
    auth = BasicAuth(config.users) if config.users else None
    bucket = TokenBucket(config.rate_interval, config.rate_burst) if config.rate_interval > 0 else None
    extra = list(config.headers.items())

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def respond(status: str, headers: list[tuple[str, str]], *rest: object) -> Any:  # noqa: ANN401
            return start_response(status, [*headers, *extra], *rest)

        if bucket is not None and not bucket.take():
            return _plain(respond, "429 Too Many Requests")
        if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return _plain(respond, "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="sockscope"')])
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, respond)
        if path == "/":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _plain(respond, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
            body = landing_page(summary)
            respond(
                "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return _plain(respond, "404 Not Found")

    app.auth = auth  # type: ignore[attr-defined]  # for tests and the landing page
    return app


def _plain(respond: StartResponse, status: str, headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = (status.split(" ", 1)[1] + "\n").encode()
    respond(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]
