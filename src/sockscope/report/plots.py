"""Plots as inline SVG, drawn with matplotlib (the optional extra ``report``).

matplotlib is used without pyplot (no global figure state, no GUI backend): one
``Figure`` per plot, saved as SVG with its text kept as text, so the page can be searched
and the browser draws the letters. Colours are placeholders replaced by CSS variables,
so one SVG reads on a light page and on a dark one.
"""

from __future__ import annotations

import io
import math
import re
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from sockscope.report.model import Bars, Histogram, Plot, TimePlot
from sockscope.report.units import utc_offset

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Placeholder colours (unlikely in a plot) and the CSS they become.
FG, GRID = "#0a0b0c", "#0d0e0f"
PALETTE = ("#1a1b10", "#1a1b11", "#1a1b12", "#1a1b13", "#1a1b14")
CSS_COLOURS = {FG: "var(--fg)", GRID: "var(--grid)", **{c: f"var(--c{i})" for i, c in enumerate(PALETTE)}}
WIDTH_IN = 9.0


class MissingExtraError(ImportError):
    """matplotlib is not installed."""


def load_matplotlib() -> Any:  # noqa: ANN401 - the module
    """matplotlib, or a one-line reason it is missing."""
    try:
        import matplotlib  # noqa: PLC0415 - an optional extra, loaded only by report
        from matplotlib.backends import backend_svg  # noqa: PLC0415, F401
    except ImportError:
        raise MissingExtraError(
            "report needs matplotlib: install the extra 'report' (pip install 'sockscope[report]', "
            "or '.[report]' from a checkout)"
        ) from None
    return matplotlib


def render_svg(plot: Plot, tz: tzinfo) -> str:
    """One plot as an ``<svg>`` element for the page, with an id and a label."""
    mpl = load_matplotlib()
    from matplotlib.figure import Figure  # noqa: PLC0415

    with mpl.rc_context(_style(plot.name)):
        fig = Figure(figsize=(WIDTH_IN, _height(plot)), layout="constrained")
        ax = fig.add_subplot()
        if isinstance(plot, TimePlot):
            _time_plot(ax, plot, tz)
        elif isinstance(plot, Histogram):
            _histogram(ax, plot)
        else:
            _bars(ax, plot)
        ax.set_title(plot.title, loc="left")
        return _inline(_svg_text(fig), plot)


def _style(name: str) -> dict[str, object]:
    return {
        "svg.fonttype": "none",  # text stays text: searchable, and drawn by the browser
        "svg.hashsalt": f"sockscope-{name}",  # stable ids, distinct per plot
        "font.size": 10,
        "axes.titlesize": 11,
        "text.color": FG,
        "axes.labelcolor": FG,
        "axes.edgecolor": FG,
        "xtick.color": FG,
        "ytick.color": FG,
        "grid.color": GRID,
        "axes.grid": True,
        "grid.linewidth": 0.6,
        "legend.frameon": False,
        "figure.facecolor": "none",
        "axes.facecolor": "none",
        "savefig.facecolor": "none",
        "savefig.transparent": True,
    }


def _height(plot: Plot) -> float:
    if isinstance(plot, Bars):
        return min(1.2 + 0.28 * len(plot.labels), 7.0)
    return 3.2


def _svg_text(fig: Figure) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: PLC0415

    out = io.StringIO()
    FigureCanvasSVG(fig).print_svg(out, metadata={"Date": None, "Creator": None})  # type: ignore[no-untyped-call]
    return out.getvalue()


def _time_plot(ax: Axes, plot: TimePlot, tz: tzinfo) -> None:
    from matplotlib import dates, ticker  # noqa: PLC0415

    for line in plot.lines:
        xs = [x / 86400.0 for x in line.xs]  # matplotlib's dates: days since the epoch
        style = "--" if line.dashed else "-"
        if line.step:
            ax.step(xs, line.ys, where="post", linestyle=style, color=PALETTE[line.color], label=line.label)
        else:
            ax.plot(xs, line.ys, linestyle=style, color=PALETTE[line.color], label=line.label)
    for marks in plot.marks:
        if marks.xs:
            xs = [x / 86400.0 for x in marks.xs]
            ax.plot(xs, marks.ys, "v", color=PALETTE[marks.color], markersize=7, label=marks.label)
    if plot.xlim is not None and plot.xlim[1] > plot.xlim[0]:
        ax.set_xlim(plot.xlim[0] / 86400.0, plot.xlim[1] / 86400.0)
    locator = dates.AutoDateLocator(tz=tz, minticks=3, maxticks=9)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    # Times of day; the date, and seconds' fractions under a second, as concise labels.
    concise = dates.ConciseDateFormatter(locator, tz=tz, show_offset=True)  # type: ignore[no-untyped-call]
    concise.formats = ["%Y", "%b", "%d", "%H:%M", "%H:%M:%S", "%H:%M:%S.%f"]
    concise.zero_formats = ["", "%Y", "%b", "%b-%d", "%H:%M", "%H:%M:%S"]
    concise.offset_formats = ["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]
    ax.xaxis.set_major_formatter(concise)
    first = plot.lines[0].xs[0] if plot.lines and plot.lines[0].xs else 0.0
    ax.set_xlabel(f"time of day ({utc_offset(first, tz)})")
    ax.set_ylabel(plot.ylabel)
    ax.set_ylim(bottom=0)
    if plot.integer:
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(ticker.EngFormatter(sep=" "))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _histogram(ax: Axes, plot: Histogram) -> None:
    from matplotlib import ticker  # noqa: PLC0415

    ax.stairs(plot.counts, plot.edges, fill=True, color=PALETTE[0], alpha=0.85)
    ax.set_xscale("log")
    decades = math.log10(plot.edges[-1] / plot.edges[0]) if plot.edges else 0.0
    subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)  # labels that never overlap
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(ticker.EngFormatter(unit=plot.unit, sep=" "))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(ticker.EngFormatter(sep=" "))
    ax.set_xlabel(f"{plot.xlabel} (log scale)")
    ax.set_ylabel("connections")


def _bars(ax: Axes, plot: Bars) -> None:
    from matplotlib import ticker  # noqa: PLC0415

    ys = list(range(len(plot.labels)))
    ax.barh(ys, plot.values, color=PALETTE[1])
    ax.set_yticks(ys, plot.labels)
    ax.invert_yaxis()  # the largest on top
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=" "))
    ax.set_xlabel(plot.xlabel)


_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_ID = re.compile(r'(\bid="|url\(#|xlink:href="#|href="#)([^")]+)')
_COLOUR = re.compile("|".join(re.escape(c) for c in CSS_COLOURS))


def _inline(svg: str, plot: Plot) -> str:
    """The SVG without its XML prolog, ids made unique, colours made CSS, labelled."""
    svg = _METADATA.sub("", _PROLOG.sub("", svg, count=1), count=1)
    svg = _ID.sub(lambda m: f"{m.group(1)}{plot.name}-{m.group(2)}", svg)
    svg = _COLOUR.sub(lambda m: CSS_COLOURS[m.group(0)], svg)
    label = plot.title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace(
        "<svg ",
        f'<svg id="plot-{plot.name}" class="plot" role="img" aria-label="{label}" ',
        1,
    )
