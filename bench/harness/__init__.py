"""The shared parts of the watch benchmarks, as tested functions and classes.

- ``stage``: nginx in a network namespace of its own (keep-alive off, access log), and
  ``ab`` runs against it from inside;
- ``pacer``: a client holding a connection rate, spread over processes;
- ``cpu``: a process's CPU over a window, and the BPF programs' run time;
- ``watchers``: launching and stopping a watcher (sockscope, tcplife, ss -E);
- ``counts``: the watchers' output parsed and matched to nginx's log, end by end;
- ``measure``: one load under one watcher, everything counted (a ``Row``);
- ``verdict``: medians, ranges and PASS/FAIL against a target ratio;
- ``report``: the tables and the section of bench/RESULTS.md.

The parsing and deciding parts are pure and tested without root (tests/bench/); the rest
needs root, nginx and ab.
"""
