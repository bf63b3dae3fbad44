"""The exporter's metrics against the real kernel, each test in a namespace of its own:
SO_REUSEPORT siblings, the connection counters fed by the watch engine, the series cap,
every namespace with its container, and an unprivileged run."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter.helpers import exporter, fetch, wait_for
from tests.helpers.netns import socket_in

Sample = tuple[str, dict[str, str], float]


def samples(url: str) -> list[Sample]:
    status, _, body = fetch(url)
    assert status == 200
    return [
        (s.name, s.labels, s.value) for f in text_string_to_metric_families(body.decode()) for s in f.samples
    ]


def value(rows: list[Sample], name: str, **labels: str) -> float | None:
    found = [v for n, lab, v in rows if n == name and all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def ns_exec(ns: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True
    ).stdout


def test_reuseport_siblings_are_told_apart_by_cookie(netns: str) -> None:
    socks = []
    for _ in range(2):
        s = socket_in(netns)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("0.0.0.0", 8080))
        s.listen(16)
        socks.append(s)
    try:
        with exporter("--netns", netns, "--no-events") as exp:
            rows = [r for r in samples(exp.url) if r[0] == "sockscope_listener_backlog"]
            assert len(rows) == 2
            cookies = {lab["cookie"] for _, lab, _ in rows}
            assert len(cookies) == 2 and all(c.isdigit() for c in cookies)
            assert {(lab["laddr"], lab["lport"]) for _, lab, _ in rows} == {("0.0.0.0", "8080")}
            # The same cookies as the kernel's own tools show (ss -e: sk:HEX).
            ss = ns_exec(netns, "ss", "-ltneH")
            assert {f"sk:{int(c):x}" for c in cookies} <= set(ss.replace("<", " ").split())
            # Stable across scrapes.
            again = {lab["cookie"] for n, lab, _ in samples(exp.url) if n == "sockscope_listener_backlog"}
            assert again == cookies
    finally:
        for s in socks:
            s.close()


LINGER_RST = struct.pack("ii", 1, 0)


def _connections(ns: str, srv: socket.socket, graceful: int, reset: int) -> None:
    """Connections to ``srv``: some closed with FIN by both ends, some reset by the client."""
    port = srv.getsockname()[1]
    for i in range(graceful + reset):
        c = socket_in(ns)
        c.connect(("127.0.0.1", port))
        conn, _ = srv.accept()
        c.sendall(b"x" * 100)
        conn.recv(100)
        conn.sendall(b"y" * 1000)
        c.recv(1000)
        if i >= graceful:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        c.close()
        time.sleep(0.01)
        conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the tracepoint source needs root")
def test_connection_counters_from_the_watch_engine(netns: str) -> None:
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", 2323))
    srv.listen(64)
    try:
        with exporter("--netns", netns, "--poll-interval", "1s", "--ports", "2323") as exp:
            assert wait_for(lambda: value(samples(exp.url), "sockscope_watch_up", netns=netns) == 1.0)
            time.sleep(0.5)
            _connections(netns, srv, graceful=20, reset=3)
            port = {"netns": netns, "lport": "2323"}

            def settled() -> bool:
                rows = samples(exp.url)
                return value(rows, "sockscope_port_connections_closed_total", **port) == 23 and bool(
                    value(rows, "sockscope_outgoing_connections_total", netns=netns, rport="2323") == 23
                )

            assert wait_for(settled, timeout=15), samples(exp.url)
            rows = samples(exp.url)
            assert value(rows, "sockscope_port_connections_accepted_total", **port) == 23
            assert value(rows, "sockscope_port_connections_reset_total", **port) == 3
            assert value(rows, "sockscope_port_connection_duration_seconds_count", **port) == 23
            assert value(rows, "sockscope_port_connection_duration_seconds_bucket", le="+Inf", **port) == 23
            # The server end sent 1,000 bytes and received 100 on each connection; the
            # kernel's tcpi_bytes_received counts a received FIN as one byte (20 closes).
            assert value(rows, "sockscope_port_sent_bytes_total", **port) == 23_000
            assert value(rows, "sockscope_port_received_bytes_total", **port) == 2_300 + 20
            assert value(rows, "sockscope_outgoing_connections_reset_total", netns=netns, rport="2323") == 3
            assert value(rows, "sockscope_lost_events_total", netns=netns) == 0
            sources = {lab["source"] for n, lab, _ in rows if n == "sockscope_watch_source_info"}
            assert {"poll", "bpf"} <= sources  # root: the eBPF program follows every connection
            _dashboard_and_rules_use_exported_names(rows)
    finally:
        srv.close()


def _dashboard_and_rules_use_exported_names(rows: list[Sample]) -> None:
    """Every metric the Grafana dashboard and the alert rules name is one exported here."""
    from tests.exporter.test_contrib import dashboard_exprs, metric_names, rule_exprs  # noqa: PLC0415

    exported = {n for n, _, _ in rows}
    for expr in [*dashboard_exprs(), *rule_exprs()]:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_series_cap_folds_ports_into_other(netns: str) -> None:
    socks = []
    for port in (7001, 7002, 7003, 7004):
        s = socket_in(netns)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        socks.append(s)
    try:
        # Each port costs 6 listener series + 1 LISTEN socket count: 14 fit two ports.
        with exporter("--netns", netns, "--no-events", "--max-series", "14", "--ports", "7004") as exp:
            rows = samples(exp.url)
            ports = {lab["lport"] for n, lab, _ in rows if n == "sockscope_listener_backlog"}
            assert ports == {"7004", "7001", "other"}  # --ports first, then by number
            assert value(rows, "sockscope_listener_backlog", lport="other") == 16  # two of 8, summed
            assert value(rows, "sockscope_port_sockets", lport="other", state="LISTEN") == 2
            assert value(rows, "sockscope_series_folded_total") == 14
            assert value(samples(exp.url), "sockscope_series_folded_total") == 28  # counted per scrape
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def process_in_fake_container(cid: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a network namespace of its own (unshare -n, no name under /run/netns),
    in a cgroup named as Docker's systemd driver names a container's."""
    cgroup = _writable_cgroup() / f"sockscope-test-{uuid.uuid4().hex[:8]}" / f"docker-{cid}.scope"
    cgroup.mkdir(parents=True)
    proc = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
        assert wait_for(
            lambda: os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net"), 5
        )
        yield proc
    finally:
        proc.kill()
        proc.wait()
        wait_for(lambda: not (cgroup / "cgroup.procs").read_text().strip(), 5)
        cgroup.rmdir()
        cgroup.parent.rmdir()


