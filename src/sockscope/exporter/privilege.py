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
    CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH,
    CAP_NET_ADMIN,
    CAP_SYS_ADMIN,
    CAP_SYS_PTRACE,
)

#: What the contrib systemd unit and Kubernetes DaemonSet grant (tests check they agree).
NEEDED_CAPS = ("CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN", "CAP_NET_ADMIN")


CAP_PERFMON, CAP_BPF = 38, 39


def _has(caps: int, *bits: int) -> bool:
    return all(caps >> b & 1 for b in bits)


def can_enter_namespaces(caps: int) -> bool:
    """Whether ``setns`` into another network namespace will be allowed."""
    return _has(caps, CAP_SYS_ADMIN)


def can_trace(caps: int, euid: int) -> bool:
    """Whether the watch engine can follow every transition in the kernel: its eBPF
    source (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) or its tracepoint source (uid 0)."""
    bpf = _has(caps, CAP_BPF, CAP_PERFMON) or _has(caps, CAP_SYS_ADMIN)
    return bpf or (euid == 0 and _has(caps, CAP_SYS_ADMIN))


def privilege_warning(caps: int, euid: int, namespaces: bool) -> str | None:
    """One line saying what is lost and what is still read; None with every privilege.

    ``namespaces``: other namespaces were asked for (``--netns``, ``--all-netns``).
    """
    lost = []
    if not (_has(caps, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) or _has(caps, CAP_SYS_PTRACE, CAP_DAC_OVERRIDE)):
        lost.append("other users' listeners show no process label")
    if namespaces and not can_enter_namespaces(caps):
        lost.append("other namespaces cannot be entered (their sockscope_up is 0)")
    if not can_trace(caps, euid):
        lost.append(
            "no eBPF source (it needs CAP_BPF and CAP_PERFMON): connections shorter than a poll are "
            "not timed and resets are not counted"
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
