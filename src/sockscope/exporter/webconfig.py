"""``--web-config FILE``: the exporter-toolkit web configuration, as node_exporter reads it.

Understood: ``tls_server_config`` (``cert_file``/``key_file`` or inline ``cert``/``key``,
``client_ca_file``/``client_ca``, ``client_auth_type``, ``client_allowed_sans``,
``min_version``, ``max_version``, ``cipher_suites``), ``http_server_config`` (``headers``;
``http2`` is accepted and ignored: this server speaks HTTP/1.x), ``basic_auth_users``
(bcrypt hashes) and ``rate_limit``. Unknown keys are refused, as the toolkit's strict YAML
decoding refuses them. Relative paths are relative to the file's directory.

Go's TLS cannot be matched everywhere: ``RequestClientCert`` and ``RequireAnyClientCert``
(ask for a certificate and not verify it) and Go's cipher-suite names have no OpenSSL
equivalent here, and are refused with a message rather than quietly weakened.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field

import yaml

#: exporter-toolkit's client_auth_type values that keep their meaning here.
CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
#: Headers the toolkit lets a configuration add, with their allowed values (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_TLS_KEYS = {
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
}
_BCRYPT = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class WebConfigError(Exception):
    """The file is missing, not YAML, or not a valid web configuration (exit 2)."""


@dataclass
class WebConfig:
    """What the server does with connections and requests."""

    tls: ssl.SSLContext | None = None
    allowed_sans: tuple[str, ...] = ()
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    rate_interval: float = 0.0  # seconds between two requests; 0: no limit
    rate_burst: int = 0


def load_web_config(path: str) -> WebConfig:
    """Parse and check ``path``; certificates and keys are loaded now, so a bad one fails
    at start, not at the first scrape.

    Raises:
        WebConfigError: anything wrong, with a one-line reason.
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise WebConfigError(f"cannot read web config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise WebConfigError(f"web config {path} is not valid YAML{at}") from None
    if doc is None:
        doc = {}
    base = os.path.dirname(os.path.abspath(path))
    try:
        return _parse(_mapping(doc, "the file"), base)
    except WebConfigError as exc:
        raise WebConfigError(f"web config {path}: {exc}") from None


def _parse(doc: dict[str, object], base: str) -> WebConfig:
    _known(doc, {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}, "the file")
    cfg = WebConfig()
    tls = _mapping(doc.get("tls_server_config") or {}, "tls_server_config")
    if tls:
        _known(tls, _TLS_KEYS, "tls_server_config")
        cfg.tls = _tls_context(tls, base)
        cfg.allowed_sans = tuple(_strings(tls.get("client_allowed_sans") or [], "client_allowed_sans"))
    http = _mapping(doc.get("http_server_config") or {}, "http_server_config")
    _known(http, {"http2", "headers"}, "http_server_config")
    cfg.headers = _headers(_mapping(http.get("headers") or {}, "headers"))
    users = _mapping(doc.get("basic_auth_users") or {}, "basic_auth_users")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            raise WebConfigError(f"basic_auth_users: the password of {user!r} is not a bcrypt hash")
        cfg.users[str(user)] = hashed.encode()
    rate = _mapping(doc.get("rate_limit") or {}, "rate_limit")
    _known(rate, {"interval", "burst"}, "rate_limit")
    cfg.rate_interval = _duration(rate.get("interval", "0s"))
    burst = rate.get("burst", 0)
    if not isinstance(burst, int) or burst < 0:
        raise WebConfigError("rate_limit: burst must be a whole number")
    cfg.rate_burst = burst
    return cfg


def _tls_context(tls: dict[str, object], base: str) -> ssl.SSLContext:
    if tls.get("cipher_suites") or tls.get("curve_preferences"):
        raise WebConfigError(
            "tls_server_config: cipher_suites and curve_preferences (Go names) are not supported"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _version(tls.get("min_version", "TLS12"), "min_version")
    ctx.maximum_version = _version(tls.get("max_version", "TLS13"), "max_version")
    mode = tls.get("client_auth_type", "")
    if mode not in CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config: client_auth_type {mode!r} is not supported "
            f"(use one of {', '.join(k for k in CLIENT_AUTH if k)})"
        )
    _load_pair(ctx, tls, base)
    ctx.verify_mode = CLIENT_AUTH[str(mode)]
    ca_text, ca_file = _pem(tls, "client_ca", "client_ca_file", base)
    if ca_text is None and ca_file is None:
        if ctx.verify_mode is not ssl.CERT_NONE:
            raise WebConfigError(f"tls_server_config: client_auth_type {mode} needs client_ca_file")
        return ctx
    if ctx.verify_mode is ssl.CERT_NONE:
        raise WebConfigError("tls_server_config: client CA's have been configured without a client_auth_type")
    try:
        ctx.load_verify_locations(cafile=ca_file, cadata=ca_text)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"tls_server_config: cannot load the client CA: {exc}") from None
    return ctx


def _load_pair(ctx: ssl.SSLContext, tls: dict[str, object], base: str) -> None:
    cert_text, cert_file = _pem(tls, "cert", "cert_file", base)
    key_text, key_file = _pem(tls, "key", "key_file", base)
    if cert_text is None and cert_file is None:
        raise WebConfigError("tls_server_config: missing one of cert or cert_file")
    if key_text is None and key_file is None:
        raise WebConfigError("tls_server_config: missing one of key or key_file")
    written: list[str] = []
    try:
        # ssl loads a certificate and key from files only: inline ones go to private
        # (0600) temporary files, removed as soon as the context holds them.
        cert = cert_file or _private_file(str(cert_text), written)
        key = key_file or _private_file(str(key_text), written)
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"tls_server_config: cannot load the certificate and key: {exc}") from None
    finally:
        for path in written:
            os.unlink(path)


def _pem(tls: dict[str, object], inline: str, name: str, base: str) -> tuple[str | None, str | None]:
    """The inline PEM text or the file's path (relative to the config's directory)."""
    text, path = tls.get(inline), tls.get(name)
    if text and path:
        raise WebConfigError(f"tls_server_config: both {inline} and {name} are given")
    return (str(text) if text else None), (os.path.join(base, str(path)) if path else None)


def _private_file(text: str, written: list[str]) -> str:
    import tempfile  # noqa: PLC0415 - only inline PEMs need it

    fd, path = tempfile.mkstemp(prefix="sockscope-web-", suffix=".pem")
    written.append(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _version(value: object, name: str) -> ssl.TLSVersion:
    if value not in TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config: {name} {value!r} is not one of {', '.join(TLS_VERSIONS)}")
    return TLS_VERSIONS[str(value)]


def _headers(headers: dict[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        if name not in HEADERS:
            raise WebConfigError(f"http_server_config: HTTP header {name!r} can not be configured")
        allowed = HEADERS[name]
        if allowed is not None and value not in allowed:
            raise WebConfigError(
                f"http_server_config: invalid value for {name}: {value!r} (one of {allowed})"
            )
        out[name] = str(value)
    return out


def _duration(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    if not _DURATION.match(text):
        raise WebConfigError(f"rate_limit: interval {value!r} is not a duration like 1s or 500ms")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text))


def _mapping(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise WebConfigError(f"{where} must be a mapping")
    return {str(k): v for k, v in value.items()}


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WebConfigError(f"{where} must be a list of strings")
    return list(value)


def _known(doc: dict[str, object], keys: set[str], where: str) -> None:
    unknown = sorted(set(doc) - keys)
    if unknown:
        raise WebConfigError(f"{where}: unknown field {unknown[0]!r}")