def _writable_cgroup() -> Path:
    """The cgroup v2 mount, else v1's pids hierarchy (this VM mounts both)."""
    v1 = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype == "cgroup2":
            return Path(fields[4])
        if fstype == "cgroup" and "pids" in fields[-1].split(","):
            v1 = Path(fields[4])
    if v1 is None:
        pytest.skip("no cgroup hierarchy to create a test cgroup in")
    return v1


def test_all_netns_labels_namespaces_and_containers(netns: str) -> None:
    cid = uuid.uuid4().hex * 2
    with process_in_fake_container(cid) as proc:
        inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        with exporter("--all-netns", "--no-events") as exp:
            rows = samples(exp.url)
            up = {(lab["netns"], lab["container"]): v for n, lab, v in rows if n == "sockscope_up"}
            assert up[(netns, "")] == 1.0  # the test's named namespace
            assert up[(f"net:[{inode}]", f"docker://{cid}")] == 1.0  # found through the process
            assert ("", "") in up  # the exporter's own namespace
            # The unnamed namespace is read through an fd the exporter holds: it stays
            # readable after the process that showed it is gone, until the next scrape.
            proc.kill()
            proc.wait()
            rows = samples(exp.url)
            labels = {lab["netns"] for n, lab, _ in rows if n == "sockscope_up"}
            assert f"net:[{inode}]" not in labels


def test_unprivileged_run_warns_once_and_reads_its_namespace(netns: str) -> None:
    srv = socket_in(netns)
    srv.bind(("127.0.0.1", 2323))
    srv.listen(4)
    drop = ["ip", "netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"]  # fmt: skip
    try:
        with exporter("--no-events", preexec=drop) as exp:
            warnings = [ln for ln in exp.stderr_lines if "warning" in ln]
            assert len(warnings) == 1, exp.stderr_lines
            assert "Still read" in warnings[0] and "no process label" in warnings[0]
            body = ns_exec(netns, "curl", "-s", exp.url)
            rows = [
                (s.name, s.labels, s.value) for f in text_string_to_metric_families(body) for s in f.samples
            ]
            assert value(rows, "sockscope_up", netns="") == 1.0
            assert value(rows, "sockscope_listener_backlog", lport="2323") == 4
            # A listener of root's: no process label for an unprivileged reader; its own is named.
            procs = {lab["lport"]: lab["process"] for n, lab, _ in rows if n == "sockscope_listener_backlog"}
            assert procs.pop("2323") == "" and list(procs.values()) == [Path(sys.executable).name[:15]]
            assert exp.stop() == 0
            assert "Traceback" not in exp.rest_of_stderr()
    finally:
        srv.close()
