"""SI units for the report's numbers (µs, ms, kB, MB...), and times of day."""

from __future__ import annotations

import math
from datetime import datetime, tzinfo

PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def format_si(value: float, unit: str, digits: int = 3) -> str:
    """``0.00042, "s"`` -> ``420 µs``; ``1234567, "B"`` -> ``1.23 MB``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    size = abs(value)
    scale, prefix = next(((s, p) for s, p in PREFIXES if size >= s * 0.9995), PREFIXES[-1])
    scaled = value / scale
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(scaled))))
    text = f"{scaled:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {prefix}{unit}"


def format_bytes(n: float) -> str:
    """Bytes in SI multiples (kB = 1000 B)."""
    return f"{int(n)} B" if abs(n) < 1000 else format_si(n, "B")


def format_seconds(s: float) -> str:
    """``420 µs``, ``12.3 ms``, ``4.2 s``; minutes and hours past a minute."""
    if abs(s) < 60:
        return format_si(s, "s")
    if abs(s) < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def format_count(n: float) -> str:
    """``1,234,567``."""
    return f"{int(n):,}"


def format_time(epoch: float, tz: tzinfo, date: bool = False) -> str:
    """A time of day (with the date when asked), in ``tz``."""
    when = datetime.fromtimestamp(epoch, tz)
    return f"{when:%Y-%m-%d %H:%M:%S}" if date else f"{when:%H:%M:%S}"


def utc_offset(epoch: float, tz: tzinfo) -> str:
    """``UTC+01:00``: which clock the times of day are on."""
    offset = datetime.fromtimestamp(epoch, tz).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
