"""The exporter scraped by a real Prometheus server: the primer's full queue (listen(4),
ten clients never accepted) seen through Prometheus' query API, the queue-full alert
raised, and promtool's lint of the exporter's output."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exporter.helpers import (
    Exporter,
    exporter,
    fetch,
    need_tool,
    prometheus,
    test_copy_of_rules,
    wait_for,
)
from tests.helpers.netns import socket_in

PORT = 2323


@pytest.fixture
def full_queue(netns: str) -> Iterator[str]:
    """listen(4), never accept, 10 non-blocking clients: 5 wait, the rest keep retrying."""
    # SYN retransmits every second (instead of 1, 3, 7 s...), so drops keep rising.
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=20"], check=False
    )
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(4)
    clients = []
    for _ in range(10):
        c = socket_in(netns)
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", PORT))
        clients.append(c)
    try:
        yield netns
    finally:
        for c in clients:
            c.close()
        srv.close()


def _value(prom: object, expr: str) -> float | None:
    rows = prom.query(expr)  # type: ignore[attr-defined]
    return rows[0][1] if len(rows) == 1 else None


def test_prometheus_sees_the_full_queue_and_raises_the_alert(full_queue: str) -> None:
    ns = full_queue
    with exporter("--netns", ns, "--poll-interval", "1s") as exp:
        job = {"job_name": "sockscope", "static_configs": [{"targets": [f"127.0.0.1:{exp.port}"]}]}
        with prometheus([job], rules=test_copy_of_rules(for_seconds=3)) as prom:
            sel = f'{{job="sockscope", netns="{ns}", lport="{PORT}"}}'
            assert wait_for(lambda: _value(prom, f"sockscope_listener_accept_queue{sel}") == 5.0)
            assert _value(prom, f"sockscope_listener_backlog{sel}") == 4.0
            assert _value(prom, f"sockscope_listener_queue_capacity{sel}") == 5.0
            (labels, _), *_ = prom.query(f"sockscope_listener_accept_queue{sel}")
            assert labels["laddr"] == "127.0.0.1" and labels["cookie"].isdigit()
            # This test's own process holds the listener.
            assert labels["process"] == Path("/proc/self/comm").read_text().strip()
            assert _value(prom, f'sockscope_up{{netns="{ns}"}}') == 1.0
            # Drops rise: the clients' SYNs keep being refused while the queue is full.
            first = _value(prom, f"sockscope_listener_drops_total{sel}")
            assert first is not None and first > 0
            assert wait_for(lambda: (_value(prom, f"sockscope_listener_drops_total{sel}") or 0) > first)
            # The namespace counter agrees that the queue overflowed.
            assert (_value(prom, f'sockscope_netstat_tcpext_listen_overflows_total{{netns="{ns}"}}') or 0) > 0
            # The alert goes pending at once and fires once "for" has passed.
            pending = wait_for(lambda: bool(prom.alerts("SockscopeListenQueueNearFull")))
            assert pending, "the queue-full alert never went pending"
            assert wait_for(
                lambda: any(a["state"] == "firing" for a in prom.alerts("SockscopeListenQueueNearFull"))
            )
            (alert,) = prom.alerts("SockscopeListenQueueNearFull")
            assert alert["labels"]["lport"] == str(PORT) and alert["labels"]["netns"] == ns  # type: ignore[index]
            assert "100% full" in alert["annotations"]["summary"]  # type: ignore[index]
        _lint_and_negotiate(exp)
        assert exp.stop() == 0
        assert "Traceback" not in exp.rest_of_stderr()


def _lint_and_negotiate(exp: Exporter) -> None:
    promtool = need_tool("promtool")
    status, headers, body = fetch(exp.url)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False)
    assert lint.returncode == 0 and lint.stdout == b"" and lint.stderr == b"", lint
    assert b"\nsockscope_listener_accept_queue{" in body
    status, headers, om = fetch(exp.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.endswith(b"# EOF\n")
    # OpenMetrics names a counter's family without _total and its sample with it.
    assert b"# TYPE sockscope_listener_drops counter\n" in om and b"sockscope_listener_drops_total{" in om
    status, _, page = fetch(exp.url.removesuffix("metrics"))
    assert status == 200 and b"href='metrics'" in page
    assert fetch(exp.url.removesuffix("metrics") + "nothing")[0] == 404


def test_concurrent_scrapes_share_readings(full_queue: str) -> None:
    """Fifty scrapes at once all succeed, from far fewer kernel readings than scrapes."""
    import threading  # noqa: PLC0415

    with exporter("--netns", full_queue, "--no-events") as exp:
        results: list[int] = []

        def scrape() -> None:
            results.append(fetch(exp.url)[0])

        threads = [threading.Thread(target=scrape) for _ in range(50)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [200] * 50, results
        assert time.monotonic() - start < 20
        _, _, page = fetch(exp.url.removesuffix("metrics"))
        readings = int(page.split(b"readings so far</th><td>")[1].split(b"<")[0])
        assert readings < 25, readings


def test_sigterm_leaves_nothing_behind(full_queue: str) -> None:
    with exporter("--netns", full_queue) as exp:
        assert fetch(exp.url)[0] == 200
        assert exp.stop() == 0
    # The listening port is closed and no tracefs instance of ours remains.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", exp.port)) != 0
    for base in ("/sys/kernel/tracing/instances", "/sys/kernel/debug/tracing/instances"):
        assert not Path(base, f"sockscope-{exp.proc.pid}").exists()
