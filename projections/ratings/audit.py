"""What the audit compares for the ratings: the stored rows, the replayed rows, their digest.

Its own room because it is the ratings' side of ``arbiter audit verify``
(:mod:`arbiter.services.processes.audit` drives the replay): it reads the stored model back as
keyed rows (:func:`stored_rows`) and streams the stored history (:func:`stored_history`), digests
history rows as a per-competitor multiset (:func:`history_digests`: millions of rows compare in
constant memory, in any order), names every row that differs (:func:`compare`) and digests the
verified state (:func:`state_digest`: two deployments with the same log print the same digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from psycopg import Cursor, sql

from ..copy import qualified
from ..tables import Table, compare_tables, read_table
from .fold import Changes
from .records import HISTORY_COLUMNS, MATCH_COLUMNS, HistoryRow

__all__ = [
    "MOD",
    "TABLES",
    "HistoryDigests",
    "appended_rows",
    "compare",
    "compare_history",
    "history_digests",
    "history_hash",
    "state_digest",
    "stored_history",
    "stored_rows",
]

MOD = 2**256
_JSON = msgspec.json.Encoder(order="sorted")
HistoryDigests = dict[str, tuple[int, int]]
"""competitor -> (history rows, the sum of their :func:`history_hash` mod :data:`MOD`)"""


def history_hash(row: Iterable[Any]) -> int:
    """A row's 256-bit hash. Summed mod 2**256 per competitor, it digests a multiset of rows in
    constant memory and in any order, so the audit can compare millions of history rows."""
    text = "\x1f".join(
        v.astimezone(UTC).isoformat() if isinstance(v, datetime) else repr(v) for v in row
    ).encode()
    return int.from_bytes(hashlib.sha256(text).digest(), "big")


def history_digests(
    rows: Iterable[HistoryRow], into: HistoryDigests | None = None
) -> HistoryDigests:
    """Add history rows to per-competitor multiset digests (``into``, or fresh ones)."""
    out: HistoryDigests = {} if into is None else into
    for row in rows:
        count, total = out.get(row[0], (0, 0))
        out[row[0]] = (count + 1, (total + history_hash(row)) % MOD)
    return out


def state_digest(rows: dict[str, dict[Any, tuple[Any, ...]]], history: HistoryDigests) -> str:
    """SHA-256 over the sorted rows and the history digests: equal iff the states are equal."""
    h = hashlib.sha256()
    for table in sorted(rows):
        for key in sorted(rows[table]):
            h.update(_JSON.encode([table, key, [_plain(v) for v in rows[table][key]]]))
    for competitor in sorted(history):
        h.update(_JSON.encode(["history", competitor, list(history[competitor])]))
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """A value as the digest writes it: timestamps in UTC ISO form, exact sums as their
    shortest decimal digits (``1.50`` and ``1.5`` are one number), JSON as its value."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return value


TABLES = (
    Table("ratings", ("arena", "category", "competitor"), (
        "rating", "games", "wins", "losses", "ties", "last_position", "last_at")),
    Table("competitors", ("competitor",), (
        "name", "provider", "meta", "registered", "first_position", "last_position", "retired",
        "retired_reason")),
    Table("arenas", ("arena",), (
        "k", "initial", "scale", "base", "weights", "strict", "position", "bt_anchor",
        "bt_anchor_rating")),
    Table("pairs", ("arena", "category", "x", "y"), ("x_wins", "y_wins", "ties"),
          where="x_wins <> 0 OR y_wins <> 0 OR ties <> 0"),
    Table("arena_competitors", ("arena", "competitor"), (
        "registered", "registered_position", "first_position")),
    Table("arena_configs", ("arena", "position"), (
        "k", "initial", "scale", "base", "weights", "strict")),
    Table("matches", ("position",), MATCH_COLUMNS[1:]),
    Table("voids", ("position",), ("event_id", "target_event_id", "target_position", "reason")),
)  # fmt: skip
"""The ratings tables compared row by row (``rating_history`` is compared as digests, see
:func:`compare_history`). A pair whose counts are all 0 (every result between the two voided)
means nothing and is left out on both sides."""


def compare(
    want: dict[str, dict[Any, tuple[Any, ...]]], got: dict[str, dict[Any, tuple[Any, ...]]]
) -> list[str]:
    """Name every row that differs: missing, extra, or which column and both values."""
    return compare_tables("ratings.", TABLES, want, got)


def appended_rows(
    changes: Changes, into: dict[str, dict[Any, tuple[Any, ...]]]
) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Add a batch's append-only rows (``matches``, ``voids``) to replayed rows, keyed as
    :func:`stored_rows` keys them."""
    matches = into.setdefault("matches", {})
    for m in changes.matches:
        row = m.row()
        matches[row[0]] = row[1:]
    voids = into.setdefault("voids", {})
    for v in changes.voids:
        voids[v[0]] = tuple(v[1:])
    return into


def compare_history(want: HistoryDigests, got: HistoryDigests) -> list[str]:
    """Name every competitor whose replayed history differs from the stored one."""
    out: list[str] = []
    for competitor in sorted(set(want) | set(got)):
        w, g = want.get(competitor), got.get(competitor)
        if w != g:
            out.append(
                f"ratings.rating_history of {competitor!r}: replay has {w[0] if w else 0} rows, "
                f"store has {g[0] if g else 0}"
                + (" (same count, different content)" if w and g and w[0] == g[0] else "")
            )
    return out


def stored_rows(cur: Cursor[Any], schema: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """The stored counterpart of :meth:`RatingsFold.rows` and :func:`appended_rows`."""
    out = {table.name: read_table(cur, schema, table) for table in TABLES}
    out["competitors"] = {
        k: (r[0], r[1], _JSON.encode(r[2]).decode(), *r[3:]) for k, r in out["competitors"].items()
    }
    for name in ("arenas", "arena_configs"):
        out[name] = {k: (*r[:4], _JSON.encode(r[4]).decode(), *r[5:]) for k, r in out[name].items()}
    return out


def stored_history(cur: Cursor[Any], schema: str, chunk: int = 50_000) -> Iterator[HistoryRow]:
    """Every stored history row, streamed with a server-side cursor."""
    cols = sql.SQL(", ").join(map(sql.Identifier, HISTORY_COLUMNS))
    with cur.connection.cursor(name="arbiter_history_scan") as named:
        named.itersize = chunk
        named.execute(
            sql.SQL("SELECT {} FROM {}").format(cols, qualified(schema, "rating_history"))
        )
        yield from named
