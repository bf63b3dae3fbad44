"""Record the ring-buffer fixture: the raw data area of the eBPF source's ring after
real loopback connections, with a record wrapping around its end.

Run as root from the checkout: ``.venv/bin/python tools/record_ring_pages.py``. It
makes a network namespace, loads the source (16 KiB ring, OPEN and STATE records on)
for it, makes connections inside until the consumer position is close to the ring's
end, reads them, then makes one IPv4 and one IPv6 connection with known byte counts and
writes tests/fixtures/ebpf/ring.hex (positions and the data area) and ring.json (what
the tool knows of those two connections), to be reviewed before committing.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sockscope.sources.bpf import BpfSource  # noqa: E402
from sockscope.sources.netns import entered_netns  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "ebpf"
RING = 16384
SO_COOKIE = 57


def connection(family: socket.AddressFamily, host: str, sends: tuple[int, int]) -> dict[str, int]:
    """Listen, connect, exchange ``sends`` bytes (client, server), close client first."""
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(1)
        cli = socket.create_connection((host, srv.getsockname()[1]))
        conn, _ = srv.accept()
        cookie = [struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0] for s in (cli, conn)]
        facts = {"family": 4 if family == socket.AF_INET else 6, "server_port": srv.getsockname()[1]}
        facts |= {"client_port": cli.getsockname()[1], "client_cookie": cookie[0], "server_cookie": cookie[1]}
        facts |= {"client_sends": sends[0], "server_sends": sends[1]}
        cli.sendall(b"c" * sends[0])
        conn.recv(sends[0], socket.MSG_WAITALL)
        conn.sendall(b"s" * sends[1])
        cli.recv(sends[1], socket.MSG_WAITALL)
        cli.close()
        conn.recv(1)
        conn.close()
    return facts


def main() -> None:
    ns = f"sockscope-ring-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        inode = os.stat(f"/run/netns/{ns}").st_ino
        with BpfSource(netns_inode=inode, want_open=True, want_state=True, ring_bytes=RING) as src:
            records: list[object] = []
            with entered_netns(ns):
                while True:  # until the next connection's records must wrap
                    connection(socket.AF_INET, "127.0.0.1", (10, 10))
                    time.sleep(0.05)
                    src.read(records)  # type: ignore[arg-type]
                    if RING - src.ring_snapshot()[0] % RING < 1000:
                        break
                conns = [
                    connection(socket.AF_INET, "127.0.0.1", (3000, 1234)),
                    connection(socket.AF_INET6, "::1", (777, 4321)),
                ]
            time.sleep(0.1)
            cons, prod, data = src.ring_snapshot()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [f"# consumer {cons} producer {prod} size {RING}: the data area, 64 bytes a line"]
    lines += [data[i : i + 64].hex() for i in range(0, len(data), 64)]
    (OUT / "ring.hex").write_text("\n".join(lines) + "\n")
    facts = {"netns": inode, "pid": os.getpid(), "kernel": os.uname().release, "connections": conns}
    (OUT / "ring.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(f"consumer {cons % RING}, producer {prod % RING} of {RING}: {(prod - cons) // 144} records")


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    parse(__doc__)
    main()
