"""Pure: the one model every front door consumes (Endpoint, Listener, Event, Snapshot).

Nothing in this package performs I/O or reads the clock; timestamps are passed in.
"""
