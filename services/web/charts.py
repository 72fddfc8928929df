"""Charts as SVG strings: pure functions from numbers to markup, no JavaScript library.

Why SVG written here: the pages must work with no internet and nothing copied in, and an SVG
drawn on the server is part of the HTML (it renders before any script runs, prints, and a test
can count its marks). Every chart is sized by its ``viewBox`` with ``width="100%"``, so it
scales to the page's width (375 px phones included) without a resize handler.

Conventions the browser tests rely on: every data mark carries ``class="mark"`` and either a
``data-competitor`` (whiskers, lines) or ``data-a``/``data-b`` (heatmap cells); axes carry their
unit in their label. All text is escaped here (competitor ids come from producers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape

__all__ = ["STEPS", "Series", "Whisker", "heatmap", "lines", "nice_ticks", "palette", "whiskers"]


@dataclass(frozen=True)
class Whisker:
    """One competitor on a whisker plot: its rating and, where known, its interval."""

    competitor: str
    rating: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class Series:
    """One line of a line chart: ``points`` are (x, y) with x a number, date or datetime."""

    label: str
    competitor: str
    points: Sequence[tuple[float | date | datetime, float]] = field(default_factory=tuple)


def _a(value: object) -> str:
    """An attribute value, escaped (quotes included)."""
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate, short: SVG sizes grow with every digit."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values within [lo, hi]: the step of 1, 2 or 5 x 10^k that
    gives the count nearest ``count``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs((hi - lo) / s - count))
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _svg(width: float, height: float, label: str, body: list[str], kind: str) -> str:
    return (
        f'<svg class="chart {kind}" viewBox="0 0 {_n(width)} {_n(height)}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{_a(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


# -- whiskers -----------------------------------------------------------------------------------

_ROW = 24.0
_WIDTH = 800.0
_W_WIDTH = 480.0
"""The whisker plot is narrow (and app.css caps its width): one row per competitor must stay
readable both at 375 px, where it is shrunk, and on a desktop, where it would be blown up."""
_LEFT = 140.0


def whiskers(rows: Sequence[Whisker], unit: str = "Elo points", level: float = 0.95) -> str:
    """A horizontal whisker plot, best first as given: per competitor a dot at its rating and a
    bar from ``lower`` to ``upper`` (none when the interval is unknown), a shared rating axis
    with ``unit``, and the ``level`` in the axis label."""
    if not rows:
        return _svg(_W_WIDTH, 40, "no ratings", ['<text x="10" y="24">No ratings yet.</text>'], "w")
    values = [v for r in rows for v in (r.rating, r.lower, r.upper) if v is not None]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad
    top, bottom = 10.0, 40.0
    height = top + _ROW * len(rows) + bottom
    span = _W_WIDTH - _LEFT - 16

    def x(value: float) -> float:
        return _LEFT + (value - lo) / (hi - lo) * span

    body: list[str] = []
    axis_y = top + _ROW * len(rows)
    for tick in nice_ticks(lo, hi, 6):
        tx = _n(x(tick))
        body.append(
            f'<line class="grid" x1="{tx}" y1="{_n(top)}" x2="{tx}" y2="{_n(axis_y)}"/>'
            f'<text class="tick" x="{tx}" y="{_n(axis_y + 14)}" text-anchor="middle">'
            f"{_tick_label(tick)}</text>"
        )
    body.append(
        f'<text class="axis-label" x="{_n(_LEFT + span / 2)}" y="{_n(height - 6)}" '
        f'text-anchor="middle">rating ({_a(unit)}), {level:.0%} interval</text>'
    )
    for i, row in enumerate(rows):
        cy = top + _ROW * i + _ROW / 2
        name = _a(row.competitor)
        shown = row.competitor if len(row.competitor) <= 20 else row.competitor[:19] + "…"
        body.append(
            f'<text class="label" x="{_n(_LEFT - 8)}" y="{_n(cy + 4)}" text-anchor="end">'
            f"{_a(shown)}</text>"
        )
        interval = ""
        if row.lower is not None and row.upper is not None:
            interval = f", {level:.0%} interval {row.lower:.1f} to {row.upper:.1f}"
            body.append(
                f'<line class="whisker" x1="{_n(x(row.lower))}" y1="{_n(cy)}" '
                f'x2="{_n(x(row.upper))}" y2="{_n(cy)}"/>'
            )
        body.append(
            f'<circle class="mark" data-competitor="{name}" cx="{_n(x(row.rating))}" '
            f'cy="{_n(cy)}" r="4"><title>{name}: {row.rating:.1f} {_a(unit)}{interval}</title>'
            "</circle>"
        )
    return _svg(_W_WIDTH, height, f"ratings with {level:.0%} intervals", body, "whiskers")


# -- lines --------------------------------------------------------------------------------------


def _x_number(value: float | date | datetime) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return float(value)


def _x_label(value: float, as_time: bool) -> str:
    if not as_time:
        return _tick_label(value)
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")


def lines(series: Sequence[Series], y_unit: str = "Elo points", x_unit: str = "UTC day") -> str:
    """A line chart: one ``<path class="mark">`` per series (its ``data-competitor`` and
    ``data-series`` set), a dot on each series' last point, a y axis of ratings in ``y_unit``
    and an x axis in ``x_unit`` (dates when the xs are dates or datetimes)."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return _svg(_WIDTH, 40, "no history", ['<text x="10" y="24">No history yet.</text>'], "l")
    as_time = any(isinstance(p[0], date | datetime) for s in drawn for p in s.points)
    xs = [_x_number(p[0]) for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = min(ys), max(ys)
    pad = max((y_hi - y_lo) * 0.05, 1.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    left, right, top, bottom, height = 60.0, 20.0, 10.0, 50.0, 300.0
    w, h = _WIDTH - left - right, height - top - bottom

    def px(value: float) -> float:
        return left + (value - x_lo) / (x_hi - x_lo) * w

    def py(value: float) -> float:
        return top + (y_hi - value) / (y_hi - y_lo) * h

    body: list[str] = []
    for tick in nice_ticks(y_lo, y_hi, 5):
        ty = _n(py(tick))
        body.append(
            f'<line class="grid" x1="{_n(left)}" y1="{ty}" x2="{_n(left + w)}" y2="{ty}"/>'
            f'<text class="tick" x="{_n(left - 6)}" y="{ty}" text-anchor="end">'
            f"{_tick_label(tick)}</text>"
        )
    step = 86400.0 if as_time else 0.0
    x_ticks = nice_ticks(x_lo / (step or 1), x_hi / (step or 1), 5)
    for tick in x_ticks:
        value = tick * (step or 1)
        body.append(
            f'<text class="tick" x="{_n(px(value))}" y="{_n(top + h + 16)}" '
            f'text-anchor="middle">{_x_label(value, as_time)}</text>'
        )
    body.append(
        f'<text class="axis-label" x="{_n(left + w / 2)}" y="{_n(height - 6)}" '
        f'text-anchor="middle">{_a(x_unit)}</text>'
        f'<text class="axis-label" x="12" y="{_n(top + h / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_n(top + h / 2)})">rating ({_a(y_unit)})</text>'
    )
    for i, s in enumerate(drawn):
        points = [(px(_x_number(x)), py(y)) for x, y in s.points]
        d = "M" + "L".join(f"{_n(a)},{_n(b)}" for a, b in points)
        attrs = f'data-competitor="{_a(s.competitor)}" data-series="{_a(s.label)}"'
        last_x, last_y = points[-1]
        body.append(
            f'<path class="mark line s{i % 8}" {attrs} d="{d}" fill="none">'
            f"<title>{_a(s.label)}</title></path>"
            f'<circle class="end s{i % 8}" cx="{_n(last_x)}" cy="{_n(last_y)}" r="3">'
            f"<title>{_a(s.label)}: {s.points[-1][1]:.1f} {_a(y_unit)}</title></circle>"
        )
    return _svg(_WIDTH, height, "rating history", body, "lines")


# -- heatmap ------------------------------------------------------------------------------------


def heatmap(
    matrix: Sequence[Sequence[float | None]],
    labels: Sequence[str],
    fmt: Callable[[float], str],
    *,
    scale: tuple[float, float] | None = None,
    unit: str = "",
    title: str = "heatmap",
    percent: bool = False,
) -> str:
    """A square heatmap: the cell at row ``i``, column ``j`` is ``matrix[i][j]`` (row ``labels[i]``
    against column ``labels[j]``), one ``<rect class="mark">`` per cell with ``data-a`` (row),
    ``data-b`` (column) and ``data-value``; a cell without a value (the diagonal, pairs that
    never met) is drawn empty with ``class="mark empty"``. Colours run over ``scale`` (default:
    the values' range) in :data:`STEPS` classes (``q0`` .. ``q10``, filled by app.css), shown in
    a legend whose ends ``fmt`` writes, with ``unit``.

    Sized for 100 competitors: two maps of 10,000 cells each are a page, so a cell is kept
    short (integer coordinates, a colour class rather than a fill, no per-cell ``<title>``:
    app.js writes the tooltip from the data attributes on hover, as a percentage when
    ``percent``)."""
    n = len(labels)
    if n == 0:
        return _svg(_WIDTH, 40, title, ['<text x="10" y="24">No pairs yet.</text>'], "h")
    values = [v for row in matrix for v in row if v is not None]
    lo, hi = scale if scale is not None else (min(values, default=0.0), max(values, default=1.0))
    if hi <= lo:
        hi = lo + 1
    cell = max(9, min(28, 620 // n))  # 9 at least: every row and column keeps its label
    font = min(11, cell - 1)
    margin = 130
    size = margin + cell * n + 10
    height = size + 40
    names = [_a(label) for label in labels]
    body: list[str] = [f'<g class="labels" font-size="{font}">']
    for i, label in enumerate(labels):
        shown = _a(label if len(label) <= 18 else label[:17] + "…")
        c = margin + cell * i + cell // 2 + font // 3
        body.append(
            f'<text class="label" x="{margin - 4}" y="{c}" text-anchor="end">{shown}</text>'
            f'<text class="label" transform="translate({c} {margin - 4}) rotate(-60)">'
            f"{shown}</text>"
        )
    body.append("</g>")
    per_step = (STEPS - 1) / (hi - lo)
    # The inner loop runs n^2 times: everything that depends on one index only is made once.
    columns = [f'data-b="{names[j]}" x="{margin + cell * j}"' for j in range(n)]
    for i, row in enumerate(matrix):
        head = f'data-a="{names[i]}" '
        tail = f' y="{margin + cell * i}" width="{cell}" height="{cell}"/>'
        body.extend(
            f'<rect class="mark empty" {head}{column}{tail}'
            if value is None
            else f'<rect class="mark q{min(STEPS - 1, max(0, round((value - lo) * per_step)))}" '
            f'{head}{column} data-value="{value:.6g}"{tail}'
            for column, value in zip(columns, row, strict=True)
        )
    legend_y = size + 8
    for k in range(STEPS):
        body.append(
            f'<rect class="legend q{k}" x="{margin + k * 20}" y="{legend_y}" width="20" '
            'height="10"/>'
        )
    body.append(
        f'<text class="tick" x="{margin}" y="{legend_y + 24}">{_a(fmt(lo))}</text>'
        f'<text class="tick" x="{margin + STEPS * 20}" y="{legend_y + 24}" text-anchor="end">'
        f"{_a(fmt(hi))}</text>"
        f'<text class="axis-label" x="{margin + STEPS * 20 + 10}" y="{legend_y + 9}">'
        f"{_a(unit)} (row vs column)</text>"
    )
    kind = "heatmap pct" if percent else "heatmap"
    return _svg(max(size, margin + 420), height, title, body, kind)


STEPS = 11
"""Colour steps of a heatmap (``q0`` .. ``q10`` in app.css): blue (low) through white to red."""


def palette() -> list[str]:
    """The heatmap's colours, ``q0`` to ``q10`` (app.css holds them; a test checks they agree)."""
    return [_colour(k / (STEPS - 1)) for k in range(STEPS)]


def _colour(t: float) -> str:
    """Blue (0) through white (0.5) to red (1): diverging, so 50 % reads as neutral."""
    if t < 0.5:
        k = t / 0.5
        r, g, b = 40 + 215 * k, 90 + 165 * k, 200 + 55 * k
    else:
        k = (t - 0.5) / 0.5
        r, g, b = 255 - 35 * k, 255 - 195 * k, 255 - 205 * k
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"
