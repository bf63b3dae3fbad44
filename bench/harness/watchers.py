"""Launching a watcher beside the stage, knowing when it is ready, and stopping it.

A watcher is ``sockscope watch --netns NS ...`` (run from the host, so it finds
tracefs and the namespace by name, as a user would), libbpf-tools ``tcplife`` (no
namespace filter: it sees the whole host), ``ss -E`` inside the namespace, or none.
Its output goes to a file, its errors to another.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cpu import bpf_links_of, program_ids
from harness.stage import Stage

TCPLIFE = "/usr/sbin/tcplife"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SOCKSCOPE_READY = "sockscope: watching"


class LaunchError(RuntimeError):
    """The watcher did not start (or not in time)."""


@dataclass(frozen=True)
class WatcherSpec:
    """One way to watch the stage.

    ``kind``: ``sockscope`` (``args`` go after ``watch --netns NS``), ``tcplife``,
    ``ss`` (``args`` are ss's filter, run line-buffered so a stop loses nothing) or
    ``none`` (the load alone).
    """

    key: str
    label: str
    kind: str
    args: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        """How its output is parsed (``counts.parse_output``)."""
        if self.kind == "sockscope":
            return "jsonl" if "--jsonl" in self.args else "text"
        return self.kind

    def command(self, stage: Stage, sockscope: str) -> list[str]:
        if self.kind == "sockscope":
            return [sockscope, "watch", "--netns", stage.ns, *self.args]
        if self.kind == "tcplife":
            return [TCPLIFE, *self.args]
        if self.kind == "ss":
            return stage.exec(["stdbuf", "-oL", "ss", "-E", "-n", "-t", "-H", *self.args])
        raise ValueError(f"no command for a watcher of kind {self.kind!r}")


def prepare_signals() -> None:
    """SIGTERM unwinds like an error (so the stage is cleaned up), and SIGINT reaches the
    watchers: a shell's ``cmd &`` ignores it, and children inherit an ignored signal."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Running:
    """A launched watcher: its process, files and the BPF programs it loaded."""

    def __init__(self, spec: WatcherSpec, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.spec, self.proc, self.out, self.err = spec, proc, out, err
        self.programs: list[int] = []
        self.returncode: int | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        try:
            return self.err.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output_size(self) -> int:
        try:
            return self.out.stat().st_size
        except FileNotFoundError:
            return 0

    def stop(self) -> int | None:
        """SIGINT (every watcher here stops cleanly on it), SIGKILL if it hangs; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode


def launch(spec: WatcherSpec, stage: Stage, sockscope: str, files: Path) -> Running | None:
    """Start ``spec``'s watcher, its output in ``files``.out/.err; None for ``none``.

    Returns once it is ready: sockscope said it is watching, tcplife attached its program
    (a BPF link in its fd table), ss had half a second to subscribe.
    """
    if spec.kind == "none":
        return None
    before = program_ids()
    out, err = files.with_suffix(".out"), files.with_suffix(".err")
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            spec.command(stage, sockscope),
            stdin=subprocess.DEVNULL,
            stdout=o,
            stderr=e,
            start_new_session=True,  # a Ctrl-C on the terminal is the bench's to handle
        )
    running = Running(spec, proc, out, err)
    try:
        _wait_ready(running)
    except BaseException:
        running.stop()
        raise
    running.programs = sorted(program_ids() - before)
    return running


def _wait_ready(running: Running) -> None:
    kind = running.spec.kind
    if kind == "ss":
        time.sleep(0.5)
        return
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            raise LaunchError(
                f"{running.spec.label} exited {running.proc.returncode}: {running.stderr()[-400:]}"
            )
        if kind == "sockscope" and SOCKSCOPE_READY in running.stderr():
            return
        if kind == "tcplife" and bpf_links_of(running.pid):
            time.sleep(0.2)  # attached; give it the moment to reach its poll loop
            return
        time.sleep(0.02)
    raise LaunchError(f"{running.spec.label} not ready after {READY_TIMEOUT:g}s: {running.stderr()[-400:]}")
