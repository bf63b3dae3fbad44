"""Turns command-line flags and a filter expression into a ``Query``."""

from __future__ import annotations

import argparse

from sockscope._namedtuple import NamedTuple
from sockscope.cli.env import Env
from sockscope.cli.parser import UsageError
from sockscope.model.endpoint import Endpoint, Snapshot
from sockscope.model.states import (
    ALL_STATES,
    CONNECTED_STATES,
    LISTENING_STATES,
    Proto,
    TcpState,
)
from sockscope.query.dump import QueueReport, queue_report, run_query
from sockscope.query.spec import KernelFilter, Query
from sockscope.sources.netlink import open_diag_socket
from sockscope.sources.procfs import ProcFS


class Selection(NamedTuple):
    """The query to run and the predicate to apply to what comes back."""

    query: Query
    predicate: object | None  # a model.filter.Filter, applied after the dump


def filter_text(args: argparse.Namespace) -> str:
    """The filter expression from ``-F`` and trailing words; several are and-ed."""
    parts = list(args.filter_expr or [])
    if args.filter:
        parts.append(" ".join(args.filter))
    if len(parts) > 1:
        return " and ".join(f"({p})" for p in parts)
    return parts[0] if parts else ""


def selected_protocols(args: argparse.Namespace) -> tuple[Proto, ...]:
    """``-t -u -x`` and ``-f``; TCP and UDP when none is given (the primer's ``-f inet``)."""
    protos = []
    if getattr(args, "tcp", False):
        protos.append(Proto.TCP)
    if getattr(args, "udp", False):
        protos.append(Proto.UDP)
    if getattr(args, "unix", False) or getattr(args, "family", None) == "unix":
        protos.append(Proto.UNIX)
    if not protos:
        protos = [Proto.TCP, Proto.UDP]
    return tuple(protos)


def selected_families(args: argparse.Namespace) -> tuple[int, ...]:
    """``-4 -6`` and ``-f inet|inet6``."""
    fams = []
    if getattr(args, "ipv4", False) or getattr(args, "family", None) == "inet":
        fams.append(4)
    if getattr(args, "ipv6", False) or getattr(args, "family", None) == "inet6":
        fams.append(6)
    return tuple(fams) or (4, 6)


def selected_states(args: argparse.Namespace) -> frozenset[TcpState]:
    """``-l`` listeners (and unbound UDP), ``-a`` everything, else connections only."""
    if getattr(args, "listening", False):
        return LISTENING_STATES
    if getattr(args, "all", False):
        return ALL_STATES
    return CONNECTED_STATES


def build_selection(
    args: argparse.Namespace,
    *,
    processes: bool = False,
    tcp_info: bool = False,
    memory: bool = False,
    states: frozenset[TcpState] | None = None,
) -> Selection:
    """Combine the flags with the filter's push-down into one query.

    Raises:
        UsageError: the filter does not parse or does not type-check.
    """
    protocols = selected_protocols(args)
    families = selected_families(args)
    wanted = states if states is not None else selected_states(args)
    text = filter_text(args)
    predicate = None
    bytecode, ports = None, None
    if text:
        from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415 - lazy

        try:
            flt = parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)
        except FilterError as exc:
            raise UsageError(exc.render()) from None
        from sockscope.query.pushdown import pushdown  # noqa: PLC0415 - lazy, as the filter

        push = pushdown(flt)
        if push.protocols is not None:
            protocols = tuple(p for p in protocols if p in push.protocols)
        if push.families is not None:
            families = tuple(f for f in families if f in push.families)
        if push.states is not None:
            wanted = wanted & push.states
        bytecode, ports = push.bytecode, push.ports
        processes = processes or flt.needs_processes
        tcp_info = tcp_info or flt.needs_tcp_info
        memory = memory or flt.needs_memory
        predicate = flt
    query = Query(
        protocols=protocols,
        families=families,
        kernel=KernelFilter(states=wanted, bytecode=bytecode, ports=ports),
        processes=processes,
        tcp_info=tcp_info,
        memory=memory,
        netns=args.netns,
        source=getattr(args, "source", "auto"),
    )
    return Selection(query, predicate)


def apply_predicate(selection: Selection, endpoints: tuple[Endpoint, ...]) -> list[Endpoint]:
    """The endpoints the filter keeps (all of them with no filter)."""
    flt = selection.predicate
    if flt is None:
        return list(endpoints)
    matches = flt.matches  # type: ignore[attr-defined]
    return [ep for ep in endpoints if matches(ep)]


def resolve_service(name: str) -> int | None:
    """``sources.names.resolve_service``, loaded only when a filter names a service: that
    module imports ``socket`` and ``pwd``, which 'port == 23' has no need of."""
    from sockscope.sources import names  # noqa: PLC0415

    return names.resolve_service(name)


def resolve_user(name: str) -> int | None:
    """``sources.names.resolve_user``, loaded only when a filter names a user (see above)."""
    from sockscope.sources import names  # noqa: PLC0415

    return names.resolve_user(name)


def read_snapshot(query: Query, env: Env) -> Snapshot:
    """``api.run_query`` on the data sources ``env`` gives (the kernel and /proc by default)."""
    factory = env.socket_factory or open_diag_socket
    return run_query(query, socket_factory=factory, procfs=_procfs(env), clock=env.clock)


def read_queue_report(query: Query, env: Env) -> QueueReport:
    """``api.queue_report`` on the data sources ``env`` gives."""
    factory = env.socket_factory or open_diag_socket
    return queue_report(query, socket_factory=factory, procfs=_procfs(env), clock=env.clock)


def _procfs(env: Env) -> ProcFS | None:
    return None if env.proc_root is None else ProcFS(env.proc_root)
