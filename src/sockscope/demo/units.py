"""Pure: sizes (``10M``) and rates (``1MB/s``, ``unlimited``) as people type them."""

from __future__ import annotations

import re

# Decimal and binary multipliers; a bare letter is decimal, as in "10M".
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
UNLIMITED_WORDS = frozenset({"unlimited", "max", "0", "none", "inf"})


class UnitError(ValueError):
    """A size or rate that does not parse; the message is one line for the user."""


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4096``, ``64k``, ``10M``, ``10MB``, ``1.5MiB``, ``2G``.

    Raises:
        UnitError: not a size.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UnitError(f"not a size: {text!r} (try 4096, 64k, 10M, 1GiB)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_rate(text: str) -> int | None:
    """Bytes per second in ``text`` (``1MB/s``, ``500k``, ``2MiB/s``); None for unlimited.

    Raises:
        UnitError: not a rate.
    """
    word = text.strip().lower()
    if word in UNLIMITED_WORDS:
        return None
    if word.endswith(("/s", "ps")):  # "1MB/s", "1MBps"
        word = word[:-2]
    try:
        value = parse_size(word)
    except UnitError:
        raise UnitError(f"not a rate: {text!r} (try 1MB/s, 500k/s, unlimited)") from None
    if value <= 0:
        return None
    return value


def format_size(n: float) -> str:
    """``10485760`` -> ``10.5 MB`` (decimal, as the rates are)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def format_rate(rate: int | None) -> str:
    """``1000000`` -> ``1.0 MB/s``; None -> ``unlimited``."""
    return "unlimited" if rate is None else f"{format_size(rate)}/s"
