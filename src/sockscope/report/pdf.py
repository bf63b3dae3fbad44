"""Printing the page to PDF with a headless Chromium (Debian's chromium-headless-shell).

Chromium gets a fresh profile in a temporary directory and its own process group; both
are gone when this returns, however it returns (an error, Ctrl-C, a timeout).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = (
    "chromium-headless-shell",
    "/usr/lib/chromium-headless-shell/chromium-headless-shell",
    "/usr/lib/chromium/chromium-headless-shell",
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT_S = 120.0


class ChromiumError(RuntimeError):
    """No Chromium, or it failed to print."""


def find_chromium() -> str | None:
    """The headless Chromium to run, if one is installed."""
    for name in CANDIDATES:
        found = shutil.which(name) if "/" not in name else (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def run_chromium(exe: str, args: list[str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    """Run Chromium with a throwaway profile; its whole process group is ended after."""
    with tempfile.TemporaryDirectory(prefix="sockscope-chromium-") as profile:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ChromiumError(f"Chromium did not finish within {timeout:.0f} s") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its renderer and helpers too
            proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def print_pdf(html: bytes, exe: str) -> bytes:
    """The PDF of a page, printed by Chromium from a private temporary copy."""
    with tempfile.TemporaryDirectory(prefix="sockscope-pdf-") as tmp:
        page = Path(tmp, "report.html")
        page.write_bytes(html)
        pdf = Path(tmp, "report.pdf")
        done = run_chromium(
            exe,
            # The outline: the page's headings as the PDF's bookmarks.
            [
                "--no-pdf-header-footer",
                "--generate-pdf-document-outline",
                f"--print-to-pdf={pdf}",
                page.as_uri(),
            ],
        )
        if not pdf.exists() or pdf.stat().st_size == 0:
            last = done.stderr.decode(errors="replace").strip().splitlines()
            raise ChromiumError(
                f"Chromium printed no PDF (exit {done.returncode}: {last[-1] if last else ''})"
            )
        return pdf.read_bytes()
