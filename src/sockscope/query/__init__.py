"""The query layer, between the model and the wire: ``Query`` and ``KernelFilter`` (what
to read and what the kernel filters), the filter's push-down into the kernel
(``pushdown``), and the dump strategy (``dump.run_query``, ``dump.queue_report``).

Submodules are imported by name: a plain listing loads only what it uses.
"""
