"""Exit codes: 0 ok, 1 runtime failure, 2 usage or bad input, 130 interrupted."""

from enum import IntEnum


class ExitStatus(IntEnum):
    """What the process returns."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130
