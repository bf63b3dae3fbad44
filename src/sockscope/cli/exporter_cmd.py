"""``sockscope exporter``: every listener's queue and every port's churn for Prometheus."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from sockscope.cli import units
from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_filter_arguments
from sockscope.cli.query import build_selection
from sockscope.cli.status import ExitStatus
from sockscope.model.states import ALL_STATES

if TYPE_CHECKING:
    from sockscope.exporter.collector import Exporter
    from sockscope.exporter.http import ExporterServer

#: From Prometheus' default port allocations. 9100-9999 has been fully allocated since
#: 2023 and allocations continue above 10000; this one is unlisted in IANA's and Debian's
#: services (clear of Zabbix's 10050/10051, Amanda's 10080-10083 and the kubelet's 102xx).
DEFAULT_PORT = 10127
DEFAULT_MAX_SERIES = 10_000
EXTRA_MISSING = "sockscope exporter needs the 'exporter' extra: pip install 'sockscope[exporter]'"

DESCRIPTION = f"""\
Serve Prometheus metrics about this host's TCP/IP ports: every listener's accept queue,
backlog, half-open handshakes and drops; sockets by state; per listening port the
connections accepted, closed and reset, their durations, bytes and retransmits; outgoing
connections per remote port; the namespace's listen-queue and TCP counters. The kernel is
read at each scrape; the connection counters come from the watch engine running in the
background. /metrics serves the text format or OpenMetrics (content negotiation), / a
landing page. Read-only: nothing is closed or signalled.

Labels come from the filter language's fields: netns, laddr, lport, rport, cookie (tells
SO_REUSEPORT listeners on one address apart), process, proto, family, state; and
container, when a namespace's processes run in a container.

