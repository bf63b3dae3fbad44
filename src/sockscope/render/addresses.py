"""Pure: endpoint addresses in Linux (``0.0.0.0:23``, ``[::]:23``) or BSD (``*.23``) notation."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from sockscope.model.endpoint import Endpoint, IPAddress

HostNamer = Callable[[IPAddress], str | None]
PortNamer = Callable[[int, str], str | None]


class Notation:
    """How addresses are written: Linux or BSD style, numeric or with names.

    ``host_name``/``port_name`` are lookups the caller prepared (resolution is I/O and
    happens outside this pure layer); they return None to keep the number. A plain
    slotted class, not a dataclass, to keep ``dataclasses`` off the start-up path.
    """

    __slots__ = ("_host_cache", "bsd", "host_name", "port_name")

    def __init__(
        self, bsd: bool = False, host_name: HostNamer | None = None, port_name: PortNamer | None = None
    ) -> None:
        self.bsd = bsd
        self.host_name = host_name
        self.port_name = port_name
        self._host_cache: dict[IPAddress, str] = {}

    def __repr__(self) -> str:
        return f"Notation(bsd={self.bsd!r}, host_name={self.host_name!r}, port_name={self.port_name!r})"

    def host(self, addr: IPAddress) -> str:
        """The address part: ``*`` for a wildcard in BSD style, a name, or the number."""
        text = self._host_cache.get(addr)
        if text is not None:
            return text
        if self.bsd and addr.is_unspecified:
            text = "*"
        else:
            name = self.host_name(addr) if self.host_name and not addr.is_unspecified else None
            text = name or str(addr)
            if isinstance(addr, IPv6Address) and not self.bsd and name is None:
                text = f"[{text}]"
        self._host_cache[addr] = text
        return text

    def port(self, port: int, proto: str) -> str:
        """The port, or its service name when names are on."""
        if self.port_name is not None and port:
            name = self.port_name(port, proto)
            if name:
                return name
        return str(port)

    def local(self, ep: Endpoint) -> str:
        """The local end of ``ep``."""
        if ep.local_address is None:  # UNIX: path and inode, as ss shows them
            return f"{ep.path or '*'} {ep.local_port}"
        return self.join(self.host(ep.local_address), self.port(ep.local_port, ep.proto))

    def remote(self, ep: Endpoint) -> str:
        """The remote end, or the wildcard that means "no peer yet" (``*.*``, ``0.0.0.0:*``)."""
        if ep.proto == "unix":
            return f"* {ep.peer_inode or 0}"
        if ep.remote_address is None or ep.remote_port is None:
            if self.bsd:
                return "*.*"
            if ep.family == 4:
                return "0.0.0.0:*"
            return "[::]:*" if ep.family == 6 else "*"
        return self.join(self.host(ep.remote_address), self.port(ep.remote_port, ep.proto))

    def join(self, host: str, port: str) -> str:
        """``host:port`` or, in BSD notation, ``host.port``."""
        return f"{host}.{port}" if self.bsd else f"{host}:{port}"


def is_wildcard(addr: IPv4Address | IPv6Address | None) -> bool:
    """Listening on every interface."""
    return addr is not None and addr.is_unspecified
