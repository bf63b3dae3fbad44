"""Running the real exporter, the real Prometheus server, and openssl, for the tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "contrib" / "prometheus" / "rules.yml"
SERVING = re.compile(r"serving (https?)://(\S+?):(\d+)/metrics")


def need_tool(name: str) -> str:
    """The tool's path, or skip with the reason (scripts/test installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return path


def wait_for(cond: Callable[[], bool], timeout: float = 15.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Exporter:
    """A ``sockscope exporter`` child process, serving on a free port."""

    def __init__(self, proc: subprocess.Popen[str], scheme: str, port: int, first_lines: list[str]) -> None:
        self.proc = proc
        self.scheme = scheme
        self.port = port
        self.stderr_lines = first_lines

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/metrics"

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def rest_of_stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@contextlib.contextmanager
def exporter(*args: str, preexec: list[str] | None = None) -> Iterator[Exporter]:
    """Start ``sockscope exporter ARGS`` on 127.0.0.1:0 and wait until it serves."""
    cmd = [*(preexec or []), sys.executable, "-m", "sockscope", "exporter", "--listen", "127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while True:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"exporter exited ({proc.wait()}): {''.join(lines)}")
            lines.append(line)
            m = SERVING.search(line)
            if m:
                break
        exp = Exporter(proc, m.group(1), int(m.group(3)), lines)
        yield exp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fetch(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: status, headers, body (errors are answers too)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A real Prometheus server on loopback, in a temporary directory of its own."""

    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.proc = proc

    def api(self, path: str, **params: str) -> dict[str, object]:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}", timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        data: dict[str, object] = doc["data"]
        return data

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: each series' labels and value."""
        data = self.api("query", query=expr)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]  # type: ignore[attr-defined,index]

    def alerts(self, name: str) -> list[dict[str, object]]:
        data = self.api("alerts")
        return [a for a in data["alerts"] if a["labels"]["alertname"] == name]  # type: ignore[attr-defined,index]

    def targets(self) -> list[dict[str, object]]:
        return self.api("targets")["activeTargets"]  # type: ignore[return-value]


@contextlib.contextmanager
def prometheus(
    scrape_configs: list[dict[str, object]], rules: list[dict[str, object]] | None = None
) -> Iterator[Prometheus]:
    """Start Prometheus with these scrape configs (1 s interval) and rule groups."""
    binary = need_tool("prometheus")
    with tempfile.TemporaryDirectory(prefix="sockscope-prom-") as tmp:
        root = Path(tmp)
        config: dict[str, object] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": scrape_configs,
        }
        if rules is not None:
            (root / "rules.yml").write_text(yaml.safe_dump({"groups": rules}))
            config["rule_files"] = [str(root / "rules.yml")]
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (root / "log").open("wb")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_for(lambda: _ready(port), timeout=20, step=0.1)
            assert ready, (root / "log").read_text()[-2000:]
            yield Prometheus(root, port, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_copy_of_rules(for_seconds: int) -> list[dict[str, object]]:
    """contrib's rule groups with every ``for:`` shortened, for a test that cannot wait
    minutes."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{for_seconds}s"
    groups: list[dict[str, object]] = doc["groups"]
    return groups


test_copy_of_rules.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def make_certs(root: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1, and a client certificate."""
    openssl = need_tool("openssl")
    paths = {
        n: root / n for n in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")
    }

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=sockscope test CA", "-keyout", str(paths["ca.key"]), "-out", str(paths["ca.pem"]),
    )  # fmt: skip
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:prometheus.test")):
        csr = root / f"{name}.csr"
        ext = root / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        run(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={name}", "-keyout", str(paths[f"{name}.key"]), "-out", str(csr),
        )  # fmt: skip
        run(
            "x509", "-req", "-in", str(csr), "-CA", str(paths["ca.pem"]), "-CAkey", str(paths["ca.key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(paths[f"{name}.pem"]),
        )  # fmt: skip
    for p in paths.values():
        os.chmod(p, 0o644)  # the unprivileged tests' exporter reads them too
    return paths
