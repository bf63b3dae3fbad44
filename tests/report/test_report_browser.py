"""A report of a real recording (the demo server under a bounded load, watched and
captured), opened in headless Chromium: drawn, complete, quiet, and printed the same."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.report.pdf import find_chromium, run_chromium

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the recording needs namespaces and the tracepoint (root)"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium-headless-shell (scripts/test installs it)"),
    pytest.mark.skipif(shutil.which("dumpcap") is None, reason="needs dumpcap (tshark)"),
]
SOCKSCOPE = [sys.executable, "-m", "sockscope"]

#: Each section with a plot, the plots it must hold, and text each plot must show.
EXPECTED = {
    "io": {"plot-io": ["Connections opened, closed and reset", "time of day", "events per second"]},
    "queues": {
        "plot-queue-1": ["Accept queue of *:2323", "time of day", "capacity (backlog + 1)", "half-open"]
    },
    "durations": {
        "plot-durations": [
            "Connection durations",
            "duration of a closed connection (log scale)",
            "connections",
        ],
        "plot-rtt": ["Round-trip times", "smoothed RTT at close (log scale)"],
    },
    "conversations": {"plot-ports": ["Busiest service ports", "closed connections", "2323"]},
    "processes": {"plot-processes": ["Events by process", "events"]},
    "transitions": {"plot-transitions": ["State transitions", "ESTABLISHED →"]},
    "capture": {"plot-capture": ["Packets per connection (busiest)", "packets"]},
}


class Run(NamedTuple):
    db: Path
    pcap: Path


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``demo serve`` with a small, slow queue, ``demo clients`` against it, watched with
    ``watch --record`` and captured by dumpcap, all in a namespace of its own."""
    work = tmp_path_factory.mktemp("run")
    ns = f"sockscope-test-{uuid.uuid4().hex[:8]}"
    inside = ["ip", "netns", "exec", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        serve = [
            *SOCKSCOPE,
            "demo",
            "serve",
            "--backlog",
            "3",
            "--accept-delay",
            "0.3",
            "--duration",
            "9",
            "-q",
        ]
        procs.append(subprocess.Popen([*inside, *serve], **quiet))  # type: ignore[call-overload]
        dumpcap = [*inside, "dumpcap", "-q", "-i", "lo", "-f", "tcp", "-w", str(work / "run.pcapng")]
        procs.append(subprocess.Popen(dumpcap, **quiet))  # type: ignore[call-overload]
        watch = [
            *SOCKSCOPE,
            "watch",
            "--netns",
            ns,
            "--events",
            "all",
            "--record",
            str(work / "run.db"),
            "--duration",
            "7s",
        ]
        watcher = subprocess.Popen(watch, **quiet)  # type: ignore[call-overload]
        time.sleep(1.5)
        clients = [*SOCKSCOPE, "demo", "clients", "12", "--duration", "4", "--mix", "short,download,idle"]
        subprocess.run([*inside, *clients, "--size", "200k"], check=True, timeout=30, **quiet)  # type: ignore[call-overload]
        assert watcher.wait(timeout=30) == 0
        procs[1].send_signal(signal.SIGINT)  # dumpcap writes its last blocks and exits
        procs[1].wait(timeout=10)
        yield Run(work / "run.db", work / "run.pcapng")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture(scope="module")
def report(real_run: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("report")
    html, pdf = out / "report.html", out / "report.pdf"
    err = io.StringIO()
    argv = ["report", str(real_run.db), "-o", str(html), "--pdf", str(pdf), "--pcap", str(real_run.pcap)]
    assert main(argv, Env(stdout=io.StringIO(), stderr=err)) == 0, err.getvalue()
    assert err.getvalue() == ""
    return html, pdf


def chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return run_chromium(CHROMIUM, ["--enable-logging=stderr", "--v=0", *args], timeout=90)


def console_messages(stderr: bytes) -> list[str]:
    """What the page logged: console messages (CSP refusals included) and page errors."""
    return [
        line
        for line in stderr.decode(errors="replace").splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line
    ]


def svg_of(dom: str, plot_id: str) -> str:
    start = dom.index(f'<svg id="{plot_id}"')
    return dom[start : dom.index("</svg>", start)]


def test_the_dom_holds_every_plot_with_its_titles_and_labels(report: tuple[Path, Path]) -> None:
    done = chromium("--dump-dom", report[0].as_uri())
    dom = done.stdout.decode()
    assert console_messages(done.stderr) == []
    for section, plots in EXPECTED.items():
        start = dom.index(f'<section id="section-{section}">')
        body = dom[start : dom.index("</section>", start)]
        for plot_id, texts in plots.items():
            assert f'<svg id="{plot_id}"' in body, (section, plot_id)
            svg = svg_of(dom, plot_id)
            assert 'role="img"' in svg and f'aria-label="{texts[0]}' in svg
            for text in texts:
                assert text in svg.replace("&gt;", ">"), (plot_id, text)
    header = dom[: dom.index("</header>")]
    assert "Lost events</dt><dd>0" in header and "poll, bpf, destroy" in header
    # The queue was sampled at each poll: connections waited in it, and it admits 4.
    cells = r'<td class="num">(\d+)</td>'
    row = re.search(rf"<td>\*:2323</td><td>[^<]*</td>{cells}{cells}", dom)
    assert row is not None and int(row[1]) >= 1 and row[2] == "4", row


def test_console_errors_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: a page that tries to load something is reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        '<img src="http://192.0.2.1/x.png">'
    )
    assert console_messages(chromium("--dump-dom", page.as_uri()).stderr)


def pixels(png: Path) -> tuple[list[tuple[int, int, int]], tuple[int, int, int]]:
    from PIL import Image  # noqa: PLC0415 - matplotlib's own dependency, in the report extra

    with Image.open(png) as im:
        raw = im.convert("RGB").tobytes()
    data = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    return data, data[2 * 1100 + 2]


def luminance(p: tuple[int, int, int]) -> float:
    return 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_is_drawn_and_readable(report: tuple[Path, Path], tmp_path: Path, scheme: str) -> None:
    shot, blank = tmp_path / "shot.png", tmp_path / "blank.png"
    prefs = ["--blink-settings=preferredColorScheme=0"] if scheme == "dark" else []
    size = "--window-size=1100,2400"
    assert chromium(*prefs, size, f"--screenshot={shot}", report[0].as_uri()).returncode == 0
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><title>blank</title>")
    chromium(*prefs, size, f"--screenshot={blank}", (tmp_path / "blank.html").as_uri())
    data, background = pixels(shot)
    blank_data, _ = pixels(blank)
    assert len(set(blank_data)) <= 2  # what "blank" looks like, for contrast
    assert len(set(data)) > 200  # text, lines and bars in many shades
    if scheme == "dark":
        assert luminance(background) < 40  # the page follows the reader's dark scheme
        ink = sum(1 for p in data if luminance(p) > 150)  # light text and axes on it
    else:
        assert luminance(background) > 230
        ink = sum(1 for p in data if luminance(p) < 100)
    assert ink > len(data) * 0.01, (scheme, ink)


def pdf_pages_and_outline(pdf: bytes) -> tuple[list[int], dict[str, int]]:
    """Page object numbers in document order, and each outline title's page index."""
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", pdf, re.DOTALL)}
    kids = {n: [int(k) for k in re.findall(rb"(\d+) 0 R", re.search(rb"/Kids \[(.*?)\]", b, re.DOTALL)[1])]  # type: ignore[index]
            for n, b in objects.items() if re.search(rb"/Type /Pages\b", b)}  # fmt: skip
    root = next(n for n, b in objects.items() if re.search(rb"/Type /Pages\b", b) and b"/Parent" not in b)

    def walk(n: int) -> list[int]:
        return [p for k in kids[n] for p in (walk(k) if k in kids else [k])]

    pages = walk(root)
    outline = {}
    for b in objects.values():
        m = re.search(rb"/Title \((.*?)\)\s*/Dest \[(\d+) 0 R", b, re.DOTALL)
        if m:
            outline[m[1].decode("latin-1").replace("\\(", "(").replace("\\)", ")")] = pages.index(int(m[2]))
    return pages, outline


def test_the_pdf_has_the_pages_sections_start(report: tuple[Path, Path]) -> None:
    html, pdf = report
    assert pdf.read_bytes().startswith(b"%PDF-")
    pages, outline = pdf_pages_and_outline(pdf.read_bytes())
    titles = re.findall(r'<section id="section-[a-z]+">\n<h2>(.*?)</h2>', html.read_text())
    assert len(titles) == len(EXPECTED)
    # Every section of the page is in the PDF, in order, each starting a page of its own
    # after the header's.
    starts = [outline[t.replace("&#x27;", "'")] for t in titles]
    assert starts == sorted(set(starts)) and starts[0] >= 1
    assert len(pages) >= len(titles) + 1
