"""Thin I/O: names a person types in a filter, looked up in the system's databases.

The filter parser is pure and takes these as injected callables; they never raise, so a
name that does not resolve (or a malformed one) becomes a usage error in the filter.
"""

from __future__ import annotations

import pwd
import socket


def resolve_service(name: str) -> int | None:
    """The port of service ``name`` (``telnet`` -> 23) from the services database.

    TCP is asked first, then UDP, as a name usually means the same port for both.
    """
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except (OSError, ValueError, UnicodeError):
            continue
    return None


def resolve_user(name: str) -> int | None:
    """The uid of user ``name`` from the password database, or None."""
    try:
        return pwd.getpwnam(name).pw_uid
    except (KeyError, ValueError, UnicodeError):
        return None
