"""``sockscope demo``: the primer, live. A telnet server, clients, and a guided tour.

- ``telnet``: RFC 854 framing (pure): option refusal, line assembly with a limit.
- ``server``: the telnet server, with a listening socket whose ``accept()`` it controls.
- ``clients``: idle, downloading and short-lived clients for a bounded time.
- ``stage`` and ``tour``: the guided walk through the primer, on real sockets.
"""
