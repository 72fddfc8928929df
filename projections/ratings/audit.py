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
from typing import Any

import msgspec
from psycopg import Cursor, sql

from ..copy import qualified
from .records import HISTORY_COLUMNS, HistoryRow
from .storage import ARENA_COLS, COMPETITOR_COLS, RATING_COLS

__all__ = [
    "MOD",
    "HistoryDigests",
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
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def compare(
    want: dict[str, dict[Any, tuple[Any, ...]]], got: dict[str, dict[Any, tuple[Any, ...]]]
) -> list[str]:
    """Name every row that differs: missing, extra, or which column and both values."""
    out: list[str] = []
    columns = {
        "ratings": ("rating", "games", "wins", "losses", "ties", "last_position", "last_at"),
        "competitors": ("name", "provider", "meta", "registered", "first_position",
                        "last_position"),
        "arenas": ("k", "initial", "scale", "base", "weights", "strict", "position"),
    }  # fmt: skip
    for table, names in columns.items():
        w, g = want.get(table, {}), got.get(table, {})
        for key in sorted(set(w) | set(g), key=repr):
            if key not in g:
                out.append(f"{table} {key!r}: missing from the read model")
            elif key not in w:
                out.append(f"{table} {key!r}: in the read model but not in the replay")
            elif w[key] != g[key]:
                for name, a, b in zip(names, w[key], g[key], strict=True):
                    if a != b:
                        out.append(f"{table} {key!r}.{name}: replay {a!r}, read model {b!r}")
    return out


def compare_history(want: HistoryDigests, got: HistoryDigests) -> list[str]:
    """Name every competitor whose replayed history differs from the stored one."""
    out: list[str] = []
    for competitor in sorted(set(want) | set(got)):
        w, g = want.get(competitor), got.get(competitor)
        if w != g:
            out.append(
                f"rating_history of {competitor!r}: replay has {w[0] if w else 0} rows, "
                f"store has {g[0] if g else 0}"
                + (" (same count, different content)" if w and g and w[0] == g[0] else "")
            )
    return out


def stored_rows(cur: Cursor[Any], schema: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """The stored counterpart of :meth:`RatingsFold.rows`."""
    out: dict[str, dict[Any, tuple[Any, ...]]] = {}
    cur.execute(sql.SQL(f"SELECT {RATING_COLS} FROM {{}}").format(qualified(schema, "ratings")))
    out["ratings"] = {(r[0], r[1], r[2]): tuple(r[3:]) for r in cur.fetchall()}
    cur.execute(
        sql.SQL(f"SELECT {COMPETITOR_COLS} FROM {{}}").format(qualified(schema, "competitors"))
    )
    out["competitors"] = {
        r[0]: (r[1], r[2], _JSON.encode(r[3]).decode(), *r[4:]) for r in cur.fetchall()
    }
    cur.execute(sql.SQL(f"SELECT {ARENA_COLS} FROM {{}}").format(qualified(schema, "arenas")))
    out["arenas"] = {r[0]: (*r[1:5], _JSON.encode(r[5]).decode(), *r[6:]) for r in cur.fetchall()}
    cur.execute(
        sql.SQL(
            "SELECT arena, category, x, y, x_wins, y_wins, ties FROM {} "
            "WHERE x_wins <> 0 OR y_wins <> 0 OR ties <> 0"
        ).format(qualified(schema, "pairs"))
    )
    out["pairs"] = {tuple(r[:4]): tuple(r[4:]) for r in cur.fetchall()}
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
