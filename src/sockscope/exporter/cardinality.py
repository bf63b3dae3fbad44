"""Pure: which ports keep a label of their own, under the ``--max-series`` cap.

The series that grow with the host are those per port (sockets by state, connection
counters, the duration histogram) and per listener. A port has a label only when a
listener uses it or ``--ports`` names it; everything else is counted in totals only.
When the per-port and per-listener series would pass the cap, whole ports fold into
``lport="other"`` (their values summed), ``--ports`` ports last, and the number of series
folded away is counted, so a dashboard can say that it happened.

Ports are chosen in turn across namespaces, so one namespace full of listeners cannot take
the whole budget: each namespace's first port, then each one's second, and so on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Series per listener: accept queue, backlog, capacity, half-open, drops, clamped.
LISTENER_SERIES = 6


def port_order(ports: Iterable[int], named: frozenset[int]) -> list[int]:
    """Ports in the order they get a label: ``--ports`` first, then by number."""
    return sorted(set(ports), key=lambda p: (p not in named, p))


def choose_ports(costs: Sequence[Sequence[tuple[int, int]]], budget: int) -> tuple[list[set[int]], int]:
    """For each namespace, the ports that keep their label, and the series folded.

    ``costs[i]`` lists namespace i's ports in preference order with the series each would
    take. A port that does not fit is folded; a later, cheaper one may still fit.
    """
    kept: list[set[int]] = [set() for _ in costs]
    used = 0
    folded = 0
    longest = max((len(c) for c in costs), default=0)
    for rank in range(longest):
        for i, ns_costs in enumerate(costs):
            if rank >= len(ns_costs):
                continue
            port, cost = ns_costs[rank]
            if used + cost <= budget:
                kept[i].add(port)
                used += cost
            else:
                folded += cost
    return kept, folded
