"""Thin I/O: the only code that opens sockets, reads /proc or enters namespaces.

Each source reads, then hands the bytes or text to one pure parse function in ``wire``.
"""
