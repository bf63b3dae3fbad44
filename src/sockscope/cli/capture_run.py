"""``sockscope capture``, running: extcap queries, the launcher, and the capture itself."""

from __future__ import annotations

import argparse

from sockscope.capture import (
    Capture,
    CaptureError,
    CaptureOptions,
    NoSuchInterfaceError,
    OutputError,
    Summary,
    open_capture,
)
from sockscope.capture import extcap as ext
from sockscope.capture.output import OutputClosedError
from sockscope.cli.capture_cmd import _Stop, _stop_on_signals, build_options
from sockscope.cli.env import Env
from sockscope.cli.parser import UsageError
from sockscope.cli.status import ExitStatus
from sockscope.sources.pcap_compile import PcapError, PcapMissingError
from sockscope.wire.packet_filter import PacketFilterError


def run(args: argparse.Namespace, env: Env) -> int:
    """Dispatch on the extcap flags, else capture."""
    name = args.extcap_name
    if args.extcap_interfaces:
        env.stdout.write(ext.render_interfaces(name))
        return ExitStatus.OK
    if args.extcap_dlts:
        env.stdout.write(ext.render_dlts(name))
        return ExitStatus.OK
    if args.extcap_config:
        env.stdout.write(ext.render_config(name))
        return ExitStatus.OK
    if args.install_extcap:
        return _install(args, env)
    if args.extcap_interface is not None:
        return _extcap(args, env)
    return capture(build_options(args, env), env, quiet=args.quiet)


def _install(args: argparse.Namespace, env: Env) -> int:
    from sockscope.sources.wireshark import WiresharkMissingError, read_extcap_folder  # noqa: PLC0415

    try:
        folder = args.extcap_dir or read_extcap_folder()
        path = ext.install_launcher(folder, args.extcap_name, force=args.force)
    except (OutputError, WiresharkMissingError) as exc:
        raise UsageError(str(exc)) from None
    env.stdout.write(f"installed {path}: 'tshark -D' and Wireshark list '{args.extcap_name}'\n")
    return ExitStatus.OK


def _extcap(args: argparse.Namespace, env: Env) -> int:
    """A capture started by Wireshark, or its check of a capture filter."""
    text = args.extcap_capture_filter or ""
    if text.strip():
        args.filter, args.bpf = _wireshark_filter(text, args.bpf)
    if not args.capture:
        return ExitStatus.OK  # the filter was checked above: a bad one raised
    if not args.fifo:
        raise UsageError("--capture needs --fifo PATH")
    return capture(build_options(args, env), env, quiet=True)


def _wireshark_filter(text: str, bpf: str | None) -> tuple[list[str], str | None]:
    """Wireshark's capture filter box: sockscope's language, or else pcap-filter's."""
    from sockscope.cli.capture_cmd import parse_capture_filter  # noqa: PLC0415

    try:
        parse_capture_filter(text)
    except UsageError as exc:
        if bpf:
            raise
        try:
            from sockscope.sources.pcap_compile import DLT_EN10MB, compile_pcap_filter  # noqa: PLC0415

            compile_pcap_filter(text, DLT_EN10MB, 262144)
        except (PcapError, PcapMissingError):
            raise exc from None
        return [], text
    return [text], bpf


def capture(opts: CaptureOptions, env: Env, *, quiet: bool = False) -> int:
    """Set up, capture until stopped, print the summary."""
    try:
        cap = open_capture(opts)
    except (PacketFilterError, NoSuchInterfaceError, OutputError) as exc:
        raise UsageError(str(exc)) from None
    except PcapError as exc:
        raise UsageError(f"--bpf: {exc}") from None
    except (CaptureError, PcapMissingError) as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    for warning in cap.warnings:
        env.warn(warning)
    if not quiet:
        _start_line(opts, cap, env)
    status = ExitStatus.OK
    stop = _Stop()
    try:
        with _stop_on_signals(stop):
            cap.run(lambda: stop.requested)
    except OutputClosedError:
        pass
    except (OutputError, CaptureError) as exc:
        env.error(str(exc))
        status = ExitStatus.ERROR
    finally:
        summary = cap.close()
    if cap.error:
        env.error(cap.error)
        status = ExitStatus.ERROR
    if not quiet:
        _summary(summary, env)
    return status


def _start_line(opts: CaptureOptions, cap: Capture, env: Env) -> None:
    where = f"interface {opts.interface}" if opts.interface else "every interface"
    if opts.netns:
        where += f" of {opts.netns}"
    labels = f"; processes from {', '.join(cap.sources)}" if opts.labels and cap.sources else ""
    target = "standard output" if opts.target == "-" else opts.target
    env.stderr.write(f"sockscope: capturing on {where} to {target}{labels} (Ctrl-C to stop)\n")
    env.stderr.flush()


def _summary(summary: Summary, env: Env) -> None:
    env.stderr.write(f"sockscope: {summary.render()}\n")
    if summary.until is not None:
        ev = summary.until
        ep = ev.endpoint
        env.stderr.write(
            f"sockscope: stopped on {ev.kind.value} {ep.proto.value} "
            f"{ep.local_address}:{ep.local_port} {ep.remote_address}:{ep.remote_port}\n"
        )
    env.stderr.flush()
