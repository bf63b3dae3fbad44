"""The harness's small parts: /proc parsing, ab's report, nginx's config and log, the
paced client's sums, the tables and the results file."""

from __future__ import annotations

import os
import time

import pytest
from harness.cpu import (
    BpfTime,
    CpuTimes,
    busy_share,
    parse_proc_stat_busy,
    parse_schedstat,
    parse_stat,
    read_cpu,
)
from harness.pacer import _combine
from harness.report import fmt_range, share, spread, table, write_section
from harness.stage import PORT, build_nginx_conf, parse_ab, parse_access_log

from tests.bench.conftest import FIXTURES

# A real /proc/PID/stat line, with a command name holding a space and a parenthesis.
STAT = (
    "31798 (we (ird) name) S 1 31798 31798 0 -1 4194560 1160 0 0 0 "
    "250 75 0 0 20 0 1 0 1189003 11431936 1700 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"
)


def test_stat_fields_are_counted_from_the_last_parenthesis():
    assert parse_stat(STAT, clk_tck=100) == (2.5, 0.75)


def test_schedstat_is_nanoseconds():
    assert parse_schedstat("1234567890 5000 42\n") == pytest.approx(1.23456789)


def test_own_cpu_grows_with_work():
    before = read_cpu(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    after = read_cpu(os.getpid())
    assert before is not None and after is not None
    spent = after - before
    assert 0.04 < spent.total < 5.0
    assert read_cpu(2**22 + 12345) is None  # above pid_max: never a process


def test_cpu_of_every_thread_counts():
    """A watcher has threads (the destroy guard): their time is its time, as tcplife's
    single thread's is tcplife's. /proc/PID/schedstat alone would miss it."""
    import threading  # noqa: PLC0415

    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.1
        while time.thread_time() < end:
            pass
        spun.set()
        release.wait()  # alive (and idle) while it is read

    before = read_cpu(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    assert spun.wait(30)
    after = read_cpu(os.getpid())
    release.set()
    worker.join()
    assert before is not None and after is not None
    assert (after - before).total >= 0.1


def test_differences_of_readings():
    assert CpuTimes(3.0, 1.0, 4.5) - CpuTimes(1.0, 0.5, 1.25) == CpuTimes(2.0, 0.5, 3.25)
    assert BpfTime(900, 30) - BpfTime(100, 10) == BpfTime(800, 20)


def test_host_busy_share():
    a = parse_proc_stat_busy("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    b = parse_proc_stat_busy("cpu  200 0 100 850 50 0 0 0 0 0\n")
    assert a == (150, 1000)
    assert busy_share(a, b) == pytest.approx(150 / 200)


def test_abs_recorded_report():
    result = parse_ab((FIXTURES / "ab.txt").read_text())
    assert (result.complete, result.failed) == (20, 0)
    assert result.rate > 0
    assert result.detail == ""
    assert parse_ab("ab: invalid URL\n").detail == "no report from ab"


def test_nginx_serves_one_connection_per_request_and_logs_the_client(tmp_path):
    conf = build_nginx_conf(tmp_path, 18555, workers=3)
    assert "keepalive_timeout 0;" in conf
    assert "worker_processes 3;" in conf
    assert "log_format bench '$remote_addr $remote_port $status';" in conf
    assert f"access_log {tmp_path}/access.log bench;" in conf
    assert "listen 127.0.0.1:18555 backlog=4096;" in conf


def test_access_log():
    logged = parse_access_log((FIXTURES / "sockscope-jsonl.access.log").read_text() + "garbage\n\n")
    assert logged.total() == 20
    assert all(addr == "127.0.0.1" and port != PORT for addr, port in logged)


def test_paced_processes_add_up():
    results = [
        {
            "ok": 990,
            "failed": 10,
            "seconds": 2.0,
            "late": 0.0,
            "comm": "python",
            "error": "connect: ECONNREFUSED",
        },
        {"ok": 1000, "failed": 0, "seconds": 2.5, "late": 0.3, "comm": "python", "error": ""},
    ]
    load = _combine(results, 1000.0, 2000)
    assert (load.requests, load.complete, load.failed) == (2000, 2000, 10)
    assert load.rate == pytest.approx(1990 / 2.5)
    assert load.client == "python"
    assert load.target_rate == 1000.0
    assert load.detail == "started up to 0.30 s late; connect: ECONNREFUSED"


def test_tables_and_figures():
    assert table(["a", "b"], [["1", "2"]], "lr") == ["| a | b |", "|---|---:|", "| 1 | 2 |"]
    assert share(20_000, 20_000) == "100%"
    assert share(19_990, 20_000) == "99.95% (19,990)"
    assert share(13, 20_000) == "0.1% (13)"
    assert share(1, 0) == "-"
    assert spread([3.0, 1.0, 2.0]) == "2.0 (1.0-3.0)"
    assert spread([]) == "-"
    assert fmt_range((1.5, 1.5, 1.5), ".2f") == "1.50"


def test_a_section_is_replaced_and_the_others_kept(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\n<!-- other:begin -->\nkeep me\n<!-- other:end -->\n\n"
        "<!-- mine:begin -->\nold\n<!-- mine:end -->\n"
    )
    write_section("mine", "Mine", "python bench/mine.py", {"kernel": "6.1"}, ["new table"], results)
    text = results.read_text()
    assert "keep me" in text and "old" not in text
    assert "## Mine" in text and "python bench/mine.py" in text and "- kernel: 6.1" in text
    assert text.index("<!-- other:end -->") < text.index("new table") < text.index("<!-- mine:end -->")
    write_section("third", "Third", "x", {}, ["t"], results)
    assert results.read_text().rstrip().endswith("<!-- third:end -->")
