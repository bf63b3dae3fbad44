"""``sockscope report FILE -o report.html``: a recording as one page of plots and tables."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sockscope.cli.env import Env
from sockscope.cli.parser import Parser, UsageError, add_filter_arguments
from sockscope.cli.query import filter_text
from sockscope.cli.status import ExitStatus

if TYPE_CHECKING:
    from datetime import tzinfo

    from sockscope.record.aggregate import Matches, PortSpans, RecordingData
    from sockscope.report.model import Report
    from sockscope.report.streams import Key, Stream

DESCRIPTION = """\
Turn a recording (sockscope watch --record FILE) into one self-contained HTML page that
works offline: the header (host, namespace, period, sources, lost events), connections
opened, closed and reset over time, each listener's accept queue against its capacity
with drops marked, histograms of durations and RTTs, conversations and busiest ports,
top processes, state transitions and, with --pcap, packets per connection with the
frame numbers of its SYN and FINs. Plots are inline SVG drawn with matplotlib (the
extra 'report'); --pdf prints the page with a headless Chromium; --csv writes every
table as CSV (which needs no extra). A filter narrows the report as it does elsewhere.

Outputs are never written through a symbolic link nor over an existing file unless
--overwrite is given; they are owner-only when the recording is.

examples:
  sockscope report run.db -o report.html
  sockscope report run.db 'lport == 2323' -o port2323.html --pdf port2323.pdf
  sockscope report run.db --csv tables/
  sockscope report run.db --pcap run.pcapng -o report.html
"""


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``report``."""
    p = sub.add_parser(
        "report",
        help="a recording as one HTML page of plots (PDF, CSV)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="a recording (sockscope watch --record FILE)")
    add_filter_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write the HTML page to FILE")
    p.add_argument("--pdf", metavar="FILE", help="print the page to a PDF with a headless Chromium")
    p.add_argument("--csv", metavar="DIR", help="write every table as a CSV file into DIR")
    p.add_argument("--pcap", metavar="FILE", help="a pcapng (or pcap) capture of the same traffic")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")
    p.set_defaults(run=run)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C: Chromium's process group and temporary files are cleaned up.
    raise KeyboardInterrupt


def run(args: argparse.Namespace, env: Env) -> int:
    """Build the report; every failure is one line."""
    from sockscope.report.output import ExistsError, OutputError  # noqa: PLC0415
    from sockscope.report.pdf import ChromiumError  # noqa: PLC0415
    from sockscope.report.plots import MissingExtraError  # noqa: PLC0415

    if not (args.output or args.pdf or args.csv):
        raise UsageError("say where the report goes: -o FILE.html, --pdf FILE or --csv DIR")
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _run(args, env)
    except ExistsError as exc:
        raise UsageError(str(exc)) from None
    except (MissingExtraError, OutputError, ChromiumError) as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace, env: Env) -> int:
    from sockscope.report.output import check_writable  # noqa: PLC0415

    matches, spans, text = _filter(args)
    drawing = bool(args.output or args.pdf)
    if drawing:
        from sockscope.report.plots import load_matplotlib  # noqa: PLC0415

        load_matplotlib()
    chromium = _chromium() if args.pdf else None
    for out in (args.output, args.pdf):
        if out is not None:
            check_writable(out, args.overwrite)
    data, streams = _read(args, matches, spans, text)
    for w in data.warnings:
        env.warn(w)
    from datetime import datetime  # noqa: PLC0415

    from sockscope.report.build import build_report  # noqa: PLC0415

    tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    report = build_report(data, tz, streams, Path(args.pcap).name if args.pcap else "")
    private = _private(args.file)
    if args.csv:
        _write_csv(report, args.csv, private, args.overwrite)
    if drawing:
        _write_page(report, args, tz, private, chromium)
    return ExitStatus.OK


def _filter(args: argparse.Namespace) -> tuple[Matches | None, PortSpans | None, str]:
    text = filter_text(args)
    if not text:
        return None, None, ""
    from sockscope.model.filter import FilterError, parse_filter  # noqa: PLC0415
    from sockscope.sources.names import resolve_service, resolve_user  # noqa: PLC0415

    try:
        flt = parse_filter(text, resolve_service=resolve_service, resolve_user=resolve_user)
    except FilterError as exc:
        raise UsageError(exc.render()) from None
    from sockscope.query.pushdown import pushdown  # noqa: PLC0415

    ports = pushdown(flt).ports
    spans = tuple((s.local, s.lo, s.hi) for s in ports) if ports else None
    return flt.matches, spans, text  # type: ignore[return-value]  # EventView quacks as Endpoint


def _chromium() -> str:
    from sockscope.report.pdf import ChromiumError, find_chromium  # noqa: PLC0415

    exe = find_chromium()
    if exe is None:
        raise ChromiumError(
            "--pdf needs a headless Chromium: install chromium-headless-shell (Debian, Ubuntu) or chromium"
        )
    return exe


def _read(
    args: argparse.Namespace, matches: Matches | None, spans: PortSpans | None, text: str
) -> tuple[RecordingData, dict[Key, list[Stream]] | None]:
    from sockscope.record.aggregate import read_recording  # noqa: PLC0415
    from sockscope.record.store import RecordingError  # noqa: PLC0415

    streams = None
    if args.pcap is not None:
        from sockscope.report.pcap import read_streams  # noqa: PLC0415
        from sockscope.wire.pcapng_read import CaptureError  # noqa: PLC0415

        try:
            streams = read_streams(args.pcap)
        except CaptureError as exc:
            raise UsageError(f"{args.pcap}: not a capture this reads ({exc})") from None
        except OSError as exc:
            raise UsageError(f"{args.pcap}: {exc.strerror or exc}") from None
    try:
        data = read_recording(args.file, matches, spans, text, connections=streams is not None)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    return data, streams


def _private(recording: str) -> bool:
    from sockscope.report.output import private_source  # noqa: PLC0415

    return private_source(recording)


def _write_csv(report: Report, directory: str, private: bool, overwrite: bool) -> None:
    from sockscope.report.output import make_dir, write_file  # noqa: PLC0415
    from sockscope.report.page import render_csv  # noqa: PLC0415

    folder = make_dir(directory, private)
    for table in report.all_tables():
        data = render_csv(table).encode()
        write_file(folder / f"{table.name}.csv", data, private=private, overwrite=overwrite)


def _write_page(
    report: Report, args: argparse.Namespace, tz: tzinfo, private: bool, chromium: str | None
) -> None:
    from sockscope.report.output import write_file  # noqa: PLC0415
    from sockscope.report.page import render_page  # noqa: PLC0415
    from sockscope.report.plots import render_svg  # noqa: PLC0415

    svgs = {p.name: render_svg(p, tz) for p in report.all_plots()}
    html = render_page(report, svgs, tz).encode()
    if args.output:
        write_file(args.output, html, private=private, overwrite=args.overwrite)
    if args.pdf and chromium:
        from sockscope.report.pdf import print_pdf  # noqa: PLC0415

        write_file(args.pdf, print_pdf(html, chromium), private=private, overwrite=args.overwrite)
