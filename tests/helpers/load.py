"""A bounded loopback load: short connections, some closed with a reset, in a namespace."""

from __future__ import annotations

import subprocess
import sys

LOAD = r"""
import socket, struct, sys, time, os
n, port, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", port)); lst.listen(128)
time.sleep(delay)
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = lst.accept()
    if i % 3 == 0:   # reset: SO_LINGER 0 makes close() send RST
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        a.sendall(b"x" * 100)
        c.recv(100)
    c.close(); a.close()
print(os.getpid(), flush=True)
time.sleep(delay)
lst.close()
"""


def start_load(ns: str, n: int, port: int = 2323, delay: float = 1.0) -> subprocess.Popen[str]:
    """N connect/accept/close cycles inside ``ns`` after ``delay`` s; prints its pid at the end."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", LOAD, str(n), str(port), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
