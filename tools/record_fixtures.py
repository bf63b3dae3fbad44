"""Record the test fixtures: real kernel bytes and /proc text for the primer scenario.

Run as root from the checkout: ``.venv/bin/python tools/record_fixtures.py``. It builds
tests/helpers/scenario.py in a fresh network namespace, records the sock_diag replies
(tests/fixtures/netlink/primer-tcp4.nlhex...) and /proc/net files
(tests/fixtures/procfs/primer/net/...), and writes what sockscope decodes from them as
the expected JSON next to each, to be reviewed by hand before committing.

``--golden`` records the CLI's golden listings instead (tests/cli/golden_cases.py): for
each command, the requests and replies (tests/fixtures/golden/NAME.nlhex), the text it
printed (NAME.txt), and one /proc tree for all of them (tests/fixtures/golden/proc: the
namespace's counters and somaxconn, and this process's socket fds and name).
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.cli.golden_cases import CASES, GOLDEN, PROC  # noqa: E402
from tests.helpers import scenario  # noqa: E402
from tests.helpers.replay import RecordingSocket  # noqa: E402

from sockscope.api import snapshot  # noqa: E402
from sockscope.cli.env import Env  # noqa: E402
from sockscope.cli.main import main as sockscope_main  # noqa: E402
from sockscope.render.records import endpoint_record  # noqa: E402
from sockscope.sources.netlink import open_diag_socket  # noqa: E402
from sockscope.sources.netns import entered_netns  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


def main() -> None:
    ns = f"sockscope-rec-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    try:
        sc = scenario.build(ns)
        for proto in ("tcp", "udp"):
            rec: RecordingSocket | None = None

            def factory() -> RecordingSocket:
                nonlocal rec
                rec = RecordingSocket(open_diag_socket())
                return rec

            snap = snapshot(
                protocols=[proto], netns=ns, socket_factory=factory, tcp_info=proto == "tcp", memory=True
            )
            assert rec is not None
            name = f"primer-{proto}"
            rec.dump(
                FIXTURES / "netlink" / f"{name}.nlhex",
                f"kernel {platform.release()}; tests/helpers/scenario.py in a fresh netns\n"
                f"request: SOCK_DIAG_BY_FAMILY {proto} v4 then v6, all states,"
                f" ext {'INFO|' if proto == 'tcp' else ''}SKMEMINFO\n"
                "recorded by tools/record_fixtures.py",
            )
            expected = [endpoint_record(e) for e in snap.endpoints]
            (FIXTURES / "netlink" / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        procdir = FIXTURES / "procfs" / "primer" / "net"
        procdir.mkdir(parents=True, exist_ok=True)
        with entered_netns(ns):
            for f in ("tcp", "tcp6", "udp", "udp6"):
                text = Path(f"/proc/thread-self/net/{f}").read_text()
                (procdir / f).write_text(text)
        (procdir.parent / "README").write_text(
            f"/proc/net files of tests/helpers/scenario.py, kernel {platform.release()},"
            f" {sys.byteorder}-endian; recorded by tools/record_fixtures.py (pid {os.getpid()})\n"
        )
        sc.close()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def record_golden() -> None:
    """The CLI's golden listings: see the module's docstring."""
    import shutil  # noqa: PLC0415

    ns = f"sockscope-rec-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    try:
        sc = scenario.build_queue(ns, scenario.build(ns))
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        with entered_netns(ns):
            for name, argv in CASES.items():
                _record_case(name, argv, io.StringIO())
            _copy_proc()
        sc.close()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _record_case(name: str, argv: list[str], out: io.StringIO) -> None:
    sockets: list[RecordingSocket] = []

    def factory() -> RecordingSocket:
        sockets.append(RecordingSocket(open_diag_socket()))
        return sockets[-1]

    err = io.StringIO()
    code = sockscope_main(argv, Env(stdout=out, stderr=err, socket_factory=factory))
    assert code == 0 and not err.getvalue(), (name, code, err.getvalue())
    assert len(sockets) == 1, f"{name}: one dump socket expected"
    sockets[0].dump(
        GOLDEN / f"{name}.nlhex",
        f"kernel {platform.release()}; tests/helpers/scenario.py (build, build_queue) in a fresh netns\n"
        f"sockscope {' '.join(argv)}\nrecorded by tools/record_fixtures.py --golden",
    )
    (GOLDEN / f"{name}.txt").write_text(out.getvalue())


def _copy_proc() -> None:
    for rel in ("net/netstat", "net/snmp", "sys/net/core/somaxconn"):
        (PROC / rel).parent.mkdir(parents=True, exist_ok=True)
        (PROC / rel).write_text(Path(f"/proc/{rel}").read_text())
    me = PROC / str(os.getpid())
    (me / "fd").mkdir(parents=True)
    (me / "comm").write_text(Path("/proc/self/comm").read_text())
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            os.symlink(target, me / "fd" / fd)
    (PROC / "README").write_text(
        f"/proc of the golden listings (kernel {platform.release()}): the namespace's counters and\n"
        "somaxconn, and the recording process's socket fds (dangling links, as /proc shows\n"
        "them); recorded by tools/record_fixtures.py --golden\n"
    )


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    if parse(__doc__, ("--golden", "record the golden listings' /proc instead")).golden:
        record_golden()
    else:
        main()
