"""nginx in a network namespace of its own, and ab against it from inside.

Every request is one connection (``keepalive_timeout 0``) and nginx logs the client's
address and port for each, so a watcher's events can be matched to nginx's own count.
The namespace keeps the run's sockets (and its TIME_WAIT sockets, which every poll
dumps) apart from everything else on the host; the namespace, nginx and the temporary
directory are removed on every way out of the ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sockscope.sources.netns import entered_netns

HOST = "127.0.0.1"
PORT = 18080
DOC = "/index.html"
DOC_BYTES = 612  # the size of nginx's own welcome page
START_TIMEOUT = 10.0
LOAD_TIMEOUT = 180.0

NGINX_CONF = """\
user nobody {group};
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format bench '$remote_addr $remote_port $status';
    access_log {tmp}/access.log bench;
    keepalive_timeout 0;
    client_body_temp_path {tmp}/tmp/body;
    proxy_temp_path {tmp}/tmp/proxy;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
    server {{ listen {host}:{port} backlog=4096; root {tmp}/www; }}
}}
"""


class StageError(RuntimeError):
    """nginx (or the namespace) could not be set up: nothing can be measured."""


def build_nginx_conf(tmp: Path, port: int, workers: int = 2, group: str = "nogroup") -> str:
    """The configuration: ``workers`` workers as nobody, one connection per request."""
    return NGINX_CONF.format(tmp=tmp, port=port, workers=workers, group=group, host=HOST)


def parse_access_log(text: str) -> Counter[tuple[str, int]]:
    """(client address, client port) of every request in the ``bench`` log format."""
    seen: Counter[tuple[str, int]] = Counter()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            seen[(words[0], int(words[1]))] += 1
    return seen


@dataclass
class LoadResult:
    """What one load did: its own counts and rate, and the wall time around it."""

    label: str = ""
    requests: int = 0
    complete: int = 0
    failed: int = 0
    rate: float = 0.0  # connections a second (ab: its "Requests per second")
    seconds: float = 0.0
    detail: str = ""  # why it did not finish, if it did not
    client: str = "ab"  # the process its connections should be named after
    target_rate: float | None = None  # a paced load's


def parse_ab(stdout: str) -> LoadResult:
    """ab's report: complete and failed requests and the rate (zeros if missing)."""

    def number(label: str) -> float:
        m = re.search(rf"^{label}:\s+([\d.]+)", stdout, re.M)
        return float(m.group(1)) if m else 0.0

    result = LoadResult(complete=int(number("Complete requests")), failed=int(number("Failed requests")))
    result.rate = number("Requests per second")
    if not result.complete:
        result.detail = "no report from ab"
    return result


def _nogroup() -> str:
    import grp  # noqa: PLC0415 - Unix only, used once

    try:
        grp.getgrnam("nogroup")
    except KeyError:
        return "nobody"
    return "nogroup"


class Stage:
    """A network namespace with loopback up and nginx listening on HOST:port in it."""

    def __init__(self, port: int = PORT, workers: int = 2, netns: str | None = None) -> None:
        """``netns``: a namespace that exists (the caller's, kept), instead of a new one."""
        self.port, self.workers = port, workers
        self.given_ns = netns is not None
        self.ns = netns or f"sockscope-bench-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="sockscope-bench-"))
        self.access_log = self.tmp / "access.log"
        self.nginx: subprocess.Popen[bytes] | None = None
        self._netns = False

    def __enter__(self) -> Stage:
        try:
            if not self.given_ns:
                subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
                self._netns = True
                subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
            self._start_nginx()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_nginx(self) -> None:
        # Workers run as nobody: the document root must be readable to them.
        self.tmp.chmod(0o755)
        for sub in ("www", "tmp"):
            (self.tmp / sub).mkdir(mode=0o755)
        (self.tmp / "www" / DOC.lstrip("/")).write_text("x" * (DOC_BYTES - 1) + "\n")
        conf = self.tmp / "nginx.conf"
        conf.write_text(build_nginx_conf(self.tmp, self.port, self.workers, _nogroup()))
        argv = ["nginx", "-p", f"{self.tmp}/", "-c", str(conf), "-e", str(self.tmp / "error.log")]
        with (self.tmp / "nginx.out").open("wb") as out:
            # Its own session: the workers are killed with it.
            self.nginx = subprocess.Popen(
                self.exec(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                raise StageError(f"nginx exited {self.nginx.returncode}: {self.errors()}")
            if self._listening():
                return
            time.sleep(0.05)
        raise StageError(f"nginx did not listen on {HOST}:{self.port}: {self.errors()}")

    def _listening(self) -> bool:
        with self.entered(), socket.socket() as s, contextlib.suppress(OSError):
            s.connect((HOST, self.port))
            return True
        return False

    def errors(self) -> str:
        text = ""
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.tmp / name).read_text(errors="replace")
        return " | ".join(ln for ln in text.splitlines()[-5:] if ln.strip())

    def close(self) -> None:
        """Stop nginx and its workers, delete the namespace and the directory; idempotent."""
        proc, self.nginx = self.nginx, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._netns:
            subprocess.run(["ip", "netns", "del", self.ns], check=False)
            self._netns = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def exec(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This thread inside the namespace (sockets made here stay in it)."""
        with entered_netns(self.ns):
            yield

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.ns}").st_ino

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{DOC}"

    def offset(self) -> int:
        """Where the next request will be logged (pass to ``logged_since``)."""
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def logged_since(self, offset: int) -> Counter[tuple[str, int]]:
        """(client address, client port) of every request logged after ``offset``."""
        try:
            with self.access_log.open("rb") as f:
                f.seek(offset)
                return parse_access_log(f.read().decode(errors="replace"))
        except FileNotFoundError:
            return Counter()

    def ab(self, n: int, c: int) -> LoadResult:
        """``ab -n N -c C`` (no keep-alive) from inside the namespace."""
        argv = self.exec(["ab", "-q", "-S", "-n", str(n), "-c", str(c), self.url])
        t0 = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            timeout = f"ab timed out after {LOAD_TIMEOUT:g}s"
            return LoadResult(f"ab -n {n} -c {c}", n, seconds=time.monotonic() - t0, detail=timeout)
        result = parse_ab(proc.stdout)
        result.label, result.requests, result.seconds = f"ab -n {n} -c {c}", n, time.monotonic() - t0
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result.detail = f"ab exit {proc.returncode}: {err[:160]}"
        return result
