"""The CSV fast lane of the arena-file reader: plain battle rows turned into events without the
general converter's per-row dictionary work.

Why. A Chatbot Arena release is millions of CSV rows of the same few shapes, and the general
path (:meth:`arena_files._Converter.__call__` on a ``csv.DictReader`` record) spent about
10 us a row: a dict per row, the identity's columns gathered and sorted per row, every model
name and winner checked again each time it came back. Here the header is read once:

* the identity's columns (:func:`arena_values.row_identity`: every non-empty column, sorted by
  name) are put in sorted order once; a row's identity is then the non-empty cells taken in
  that order. Sorting the ``(name, value)`` pairs sorts by name alone when names are unique, so
  this is the same list;
* a model name and a winner are checked once per distinct spelling (a release names about a
  hundred models) and the answer kept;
* the event itself is built by the general path's own :meth:`~arena_files._Converter.event`,
  with the same occurrence counter, so ids, key order and bytes cannot differ.

What is refused before either way looks at a row (``bad_csv``, with the row's number and its
lines in the file): a row with more or fewer cells than the header has columns (which cell is
which?), a row holding bytes that are not UTF-8, and a quoting error the strict reader finds (a
quote left open would otherwise swallow the rest of the file into one cell). The reader refuses
a header with a repeated name before any row.

What takes the fast lane: a row whose ``model_a``, ``model_b`` and ``winner`` pass the checks.
Anything else (a missing or bad value, the same model twice, a bad ``tstamp``) is handed to the
general converter as the ``DictReader`` record it would have been, so every refusal keeps its
code and sentence; nothing is counted before that hand-over, so an occurrence is never counted
twice. ``tests/test_arena_csv.py`` checks both ways give the same rows, errors and ids on
random files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

__all__ = ["Converter", "Rules", "csv_rows", "undecodable"]


class Converter(Protocol):
    """What the lane needs of the general converter (``arena_files._Converter``): a record
    converted the general way, and ``event`` (identity pairs, occurred_at, model_a, model_b,
    outcome, meta) building a checked row's event."""

    def __call__(self, number: int, record: object, *, events: bool = True) -> Any: ...

    event: Callable[..., dict[str, Any]]


class Rules(NamedTuple):
    """The general converter's checks, handed in (this module imports nothing of it)."""

    model: Callable[[str], str | None]
    """A model cell's name, stripped, or None where it is refused."""
    tstamp: Callable[[str | None], tuple[bool, str | None]]
    """``(True, occurred_at or None)`` for a ``tstamp`` cell, ``(False, None)`` if refused."""
    winners: dict[str, str]
    """A lower-cased, stripped winner to its outcome."""
    ids: tuple[str, ...]
    """The columns that identify a battle, in order of preference (the first non-empty one
    goes into ``meta``)."""
    persons: tuple[str, ...]
    """The columns naming the person who voted (into ``meta`` when not empty)."""
    refused: Callable[[int, str, str], Any]
    """A refused row (number, code, sentence), as the general converter reports one."""


def csv_rows(
    reader: Iterator[list[str]], header: list[str], convert: Converter, rules: Rules
) -> Iterator[tuple[int, Any]]:
    """``(row number, event or RowError)`` for each record of a ``csv.reader`` past the header,
    numbered as ``DictReader`` numbers them (blank lines skipped, not counted)."""
    lane = _Lane(header, convert, rules)
    number = 0
    while True:
        first = reader.line_num + 1  # type: ignore[attr-defined]
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the strict reader's quoting errors
            number += 1
            lines = _lines(first, reader.line_num)  # type: ignore[attr-defined]
            yield number, rules.refused(number, "bad_csv", f"{lines}: {exc}")
            continue
        if not cells:
            continue
        number += 1
        if len(cells) != lane.width:
            lines = _lines(first, reader.line_num)  # type: ignore[attr-defined]
            sentence = f"{lines}: {len(cells)} cells, but the header has {lane.width} columns"
            yield number, rules.refused(number, "bad_csv", sentence)
            continue
        if undecodable(cells):
            lines = _lines(first, reader.line_num)  # type: ignore[attr-defined]
            yield number, rules.refused(number, "bad_csv", f"{lines}: bytes that are not UTF-8")
            continue
        event = lane.event(cells)
        if event is None:
            yield number, convert(number, dict(zip(header, cells, strict=True)), events=False)
        else:
            yield number, event


def undecodable(cells: list[str]) -> bool:
    """Whether cells read with ``errors="surrogateescape"`` hold bytes that are not UTF-8 (as
    lone surrogates). ASCII rows, nearly all, cost one join and one scan in C."""
    text = "".join(cells)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first >= last else f"lines {first}-{last}"


class _Lane:
    """What the header says once: where each column is and the identity's column order; and
    the answers for the model names and winners seen so far."""

    def __init__(self, header: list[str], convert: Converter, rules: Rules) -> None:
        self.width = len(header)
        at = {name: i for i, name in enumerate(header)}  # the names are unique (the reader's check)
        self.ia, self.ib, self.iw = at["model_a"], at["model_b"], at["winner"]
        self.it = at.get("tstamp")
        self.ids = [(c, at[c]) for c in rules.ids if c in at]
        self.persons = [(c, at[c]) for c in rules.persons if c in at]
        self.order = sorted(at.items())
        self.convert, self.check_model, self.winners = convert, rules.model, rules.winners
        self.tstamp = rules.tstamp
        self.models: dict[str, str | None] = {}
        self.outcomes: dict[str, tuple[str, str] | None] = {}

    def event(self, cells: list[str]) -> dict[str, Any] | None:
        """The event of a row with one cell per column, or None to leave it to the general
        path (anything to refuse, or to look at more closely)."""
        a = self._model(cells[self.ia])
        b = self._model(cells[self.ib])
        if a is None or b is None or a == b:
            return None
        raw = cells[self.iw]
        won = self.outcomes.get(raw, _UNSEEN)
        if won is _UNSEEN:
            outcome = self.winners.get(raw.strip().lower())
            won = self.outcomes[raw] = None if outcome is None else (outcome, raw.strip())
        if won is None:
            return None
        ok, occurred = self.tstamp(None if self.it is None else cells[self.it])
        if not ok:  # the general path says why
            return None
        meta: dict[str, Any] = {"winner": won[1]}
        for column, i in self.ids:
            if cells[i] != "":
                meta[column] = cells[i]
                break
        for column, i in self.persons:
            if cells[i] != "":
                meta[column] = cells[i]
        pairs = [(name, cells[i]) for name, i in self.order if cells[i] != ""]
        return self.convert.event(pairs, occurred, a, b, won[0], meta)

    def _model(self, raw: str) -> str | None:
        name = self.models.get(raw, _UNSEEN)
        if name is _UNSEEN:
            name = self.models[raw] = self.check_model(raw)
        return name  # type: ignore[return-value]


_UNSEEN: Any = object()
