"""Pure: ``/proc/PID/cgroup`` text (``kernel/cgroup/cgroup.c``, ``proc_cgroup_show``).

One line per hierarchy: ``hierarchy-ID:controller-list:cgroup-path``. Under cgroup v2
there is one line, ``0::/path``; under v1 one per mounted hierarchy, and a hybrid host
has both. Named v1 hierarchies list ``name=systemd`` as their controller.
"""

from __future__ import annotations

from typing import NamedTuple

from sockscope.wire.errors import ParseError


class CgroupLine(NamedTuple):
    """One hierarchy's entry."""

    hierarchy_id: int
    controllers: tuple[str, ...]  # empty for the v2 hierarchy
    path: str


def parse_proc_pid_cgroup(text: str) -> list[CgroupLine]:
    """Every ``hierarchy:controllers:path`` line of ``/proc/PID/cgroup``.

    Raises:
        ParseError: a non-empty line without two colons or with a non-numeric ID.
    """
    out: list[CgroupLine] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        # The path may itself hold colons: split on the first two only.
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise ParseError(f"/proc/PID/cgroup: not hierarchy:controllers:path: {line!r}")
        hid, controllers, path = parts
        try:
            number = int(hid)
        except ValueError:
            raise ParseError(f"/proc/PID/cgroup: hierarchy id is not a number: {hid!r}") from None
        out.append(CgroupLine(number, tuple(c for c in controllers.split(",") if c), path))
    return out
