"""``sockscope exporter``: Prometheus metrics read from the kernel at each scrape.

``scrape`` reads a namespace, ``churn`` keeps the counters the background watch engines
(``watchers``) feed, ``families`` turns both into metric families under the series cap
(``cardinality``), ``collector`` ties them to prometheus_client, and ``http``, ``web``
and ``webconfig`` serve them with TLS and basic auth.
"""
