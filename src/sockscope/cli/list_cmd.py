"""``sockscope list``: a netstat/ss-compatible listing, with the queue figures netstat lacks."""

from __future__ import annotations

import argparse

from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, add_notation_options
from sockscope.cli.query import apply_predicate, build_selection, read_snapshot, selected_protocols
from sockscope.model.endpoint import Endpoint, Snapshot
from sockscope.model.states import Proto
from sockscope.render.addresses import Notation
from sockscope.render.listing import ListingStyle, render_listing_text
from sockscope.render.summary import render_summary

DESCRIPTION = """\
List every endpoint, as netstat and ss do: TCP and UDP over IPv4 and IPv6, and UNIX
sockets with -x. Without -a or -l, only connections are shown (no listeners).
A listener's Recv-Q is its accept queue (connections TCP accepted that the application
has not taken yet) and its Send-Q its backlog, figures netstat shows as 0.

examples:
  sockscope list -a -n -f inet        the primer's netstat -a -n -f inet
  sockscope list -tanp                every TCP endpoint with its processes
  sockscope list -ltn --bsd           listeners as *.23 with foreign address *.*
  sockscope list -tn 'port == 23'     connections on the telnet port
  sockscope list -tan state established '( dport = :ssh or sport = :ssh )'
  sockscope list -tan --jsonl         one JSON object per endpoint
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``list`` and its flags (netstat/ss spelling, bundleable: ``-tanp``)."""
    p = sub.add_parser(
        "list",
        help="list endpoints (netstat/ss compatible)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_listing_flags(p)
    p.set_defaults(run=run)


def add_listing_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``list`` (also taken by ``sockscope`` with no subcommand)."""
    sel = p.add_argument_group("selection")
    sel.add_argument("-a", "--all", action="store_true", help="every endpoint, listeners too")
    sel.add_argument("-l", "--listening", action="store_true", help="listeners only")
    sel.add_argument("-t", "--tcp", action="store_true", help="TCP")
    sel.add_argument("-u", "--udp", action="store_true", help="UDP")
    sel.add_argument("-x", "--unix", action="store_true", help="UNIX sockets")
    sel.add_argument("-4", "--ipv4", action="store_true", help="IPv4 only")
    sel.add_argument("-6", "--ipv6", action="store_true", help="IPv6 only")
    sel.add_argument(
        "-f",
        "--family",
        choices=("inet", "inet6", "unix"),
        help="address family, as netstat -f (inet: TCP and UDP over IPv4)",
    )
    cols = p.add_argument_group("columns")
    cols.add_argument(
        "-p", "--processes", action="store_true", help="owning processes (every holder: pid, name)"
    )
    cols.add_argument("-e", "--extend", action="store_true", help="uid, inode and cookie")
    cols.add_argument(
        "-i", "--info", action="store_true", help="TCP info: rtt, cwnd, retransmits, bytes, delivery rate"
    )
    cols.add_argument("-o", "--timers", action="store_true", help="timers (netstat -o)")
    cols.add_argument("--explain", action="store_true", help="a plain-language note on what each row means")
    out = p.add_argument_group("output")
    out.add_argument("-s", "--summary", action="store_true", help="counts per protocol and state")
    out.add_argument("--ss", dest="ss_layout", action="store_true", help="ss's column layout")
    out.add_argument("-H", "--no-header", action="store_true", help="no header line")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="format",
        help="one JSON document: header and an 'endpoints' array",
    )
    fmt.add_argument(
        "--jsonl",
        action="store_const",
        const="jsonl",
        dest="format",
        help="one JSON object per endpoint per line",
    )
    fmt.add_argument("--csv", action="store_const", const="csv", dest="format", help="CSV")
    p.add_argument(
        "--source",
        choices=("auto", "netlink", "procfs"),
        default="auto",
        help="where to read sockets from (default: netlink, else /proc)",
    )
    add_notation_options(p)


def run(args: argparse.Namespace, env: Env) -> int:
    """Read, filter and print the listing."""
    env.stdout.write(_listing(args, env))
    return 0


def _listing(args: argparse.Namespace, env: Env) -> str:
    selection = build_selection(args, processes=args.processes, tcp_info=args.info)
    snap = read_snapshot(selection.query, env)
    for warning in snap.warnings:
        env.warn(warning)
    endpoints = apply_predicate(selection, snap.endpoints)
    return format_listing(args, snap, endpoints, env)


def format_listing(args: argparse.Namespace, snap: Snapshot, endpoints: list[Endpoint], env: Env) -> str:
    """The listing's text in the requested format."""
    fmt = args.format
    if fmt is not None:
        # json and csv cost several ms to import: only the formats that need them pay.
        from sockscope.render.records import (  # noqa: PLC0415
            render_csv,
            render_json,
            render_jsonl,
        )

        if fmt == "json":
            return render_json(snap, endpoints, args.info, args.timers) + "\n"
        if fmt == "jsonl":
            return "".join(line + "\n" for line in render_jsonl(endpoints, args.info, args.timers))
        if fmt == "csv":
            return render_csv(
                endpoints, args.info, args.timers, unix=any(e.proto is Proto.UNIX for e in endpoints)
            )
    if args.summary:
        return "\n".join(render_summary(endpoints)) + "\n"
    style = ListingStyle(
        layout="ss" if args.ss_layout else ("bsd" if args.bsd else "netstat"),
        notation=make_notation(args, endpoints),
        processes=args.processes,
        extended=args.extend,
        timers=args.timers,
        info=args.info,
        header=not args.no_header,
        explain=args.explain,
    )
    title = _title(args, snap) if style.header and style.layout != "ss" else None
    return render_listing_text(endpoints, style, title)


def make_notation(args: argparse.Namespace, endpoints: list[Endpoint]) -> Notation:
    """BSD or Linux notation; with names unless ``-n``."""
    if args.numeric:
        return Notation(bsd=args.bsd)
    from sockscope.sources.resolver import resolve_hosts, service_name  # noqa: PLC0415 - lazy

    addrs = {a for e in endpoints for a in (e.local_address, e.remote_address) if a is not None}
    hosts = resolve_hosts(addrs)
    return Notation(bsd=args.bsd, host_name=hosts.get, port_name=service_name)


def _title(args: argparse.Namespace, snap: Snapshot) -> str:
    if args.bsd:
        kind = "including servers" if args.all or args.listening else "without servers"
    elif args.listening:
        kind = "only servers"
    else:
        kind = "servers and established" if args.all else "w/o servers"
    where = f" in network namespace {snap.netns}" if snap.netns else ""
    source = f" [source: {snap.source}]" if snap.source != "netlink" else ""
    return f"Active {_what(args)} ({kind}){where}{source}"


def _what(args: argparse.Namespace) -> str:
    """netstat's name for what is listed: Internet connections, UNIX domain sockets, or both."""
    asked = selected_protocols(args)
    unix = Proto.UNIX in asked
    inet = any(p is not Proto.UNIX for p in asked)
    if unix and inet:
        return "Internet connections and UNIX domain sockets"
    return "UNIX domain sockets" if unix else "Internet connections"
