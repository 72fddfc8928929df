"""Read battle files as public LLM arena leaderboards publish them, as Arbiter events.

LMSYS Chatbot Arena (and the leaderboards built on its notebooks) publish battles as a JSON array
of records (``clean_battle_*.json``), as JSONL, or as CSV, one battle per record with at least
``model_a``, ``model_b`` and ``winner`` (``model_a`` | ``model_b`` | ``tie`` | ``tie (bothbad)``),
usually ``tstamp`` (unix seconds) and ``question_id``; other columns (judge, language, turn,
conversation ...) are ignored. :func:`iter_import` turns each record into a ``battle.completed``
event of wire format v1, ready to publish; Arbiter's own JSONL of events passes through as is.

Decisions, and why:

* **A row's identity is the whole row.** ``event_id`` is ``import:`` + the first 32 hex digits
  (128 bits) of a SHA-256 over the arena, the category, every column of the row (name and value;
  empty cells and absent keys alike left out, scalars in their JSON spelling, so that a number
  or a string gives the same id from a JSON and from a CSV export; not so a boolean or a nested
  value, which CSV writers spell their own way (pandas: ``True``, Python reprs), so a JSON and a
  CSV export of rows holding such columns are different rows: import one of them) and the row's
  occurrence number among identical rows of the file. Two real votes that differ in any column
  (a ``judge``, a ``turn``, a ``language``) are two battles; N identical rows are N battles
  (occurrences 1..N), since an arena file records one vote per row and a repeated row is a
  repeated vote. Importing the same file twice yields the
  same events, which the idempotent ingest turns into no-ops: a second import changes nothing.
  The row's position is not in the id, so a file with rows added or reordered keeps the ids of
  the rows it had. ``battle_id`` is ``import-battle:`` + the same digest.
* **Judge "human", unless the caller says otherwise.** Arena verdicts are votes by people
  comparing two anonymous answers, so by default the battle counts with the human judge weight
  (1.5 by default, seed 000); ``judge`` (``arbiter import --judge auto|human|NAME``) sets another
  judge kind for every row of the file. A ``judge`` or ``voter`` column names the *person* who
  voted, never the kind: it is kept in ``meta`` under its own name (and, like every column, in
  the row's identity). The judge kind is not part of the id: importing the same file again with
  another ``--judge`` is a ``conflict``, not a second copy of the battles. The original ``winner``
  string is kept in ``meta.winner`` (``tie (bothbad)`` and ``tie`` both become outcome ``tie``,
  as the public Elo notebooks score them), and the id column in ``meta`` under its own name.
* **occurred_at** is the row's ``tstamp`` (unix seconds, or an ISO 8601 string; naive means UTC)
  in UTC. A row without one gets ``default_time``, by default the Unix epoch: the import time
  would make a second import differ from the first. ``occurred_at`` is producer time and orders
  nothing (the log does), so a fixed fallback loses nothing. The fallback is deliberately not
  part of the id: re-importing with another ``default_time`` is then refused as a conflict
  instead of counting the same battles twice.
* **Errors per row.** A bad row (a winner outside the four values, a missing column, model_a
  equal to model_b, a bad timestamp, a line that is not JSON, a CSV row of the wrong width or
  with bytes that are not UTF-8, a record of the file's other kind) yields a :class:`RowError`
  with its row number, a code and a sentence, and the import goes on; only a file-level problem
  (a CSV header without the needed columns or with a name twice, a JSON file that does not
  parse) raises :class:`ArenaFileError`.
* **Streaming.** JSONL and CSV are read a line / a record at a time, so a multi-gigabyte file
  costs no more memory than one row. A JSON array must be parsed whole, but only into raw
  slices (msgspec ``Raw``), each record decoded when its turn comes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from .arena_csv import Rules, csv_rows, undecodable
from .arena_values import (
    MAX_ID,
    RowProblem,
    checked_model,
    checked_tstamp,
    model,
    rfc3339,
    row_identity,
    tstamp,
)

__all__ = [
    "EVENT_FORMATS",
    "ID_COLUMNS",
    "IMPORT_EPOCH",
    "IMPORT_SOURCE",
    "JUDGE",
    "MAX_ID",
    "PERSON_COLUMNS",
    "REQUIRED",
    "WINNERS",
    "ArenaFileError",
    "Format",
    "PathLike",
    "RowError",
    "count_rows",
    "detect_format",
    "iter_import",
]


Format = Literal["jsonl-events", "json-events", "arena-json", "arena-jsonl", "arena-csv"]
EVENT_FORMATS: tuple[Format, ...] = ("jsonl-events", "json-events")
"""Files of Arbiter events: their order is their meaning (a vote after its battle), so they are
imported as they are, never sorted, and the arena-row flags do not apply to them."""
PathLike = str | os.PathLike[str]

IMPORT_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""``occurred_at`` of rows without a timestamp unless the caller gives another fixed time."""

