"""The pages' Jinja2 environment: where templates live, and the filters that write numbers with
their units the same way on every page.

Autoescaping is on for every template: competitor ids, names and categories come from producers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig
from markupsafe import Markup

__all__ = [
    "STATIC",
    "TEMPLATES",
    "environment",
    "fmt_num",
    "fmt_time",
    "path_segment",
    "template_config",
]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def fmt_num(value: float | int | None, digits: int = 1, unit: str = "") -> str:
    """A number for a table cell: thousands separated, ``digits`` decimals, then its unit; a
    dash for none (an absent metric is not zero)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A fraction (0..1) as a percentage."""
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def fmt_time(value: datetime | None) -> str:
    """A moment in UTC, to the second, marked as UTC (the API's times are UTC)."""
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def path_segment(value: str) -> str:
    """A value as one URL path segment (a ``/`` in an arena or competitor id escaped too)."""
    return quote(str(value), safe="")


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pct"] = fmt_pct
    env.filters["when"] = fmt_time
    env.filters["seg"] = path_segment
    env.filters["svg"] = Markup  # charts.py escapes everything it writes
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's template configuration (Litestar renders ``Template`` responses with it)."""
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))
