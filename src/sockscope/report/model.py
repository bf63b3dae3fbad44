"""The report as data: sections of plots and tables, before any drawing or HTML.

Everything here is plain values, so what a report says can be tested without matplotlib
or a browser; ``plots`` draws the plots and ``page`` writes the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    """How a table column's values are shown (CSV always gets them raw)."""

    TEXT = "text"
    COUNT = "count"
    BYTES = "bytes"
    SECONDS = "seconds"
    TIME = "time"  # seconds since the epoch, shown as a time of day
    FRAMES = "frames"  # frame numbers, several joined by commas


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to show its values."""

    name: str
    kind: Kind = Kind.TEXT


@dataclass(frozen=True)
class Table:
    """A table; ``name`` is its element id and its CSV file's name."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[object, ...]]
    note: str = ""
    limit: int | None = None  # rows shown on the page (all of them go to the CSV)
    on_page: bool = True  # False: CSV only (a row per time bucket)


@dataclass(frozen=True)
class Line:
    """One series of a time plot."""

    label: str
    xs: list[float]  # seconds since the epoch
    ys: list[float]
    color: int = 0  # index into the page's palette
    dashed: bool = False
    step: bool = True


@dataclass(frozen=True)
class Marks:
    """Points to mark on a time plot (drops)."""

    label: str
    xs: list[float]
    ys: list[float]
    color: int = 3


@dataclass(frozen=True)
class TimePlot:
    """Values over time, against a time-of-day axis."""

    name: str
    title: str
    ylabel: str
    lines: list[Line]
    marks: list[Marks] = field(default_factory=list)
    xlim: tuple[float, float] | None = None
    integer: bool = True  # the y axis counts things


@dataclass(frozen=True)
class Histogram:
    """Counts in bins on a logarithmic axis (durations, RTTs)."""

    name: str
    title: str
    xlabel: str
    unit: str  # SI unit of the edges ("s")
    edges: list[float]  # len(counts) + 1
    counts: list[int]


@dataclass(frozen=True)
class Bars:
    """Horizontal bars, largest first."""

    name: str
    title: str
    xlabel: str
    labels: list[str]
    values: list[float]


Plot = TimePlot | Histogram | Bars


@dataclass
class Section:
    """One part of the page; ``empty`` replaces plots and tables when there is nothing."""

    name: str
    title: str
    intro: str = ""
    plots: list[Plot] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    empty: str = ""


@dataclass
class Report:
    """The whole page."""

    title: str
    facts: list[tuple[str, str]]  # the header: host, namespace, period, sources...
    alerts: list[str]  # what the reader must not miss (lost events, unread logs)
    sections: list[Section]
    tables: list[Table] = field(default_factory=list)  # every table, for --csv

    def all_tables(self) -> list[Table]:
        """The header's tables and every section's, in page order."""
        return [*self.tables, *(t for s in self.sections for t in s.tables)]

    def all_plots(self) -> list[Plot]:
        """Every plot, in page order."""
        return [p for s in self.sections for p in s.plots]
