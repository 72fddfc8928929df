"""The unit of a measure, read from its name: the API names every measure with its unit as a
suffix (``ttfb_ms``, ``duration_s``, ``total_cost_usd``), so the pages can label any metric a
producer sends, not only those they know."""

from __future__ import annotations

__all__ = ["unit_of"]

_SUFFIXES = (
    ("_ms", "ms"),
    ("_s", "s"),
    ("_usd", "USD"),
    ("_ratio", "ratio"),
    ("_pct", "%"),
    ("_tokens", "tokens"),
    ("_bytes", "bytes"),
    ("_hz", "Hz"),
    ("_db", "dB"),
)


def unit_of(name: str) -> str:
    """The unit a measure's name ends with; empty when it names none (a producer's own
    measure, such as ``wer``: shown without a unit rather than with a guessed one)."""
    return next((unit for suffix, unit in _SUFFIXES if name.endswith(suffix)), "")
