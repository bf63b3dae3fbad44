"""``sockscope demo``: the primer, live: ``serve``, ``clients`` and ``tour``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError
from sockscope.cli.status import ExitStatus
from sockscope.demo.clients import ROLES

DESCRIPTION = """\
The primer, live on this machine: a telnet server whose accept queue you control, clients
for it, and a guided tour that runs the real sockscope commands on real sockets.

commands:
  serve     a telnet server (banner, prompt, help, ports, download SIZE, quit)
  clients   N clients against it: idle, downloading, short-lived
  tour      the primer step by step (Enter to go on, or --auto)

examples:
  sockscope demo tour                        the guided walk (as root: in its own namespace)
  sockscope demo serve --backlog 4 --no-accept
  sockscope demo clients 10 --duration 30
"""
SERVE_DESCRIPTION = """\
A small telnet server (RFC 854): it refuses every option (DO x -> WONT x, WILL x ->
DONT x), prints a banner and a prompt, and takes the commands help, ports (both ends
of your connection), download SIZE [RATE] and quit. It owns its listening socket and
decides when accept() runs, so its connection request queue can fill. With --no-accept,
'kill -USR1 PID' accepts one waiting connection.

examples:
  sockscope demo serve                              port 2323 on every interface (*.2323)
  sudo sockscope demo serve --port 23               the primer's telnet port
  sockscope demo serve --bind 127.0.0.1 --rate 500k/s
  sockscope demo serve --backlog 4 --no-accept      the queue fills and stays full
  sockscope demo serve --backlog 4 --accept-delay 2 --duration 60
  telnet 127.0.0.1 2323                             then: download 10M
"""
CLIENTS_DESCRIPTION = f"""\
N clients against a demo server, each in one role taken in turn from --mix:
idle (connects and stays), download (downloads SIZE again and again), short (connects,
quits, connects again: a new ephemeral port each time). Stops after --duration.
Roles: {", ".join(ROLES)}.

examples:
  sockscope demo clients 10                         10 clients for 10 s against 127.0.0.1:2323
  sockscope demo clients 6 --mix short --duration 30
  sockscope demo clients 3 --mix download --size 50M --rate 5MB/s
  sockscope demo clients 20 --host 10.0.0.5 --port 23
"""
TOUR_DESCRIPTION = """\
The primer, step by step: 1 the server listens (*.2323, *.*), 2 binding one address,
3 a client connects (its ephemeral port, local port 2323), 4 the queue fills (backlog 2,
a client that believes it is connected while the server holds it half-open), 5 the
application accepts, 6 a large download and short connections. Each step runs the real
commands, shows their output, and checks its claims on the sockets it made.

As root the tour runs in a network namespace of its own (only its sockets show), which it
removes at the end, also after Ctrl-C; otherwise on loopback here (step 2 is skipped).
Exit status 1 if a claim did not hold.

