"""``sockscope capture``: packets in pcapng for Wireshark, each labelled with its process."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from sockscope.cli import units
from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_filter_arguments
from sockscope.cli.query import filter_text, resolve_service, resolve_user
from sockscope.cli.status import ExitStatus

if TYPE_CHECKING:
    from sockscope.capture import CaptureOptions, Limits, Rotation
    from sockscope.model.filter import Filter

DESCRIPTION = """\
Capture packets on an AF_PACKET socket (no libpcap needed) and write them in pcapng for
Wireshark and tshark, each packet labelled with the process that sent or received it:
comments 'PID: 1234 / Cmd: nginx / Args: ...' and 'UserId: ...', as ptcpdump writes
them (tshark: frame.comment; contrib/wireshark/sockscope.lua makes them the fields
sockscope.pid, sockscope.process and sockscope.user). Sockets older than the capture
are named too: the socket table is read at the start, then followed as connections
open and close.

The filter is sockscope's (see 'sockscope help filters'): protocols, ports and
addresses are tested in the kernel by a BPF program; process, pid, user and state are
tested per packet against the socket the packet belongs to. --bpf adds a tcpdump-style
expression (compiled by libpcap when it is installed), and-ed with the filter.

Stop and ring-buffer options are dumpcap's (-a, -b, -c; sizes in kB of 1000 bytes);
--until stops on a socket event. At the end a summary gives the packets written, those
the kernel dropped and how often its ring filled; the same counts are written in the
file's Interface Statistics Blocks.

examples:
  sockscope capture -w web.pcapng 'port == 80'            until Ctrl-C
  sockscope capture -w - 'process ~ nginx' | wireshark -k -i -
  sockscope capture --handshakes -a duration:60 -w conns.pcapng
  sockscope capture -i eth0 -b filesize:10000 -b files:5 -w ring.pcapng
  sockscope capture --until 'event == closed and lport == 2323' -w one.pcapng
  sockscope capture --netns demo -w demo.pcapng --bpf 'tcp port 2323'
  sockscope capture --install-extcap                      Wireshark lists 'sockscope'