examples:
  sockscope exporter                                 127.0.0.1:{DEFAULT_PORT}, this namespace
  sockscope exporter --listen :{DEFAULT_PORT} --web-config web.yml
                                                     every address, TLS and basic auth
  sockscope exporter --all-netns --ports 443,5432    every namespace (containers), as root
  sockscope exporter 'lport in {{80 443}}'             only these ports' sockets
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``exporter``."""
    p = sub.add_parser(
        "exporter",
        help="Prometheus metrics: queues, sockets, churn",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        metavar="ADDR:PORT",
        help=f"where to serve (default 127.0.0.1:{DEFAULT_PORT}; ':PORT' for every address)",
    )
    p.add_argument("--web-config", metavar="FILE", help="TLS and basic auth, in the exporter-toolkit format")
    p.add_argument(
        "--netns",
        action="append",
        default=[],
        metavar="NAME|PATH|PID",
        help="export this network namespace instead of our own (repeatable; needs CAP_SYS_ADMIN)",
    )
    p.add_argument(
        "--all-netns",
        action="store_true",
        help="export every namespace: /run/netns and every distinct /proc/*/ns/net",
    )
    p.add_argument(
        "--ports",
        type=_ports,
        default=frozenset(),
        metavar="LIST",
        help="ports that get a label of their own even when nothing listens there, and name "
        "outgoing connections' remote ports (e.g. 443,5432,8000-8010)",
    )
    p.add_argument(
        "--max-series",
        type=units.count,
        default=DEFAULT_MAX_SERIES,
        metavar="N",
        help=f'cap on per-port and per-listener series; past it ports fold into lport="other" '
        f"(default {DEFAULT_MAX_SERIES})",
    )
    p.add_argument(
        "--no-events",
        dest="events",
        action="store_false",
        help="no background watch engine: queues and sockets only, no connection counters",
    )
    p.add_argument(
        "--max-watchers",
        type=units.count,
        default=8,
        metavar="N",
        help="namespaces with a background watch engine (connection counters) at most; each costs "
        "about 1%% of a core while idle (default 8)",
    )
    p.add_argument(
        "--poll-interval",
        type=units.interval,
        default=5.0,
        metavar="DUR",
        help="the watch engine's dump interval (default 5s; the tracepoint and the destroy "
        "broadcasts report what happens between dumps)",
    )
    p.add_argument(
        "--source",
        default="auto",
        metavar="LIST",
        help="the watch engine's sources: auto (the engine's choice for one namespace; bpf where it "
        "loads, else poll,destroy, for several), or a comma list of bpf,trace,destroy,poll",
    )
    p.add_argument("-4", "--ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", "--ipv6", action="store_true", help="IPv6 only")
    add_filter_arguments(p)
    p.set_defaults(run=run)


def _ports(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise argparse.ArgumentTypeError(f"not a port or range: {part!r}")
        lo, hi = int(first), int(last or first)
        if not 1 <= lo <= hi <= 65535:
            raise argparse.ArgumentTypeError(f"not a port range within 1-65535: {part!r}")
        out.update(range(lo, hi + 1))
    return frozenset(out)


def _sources(text: str, namespaces: int, trace: bool) -> set[str] | None:
    if text == "auto":
        # The eBPF program filters by namespace in the kernel: every namespace's engine
        # can have its own. The tracepoint through tracefs is host-wide (each engine would
        # read every record of the host), so with several namespaces, or where eBPF
        # cannot load, the engines poll and follow the destroy broadcasts instead.
        return None if namespaces == 1 and trace else {"bpf?", "poll", "destroy"}
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    bad = chosen - {"poll", "destroy", "trace", "bpf"}
    if bad or not chosen:
        raise UsageError(
            f"unknown source {', '.join(sorted(bad)) or text!r}; choose from bpf, trace, destroy, poll"
        )
    return chosen | {"poll"}


def run(args: argparse.Namespace, env: Env) -> int:
    """Serve until SIGTERM, SIGINT or SIGHUP."""
    try:
        import bcrypt  # noqa: F401, PLC0415 - the extra's three packages, checked up front
        import prometheus_client  # noqa: F401, PLC0415
        import yaml  # noqa: F401, PLC0415

        from sockscope.exporter.http import ExporterServer, ListenError, parse_listen  # noqa: PLC0415
        from sockscope.exporter.webconfig import WebConfigError, load_web_config  # noqa: PLC0415
    except ImportError:
        env.error(EXTRA_MISSING)
        return ExitStatus.ERROR
    if args.netns and args.all_netns:
        raise UsageError("--netns and --all-netns exclude each other")
    try:
        address = parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    try:
        config = load_web_config(args.web_config) if args.web_config else None
    except WebConfigError as exc:
        raise UsageError(str(exc)) from None
    exporter = _build_exporter(args, env)
    try:
        server = _serve(ExporterServer, address, exporter, config)
    except ListenError as exc:
        exporter.close()
        env.error(str(exc))
        return ExitStatus.ERROR
    scheme = "https" if config is not None and config.tls is not None else "http"
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    env.stderr.write(f"sockscope: serving {scheme}://{host}:{server.port}/metrics\n")
    env.stderr.flush()
    return _wait_and_stop(server, exporter)


def _build_exporter(args: argparse.Namespace, env: Env) -> Exporter:
    from sockscope.exporter.collector import EventsConfig, Exporter  # noqa: PLC0415
    from sockscope.exporter.privilege import can_trace, privilege_warning  # noqa: PLC0415
    from sockscope.exporter.scrape import Plan  # noqa: PLC0415
    from sockscope.exporter.targets import Targets  # noqa: PLC0415
    from sockscope.sources.privilege import read_effective_caps  # noqa: PLC0415

    caps, euid = read_effective_caps(), os.geteuid()
    warning = privilege_warning(caps, euid, bool(args.netns or args.all_netns))
    if warning:
        env.warn(warning)
    scope = argparse.Namespace(**{**vars(args), "netns": None, "source": "netlink"})
    selection = build_selection(scope, states=ALL_STATES)
    query = selection.query
    predicate = getattr(selection.predicate, "matches", None)
    plan = Plan(
        query.protocols,
        query.families,
        query.kernel,
        predicate,
        query.processes,
        args.ports,
    )
    targets = Targets(args.netns, all_netns=args.all_netns)
    count = 2 if args.all_netns else max(1, len(args.netns))
    events = EventsConfig(
        args.events, args.poll_interval, _sources(args.source, count, can_trace(caps, euid))
    )
    exporter = Exporter(plan, targets, events=events, max_series=args.max_series, warn=env.warn)
    exporter.reconcile()
    return exporter


def _serve(
    server_class: type[ExporterServer],
    address: tuple[str, int],
    exporter: Exporter,
    config: object,
) -> ExporterServer:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    from prometheus_client.gc_collector import GCCollector  # noqa: PLC0415
    from prometheus_client.platform_collector import PlatformCollector  # noqa: PLC0415
    from prometheus_client.process_collector import ProcessCollector  # noqa: PLC0415

    from sockscope.exporter.collector import SockscopeCollector  # noqa: PLC0415
    from sockscope.exporter.web import build_app, metrics_app  # noqa: PLC0415
    from sockscope.exporter.webconfig import WebConfig  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(SockscopeCollector(exporter))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    web = config if isinstance(config, WebConfig) else WebConfig()

    def summary() -> list[tuple[str, str]]:
        targets = exporter.targets.current()
        names = ", ".join(t.netns or "(own)" for t in targets[:20])
        more = f" and {len(targets) - 20} more" if len(targets) > 20 else ""
        sources = sorted({s for w in exporter.watches.values() for s in w.active})
        return [
            ("namespaces", names + more),
            ("event sources", ", ".join(sources) or "none"),
            ("readings so far", str(exporter.readings)),
        ]

    app = build_app(metrics_app(registry), web, summary)
    server = server_class(address, app, web.tls, web.allowed_sans)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _wait_and_stop(server: ExporterServer, exporter: Exporter) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while not stop.wait(10.0):
            exporter.reconcile()  # namespaces that came or went, between scrapes too
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.shutdown()
        server.server_close()
        exporter.close()
        sys.stderr.flush()
    return ExitStatus.INTERRUPTED if received and received[0] == signal.SIGINT else ExitStatus.OK
