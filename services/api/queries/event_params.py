"""Reading ``GET /events``' own parameters: the event types (several) and the producer times.

Its own room so that the route stays wiring and the query module stays SQL.
"""

from __future__ import annotations

from datetime import datetime

from arbiter.domain.events import TYPE_NAMES

from ..errors import bad_parameter
from ..parameters import rfc3339

__all__ = ["event_types", "parse_time"]


def event_types(given: list[str] | None) -> tuple[str, ...]:
    """The types asked for, from repeated ``type`` parameters or commas, in the order of
    :data:`TYPE_NAMES`; a 400 naming the accepted ones for any other."""
    if not given:
        return ()
    asked = {part.strip() for value in given for part in value.split(",")}
    unknown = sorted(asked - set(TYPE_NAMES))
    if unknown:
        raise bad_parameter(
            "type",
            f"Query parameter `type` is invalid: {unknown[0][:64]!r} is not one of "
            f"{', '.join(TYPE_NAMES)}.",
        )
    return tuple(t for t in TYPE_NAMES if t in asked)


def parse_time(name: str, text: str) -> datetime:
    """An RFC 3339 time with its offset (producer time is always zoned); else a 400."""
    when = rfc3339(text)
    if when is None:
        raise bad_parameter(
            name,
            f"Query parameter `{name}` ({text[:64]!r}) is invalid: give an RFC 3339 time with "
            "its offset, e.g. 2025-01-01T12:00:00Z.",
        )
    return when
