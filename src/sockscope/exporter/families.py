"""One scrape's readings turned into Prometheus metric families.

Naming follows the exporter guide: the ``sockscope_`` prefix, base units (seconds,
bytes), ``_total`` on counters only. Label names are the field registry's
(``model/fields.py``: ``netns``, ``laddr``, ``lport``, ``rport``, ``cookie``, ``process``,
``proto``, ``family``, ``state``), so a series names its socket the way ``sockscope list``
and the filter language do; ``container`` is the one label the registry has no field
for (it belongs to a namespace, not a socket).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from sockscope.exporter.cardinality import LISTENER_SERIES, choose_ports, port_order
from sockscope.exporter.churn import DURATION_BUCKETS, OTHER, ChurnSnapshot, PortCounts
from sockscope.exporter.scrape import NsReading
from sockscope.model.fields import FIELDS_BY_NAME
from sockscope.model.listener import Listener
from sockscope.model.netcounters import NET_COUNTERS

NS = ("netns", "container")
LISTENER = (*NS, "laddr", "lport", "cookie", "process")
PORT = (*NS, "lport")
# The registry names every label used for a socket property; a typo fails at import.
assert all(name in FIELDS_BY_NAME for name in ("netns", *LISTENER[2:], "rport", "proto", "family", "state"))

#: Series per port with connection counters: accepted, closed, resets, sent, received,
#: retransmits, and the histogram's buckets, +Inf, _sum and _count.
CHURN_SERIES = 6 + len(DURATION_BUCKETS) + 3

RESET_HELP = (
    "A close is a reset when the connection went to CLOSE straight from ESTABLISHED, "
    "SYN_RECV, SYN_SENT or CLOSE_WAIT (an RST sent or received, a refused or timed-out "
    "handshake, an abort), not through FIN_WAIT, CLOSING, LAST_ACK or TIME_WAIT. Only "
    "exported where the watch engine sees every transition (trace or bpf source): a poll "
    "cannot tell."
)


class NsView(NamedTuple):
    """Everything the exporter knows about one namespace at a scrape."""

    reading: NsReading
    churn: ChurnSnapshot | None  # None when events are off for this namespace
    watch_sources: tuple[str, ...]
    watch_error: str | None
    errors: int  # failed reads since start
    lost: int


class Families:
    """The families of one scrape, filled namespace by namespace."""

    def __init__(self) -> None:
        self._listener_families()
        self._socket_families()
        self._port_families()
        self._namespace_families()

    def _listener_families(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.accept_queue = g(
            "sockscope_listener_accept_queue",
            "Connections the kernel accepted (handshake done) that wait for the application's accept().",
            labels=LISTENER,
        )
        self.backlog = g(
            "sockscope_listener_backlog",
            "The listener's effective backlog: listen()'s argument clamped to net.core.somaxconn. "
            "The queue admits backlog + 1 connections.",
            labels=LISTENER,
        )
        self.capacity = g(
            "sockscope_listener_queue_capacity",
            "Connections the accept queue holds before new handshakes are dropped (backlog + 1).",
            labels=LISTENER,
        )
        self.half_open = g(
            "sockscope_listener_half_open",
            "Handshakes in SYN_RECV: SYN-ACK sent, the final ACK not accepted yet.",
            labels=LISTENER,
        )
        self.drops = c(
            "sockscope_listener_drops",
            "Packets the listener dropped (sk_drops), e.g. handshakes refused while its queue was full.",
            labels=LISTENER,
        )
        self.clamped = g(
            "sockscope_listener_backlog_clamped",
            "1 when the backlog equals net.core.somaxconn: the application may have asked for more.",
            labels=LISTENER,
        )

    def _socket_families(self) -> None:
        g = GaugeMetricFamily
        self.somaxconn = g("sockscope_somaxconn", "The namespace's net.core.somaxconn.", labels=NS)
        self.sockets = g(
            "sockscope_sockets",
            "Sockets by protocol, address family and state (UDP's unbound state is UNCONN).",
            labels=(*NS, "proto", "family", "state"),
        )
        self.port_sockets = g(
            "sockscope_port_sockets",
            "TCP sockets on each listening port (or one named with --ports), by state; "
            "ESTABLISHED includes connections waiting in the accept queue.",
            labels=(*PORT, "state"),
        )

    def _port_families(self) -> None:
        c = CounterMetricFamily
        self.accepted = c(
            "sockscope_port_connections_accepted",
            "Connections the kernel accepted on this listening port, counted once each: when the "
            "watch engine reports it opened, or at its close if it lived and died unseen between "
            "two polls. Connections already open when the exporter started are not counted.",
            labels=PORT,
        )
        self.closed = c(
            "sockscope_port_connections_closed",
            "Connections on this listening port that closed (every close is seen: the kernel's "
            "destroy broadcasts, or the tracepoint).",
            labels=PORT,
        )
        self.resets = c(
            "sockscope_port_connections_reset",
            "Connections on this port closed by a reset. " + RESET_HELP,
            labels=PORT,
        )
        self.duration = HistogramMetricFamily(
            "sockscope_port_connection_duration_seconds",
            "How long closed connections on this port lived, from the first sight of their "
            "opening to their close. With the trace or bpf source every connection is timed; "
            "with polling alone only those that lived across a poll.",
            labels=PORT,
        )
        self.sent = c(
            "sockscope_port_sent_bytes",
            "Bytes sent (retransmissions included) by connections on this port, counted when they close.",
            labels=PORT,
        )
        self.received = c(
            "sockscope_port_received_bytes",
            "Bytes received by connections on this port, counted when they close.",
            labels=PORT,
        )
        self.retrans = c(
            "sockscope_port_retransmits",
            "Segments retransmitted by connections on this port, counted when they close.",
            labels=PORT,
        )
        self.outgoing = c(
            "sockscope_outgoing_connections",
            "Connections this namespace opened to a remote port (named with --ports, else its IANA "
            "range), counted when they close.",
            labels=(*NS, "rport"),
        )
        self.outgoing_resets = c(
            "sockscope_outgoing_connections_reset",
            "Outgoing connections closed by a reset or a failed handshake. " + RESET_HELP,
            labels=(*NS, "rport"),
        )

    def _namespace_families(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.net = {
            nc.key: c(
                f"sockscope_netstat_{nc.name}",
                f"{nc.help} ({nc.key} in /proc/net/{nc.file}, per namespace).",
                labels=NS,
            )
            for nc in NET_COUNTERS
        }
        self.up = g("sockscope_up", "1 when the last scrape read the namespace, 0 when it failed.", labels=NS)
        self.seconds = g(
            "sockscope_scrape_duration_seconds", "How long this scrape took to read the namespace.", labels=NS
        )
        self.errors = c("sockscope_scrape_errors", "Scrapes that could not read the namespace.", labels=NS)
        self.lost = c(
            "sockscope_lost_events",
            "Events the watch engine knows it lost (the kernel's destroy-broadcast or trace buffers "
            "overran); the connection counters miss that many.",
            labels=NS,
        )
        self.watch_up = g(
            "sockscope_watch_up",
            "1 while the background watch engine of the namespace runs, 0 when it failed (it restarts).",
            labels=NS,
        )
        self.sources = InfoMetricFamily(
            "sockscope_watch_source", "An event source the namespace's watch engine uses.", labels=NS
        )

    def all(self) -> list[Metric]:
        """Every family, in a stable order."""
        return [
            self.accept_queue,
            self.backlog,
            self.capacity,
            self.half_open,
            self.drops,
            self.clamped,
            self.somaxconn,
            self.sockets,
            self.port_sockets,
            self.accepted,
            self.closed,
            self.resets,
            self.duration,
            self.sent,
            self.received,
            self.retrans,
            self.outgoing,
            self.outgoing_resets,
            *self.net.values(),
            self.up,
            self.seconds,
            self.errors,
            self.lost,
            self.watch_up,
            self.sources,
        ]


def build_families(views: list[NsView], named: frozenset[int], max_series: int) -> tuple[list[Metric], int]:
    """The families of one scrape, and how many series ``max_series`` folded away."""
    costs = [_port_costs(v, named) for v in views]
    kept, folded = choose_ports(costs, max_series)
    fam = Families()
    for view, keep in zip(views, kept, strict=True):
        _add_namespace(fam, view, keep)
    return fam.all(), folded


def _port_costs(view: NsView, named: frozenset[int]) -> list[tuple[int, int]]:
    r = view.reading
    cost: dict[int, int] = {}
    for lst in r.listeners:
        port = lst.endpoint.local_port
        cost[port] = cost.get(port, 0) + LISTENER_SERIES
    for port, _state in r.port_sockets:
        cost[port] = cost.get(port, 0) + 1
    if view.churn is not None:
        for port in view.churn.ports:
            cost[port] = cost.get(port, 0) + CHURN_SERIES
    return [(p, cost[p]) for p in port_order(cost, named)]


def _add_namespace(fam: Families, view: NsView, keep: set[int]) -> None:
    r = view.reading
    ns = [r.target.netns, r.target.container]
    fam.up.add_metric(ns, 0.0 if r.error else 1.0)
    fam.seconds.add_metric(ns, r.seconds)
    fam.errors.add_metric(ns, view.errors)
    if view.churn is not None:
        fam.lost.add_metric(ns, view.lost)
        fam.watch_up.add_metric(ns, 0.0 if view.watch_error else 1.0)
        for source in view.watch_sources:
            fam.sources.add_metric(ns, {"source": source})
        _add_churn(fam, ns, view.churn, keep)
    if r.error:
        return
    if r.somaxconn is not None:
        fam.somaxconn.add_metric(ns, r.somaxconn)
    _add_listeners(fam, ns, r, keep)
    for (proto, family, state), n in sorted(r.sockets.items()):
        fam.sockets.add_metric([*ns, proto, family, state], n)
    folded: dict[str, int] = {}
    for (port, state), n in sorted(r.port_sockets.items()):
        if port in keep:
            fam.port_sockets.add_metric([*ns, str(port), state], n)
        else:
            folded[state] = folded.get(state, 0) + n
    for state, n in sorted(folded.items()):
        fam.port_sockets.add_metric([*ns, OTHER, state], n)
    for nc in NET_COUNTERS:
        value = r.counters.get(nc.key)
        if value is not None:
            fam.net[nc.key].add_metric(ns, value)


def _add_listeners(fam: Families, ns: list[str], r: NsReading, keep: set[int]) -> None:
    other: list[float] | None = None
    for lst in r.listeners:
        ep = lst.endpoint
        values = _listener_values(lst)
        if ep.local_port not in keep:
            other = values if other is None else [a + b for a, b in zip(other, values, strict=True)]
            continue
        laddr = "" if ep.local_address is None else str(ep.local_address)
        cookie = "" if ep.cookie is None else str(ep.cookie)
        labels = [*ns, laddr, str(ep.local_port), cookie, r.processes.get(ep.inode, "")]
        _add_listener(fam, labels, values)
    if other is not None:
        _add_listener(fam, [*ns, "", OTHER, "", ""], other)


def _listener_values(lst: Listener) -> list[float]:
    return [
        lst.accept_queue,
        lst.backlog,
        lst.capacity,
        len(lst.half_open),
        lst.drops or 0,
        float(lst.clamped),
    ]


def _add_listener(fam: Families, labels: list[str], values: list[float]) -> None:
    targets: tuple[GaugeMetricFamily | CounterMetricFamily, ...] = (
        fam.accept_queue,
        fam.backlog,
        fam.capacity,
        fam.half_open,
        fam.drops,
        fam.clamped,
    )
    for family, value in zip(targets, values, strict=True):
        family.add_metric(labels, value)


def _add_churn(fam: Families, ns: list[str], churn: ChurnSnapshot, keep: set[int]) -> None:
    other = PortCounts()
    any_other = False
    for port, counts in sorted(churn.ports.items()):
        if port in keep:
            _add_port_counts(fam, [*ns, str(port)], counts, churn.resets_known)
        else:
            other.add(counts)
            any_other = True
    if any_other:
        _add_port_counts(fam, [*ns, OTHER], other, churn.resets_known)
    for bucket, (total, resets) in sorted(churn.outgoing.items()):
        fam.outgoing.add_metric([*ns, bucket], total)
        if churn.resets_known:
            fam.outgoing_resets.add_metric([*ns, bucket], resets)


def _add_port_counts(fam: Families, labels: list[str], c: PortCounts, resets_known: bool) -> None:
    fam.accepted.add_metric(labels, c.accepted)
    fam.closed.add_metric(labels, c.closed)
    if resets_known:
        fam.resets.add_metric(labels, c.resets)
    fam.sent.add_metric(labels, c.sent)
    fam.received.add_metric(labels, c.received)
    fam.retrans.add_metric(labels, c.retrans)
    fam.duration.add_metric(labels, _cumulative(c.buckets), c.duration_sum)


def _cumulative(buckets: Iterable[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for bound, n in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
        total += n
        out.append((("+Inf" if math.isinf(bound) else repr(bound)), total))
    return out