examples:
  sudo sockscope demo tour          Enter between steps
  sockscope demo tour --auto        no pauses (also when stdin is not a terminal)
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``demo`` and its subcommands."""
    p = sub.add_parser(
        "demo",
        help="the primer live: telnet server, clients, guided tour",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo = p.add_subparsers(dest="demo_command", metavar="DEMO")
    p.set_defaults(run=_run_help(p))
    raw = argparse.RawDescriptionHelpFormatter
    serve = demo.add_parser(
        "serve",
        help="a telnet server with a controllable accept queue",
        description=SERVE_DESCRIPTION,
        formatter_class=raw,
    )
    _serve_flags(serve)
    serve.set_defaults(run=run_serve)
    clients = demo.add_parser(
        "clients",
        help="N clients: idle, downloading, short-lived",
        description=CLIENTS_DESCRIPTION,
        formatter_class=raw,
    )
    _clients_flags(clients)
    clients.set_defaults(run=run_clients_cmd)
    tour = demo.add_parser(
        "tour",
        help="the primer step by step, on real sockets",
        description=TOUR_DESCRIPTION,
        formatter_class=raw,
    )
    tour.add_argument("--auto", action="store_true", help="run every step without pausing")
    tour.add_argument(
        "--no-netns", action="store_true", help="stay in this namespace even as root (step 2 is then skipped)"
    )
    tour.set_defaults(run=run_tour_cmd)


def _run_help(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace, Env], int]:
    def run(args: argparse.Namespace, env: Env) -> int:
        raise UsageError(f"which demo? serve, clients or tour (see '{p.prog} --help')")

    return run


# -- argument types: each failure is one line and exit status 2 -----------------------


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{high}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < 10**7:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more: {text!r}")
    return value


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _unit(parse: Callable[[str], object]) -> Callable[[str], str]:
    from sockscope.demo.units import UnitError  # noqa: PLC0415

    def check(text: str) -> str:
        try:
            parse(text)
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _mix(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise argparse.ArgumentTypeError(
            f"unknown role {bad[0] if bad else text!r}; roles: {', '.join(ROLES)}"
        )
    return roles


def _serve_flags(p: argparse.ArgumentParser) -> None:
    from sockscope.demo.units import parse_rate  # noqa: PLC0415

    p.add_argument(
        "--port",
        type=_int_in(0, 65535, "port"),
        default=2323,
        help="port to listen on (default 2323; 23 needs root; 0: any free port)",
    )
    p.add_argument(
        "--bind",
        metavar="ADDR",
        type=_address,
        default="0.0.0.0",  # noqa: S104 - *.PORT
        help="one local address (default 0.0.0.0: every interface, *.PORT)",
    )
    p.add_argument(
        "--backlog",
        type=_int_in(0, 65535, "backlog"),
        default=5,
        metavar="N",
        help="listen() backlog (default 5; the kernel clamps it to somaxconn)",
    )
    acc = p.add_mutually_exclusive_group()
    acc.add_argument(
        "--accept-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long before each accept(): a slow application",
    )
    acc.add_argument(
        "--no-accept",
        action="store_true",
        help="never accept(): the queue fills and stays full (SIGUSR1 accepts one)",
    )
    p.add_argument(
        "--rate", type=_unit(parse_rate), default="1MB/s", help="download rate (default 1MB/s; 'unlimited')"
    )
    p.add_argument(
        "--line-limit",
        type=_int_in(16, 65536, "line limit"),
        default=1024,
        metavar="BYTES",
        help="longest input line (default 1024)",
    )
    p.add_argument(
        "--duration", type=_seconds, metavar="SECONDS", help="stop after this long (default: until Ctrl-C)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no log of connections")


def _clients_flags(p: argparse.ArgumentParser) -> None:
    from sockscope.demo.units import parse_rate, parse_size  # noqa: PLC0415

    p.add_argument("count", type=_int_in(1, 10000, "number of clients"), metavar="N", help="how many clients")
    p.add_argument("--host", type=_address, default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=_int_in(1, 65535, "port"), default=2323, help="server port (default 2323)")
    p.add_argument(
        "--duration",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long the clients run (default 10)",
    )
    p.add_argument(
        "--mix",
        type=_mix,
        default=ROLES,
        metavar="ROLE,...",
        help="roles taken in turn (default idle,download,short)",
    )
    p.add_argument("--size", type=_unit(parse_size), default="10M", help="each download's size (default 10M)")
    p.add_argument(
        "--rate", type=_unit(parse_rate), default=None, help="each download's rate (default: the server's)"
    )
    p.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=3.0,
        metavar="SECONDS",
        help="give up a connect() after this long (default 3)",
    )


# -- serve ------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace, env: Env) -> int:
    """Serve until Ctrl-C, SIGTERM or --duration."""
    from sockscope.demo.server import DemoServer, ServerConfig, open_listener  # noqa: PLC0415
    from sockscope.demo.session import SessionConfig  # noqa: PLC0415
    from sockscope.demo.units import format_rate, parse_rate  # noqa: PLC0415

    rate = parse_rate(args.rate)
    config = ServerConfig(
        port=args.port,
        bind=args.bind,
        backlog=args.backlog,
        accept=not args.no_accept,
        accept_delay=args.accept_delay,
        session=SessionConfig(rate=rate, line_limit=args.line_limit),
    )
    try:
        sock = open_listener(config.bind, config.port, config.backlog)
    except OSError as exc:
        env.error(_bind_error(exc, config.bind, config.port))
        return ExitStatus.ERROR
    log = None if args.quiet else _line_writer(env)
    server = DemoServer(config, sock, log)
    host, port = server.address
    accepting = (
        "never (kill -USR1 accepts one)"
        if args.no_accept
        else f"every {args.accept_delay:g}s"
        if args.accept_delay
        else "at once"
    )
    _line_writer(env)(
        f"sockscope demo: telnet server on {host}:{port}, backlog {args.backlog}, accept() "
        f"{accepting}, downloads at {format_rate(rate)}\n  try: telnet "
        f"{'127.0.0.1' if ipaddress.ip_address(host).is_unspecified else host} {port}"
        f"   watch: sockscope list -tan --bsd 'port == {port}'   queue: sockscope queues -v"
    )
    from sockscope.demo.server import serve_with_signals  # noqa: PLC0415

    asyncio.run(serve_with_signals(server, args.duration))
    stats = server.stats
    _line_writer(env)(
        f"sockscope demo: stopped; {stats.accepted} connections served, "
        f"{stats.bytes_sent} bytes sent, {len(stats.errors)} errors"
    )
    return ExitStatus.OK


def _bind_error(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another server, or try --port)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"binding port {port} needs root (or CAP_NET_BIND_SERVICE); try --port 2323"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this host"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _line_writer(env: Env) -> Callable[[str], None]:
    def write(line: str) -> None:
        env.stdout.write(line + "\n")
        env.stdout.flush()

    return write


# -- clients ----------------------------------------------------------------------------


def run_clients_cmd(args: argparse.Namespace, env: Env) -> int:
    """Run the clients for their duration; a summary line at the end."""
    from sockscope.demo.clients import ClientsConfig, run_clients  # noqa: PLC0415

    config = ClientsConfig(
        count=args.count,
        host=args.host,
        port=args.port,
        duration=args.duration,
        mix=args.mix,
        size=args.size,
        rate=args.rate,
        connect_timeout=args.connect_timeout,
    )
    say = _line_writer(env)
    say(
        f"sockscope demo: {args.count} clients ({','.join(args.mix)}) against "
        f"{args.host}:{args.port} for {args.duration:g}s"
    )
    stats = asyncio.run(run_clients(config, log=env.warn))
    say(f"sockscope demo: {stats.summary()}")
    if stats.connections == 0:
        env.error(
            f"no client could connect to {args.host}:{args.port} "
            f"({stats.refused} refused, {stats.timeouts} timed out)"
        )
        return ExitStatus.ERROR
    return ExitStatus.OK


# -- tour -------------------------------------------------------------------------------


def run_tour_cmd(args: argparse.Namespace, env: Env) -> int:
    """The tour; exit status 1 if a claim did not hold."""
    from sockscope.demo.stage import StageError  # noqa: PLC0415
    from sockscope.demo.tour import run_tour  # noqa: PLC0415

    def write(text: str) -> None:
        env.stdout.write(text)
        env.stdout.flush()

    interactive = not args.auto and env.stdin_isatty
    pause = _pause(write) if interactive else None
    try:
        with _sigterm_interrupts():
            results = run_tour(write, pause, use_netns=False if args.no_netns else None)
    except StageError as exc:
        env.error(f"the tour could not set up its stage: {exc}")
        return ExitStatus.ERROR
    return ExitStatus.ERROR if any(r.failed for r in results) else ExitStatus.OK


def _pause(write: Callable[[str], None]) -> Callable[[], None]:
    done = [False]

    def pause() -> None:
        if done[0]:
            return
        write("\n[Enter: next step, Ctrl-C: stop] ")
        if not sys.stdin.readline():  # EOF: go on without pausing
            done[0] = True

    return pause


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the tour as Ctrl-C does, so its cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
