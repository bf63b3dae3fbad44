"""A port set compiles (parse, push-down, bytecode) in time linear in its size."""

from __future__ import annotations

import time

from sockscope.model.filter import parse_filter


def compile_time(n: int) -> float:
    # Every fourth port, so no two merge into one range: n spans, n bytecode tests.
    text = "port in {" + " ".join(str(p) for p in range(1, 4 * n, 4)) + "}"
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        push = parse_filter(text).pushdown()
        best = min(best, time.perf_counter() - started)
    assert push.ports is not None and len(push.ports) == 2 * n  # either end: local and remote
    return best


def test_eight_times_the_ports_cost_about_eight_times_the_time() -> None:
    small, large = compile_time(1000), compile_time(8000)
    # Linear gives 8 (a little more with the bytecode's longer jumps); the quadratic
    # merge of spans this replaced gave over 40.
    assert large / small < 20, (small, large)
