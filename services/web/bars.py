"""A horizontal bar chart as an SVG string, for the stats page: one bar per group of trials.

Why bars and not :mod:`.charts`' whiskers: a stats measure (an average latency, a total cost) is
one number per group with no interval, and its groups are named by a dimension's values, which
may be long; horizontal bars keep the names readable at 375 px. Conventions as in
:mod:`.charts`: sized by ``viewBox`` at ``width="100%"``, every bar a ``class="mark"`` carrying
``data-competitor`` when the groups are competitors (else ``data-group``), the unit in the axis
label, all text escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars"]

_ROW = 22.0
_LABEL = 110.0
_WIDTH = 360.0
_PAD = 34.0


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def bars(
    rows: Sequence[tuple[str | None, float | None]],
    unit: str,
    title: str,
    *,
    key_attribute: str = "data-group",
) -> str:
    """One bar per ``(group, value)``; a group without a value is drawn as a labelled gap (no
    bar: an absent metric is not zero). Negative values are drawn from the zero line leftwards."""
    values = [v for _, v in rows if v is not None]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    span = (hi - lo) or 1.0
    plot = _WIDTH - _LABEL - 60.0

    def x(v: float) -> float:
        return _LABEL + (v - lo) / span * plot

    caption = title if unit in ("", "count") else f"{title} ({unit})"
    body = [f'<text class="axis-label" x="{_n(_LABEL)}" y="14">{_a(caption)}</text>']
    for i, (key, value) in enumerate(rows):
        y = 22.0 + i * _ROW
        shown = "(none)" if key is None else key
        body.append(
            f'<text class="label" x="{_n(_LABEL - 6)}" y="{_n(y + 14)}" '
            f'text-anchor="end">{_a(shown[:18])}</text>'
        )
        if value is None:
            continue
        left, right = sorted((x(0.0), x(value)))
        body.append(
            f'<rect class="mark" fill="#2457c5" {key_attribute}="{_a(shown)}" '
            f'data-value="{value!r}" '
            f'x="{_n(left)}" y="{_n(y + 3)}" width="{_n(max(right - left, 1.0))}" '
            f'height="{_n(_ROW - 6)}"><title>{_a(shown)}: {_a(_value(value))} {_a(unit)}'
            f"</title></rect>"
            f'<text class="value" x="{_n(right + 4)}" y="{_n(y + 14)}">{_a(_value(value))}</text>'
        )
    height = 22.0 + len(rows) * _ROW + _PAD / 2
    return (
        f'<svg class="chart bars" viewBox="0 0 {_n(_WIDTH)} {_n(height)}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{_a(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )
