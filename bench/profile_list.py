"""Profile one ``sockscope list`` run (or one ``snapshot()`` call) with N sockets held.

Prints the top functions by own time and by cumulative time, so the cost of start-up,
the netlink dump, decoding, the process join and rendering can be told apart::

    .venv/bin/python bench/profile_list.py 60000 -- list -tan
    .venv/bin/python bench/profile_list.py 60000 --api
    .venv/bin/python bench/profile_list.py 60000 --importtime

The profiled code runs in a fresh child interpreter (the venv's), as a user would run it.
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdconns import held_connections

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"

# Runs the CLI's entry point under cProfile with stdout sent to /dev/null, like the bench.
CLI_CHILD = """
import cProfile, os, sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["sockscope", *args]
sys.stdout = open(os.devnull, "w")
prof = cProfile.Profile()
prof.enable()
try:
    from sockscope.cli.main import entry_point
    entry_point()
except SystemExit:
    pass
finally:
    prof.disable()
    prof.dump_stats(out)
"""

API_CHILD = """
import cProfile, sys
from sockscope.api import snapshot
snapshot(protocols=["tcp"])  # warm-up, as in bench_list
prof = cProfile.Profile()
prof.enable()
snapshot(protocols=["tcp"], processes="-p" in sys.argv)
prof.disable()
prof.dump_stats(sys.argv[1])
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to sockscope (default: list -tan).",
    )
    parser.add_argument("sockets", type=int, help="ESTABLISHED sockets to hold")
    parser.add_argument("--api", action="store_true", help="profile snapshot(tcp) instead")
    parser.add_argument("-p", action="store_true", help="with --api: processes=True")
    parser.add_argument(
        "--importtime", action="store_true", help="show python -X importtime for the CLI instead"
    )
    parser.add_argument("--top", type=int, default=25, help="rows per listing (25)")
    parser.add_argument("--python", default=str(PYTHON))
    # Everything after "--" goes to sockscope untouched (argparse would mix it with ours).
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.cli_args = argv[split + 1 :] or ["list", "-tan"]

    if args.importtime:
        proc = subprocess.run(
            [args.python, "-X", "importtime", "-c", "import sockscope.cli.main"],
            capture_output=True,
            text=True,
            check=False,
        )
        rows = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")][1:]
        # Sort by cumulative microseconds, the second column.
        rows.sort(key=lambda ln: int(ln.split("|")[1]), reverse=True)
        print("import time: self [us] | cumulative | module")
        print("\n".join(rows[: args.top]))
        return proc.returncode

    with held_connections(args.sockets) as held, tempfile.TemporaryDirectory() as tmp:
        print(f"holding {held.sockets} ESTABLISHED sockets", file=sys.stderr)
        out = str(Path(tmp) / "prof.out")
        if args.api:
            cmd = [args.python, "-c", API_CHILD, out, *(["-p"] if args.p else [])]
        else:
            cmd = [args.python, "-c", CLI_CHILD, out, *args.cli_args]
        subprocess.run(cmd, check=True)
        stats = pstats.Stats(out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
