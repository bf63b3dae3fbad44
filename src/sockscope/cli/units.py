"""argparse types for durations (``30s``, ``5m``) and sizes (``50MB``)."""

from __future__ import annotations

import argparse
import re

_NUM = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
DURATIONS = {"": 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}
SIZES = {
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
}


def _parse(text: str, units: dict[str, float] | dict[str, int], what: str) -> float:
    m = _NUM.match(text)
    if not m or m.group(2).lower() not in units:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}")
    return float(m.group(1)) * units[m.group(2).lower()]


def duration(text: str) -> float:
    """Seconds from ``30s``, ``200ms``, ``5m``, ``1h`` or a plain number."""
    value = _parse(text, DURATIONS, "a duration (e.g. 30s, 5m)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive: {text!r}")
    return value


def interval(text: str) -> float:
    """A poll interval: at least 10 ms."""
    value = duration(text)
    if value < 0.01:
        raise argparse.ArgumentTypeError("the interval must be at least 10ms")
    return value


def size(text: str) -> int:
    """Bytes from ``50MB``, ``1GiB``, ``4096``."""
    value = _parse(text, SIZES, "a size (e.g. 50MB, 1GiB)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive: {text!r}")
    return int(value)


def count(text: str) -> int:
    """A positive whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