IMPORT_SOURCE = "arbiter-import"
"""``source`` of imported battles: which producer put them in the log."""

JUDGE = "human"
"""The judge kind of imported battles unless the caller names another."""
PERSON_COLUMNS = ("judge", "voter")
"""Columns naming the person who voted: kept in ``meta``, never read as the judge kind."""
REQUIRED = ("model_a", "model_b", "winner")
ID_COLUMNS = ("battle_id", "question_id", "id")
"""Columns that identify a battle in the file, in order of preference."""

WINNERS: dict[str, str] = {
    "model_a": "a",
    "model_b": "b",
    "tie": "tie",
    "tie (bothbad)": "tie",
    "tie(bothbad)": "tie",
}
"""Arena ``winner`` values (lower-cased, trimmed) to Arbiter outcomes."""

_CHUNK = 1 << 20
_decode = msgspec.json.decode
_encode = msgspec.json.encode


class ArenaFileError(ValueError):
    """The file as a whole cannot be read (format, header, JSON syntax)."""


class RowError(msgspec.Struct, frozen=True):
    """One row that could not become an event; the import goes on without it.

    ``row`` is the 1-based record number (for JSONL: the line number; for CSV: the data row,
    the header not counted; for a JSON array: the element). ``code`` is machine-readable:
    ``bad_json``, ``bad_csv`` (a row's shape: cells against the header's columns, bytes that are
    not UTF-8, quoting), ``not_an_object``, ``mixed_file`` (an event among arena rows, or the
    reverse), ``missing_column``, ``bad_value``, ``bad_winner``, ``same_model``,
    ``bad_tstamp``.
    """

    row: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


def detect_format(path: PathLike) -> Format:
    """What kind of file ``path`` is, judged by its content (extensions lie).

    ``[`` first: a JSON array, of Arbiter events when its first element has a ``type`` field
    (``json-events``), of arena battles otherwise (``arena-json``). ``{`` first: JSONL, of
    events (``jsonl-events``) or of arena battles (``arena-jsonl``) by the same rule. A file
    holds one kind: a record of the other kind is refused when importing (row error
    ``mixed_file``), since the two are ordered differently (events as they are, arena rows by
    ``tstamp``). Anything else is CSV (``arena-csv``). An empty file counts as JSONL of events:
    nothing to import.
    """
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
        if not head:
            return "jsonl-events"
        if head[:1] == b"[":
            record = _first_element(path)
            return "json-events" if isinstance(record, dict) and "type" in record else "arena-json"
        if head[:1] != b"{":
            return "arena-csv"
        f.seek(0)
        for number, line in enumerate(f, 1):
            line = line.lstrip(b"\xef\xbb\xbf").strip() if number == 1 else line.strip()
            if not line:
                continue
            try:
                first = _decode(line)
            except (msgspec.DecodeError, RecursionError) as exc:
                problem = exc if isinstance(exc, msgspec.DecodeError) else "nested too deeply"
                raise ArenaFileError(
                    f"{os.fspath(path)} starts with '{{' but line {number} is not a JSON object "
                    f"({problem}); JSONL needs one complete object per line"
                ) from exc
            return "jsonl-events" if isinstance(first, dict) and "type" in first else "arena-jsonl"
    return "jsonl-events"  # pragma: no cover - only blank lines after the sniffed '{'


def count_rows(path: PathLike, fmt: Format | None = None) -> int:
    """How many rows :func:`iter_import` will yield, cheaply, for a progress bar's total.

    Exact for a JSON array (the array is split, not decoded). For JSONL and CSV it counts line
    breaks, which is an upper bound: blank lines, and line breaks inside quoted CSV fields, are
    counted too.
    """
    fmt = fmt or detect_format(path)
    if fmt in ("arena-json", "json-events"):
        return len(_split_array(path))
    lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    if fmt == "arena-csv":
        lines -= 1  # the header
    return max(lines, 0)


