"""Names for the screen: users, services, and host names resolved off the UI thread.

Host names come from reverse DNS, which can stall for seconds: addresses are resolved
in the background under ``resolve_hosts``'s time budget, and shown numerically until
their name is known. Nothing here blocks a refresh.
"""

from __future__ import annotations

import pwd
import threading
from collections.abc import Callable, Iterable

from sockscope.model.endpoint import IPAddress
from sockscope.render.addresses import Notation
from sockscope.sources.resolver import resolve_hosts, service_name

Resolver = Callable[[Iterable[IPAddress]], dict[IPAddress, str]]


class Names:
    """Caches of user and host names, and the ``Notation`` that uses them."""

    def __init__(self, resolve: Resolver = resolve_hosts) -> None:
        self.resolve = resolve
        self.hosts: dict[IPAddress, str] = {}
        self.tried: set[IPAddress] = set()
        self.users: dict[int, str] = {}
        self.generation = 0  # bumped when new host names arrive
        self._busy = threading.Lock()
        self._cached: tuple[tuple[bool, bool, int], Notation] | None = None

    def user(self, uid: int) -> str:
        """The user's name, or the number when it has none."""
        name = self.users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self.users[uid] = name
        return name

    def notation(self, *, bsd: bool, numeric: bool) -> Notation:
        """The notation for the current toggles (rebuilt when names arrive)."""
        key = (bsd, numeric, self.generation)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        if numeric:
            nt = Notation(bsd=bsd)
        else:
            nt = Notation(bsd=bsd, host_name=self.hosts.get, port_name=service_name)
        self._cached = (key, nt)
        return nt

    def want(self, addrs: Iterable[IPAddress | None]) -> None:
        """Start resolving the addresses not tried yet (one batch at a time)."""
        todo = {a for a in addrs if a is not None and not a.is_unspecified} - self.tried
        if not todo or not self._busy.acquire(blocking=False):
            return
        self.tried |= todo

        def work() -> None:
            try:
                found = self.resolve(todo)
                if found:
                    self.hosts.update(found)
                    self.generation += 1
            finally:
                self._busy.release()

        threading.Thread(target=work, daemon=True, name="sockscope-top-dns").start()
