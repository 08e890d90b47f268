"""Charts as inline SVG, made with matplotlib (no pyplot, no files, no external fonts).

Text stays text (svg.fonttype "none"), so a browser draws CJK labels with a
local font and a test can search the SVG for strings that must not be there.
Output is deterministic: no date in the metadata, fixed ids.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import warnings
from collections.abc import Iterator, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

PALETTE = {
    "green": "#2e7d32",
    "yellow": "#f9a825",
    "orange": "#ef6c00",
    "red": "#c62828",
    "blue": "#1565c0",
    "grey": "#9e9e9e",
}
FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "DejaVu Sans"]
STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "taskforce",
    "font.family": "sans-serif",
    "font.sans-serif": FONTS,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.unicode_minus": False,
}
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


@contextlib.contextmanager
def chart_style() -> Iterator[None]:
    """The house style; draw inside it (rc settings apply when axes and texts are made)."""
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyph warnings when measuring CJK with a fallback font
        yield


def styled(draw):
    """Decorator: run a chart function inside chart_style()."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with chart_style():
            return draw(*args, **kwargs)

    return wrapper


def new_figure(
    width: float = 6.4, height: float = 3.2, *, layout: str | None = "constrained"
) -> Figure:
    """A figure to draw on (inside chart_style()), then pass to svg_chart."""
    return Figure(figsize=(width, height), layout=layout)


# Room around the measured labels, as a share of the figure (constrained layout's default pad
# is about the same).
FIT_PAD = 0.02


