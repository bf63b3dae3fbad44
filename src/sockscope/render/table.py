"""Pure: aligned text columns that never run together, whatever the terminal width."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat

from sockscope._namedtuple import NamedTuple


class Column(NamedTuple):
    """A column's header, its minimum width, and whether numbers align right."""

    header: str
    min_width: int = 0
    right: bool = False


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], header: bool = True) -> list[str]:
    """Lay rows out in columns at least as wide as their widest cell, one space apart.

    The width comes from the content, never from the terminal, so piped output is the
    same everywhere and a long address pushes its neighbours right instead of into them.
    """
    widths = [max(c.min_width, len(c.header) if header else 0) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    fmt = _row_format(columns, widths)
    out = [fmt.format(*(c.header for c in columns)).rstrip()] if header else []
    fmt_format = fmt.format
    out.extend(fmt_format(*row) for row in rows)
    return out


def _row_format(columns: Sequence[Column], widths: Sequence[int]) -> str:
    fmt = " ".join(("{:>%d}" if c.right else "{:<%d}") % w for c, w in zip(columns, widths, strict=True))
    # The last column is not padded: no trailing blanks in piped output.
    if columns and not columns[-1].right:
        fmt = fmt.rsplit("{", 1)[0] + "{}"
    return fmt


def header_line(columns: Sequence[Column], widths: Sequence[int]) -> str:
    """The header row for columns of these widths, with no trailing blanks."""
    return _row_format(columns, widths).format(*(c.header for c in columns)).rstrip()


def render_columns(
    columns: Sequence[Column], cells: Sequence[Sequence[str | int]], header: bool = True
) -> list[str]:
    """Like ``render_table``, but ``cells`` holds one list per column (faster at 60k rows)."""
    text = render_columns_text(columns, cells, header)
    return text.split("\n")[:-1] if text else []


def render_columns_text(
    columns: Sequence[Column],
    cells: Sequence[Sequence[str | int]],
    header: bool = True,
    title: str | None = None,
) -> str:
    """The lines of ``render_columns`` as one string, each ending in a newline.

    A cell may be an int (a queue size), written as ``str()`` would. Listings run this
    over tens of thousands of rows, so no row is formatted on its own: each column is
    padded as a whole (through a dict of its values when it has few, as states and queue
    sizes do), and one ``join`` walks the padded columns. Per-row ``str.format`` with
    widths cost more than twice as much.
    """
    head = [] if title is None else [title + "\n"]
    distinct = [_few_values(col) for col in cells]
    widths = [
        max(c.min_width, len(c.header) if header else 0, _text_width(col, few))
        for c, col, few in zip(columns, cells, distinct, strict=True)
    ]
    if header:
        head.append(header_line(columns, widths) + "\n")
    if not columns or not cells[0]:
        return "".join(head)
    last = len(columns) - 1
    padded: list[Iterable[str]] = []
    for i, (col, cells_i, width) in enumerate(zip(columns, cells, widths, strict=True)):
        padded.extend(_pad(cells_i, width, col.right, i == last, distinct[i]))
    # strict=False: the separator columns are endless repeat()s.
    return "".join(chain(head, chain.from_iterable(zip(*padded, strict=False))))


def _few_values(cells: Sequence[str | int]) -> set[str | int] | None:
    """The column's distinct values, when there are few enough to pad each just once.

    A sample decides first, so a column of addresses is not hashed whole for nothing.
    """
    if len(set(cells[:64])) > 16:
        return None
    values = set(cells)
    return values if len(values) * 4 <= len(cells) else None


def _text_width(cells: Sequence[str | int], few: set[str | int] | None) -> int:
    if few is not None:
        return max((len(str(v)) for v in few), default=0)
    if not cells:
        return 0
    if isinstance(cells[0], int):
        # Queue sizes and the like: never negative, so the largest is the longest.
        return len(str(max(cells)))
    return max(map(len, cells))  # type: ignore[arg-type]


def _pad(
    cells: Sequence[str | int], width: int, right: bool, last: bool, few: set[str | int] | None
) -> list[Iterable[str]]:
    """The column's cells padded to ``width``, each followed by the separator or, in the
    last column, the newline. The last column is not padded unless it aligns right: no
    trailing blanks in piped output."""
    end = "\n" if last else " "
    if few is not None:
        if right:
            table = {v: str(v).rjust(width) + end for v in few}
        elif last:
            table = {v: f"{v}{end}" for v in few}
        else:
            table = {v: str(v).ljust(width) + end for v in few}
        return [map(table.__getitem__, cells)]
    texts: Sequence[str] = list(map(str, cells)) if cells and isinstance(cells[0], int) else cells  # type: ignore[assignment]
    if right:
        return [map(str.rjust, texts, repeat(width)), repeat(end)]
    if last:
        return [texts, repeat(end)]
    # No cell is longer than ``width``: ljust(width + 1) always ends in the separator.
    return [map(str.ljust, texts, repeat(width + 1))]