"""

_AUTOSTOP = ("duration", "filesize", "packets", "files")
_RING = ("duration", "filesize", "packets", "files")


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``capture``."""
    p = sub.add_parser(
        "capture",
        help="packets in pcapng for Wireshark, labelled with their process",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-w", "--write", metavar="FILE", help="pcapng output; '-' for standard output")
    p.add_argument("-i", "--interface", metavar="IFACE", help="one interface (default: every interface)")
    p.add_argument("--netns", metavar="NAME|PATH|PID", help="capture in another network namespace (root)")
    p.add_argument("--bpf", metavar="EXPR", help="a pcap-filter(7) expression, compiled by libpcap")
    p.add_argument("--handshakes", action="store_true", help="SYN, FIN and RST segments only (headers only)")
    p.add_argument(
        "-s", "--snaplen", type=int, metavar="N", help="bytes kept of each packet (default 262144)"
    )
    p.add_argument("-a", "--autostop", action="append", default=[], metavar="COND", help=", ".join(_AUTOSTOP))
    p.add_argument("-c", type=units.count, metavar="N", dest="count", help="stop after N packets")
    p.add_argument("-b", "--ring-buffer", action="append", default=[], metavar="OPT", help=", ".join(_RING))
    p.add_argument("--until", metavar="FILTER", help="stop on a socket event matching FILTER")
    p.add_argument("--no-labels", action="store_true", help="do not name each packet's process")
    p.add_argument("-B", "--buffer-size", type=int, default=32, metavar="MiB", help="kernel ring size (32)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no start line and no summary")
    add_filter_arguments(p)
    _add_extcap_arguments(p)
    p.set_defaults(run=run)


def _add_extcap_arguments(p: argparse.ArgumentParser) -> None:
    """The flags Wireshark passes (hidden), and --install-extcap."""
    ext = p.add_argument_group("Wireshark extcap (Wireshark runs these)")
    ext.add_argument("--extcap-interfaces", action="store_true", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-dlts", action="store_true", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-config", action="store_true", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-interface", metavar="NAME", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-version", metavar="V", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-capture-filter", metavar="F", help=argparse.SUPPRESS)
    ext.add_argument("--extcap-name", default="sockscope", help=argparse.SUPPRESS)
    ext.add_argument("--capture", action="store_true", help=argparse.SUPPRESS)
    ext.add_argument("--fifo", metavar="PATH", help=argparse.SUPPRESS)
    ext.add_argument(
        "--install-extcap", action="store_true", help="put a launcher in Wireshark's extcap folder"
    )
    ext.add_argument(
        "--extcap-dir", metavar="DIR", help="where --install-extcap writes (default: tshark -G folders)"
    )


def _pairs(values: list[str], allowed: tuple[str, ...], flag: str) -> Iterator[tuple[str, str]]:
    for value in values:
        for item in value.split(","):
            key, sep, raw = item.strip().partition(":")
            if not sep or key not in allowed or not raw:
                raise UsageError(f"{flag} {item!r}: expected one of {', '.join(k + ':N' for k in allowed)}")
            yield key, raw


def _number(raw: str, what: str, whole: bool) -> float:
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise UsageError(f"{what}: not a {'whole ' if whole else ''}number: {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{what}: must be positive")
    return value


def parse_conditions(values: list[str], allowed: tuple[str, ...], flag: str) -> dict[str, float]:
    """``-a``/``-b`` values (``duration:10``, ``filesize:1000,files:5``) by key; sizes in bytes."""
    out: dict[str, float] = {}
    for key, raw in _pairs(values, allowed, flag):
        value = _number(raw, f"{flag} {key}", whole=key != "duration")
        out[key] = value * 1000 if key == "filesize" else value
    return out


def build_limits(args: argparse.Namespace) -> tuple[Limits, Rotation | None]:
    """``-a``, ``-c`` and ``-b``, checked as dumpcap checks them."""
    from sockscope.capture import Limits, Rotation  # noqa: PLC0415

    stop = parse_conditions(args.autostop, _AUTOSTOP, "-a")
    ring = parse_conditions(args.ring_buffer, _RING, "-b")
    if args.count is not None:
        stop["packets"] = args.count
    if ring and "filesize" in stop:
        ring.setdefault("filesize", stop.pop("filesize"))  # dumpcap: with -b, a new file
    if ring and not ring.keys() & {"filesize", "duration", "packets"}:
        raise UsageError("-b files:N needs -b filesize, duration or packets to say when to switch files")
    if "files" in stop and not ring:
        raise UsageError("-a files:N needs -b (multiple files)")
    limits = Limits(
        duration=stop.get("duration"),
        packets=int(stop["packets"]) if "packets" in stop else None,
        filesize=int(stop["filesize"]) if "filesize" in stop else None,
        files=int(stop["files"]) if "files" in stop else None,
    )
    rotation = None
    if ring:
        rotation = Rotation(
            filesize=int(ring["filesize"]) if "filesize" in ring else None,
            duration=ring.get("duration"),
            packets=int(ring["packets"]) if "packets" in ring else None,
            files=int(ring["files"]) if "files" in ring else None,
        )
    return limits, rotation


def parse_capture_filter(text: str) -> Filter | None:
    """A sockscope filter for packets (None when empty).

    Raises:
        UsageError: it does not parse, or names a field only events have.
    """
    if not text.strip():
        return None
    from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415
    from sockscope.model.filter.ast import field_names  # noqa: PLC0415
    from sockscope.query.packets import EVENT_FIELDS  # noqa: PLC0415

    try:
        flt = parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)
    except FilterError as exc:
        raise UsageError(exc.render()) from None
    events_only = field_names(flt.root) & EVENT_FIELDS
    if events_only:
        raise UsageError(f"{', '.join(sorted(events_only))}: a field of socket events; use it in --until")
    return flt


def parse_until(text: str | None) -> Filter | None:
    """``--until``: a filter over the watch engine's events."""
    if text is None:
        return None
    from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415

    try:
        return parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)
    except FilterError as exc:
        raise UsageError(f"--until: {exc.render()}") from None


def build_options(args: argparse.Namespace, env: Env) -> CaptureOptions:
    """Flags to ``CaptureOptions``.

    Raises:
        UsageError: a bad flag, filter or combination.
    """
    from sockscope.capture import CaptureOptions  # noqa: PLC0415

    limits, rotation = build_limits(args)
    target = args.fifo if args.capture and args.fifo else args.write
    if target is None:
        if env.stdout_isatty:
            raise UsageError("say where the packets go: -w FILE, or -w - for standard output")
        target = "-"
    if rotation is not None and target == "-":
        raise UsageError("-b needs -w FILE: standard output is one stream")
    if args.snaplen is not None and not 0 <= args.snaplen <= 262144:
        raise UsageError("--snaplen must be between 0 and 262144")
    if args.buffer_size <= 0:
        raise UsageError("-B must be at least 1 (MiB)")
    interface = args.interface if args.interface not in (None, "", "any") else None
    return CaptureOptions(
        target=target,
        interface=interface,
        netns=args.netns or None,
        filter=parse_capture_filter(filter_text(args)),
        bpf=args.bpf or None,
        handshakes=args.handshakes,
        snaplen=args.snaplen or None,
        labels=not args.no_labels,
        until=parse_until(args.until),
        limits=limits,
        rotation=rotation,
        buffer_bytes=args.buffer_size << 20,
        force=args.force,
    )


class _Stop:
    """SIGINT, SIGTERM and SIGHUP ask the capture to stop at its next tick (within
    0.1 s): raising in the middle of writing a packet could lose it."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


@contextmanager
def _stop_on_signals(stop: _Stop) -> Iterator[None]:
    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, stop) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace, env: Env) -> int:
    """Dispatch: extcap queries, the launcher's installation, or a capture."""
    from sockscope.cli import capture_run  # noqa: PLC0415 - the capture machinery

    return capture_run.run(args, env)


_ = ExitStatus
