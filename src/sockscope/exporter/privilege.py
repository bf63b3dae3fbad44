"""What the exporter can read with the capabilities it has, said once at start.

- nothing: every socket, queue, backlog, half-open count and drop counter of its own
  namespace; the namespace counters; every close (the destroy broadcasts).
- CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: the ``process`` label of other users'
  listeners; finding namespaces through ``/proc/*/ns/net``.
- CAP_SYS_ADMIN: entering other namespaces (``--netns``, ``--all-netns``); the tracepoint.
- CAP_NET_ADMIN: a 16 MiB destroy-broadcast buffer (else ``net.core.rmem_max``), so
  bursts lose fewer events.
"""

from __future__ import annotations

from sockscope.sources.privilege import (
    CAP_DAC_READ_SEARCH,
    CAP_NET_ADMIN,
    CAP_SYS_ADMIN,
    CAP_SYS_PTRACE,
)


def _has(caps: int, *bits: int) -> bool:
    return all(caps >> b & 1 for b in bits)


def can_enter_namespaces(caps: int) -> bool:
    """Whether ``setns`` into another network namespace will be allowed."""
    return _has(caps, CAP_SYS_ADMIN)


def privilege_warning(caps: int) -> str | None:
    """One line saying what is lost and what is still read; None with every capability."""
    lost = []
    if not _has(caps, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH):
        lost.append("other users' listeners show no process label")
    if not _has(caps, CAP_SYS_ADMIN):
        lost.append(
            "no tracepoint source (connections shorter than a poll are not timed and resets are not "
            "exported) and no other namespaces"
        )
    if not _has(caps, CAP_NET_ADMIN):
        lost.append("a smaller destroy-broadcast buffer (bursts may lose events, counted)")
    if not lost:
        return None
    return (
        "running without full privileges: "
        + "; ".join(lost)
        + ". Still read: every socket, accept queue, backlog, half-open count and drop counter of "
        "this namespace, its counters, and every close"
    )
