"""The cells of one arena battle row, checked and spelled: model names, ``tstamp``, and the
row's identity (the sorted non-empty columns that its event id is a digest of). Shared by the
general converter (:mod:`.arena_files`) and, through :data:`arena_files._RULES`, the CSV fast
lane (:mod:`.arena_csv`), so both check and spell a row alike.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["MAX_ID", "RowProblem", "checked_model", "checked_tstamp", "model", "rfc3339",
           "row_identity", "tstamp"]  # fmt: skip

MAX_ID = 128
"""The longest model name (an identifier of the log)."""
_encode = msgspec.json.encode


def checked_model(value: str) -> str | None:
    """A model name as :func:`model` returns it, or None where it refuses it."""
    try:
        return model(value, "model")
    except RowProblem:
        return None


def checked_tstamp(value: str | None) -> tuple[bool, str | None]:
    """``(True, what tstamp returns)``, or ``(False, None)`` where it refuses the value."""
    try:
        return True, tstamp(value)
    except RowProblem:
        return False, None


def row_identity(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The row as sorted (column, value) pairs: every non-empty column, each value in its JSON
    spelling (strings as they are), so that key order, absent keys versus empty cells, and the
    CSV-versus-JSON spelling of numbers do not change a row's identity."""
    pairs = []
    for name, value in record.items():
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else _encode(value).decode()
        pairs.append((str(name), text))
    pairs.sort()
    return pairs


class RowProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def model(value: object, column: str) -> str:
    if not isinstance(value, str):
        raise RowProblem("bad_value", f"{column} must be a string, got {value!r}")
    name = value.strip()
    if not name or len(name) > MAX_ID:
        raise RowProblem("bad_value", f"{column} must be 1-{MAX_ID} characters, got {value!r}")
    return name


def tstamp(value: object) -> str | None:
    """A row's ``tstamp`` as RFC 3339 UTC, or ``None`` when it has none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowProblem("bad_tstamp", f"tstamp {value!r} is not a time")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = None
    except OverflowError as exc:  # an integer beyond any float: JSON allows it
        digits = len(str(value))  # not the number itself: thousands of digits in a sentence
        raise RowProblem("bad_tstamp", f"tstamp is an integer of {digits} digits") from exc
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            raise RowProblem(
                "bad_tstamp", f"tstamp {value!r} is not a unix time in seconds since 1970"
            )
        try:
            return rfc3339(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError) as exc:
            raise RowProblem("bad_tstamp", f"tstamp {value!r} is out of range") from exc
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return rfc3339(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    raise RowProblem("bad_tstamp", f"tstamp {value!r} is neither unix seconds nor an ISO 8601 time")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
