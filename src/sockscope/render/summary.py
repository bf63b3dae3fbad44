"""Pure: ``-s``, counts of endpoints per protocol and state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sockscope.model.endpoint import Endpoint
from sockscope.render.table import Column, render_table


def render_summary(endpoints: Sequence[Endpoint]) -> list[str]:
    """A table of protocol x state counts, then a total per protocol."""
    counts = Counter(
        (ep.proto.value + ("6" if ep.family == 6 else ""), ep.state.label(ep.proto)) for ep in endpoints
    )
    rows = [[proto, state, str(n)] for (proto, state), n in sorted(counts.items())]
    totals = Counter(ep.proto.value for ep in endpoints)
    lines = render_table([Column("Proto", 5), Column("State", 11), Column("Count", 5, True)], rows)
    lines.append("")
    lines.append(
        "Total: "
        + ", ".join(f"{p} {n}" for p, n in sorted(totals.items()))
        + f" ({len(endpoints)} endpoints)"
    )
    return lines
