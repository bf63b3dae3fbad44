"""One scrape's reading of one namespace: listeners, sockets by state, counters.

Everything is read from the kernel when Prometheus asks (the exporter guide's rule: no
cached values): two sock_diag dumps through ``api.run_query`` (every socket without
attributes, which is the fast path; and the listeners alone with their memory counters,
for drops), and ``/proc/net/netstat`` and ``snmp``. The listeners' queues are built from
those with ``model.listener.build_listeners``, as ``api.queue_report`` does, without its
``tcp_info`` on every established socket (a third of the dump's time at 60k sockets,
for nothing a metric shows).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from sockscope.api import KernelFilter, Query, run_query
from sockscope.exporter.owners import OwnerNames
from sockscope.model.endpoint import Endpoint
from sockscope.model.listener import Listener, build_listeners
from sockscope.model.states import Proto, TcpState
from sockscope.sources.netns import NetnsError, entered_netns
from sockscope.sources.procfs import ProcFS
from sockscope.wire.errors import ParseError
from sockscope.wire.netlink import NetlinkError

_LISTEN = frozenset({TcpState.LISTEN})


class Target(NamedTuple):
    """A namespace to export, with the labels its series carry."""

    key: int  # the namespace's inode (0 when unknown)
    netns: str  # label: ip netns name, "net:[INODE]", or "" for the exporter's own
    container: str  # label: "runtime://id", or ""
    spec: str | None  # what ``entered_netns`` enters; None for the exporter's own


class Plan(NamedTuple):
    """What every scrape asks the kernel for, from the command line."""

    protocols: tuple[Proto, ...]
    families: tuple[int, ...]
    kernel: KernelFilter
    predicate: Callable[[Endpoint], bool] | None
    processes: bool  # the filter needs owners on every socket
    named_ports: frozenset[int]  # --ports: a label of their own even when not listening


class NsReading(NamedTuple):
    """What one namespace looked like at one scrape."""

    target: Target
    error: str | None  # why the namespace could not be read (then the rest is empty)
    seconds: float
    listeners: tuple[Listener, ...]
    processes: dict[int, str]  # listener inode -> process names
    sockets: Counter[tuple[str, str, str]]  # (proto, family, state) -> sockets
    port_sockets: Counter[tuple[int, str]]  # (listening or named port, state) -> TCP sockets
    counters: dict[str, int]  # "TcpExt.ListenOverflows" -> value
    somaxconn: int | None
    warnings: tuple[str, ...]


def read_namespace(target: Target, plan: Plan, owners: OwnerNames) -> NsReading:
    """Read one namespace; a failure is reported in the reading, never raised."""
    start = time.perf_counter()
    try:
        return _read(target, plan, owners, start)
    except (NetnsError, NetlinkError, ParseError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        return NsReading(
            target, message, time.perf_counter() - start, (), {}, Counter(), Counter(), {}, None, ()
        )


def _read(target: Target, plan: Plan, owners: OwnerNames, start: float) -> NsReading:
    proc = ProcFS()
    with entered_netns(target.spec):
        counters = proc.read_counters()
        somaxconn = proc.read_somaxconn()
    everything = Query(
        protocols=plan.protocols,
        families=plan.families,
        kernel=KernelFilter(plan.kernel.states - _LISTEN, plan.kernel.bytecode),
        processes=plan.processes,
        netns=target.spec,
        source="netlink",
    )
    snap = run_query(everything, procfs=proc)
    eps: tuple[Endpoint, ...] = snap.endpoints
    listening: tuple[Endpoint, ...] = ()
    if Proto.TCP in plan.protocols and TcpState.LISTEN in plan.kernel.states:
        only_listen = Query(
            protocols=(Proto.TCP,),
            families=plan.families,
            kernel=KernelFilter(_LISTEN, plan.kernel.bytecode),
            processes=plan.processes,
            memory=True,
            netns=target.spec,
            source="netlink",
        )
        listening = run_query(only_listen, procfs=proc).endpoints
    if plan.predicate is not None:
        keep = plan.predicate
        eps = tuple(e for e in eps if keep(e))
        listening = tuple(e for e in listening if keep(e))
    listeners = tuple(build_listeners([*listening, *eps], somaxconn))
    names, warning = owners.lookup([lst.endpoint.inode for lst in listeners])
    ports = {e.local_port for e in listening} | plan.named_ports
    return NsReading(
        target,
        None,
        time.perf_counter() - start,
        listeners,
        names,
        count_sockets([*eps, *listening]),
        count_port_sockets([*eps, *listening], ports),
        counters,
        somaxconn,
        (*snap.warnings, *((warning,) if warning else ())),
    )


def count_sockets(eps: list[Endpoint]) -> Counter[tuple[str, str, str]]:
    """Sockets by protocol, family and state (the state as ``list --json`` names it)."""
    raw: Counter[tuple[Proto, int, TcpState]] = Counter((e.proto, e.family, e.state) for e in eps)
    out: Counter[tuple[str, str, str]] = Counter()
    for (proto, family, state), n in raw.items():
        out[(proto.value, str(family), state.label(proto))] += n
    return out


def count_port_sockets(eps: list[Endpoint], ports: set[int] | frozenset[int]) -> Counter[tuple[int, str]]:
    """TCP sockets on the given local ports, by state."""
    raw: Counter[tuple[int, TcpState]] = Counter(
        (e.local_port, e.state) for e in eps if e.proto is Proto.TCP and e.local_port in ports
    )
    out: Counter[tuple[int, str]] = Counter()
    for (port, state), n in raw.items():
        out[(port, state.label(Proto.TCP))] += n
    return out