def fit_margins(fig: Figure, ax) -> None:
    """Margins that just hold the axes' tick labels, axis labels, bar labels and legend,
    measured once. Constrained layout measures the same texts over several passes: it
    doubled a bar chart's time (about 110 against 75 ms; benchmarks/RESULTS.md, session 9).
    For a figure of one axes without a fixed aspect."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    needed, box = ax.get_tightbbox(renderer), ax.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    fig.subplots_adjust(
        left=(box.x0 - needed.x0) / width + FIT_PAD,
        right=1 - (needed.x1 - box.x1) / width - FIT_PAD,
        bottom=(box.y0 - needed.y0) / height + FIT_PAD,
        top=1 - (needed.y1 - box.y1) / height - FIT_PAD,
    )


def svg_chart(fig: Figure, *, chart_id: str, title: str) -> str:
    """The figure as an inline <svg> element with an id, a <title> and an accessible label."""
    buf = io.StringIO()
    with chart_style():
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # RDF boilerplate
    svg = re.sub(r'\s(width|height)="[^"]*pt"', "", svg, count=2)
    label = _escape(title)
    svg = svg.replace(
        "<svg ",
        f'<svg id="{chart_id}" data-chart="{chart_id}" class="chart" role="img" aria-label="{label}" ',
        1,
    )
    head_end = svg.index(">") + 1
    return svg[:head_end] + f"<title>{label}</title>" + svg[head_end:]


def relabelled(svg: str, labels: dict[str, str]) -> str:
    """A chart drawn with placeholder texts, with each placeholder replaced by its text
    (escaped for XML). Only for texts whose length moves nothing: centred titles on a fixed
    layout (svg.fonttype "none" writes a text as a text element anchored at its middle)."""
    pattern = re.compile("|".join(re.escape(k) for k in sorted(labels, key=len, reverse=True)))
    return pattern.sub(lambda m: _escape(labels[m.group(0)]), svg)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@styled
def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    chart_id: str,
    title: str,
    colours: Sequence[str] | None = None,
    horizontal: bool = False,
    xlabel: str | None = None,
) -> str:
    fig = new_figure(5.6, max(2.2, 0.45 * len(labels) + 1) if horizontal else 2.8, layout=None)
    ax = fig.add_subplot()
    colours = list(colours or [PALETTE["blue"]] * len(labels))
    if horizontal:
        bars = ax.barh(list(labels)[::-1], list(values)[::-1], color=colours[::-1])
    else:
        bars = ax.bar(list(labels), list(values), color=colours)
    ax.bar_label(bars, fmt="%g", padding=2)
    if all(float(v).is_integer() for v in values):  # counts: no 0.5 ticks
        (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    if xlabel:
        (ax.set_xlabel if horizontal else ax.set_ylabel)(xlabel)
    fit_margins(fig, ax)
    return svg_chart(fig, chart_id=chart_id, title=title)


@styled
def line_chart(
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    chart_id: str,
    title: str,
    ylabel: str | None = None,
    xlabel: str | None = None,
    colours: dict[str, str] | None = None,
    dashed: Sequence[str] = (),
) -> str:
    fig = new_figure(layout=None)
    ax = fig.add_subplot()
    for i, (name, ys) in enumerate(series.items()):
        colour = (colours or {}).get(name) or list(PALETTE.values())[(i + 4) % len(PALETTE)]
        ax.plot(
            list(x_labels),
            [float("nan") if y is None else y for y in ys],
            marker="o",
            label=name,
            color=colour,
            linestyle="--" if name in dashed else "-",
        )
    values = [y for ys in series.values() for y in ys if y is not None]
    if values and min(values) >= 0:
        # Amounts and counts from zero: an axis cut above it makes a small change look large.
        ax.set_ylim(bottom=0, top=max(values) * 1.08 or 1)
    if ylabel:
        ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.legend(loc="best", frameon=False)
    ax.tick_params(axis="x", labelrotation=30)
    fit_margins(fig, ax)
    return svg_chart(fig, chart_id=chart_id, title=title)


@styled
def small_multiples(
    x_labels: Sequence[str],
    panels: list[tuple[str, Sequence[float | None], float | None]],
    *,
    chart_id: str,
    title: str,
    columns: int = 3,
) -> str:
    """One small line chart per series (name, values, target or None), sharing the x axis."""
    rows = max(1, -(-len(panels) // columns))
    # A fixed grid: constrained layout measures every tick label of every panel (slow).
    fig = new_figure(7.2, 1.9 * rows + 0.3, layout=None)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.35 / (1.9 * rows + 0.3), bottom=0.08,
                        wspace=0.35, hspace=0.9)  # fmt: skip
    # Fewer artists, the same chart: the periods are read off the bottom row, so the other
    # panels carry no x ticks at all (matplotlib builds four artists per tick), and a title
    # placed at the top needs no search of its axes for room (y given).
    positions = list(range(len(x_labels)))
    for idx, (name, ys, target) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, idx + 1)
        ax.plot(
            positions,
            [float("nan") if y is None else y for y in ys],
            marker="o",
            color=PALETTE["blue"],
        )
        if target is not None:
            ax.axhline(target, color=PALETTE["red"], linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=8, y=1.0)
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax.tick_params(axis="y", labelsize=7)
        known = [y for y in ys if y is not None and y == y]  # (NaN != NaN)
        if not any(known):  # all zero, or no value: not a ±0.05 axis around nothing
            ax.set_ylim(0, 1)
            if not known:
                ax.text(0.5, 0.5, "—", transform=ax.transAxes, ha="center", va="center")
        elif _flat([*known, *([] if target is None else [target])]):
            # A value that does not move (and its target, if any): matplotlib zooms in to
            # ±5 %, ticks 4.8 / 5.0 / 5.2 read as a change. Drawn from zero instead.
            lo, hi = min(0.0, *known), max(0.0, *known)
            ax.set_ylim(lo * 1.2, hi * 1.2)
        if idx >= len(panels) - columns:
            ax.set_xticks(positions, list(x_labels), fontsize=7, rotation=45)
        else:
            ax.set_xticks([])
    return svg_chart(fig, chart_id=chart_id, title=title)


def _flat(values: Sequence[float]) -> bool:
    """Values that differ by at most 1 % of the largest: a line with nothing to show."""
    largest = max(abs(v) for v in values)
    return max(values) - min(values) <= 0.01 * largest


@styled
def matrix_chart(
    size: int,
    cells: dict[tuple[int, int], list[str]],
    thresholds: dict[str, int],
    *,
    chart_id: str,
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """A size×size probability × impact matrix; cells coloured by the warning their score reaches."""
    fig = new_figure(5.2, 4.8)
    ax = fig.add_subplot()
    order = sorted(thresholds.items(), key=lambda kv: kv[1])
    for p in range(1, size + 1):
        for i in range(1, size + 1):
            score = p * i
            colour = "#e8f5e9"
            for name, limit in order:
                if score >= limit:
                    colour = {"yellow": "#fff59d", "orange": "#ffcc80", "red": "#ef9a9a"}.get(
                        name, colour
                    )
            ax.add_patch(Rectangle((i - 0.5, p - 0.5), 1, 1, color=colour))
            codes = cells.get((p, i), [])
            text = "\n".join(codes[:3]) + ("\n…" if len(codes) > 3 else "")
            ax.text(i, p, text or str(score), ha="center", va="center", fontsize=7,
                    color="#212121" if codes else "#9e9e9e")  # fmt: skip
    ax.set_xlim(0.5, size + 0.5)
    ax.set_ylim(0.5, size + 0.5)
    ax.set_xticks(range(1, size + 1))
    ax.set_yticks(range(1, size + 1))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal")
    return svg_chart(fig, chart_id=chart_id, title=title)
