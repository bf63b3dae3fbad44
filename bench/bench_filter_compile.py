"""How long a port set takes to compile (parse, push-down, bytecode), by its size.

    .venv/bin/python bench/bench_filter_compile.py [--write-results]

Linear time means the ratio column stays near the size ratio; the quadratic merge this
replaced took 11.2 s for 16,000 ports. Pure Python, no root, no peer to run beside it:
the figure of merit is the growth, measured in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import command_line, replace_section, section_head

from sockscope.model.filter import parse_filter
from sockscope.query.pushdown import pushdown

SIZES = (1000, 2000, 4000, 8000, 16000)


def compile_time(n: int) -> float:
    text = "port in {" + " ".join(str(p) for p in range(1, 4 * n, 4)) + "}"
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        push = pushdown(parse_filter(text))
        best = min(best, time.perf_counter() - started)
    assert push.ports is not None and len(push.ports) == 2 * n
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write-results", action="store_true")
    args = p.parse_args()
    rows = [(n, compile_time(n)) for n in SIZES]
    base_n, base_t = rows[0]
    lines = ["| ports | compile time | time / time at 1,000 | size / 1,000 |", "|---:|---:|---:|---:|"]
    for n, t in rows:
        lines.append(f"| {n:,} | {t * 1000:.1f} ms | {t / base_t:.1f} | {n / base_n:.0f} |")
    print("\n".join(lines))
    growth = rows[-1][1] / base_t
    verdict = f"16x the ports took {growth:.1f}x the time: {'linear' if growth < 32 else 'NOT linear'}"
    print(verdict)
    if args.write_results:
        head = section_head(
            "<!-- bench_filter_compile:begin -->",
            "Port sets in a filter: compile time by size",
            command_line("bench/bench_filter_compile.py", None),
            {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
        )
        end = "<!-- bench_filter_compile:end -->"
        body = [*head, *lines, "", f"- {verdict}", end]
        replace_section("<!-- bench_filter_compile:begin -->", end, "\n".join(body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
