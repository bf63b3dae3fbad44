"""Record the tracepoint fixture: real ``trace_pipe_raw`` pages of loopback connections.

Run as root from the checkout: ``.venv/bin/python tools/record_trace_pages.py``. It
enables ``sock:inet_sock_set_state`` in a private tracefs instance, makes one IPv4 and
one IPv6 loopback connection (listen, connect, accept, close), and writes
tests/fixtures/ftrace/format.txt (the event's format file) and pages.hex (each page
that held a record, one hex line each, with the connection's ports in a comment), to be
reviewed by hand before committing.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sockscope.sources.tracefs import EVENT, READ_SIZE, TRACEFS, TraceSession  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "ftrace"


def connect_once(family: socket.AddressFamily, host: str) -> tuple[int, int]:
    """Listen, connect, accept and close on loopback; the (server, client) ports."""
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        cli = socket.create_connection((host, port))
        conn, _ = srv.accept()
        client_port = cli.getsockname()[1]
        cli.close()
        conn.close()
    return port, client_port


def main() -> None:
    session = TraceSession("sockscope-fixture")
    try:
        ports = [connect_once(socket.AF_INET, "127.0.0.1"), connect_once(socket.AF_INET6, "::1")]
        time.sleep(0.1)
        pages: list[bytes] = []
        for fd in session.fds:
            while True:
                try:
                    page = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                if not page:
                    break
                pages.append(page)
    finally:
        session.close()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "format.txt").write_text((TRACEFS / EVENT / "format").read_text())
    lines = [
        f"# Recorded from trace_pipe_raw, kernel {platform.release()}, {platform.machine()}:",
        f"# IPv4 connection server port {ports[0][0]} client port {ports[0][1]},",
        f"# IPv6 connection server port {ports[1][0]} client port {ports[1][1]}.",
        *(page.hex() for page in pages),
    ]
    (OUT / "pages.hex").write_text("\n".join(lines) + "\n")
    print(f"{len(pages)} pages written to {OUT}")


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    parse(__doc__)
    main()
