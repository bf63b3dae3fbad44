"""``sockscope demo tour``: every step's claim, checked on the sockets the tour made.

The tour checks its claims itself, through the library, and returns them; these tests
assert on those results, re-check the key ones on the real output, and make sure the
tour leaves nothing behind (servers, sockets, its namespace), also after Ctrl-C.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from sockscope.cli.env import Env
from sockscope.cli.main import main
from sockscope.demo.claims import StepResult, row
from sockscope.demo.tour import run_tour
from tests.conftest import IS_ROOT
from tests.demo.helpers import Pty

STEP_TITLES = {
    1: "the server listens",
    2: "binding one address",
    3: "a client connects",
    4: "the connection request queue",
    5: "the application accepts",
    6: "a large download and short connections",
}


def namespaces() -> set[str]:
    """The tour namespaces that exist (other tests may make their own meanwhile)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.startswith("sockscope-tour-")}


def mine() -> set[str]:
    """Tour namespaces this test process made."""
    return {n for n in namespaces() if n.startswith(f"sockscope-tour-{os.getpid()}-")}


def tour_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sockscope-demo")]


def by_number(results: list[StepResult]) -> dict[int, StepResult]:
    return {r.number: r for r in results}


def assert_claims(results: list[StepResult], skipped: set[int]) -> None:
    steps = by_number(results)
    assert {n: r.title for n, r in steps.items()} == STEP_TITLES
    for n, r in steps.items():
        if n in skipped:
            assert r.skipped and not r.claims, n
            continue
        failed = [(c.text, c.evidence) for c in r.claims if not c.passed]
        assert r.passed and not failed, (n, failed)
        assert all(c.evidence for c in r.claims)


def check_output(results: list[StepResult], port: int) -> None:
    """The printed output of the real commands shows what the claims say."""
    steps = by_number(results)
    bsd = steps[1].runs[0].stdout
    assert row(bsd, f"*.{port}", "*.*", "LISTEN")
    assert row(steps[1].runs[1].stdout, f"0.0.0.0:{port}", "0.0.0.0:*", "LISTEN")
    last = steps[3].runs[-1].stdout
    clients = re.findall(rf"127\.0\.0\.1\.{port}\s+127\.0\.0\.1\.(\d+)\s+ESTABLISHED", last)
    assert len(set(clients)) == 2 and str(port) not in clients
    queue = steps[4].runs[0].stdout
    cells = next(ln for ln in queue.splitlines() if ln.startswith(f"*.{port} ")).split()
    assert cells[2:4] == ["3", "2"] and "FULL" in queue  # Waiting 3, Backlog 2
    assert queue.count("  queued ") == 3
    assert steps[4].runs[1].stdout.count("SYN_SENT") == 3
    assert "  half-open " in steps[4].runs[2].stdout
    assert all(run.code == 0 for r in results for run in r.runs)


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="the tour's own namespace needs root")
def test_tour_in_its_own_namespace() -> None:
    out = io.StringIO()
    results = run_tour(out.write, use_netns=True)
    assert_claims(results, skipped=set())
    check_output(results, 2323)
    name = re.search(r"namespace of its own, (sockscope-tour-\S+),", out.getvalue())
    assert name and name.group(1) not in namespaces() and not mine()
    assert any("--netns" in run.argv for r in results for run in r.runs)
    assert not tour_threads()


def test_tour_on_loopback_here() -> None:
    """Without a namespace (as without root): step 2 is skipped, the rest holds."""
    out = io.StringIO()
    results = run_tour(out.write, use_netns=False)
    assert_claims(results, skipped={2})
    port = int(re.search(r"filtered to port (\d+)", out.getvalue()).group(1))  # type: ignore[union-attr]
    check_output(results, port)
    assert "needs the tour's own network namespace" in (by_number(results)[2].skipped or "")
    assert not tour_threads()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="the tour's own namespace needs root")
def test_cli_tour_auto_exit_status_and_summary() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["demo", "tour", "--auto"], Env(stdout=out, stderr=err))
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert text.count("[ok]") == 20 and "[FAILED]" not in text
    for n, title in STEP_TITLES.items():
        assert f"step {n}: {title}: ok" in text
    assert "$ sockscope queues -v --bsd --netns sockscope-tour-" in text


def test_interrupt_between_steps_cleans_up() -> None:
    """Ctrl-C (here: from the pause after step 3) stops servers and removes the namespace."""
    out = io.StringIO()
    calls = []

    def pause() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tour(out.write, pause, use_netns=IS_ROOT)
    assert "Step 3 of 6" in out.getvalue() and "Step 4 of 6" not in out.getvalue()
    assert not mine()
    assert not tour_threads()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="the tour's own namespace needs root")
def test_sigint_to_the_command_cleans_up() -> None:
    """A real Ctrl-C (SIGINT) to ``sockscope demo tour`` mid-step: exit 130, nothing left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockscope", "demo", "tour"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    name = None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        found = re.search(r"(sockscope-tour-\S+),", line)
        name = name or (found.group(1) if found else None)
        if "Step 4 of 6" in line or time.monotonic() > deadline:
            break
    assert name and name in namespaces()
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(20) == 130
    finally:
        proc.kill()
    assert name not in namespaces()
    ps = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True, check=False
    )
    assert not ps.stdout.strip()


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid (util-linux)")
def test_interactive_tour_waits_for_enter_and_stops_on_ctrl_c() -> None:
    tour = Pty([sys.executable, "-m", "sockscope", "demo", "tour"])
    try:
        tour.expect(rb"Step 1 of 6", timeout=20)
        tour.expect(rb"\[Enter: next step, Ctrl-C: stop\] ", timeout=20)
        time.sleep(0.5)
        assert b"Step 2 of 6" not in tour.seen  # it waits for Enter
        tour.send(b"\r")
        tour.expect(rb"Step 2 of 6")
        tour.expect(rb"\[Enter: next step", timeout=20)
        name = re.search(rb"(sockscope-tour-[\w-]+),", tour.seen)
        tour.send(b"\x03")  # Ctrl-C from the terminal
        assert tour.proc.wait(20) == 130
        assert b"Traceback" not in tour.seen
        if name:
            assert name.group(1).decode() not in namespaces()
    finally:
        tour.close()


def test_a_broken_step_fails_and_the_tour_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stage: object) -> StepResult:
        raise TimeoutError("timed out")

    monkeypatch.setattr("sockscope.demo.tour.step_connect", broken)
    out, err = io.StringIO(), io.StringIO()
    code = main(["demo", "tour", "--auto", "--no-netns"], Env(stdout=out, stderr=err))
    assert code == 1  # a claim did not hold
    text = out.getvalue()
    assert "[FAILED] the step ran to its end" in text and "TimeoutError: timed out" in text
    assert "step 3: a client connects: FAILED" in text and "step 4: the connection request queue: ok" in text
    assert not tour_threads()