def iter_import(
    path: PathLike,
    *,
    arena: str = "default",
    category: str | None = None,
    default_time: datetime = IMPORT_EPOCH,
    source: str | None = IMPORT_SOURCE,
    fmt: Format | None = None,
    judge: str = JUDGE,
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield ``(row number, event dict or RowError)`` for every record of ``path``, in order.

    Arena rows become ``battle.completed`` events in ``arena`` / ``category``; records that
    already carry a ``type`` (Arbiter events) are yielded unchanged. ``default_time`` must be
    timezone-aware; it is the ``occurred_at`` of rows without a ``tstamp``. ``fmt`` skips the
    sniffing of :func:`detect_format` when the caller already knows. ``judge`` is the judge
    kind of every battle (module docstring).
    """
    if default_time.tzinfo is None:
        raise ValueError("default_time must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    fmt = fmt or detect_format(path)
    convert = _Converter(
        arena, category, rfc3339(default_time), source, judge, events=fmt in EVENT_FORMATS
    )
    if fmt == "arena-csv":
        yield from _iter_csv(path, convert)
    elif fmt in ("arena-json", "json-events"):
        for number, raw in enumerate(_split_array(path), 1):
            try:
                record = _decode(raw)
            except (msgspec.DecodeError, RecursionError) as exc:
                yield number, _bad_json(number, exc)
                continue
            yield number, convert(number, record)
    else:
        yield from _iter_jsonl(path, convert)


def _bad_json(number: int, exc: Exception) -> RowError:
    """A record msgspec cannot decode (``RecursionError``: nested deeper than it follows)."""
    if isinstance(exc, RecursionError):
        return RowError(number, "bad_json", "not valid JSON: nested too deeply")
    return RowError(number, "bad_json", f"not valid JSON: {exc}")


def _iter_jsonl(
    path: PathLike, convert: _Converter
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with open(path, "rb", buffering=_CHUNK) as f:
        for number, line in enumerate(f, 1):
            if number == 1:
                line = line.lstrip(b"\xef\xbb\xbf")
            line = line.strip()
            if not line:
                continue
            try:
                record = _decode(line)
            except (msgspec.DecodeError, RecursionError) as exc:
                yield number, _bad_json(number, exc)
                continue
            yield number, convert(number, record)


def _iter_csv(
    path: PathLike, convert: _Converter
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    # Exports carrying whole conversations have fields far above csv's 128 KiB default.
    csv.field_size_limit(2**31 - 1)
    # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate instead of stopping
    # the whole read; the row holding it is refused (``bad_csv``) and the rest goes in.
    # strict: a quote left open is an error at the row that opened it, not the rest of the
    # file silently read into one cell.
    with open(
        path, encoding="utf-8-sig", errors="surrogateescape", newline="", buffering=_CHUNK
    ) as f:
        reader = csv.reader(f, strict=True)
        name = os.fspath(path)
        try:
            header = [column.strip() for column in next(reader, [])]
        except csv.Error as exc:
            raise ArenaFileError(f"{name}: the CSV header cannot be read: {exc}") from exc
        if undecodable(header):
            raise ArenaFileError(f"{name}: the CSV header is not UTF-8 text")
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            raise ArenaFileError(
                f"{name}: the CSV header has no {', '.join(missing)} column; an arena battles "
                f"file needs {', '.join(REQUIRED)} (found: {', '.join(header) or 'none'})"
            )
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:  # which of its cells would be the value?
            raise ArenaFileError(
                f"{name}: the CSV header names {', '.join(map(repr, repeated))} more than once; "
                "each column needs a name of its own"
            )
        yield from csv_rows(reader, header, convert, _RULES)


def _first_element(path: PathLike) -> object:
    """The first element of a JSON array file, read from its first MiB when it fits there (a
    release is one array of millions: splitting it whole here too would be a third full parse,
    beside the row count's and the import's); else from the whole array."""
    with open(path, "rb") as f:
        head = f.read(_CHUNK)
    text = head.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    start = len(text) - len(text[1:].lstrip())  # past "[" and any space
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except (ValueError, RecursionError):  # longer than the head, or not JSON: the strict way
        first = next(iter(_split_array(path)), None)
        try:
            return None if first is None else _decode(first)
        except (msgspec.DecodeError, RecursionError):
            return None


def _split_array(path: PathLike) -> list[msgspec.Raw]:
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):  # a byte order mark, as CSV and JSONL allow
        data = data[3:]
    try:
        return _decode(data, type=list[msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArenaFileError(f"{os.fspath(path)} is not a JSON array of records: {exc}") from exc
    except RecursionError as exc:
        raise ArenaFileError(f"{os.fspath(path)} is nested too deeply to read") from exc


class _Converter:
    """Turns one decoded record into an event dict or a :class:`RowError`."""

    def __init__(
        self,
        arena: str,
        category: str | None,
        default_time: str,
        source: str | None,
        judge: str = JUDGE,
        *,
        events: bool = False,
    ) -> None:
        self.events_file = events
        """A file of Arbiter events (:data:`EVENT_FORMATS`): arena rows in it are refused, as
        events in a file of arena rows are (``mixed_file``)."""
        self.judge = judge
        self.arena = arena
        self.category = category
        self.default_time = default_time
        self.source = source
        self._seen_once: set[int] = set()
        self._repeats: dict[int, int] = {}
        """Occurrences of each row identity seen so far, keyed by 64 bits of its digest: a set
        for rows seen once (most), a dict for the repeated ones. A 64-bit collision between two
        different rows would only give one of them occurrence 2, still a distinct, stable id."""

    def __call__(
        self, number: int, record: object, *, events: bool = True
    ) -> dict[str, Any] | RowError:
        """``events``: whether a record with a ``type`` is an Arbiter event (JSON, not CSV)."""
        if not isinstance(record, dict):
            kind = type(record).__name__
            return RowError(number, "not_an_object", f"expected a JSON object, got {kind}")
        if events and "type" in record:
            if not self.events_file:
                return RowError(number, "mixed_file", _MIXED.format(_EVENT, "arena battle rows"))
            return record  # already an Arbiter event: published as it is
        if self.events_file:
            return RowError(number, "mixed_file", _MIXED.format(_ROW, "Arbiter events"))
        try:
            return self._battle(number, record)
        except RowProblem as problem:
            return RowError(number, problem.code, problem.message)

    def _battle(self, number: int, record: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in REQUIRED if record.get(name) in (None, "")]
        if missing:
            raise RowProblem(
                "missing_column",
                f"no {' or '.join(missing)}; an arena battle needs {', '.join(REQUIRED)}",
            )
        model_a = model(record["model_a"], "model_a")
        model_b = model(record["model_b"], "model_b")
        if model_a == model_b:
            raise RowProblem(
                "same_model", f"model_a and model_b are both {model_a!r}; a battle needs two"
            )
        winner = record["winner"]
        outcome = WINNERS.get(winner.strip().lower()) if isinstance(winner, str) else None
        if outcome is None:
            raise RowProblem(
                "bad_winner",
                f"winner {winner!r} is not one of model_a, model_b, tie, tie (bothbad)",
            )
        winner = winner.strip()
        occurred = tstamp(record.get("tstamp"))
        meta: dict[str, Any] = {"winner": winner}
        for column in ID_COLUMNS:
            if record.get(column) not in (None, ""):
                meta[column] = record[column]
                break
        for column in PERSON_COLUMNS:
            if record.get(column) not in (None, ""):
                meta[column] = record[column]
        return self.event(row_identity(record), occurred, model_a, model_b, outcome, meta)

    def event(
        self,
        pairs: list[tuple[str, str]],
        occurred: str | None,
        model_a: str,
        model_b: str,
        outcome: str,
        meta: dict[str, Any],
    ) -> dict[str, Any]:
        """The event of a checked row: ``pairs`` is its identity (:func:`row_identity`),
        ``occurred`` its ``tstamp`` (:func:`_tstamp`), ``meta`` what it keeps. Shared by the
        general path and the CSV fast lane (:mod:`.arena_csv`), so both spell events alike."""
        identity = hashlib.sha256(_encode([self.arena, self.category, pairs])).digest()
        digest = hashlib.sha256(
            identity + self._occurrence(identity).to_bytes(8, "big")
        ).hexdigest()[:32]
        event: dict[str, Any] = {
            "type": "battle.completed",
            "event_id": f"import:{digest}",
            "occurred_at": occurred or self.default_time,
        }
        if self.source is not None:
            event["source"] = self.source
        event["arena"] = self.arena
        if self.category is not None:
            event["category"] = self.category
        event.update(
            battle_id=f"import-battle:{digest}",
            a=model_a,
            b=model_b,
            outcome=outcome,
            judge=self.judge,
            meta=meta,
        )
        return event

    def _occurrence(self, identity: bytes) -> int:
        """1 for the first row with this identity in the file, 2 for the next, and so on."""
        key = int.from_bytes(identity[:8], "big")
        if key not in self._seen_once:
            self._seen_once.add(key)
            return 1
        count = self._repeats.get(key, 1) + 1
        self._repeats[key] = count
        return count


_MIXED = (
    "{} in a file of {}: events keep the file's order and arena rows are sorted by tstamp, so "
    "import each kind from a file of its own"
)
_EVENT = "an Arbiter event (it has a 'type' field)"
_ROW = "an arena battle row (it has no 'type' field)"


_RULES = Rules(checked_model, checked_tstamp, WINNERS, ID_COLUMNS, PERSON_COLUMNS, RowError)
"""The checks the CSV fast lane (:mod:`.arena_csv`) applies, the general converter's own."""
