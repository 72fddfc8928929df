"""The CSV fast lane of the arena-file reader: plain battle rows turned into events without the
general converter's per-row dictionary work.

Why. A Chatbot Arena release is millions of CSV rows of the same few shapes, and the general
path (:meth:`arena_files._Converter.__call__` on a ``csv.DictReader`` record) spent about
10 us a row: a dict per row, the identity's columns gathered and sorted per row, every model
name and winner checked again each time it came back. Here the header is read once:

* the identity's columns (:func:`arena_files._row_identity`: every non-empty column, sorted by
  name) are put in sorted order once; a row's identity is then the non-empty cells taken in
  that order. Sorting the ``(name, value)`` pairs sorts by name alone when names are unique, so
  this is the same list;
* a model name and a winner are checked once per distinct spelling (a release names about a
  hundred models) and the answer kept;
* the event itself is built by the general path's own :meth:`~arena_files._Converter.event`,
  with the same occurrence counter, so ids, key order and bytes cannot differ.

What takes the fast lane: a row with exactly one cell per header column, when the header's
names are unique, whose ``model_a``, ``model_b`` and ``winner`` pass the checks. Anything else
(a short or long row, a missing or bad value, the same model twice, a bad ``tstamp``) is handed
to the general converter as the ``DictReader`` record it would have been, so every refusal
keeps its code and sentence; nothing is counted before that hand-over, so an occurrence is
never counted twice. ``tests/test_arena_csv.py`` checks both ways give the same rows, errors
and ids on random files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

__all__ = ["Converter", "Rules", "csv_rows"]


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


def csv_rows(
    reader: Iterator[list[str]], header: list[str], convert: Converter, rules: Rules
) -> Iterator[tuple[int, Any]]:
    """``(row number, event or RowError)`` for each record of a ``csv.reader`` past the header,
    numbered as ``DictReader`` numbers them (blank lines skipped, not counted)."""
    lane = _Lane(header, convert, rules)
    number = 0
    for cells in reader:
        if not cells:
            continue
        number += 1
        event = lane.event(cells) if lane.fast and len(cells) == lane.width else None
        if event is None:
            yield number, convert(number, _record(header, cells), events=False)
        else:
            yield number, event


class _Lane:
    """What the header says once: where each column is and the identity's column order; and
    the answers for the model names and winners seen so far."""

    def __init__(self, header: list[str], convert: Converter, rules: Rules) -> None:
        self.width = len(header)
        at = {name: i for i, name in enumerate(header)}
        self.fast = len(at) == self.width
        """False for a header with a repeated name (``DictReader`` keeps its last cell): the
        general path then takes every row."""
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


def _record(header: list[str], cells: list[str]) -> dict[Any, Any]:
    """The record ``csv.DictReader`` makes of ``cells``: missing cells None, extra cells in a
    list under the key None, a repeated name holding its last cell."""
    record: dict[Any, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        record[None] = cells[len(header) :]
    else:
        for name in header[len(cells) :]:
            record[name] = None
    return record
