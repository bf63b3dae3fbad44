"""A large port set compiles to the spans and bytecode it stands for (its time is measured
by bench/bench_filter_compile.py, not here)."""

from __future__ import annotations

from sockscope.model.filter import parse_filter
from sockscope.query.pushdown import PortSpan, pushdown


def test_sixteen_thousand_ports_give_every_span_once_in_order() -> None:
    ports = list(range(1, 4 * 16_000, 4))  # no two merge into a range
    push = pushdown(parse_filter("port in {" + " ".join(map(str, ports + ports[:100])) + "}"))
    assert push.ports is not None
    local = [s for s in push.ports if s.local]
    assert local == [PortSpan(True, p, p) for p in ports]  # duplicates once, first order kept
    assert len(push.ports) == 2 * len(ports)
