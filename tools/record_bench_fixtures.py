"""Record the bench harness's test fixtures: real watcher output for a small real load.

As root, with nginx, ab and libbpf-tools: ``.venv/bin/python tools/record_bench_fixtures.py``.
One stage (nginx in a namespace of its own), ``ab -n 20 -c 4`` under each watcher in turn;
for each, its output and errors and nginx's log lines of that run go to
tests/fixtures/bench/KEY.{out,err,access.log}, and one ab report to ab.txt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from harness.measure import measure  # noqa: E402
from harness.stage import Stage  # noqa: E402
from harness.watchers import WatcherSpec, prepare_signals  # noqa: E402

DEST = ROOT / "tests" / "fixtures" / "bench"
SOCKSCOPE = str(ROOT / ".venv" / "bin" / "sockscope")
WATCHERS = (
    WatcherSpec("sockscope-jsonl", "default events, --jsonl", "sockscope", ("--jsonl",)),
    WatcherSpec("sockscope-text", "default events, text", "sockscope", ()),
    WatcherSpec("sockscope-all", "--events all", "sockscope", ("--jsonl", "--events", "all")),
    WatcherSpec("sockscope-closes", "closes only", "sockscope", ("--jsonl", "event == closed")),
    WatcherSpec("tcplife", "tcplife", "tcplife"),
)


def main() -> int:
    prepare_signals()
    DEST.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-fixtures-"))
    try:
        with Stage() as stage:
            ab = subprocess.run(
                stage.exec(["ab", "-S", "-n", "20", "-c", "4", stage.url]),
                capture_output=True,
                text=True,
                check=True,
            )
            (DEST / "ab.txt").write_text(ab.stdout)
            for spec in WATCHERS:
                offset = stage.offset()
                row = measure(stage, spec, lambda: stage.ab(20, 4), SOCKSCOPE, tmp / spec.key, tail=1.0)
                with stage.access_log.open("rb") as f:
                    f.seek(offset)
                    (DEST / f"{spec.key}.access.log").write_bytes(f.read())
                for suffix in (".out", ".err"):
                    shutil.copy(tmp / f"{spec.key}{suffix}", DEST / f"{spec.key}{suffix}")
                print(f"{spec.key}: {row.logged} logged, {row.tally}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from _cli import parse  # tools/_cli.py, beside this file (run as a script)

    parse(__doc__)
    sys.exit(main())
