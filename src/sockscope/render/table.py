"""Pure: aligned text columns that never run together, whatever the terminal width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Column:
    """A column's header, its minimum width, and whether numbers align right."""

    header: str
    min_width: int = 0
    right: bool = False


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 header: bool = True) -> list[str]:
    """Lay rows out in columns at least as wide as their widest cell, one space apart.

    The width comes from the content, never from the terminal, so piped output is the
    same everywhere and a long address pushes its neighbours right instead of into them.
    """
    widths = [max(c.min_width, len(c.header) if header else 0) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    fmt = " ".join(
        ("{:>%d}" if c.right else "{:<%d}") % w for c, w in zip(columns, widths, strict=True)
    )
    # The last column is not padded: no trailing blanks in piped output.
    if columns and not columns[-1].right:
        fmt = fmt.rsplit("{", 1)[0] + "{}"
    out = [fmt.format(*(c.header for c in columns)).rstrip()] if header else []
    fmt_format = fmt.format
    out.extend(fmt_format(*row) for row in rows)
    return out


def render_columns(columns: Sequence[Column], cells: Sequence[Sequence[str]],
                   header: bool = True) -> list[str]:
    """Like ``render_table``, but ``cells`` holds one list per column (faster at 60k rows)."""
    widths = [max(c.min_width, len(c.header) if header else 0, max(map(len, col), default=0))
              for c, col in zip(columns, cells, strict=True)]
    fmt = " ".join(
        ("{:>%d}" if c.right else "{:<%d}") % w for c, w in zip(columns, widths, strict=True)
    )
    if columns and not columns[-1].right:
        fmt = fmt.rsplit("{", 1)[0] + "{}"
    out = [fmt.format(*(c.header for c in columns)).rstrip()] if header else []
    out.extend(map(fmt.format, *cells))
    return out
