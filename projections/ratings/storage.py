"""The ratings read model's SQL: load a fold back from its tables, and store what it changed.

Its own room because it is the only part of the package that talks to PostgreSQL: the fold
(:mod:`.fold`) is pure and hands over its changes; :func:`prepare` copies them out as plain
:class:`Rows` (cheap, so a rebuild's writer thread can store them while the fold goes on) and
:func:`store` writes them with binary COPY and upserts (:mod:`arbiter.projections.copy`), the
position last (:mod:`arbiter.projections.tracking`), all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from arbiter.domain.elo import ArenaSettings
from psycopg import Cursor, sql

from .. import tracking
from ..copy import copy_rows, qualified, upsert_rows
from .fold import Changes, RatingsFold
from .judged import restore
from .records import (
    HISTORY_COLUMNS,
    HISTORY_TYPES,
    MATCH_COLUMNS,
    MATCH_TYPES,
    NAME,
    Competitor,
    HistoryRow,
    Match,
    Presence,
    Standing,
    StandingKey,
    arena_row,
)

__all__ = [
    "ARENA_COLS",
    "COMPETITOR_COLS",
    "CONFIG_COLS",
    "PAIR_COLUMNS",
    "PAIR_TYPES",
    "PRESENCE_COLUMNS",
    "PRESENCE_TYPES",
    "RATING_COLS",
    "RATING_COLUMNS",
    "RATING_TYPES",
    "Rows",
    "load",
    "prepare",
    "store",
    "worth_sharding",
    "write",
]

_DECODE_PLAYERS = msgspec.json.Decoder(tuple[str, ...])
_DECODE_RANKS = msgspec.json.Decoder(tuple[int, ...])


RATING_COLUMNS = (
    "arena", "category", "competitor", "rating", "games", "wins", "losses", "ties",
    "last_position", "last_at",
)  # fmt: skip
RATING_TYPES = (
    "text", "text", "text", "float8", "int4", "int4", "int4", "int4", "int8", "timestamptz",
)  # fmt: skip
PAIR_COLUMNS = ("arena", "category", "x", "y", "x_wins", "y_wins", "ties")
PAIR_TYPES = ("text", "text", "text", "text", "int4", "int4", "int4")
RATING_COLS = (
    "arena, category, competitor, rating, games, wins, losses, ties, last_position, last_at"
)
COMPETITOR_COLS = (
    "competitor, name, provider, meta, registered, first_position, last_position, retired, "
    "retired_reason"
)
ARENA_COLS = (
    "arena, k, initial, scale, base, weights, strict, position, bt_anchor, bt_anchor_rating"
)
PRESENCE_COLUMNS = ("arena", "competitor", "registered", "registered_position", "first_position")
PRESENCE_TYPES = ("text", "text", "bool", "int8", "int8")
CONFIG_COLS = "arena, position, k, initial, scale, base, weights, strict"


def load(cur: Cursor[Any], schema: str) -> RatingsFold:
    """Read the stored model back into a fold positioned where the store says it is."""
    fold = RatingsFold()
    stored = tracking.read(cur, schema, NAME)
    if stored is not None:
        fold.position, fold.events = stored
    cur.execute(sql.SQL(f"SELECT {RATING_COLS} FROM {{}}").format(qualified(schema, "ratings")))
    for a, c, comp, *rest in cur.fetchall():
        fold.pool((a, c)).standings[comp] = Standing(*rest)
    cur.execute(
        sql.SQL(f"SELECT {COMPETITOR_COLS} FROM {{}}").format(qualified(schema, "competitors"))
    )
    for comp, *rest in cur.fetchall():
        fold.competitors[comp] = Competitor(*rest)
    cur.execute(sql.SQL(f"SELECT {ARENA_COLS} FROM {{}}").format(qualified(schema, "arenas")))
    for arena, k, initial, scale, base, weights, strict, position, *anchor in cur.fetchall():
        bt_anchor = None if anchor[0] is None else (anchor[0], anchor[1])
        settings = ArenaSettings(k, initial, scale, base, dict(weights), strict, bt_anchor)
        fold.arenas[arena] = (settings, int(position))
    fold.judged = restore(cur, schema, sorted(fold.arenas), fold.position)
    cur.execute(
        sql.SQL("SELECT arena, category, x, y, x_wins, y_wins, ties FROM {}").format(
            qualified(schema, "pairs")
        )
    )
    for arena, category, x, y, *counts in cur.fetchall():
        fold.pool((arena, category)).pairs[(x, y)] = list(counts)
    cur.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, PRESENCE_COLUMNS)),
            qualified(schema, "arena_competitors"),
        )
    )
    for arena, comp, registered, registered_position, first in cur.fetchall():
        fold.presence.setdefault(arena, {})[comp] = Presence(first, registered, registered_position)
    cur.execute(
        sql.SQL(f"SELECT {CONFIG_COLS} FROM {{}}").format(qualified(schema, "arena_configs"))
    )
    for arena, position, k, initial, scale, base, weights, strict in cur.fetchall():
        settings = ArenaSettings(k, initial, scale, base, dict(weights), strict)
        fold.configs[(arena, int(position))] = arena_row(settings, position)[:6]
    cols = sql.SQL(", ").join(map(sql.Identifier, MATCH_COLUMNS))
    cur.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY position").format(cols, qualified(schema, "matches"))
    )
    for r in cur:
        m = Match(
            position=r[0], event_id=r[1], occurred_at=r[2], arena=r[3], category=r[4], kind=r[5],
            battle_id=r[6], players=_DECODE_PLAYERS.decode(r[7]),
            ranks=None if r[8] is None else _DECODE_RANKS.decode(r[8]),
            score=r[9], k=r[10], scale=r[11], base=r[12], initial=r[13],
        )  # fmt: skip
        fold.by_event[m.event_id] = m
        fold.remember(m)
        if m.rated:
            for key in m.pools():
                fold.pool(key).timeline.append(m)
    cur.execute(
        sql.SQL(
            "SELECT position, event_id, target_event_id, target_position, reason FROM {} "
            "ORDER BY position"
        ).format(qualified(schema, "voids"))
    )
    for record in cur.fetchall():
        fold.voids.append(tuple(record))  # type: ignore[arg-type]
        target = fold.by_event[record[2]]
        target.live = False
        if target.kind == "battle":
            for v in fold.votes.get(target.event_id, ()):
                if v.position < record[0]:
                    v.live = False
    fold.take_changes()
    return fold


@dataclass
class Rows:
    """What one write stores, as plain rows: taken from the fold at one moment, so a writer
    thread can store them while the fold goes on (see :mod:`arbiter.services.processes.rebuild`)."""

    removed: list[StandingKey]
    standings: list[tuple[Any, ...]]
    competitors: list[tuple[Any, ...]]
    arenas: list[tuple[Any, ...]]
    pairs: list[tuple[Any, ...]]
    presence: list[tuple[Any, ...]]
    configs: list[tuple[Any, ...]]
    voids: list[tuple[int, str, str, int, str | None]]
    matches: list[tuple[Any, ...]]
    history: list[HistoryRow]
    position: int
    events: int
    globals: bool = True
    """Whether these rows carry the global tables and the position (see :class:`Shard`)."""


def prepare(fold: RatingsFold, changes: Changes) -> Rows:
    """The rows a batch of changes stores, copied out of the fold. A shard other than the
    first leaves out the global tables and the position, which the first one stores."""
    globals_ = fold.keeps_globals
    return Rows(
        removed=sorted(changes.removed),
        standings=[k + fold.pools[k[:2]].standings[k[2]].row() for k in sorted(changes.standings)],
        competitors=[(k, *fold.competitors[k].row()) for k in sorted(changes.competitors)]
        if globals_
        else [],
        arenas=[(a, *arena_row(*fold.arenas[a])) for a in sorted(changes.arenas)]
        if globals_
        else [],
        pairs=[k + tuple(fold.pools[k[:2]].pairs[k[2:]]) for k in sorted(changes.pairs)],
        presence=[(a, c, *fold.presence[a][c].row()) for a, c in sorted(changes.presence)]
        if globals_
        else [],
        configs=changes.configs if globals_ else [],
        voids=changes.voids,
        matches=[m.row() for m in changes.matches],
        history=changes.history,
        position=fold.position,
        events=fold.events,
        globals=globals_,
    )


def write(cur: Cursor[Any], schema: str, fold: RatingsFold, changes: Changes) -> None:
    """Store dirty rows, new history and the position, in the caller's transaction."""
    store(cur, schema, prepare(fold, changes))


def store(cur: Cursor[Any], schema: str, rows: Rows) -> None:
    """Store prepared rows in the caller's transaction."""
    if rows.removed:
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE (arena, category, competitor) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
            ).format(qualified(schema, "ratings")),
            [list(c) for c in zip(*rows.removed, strict=True)],
        )
    if rows.standings:
        upsert_rows(cur, schema, "ratings", RATING_COLUMNS, RATING_TYPES, 3, rows.standings)
    if rows.competitors:
        cur.execute(
            sql.SQL(
                f"INSERT INTO {{}} ({COMPETITOR_COLS}) SELECT * FROM unnest(%s::text[], "
                "%s::text[], %s::text[], %s::jsonb[], %s::bool[], %s::int8[], %s::int8[], "
                "%s::bool[], %s::text[]) ON CONFLICT (competitor) DO "
                "UPDATE SET name = EXCLUDED.name, provider = EXCLUDED.provider, "
                "meta = EXCLUDED.meta, registered = EXCLUDED.registered, "
                "last_position = EXCLUDED.last_position, retired = EXCLUDED.retired, "
                "retired_reason = EXCLUDED.retired_reason"
            ).format(qualified(schema, "competitors")),
            [list(c) for c in zip(*rows.competitors, strict=True)],
        )
    for arena in rows.arenas:
        cur.execute(
            sql.SQL(
                f"INSERT INTO {{}} ({ARENA_COLS}) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s) "
                "ON CONFLICT (arena) DO UPDATE SET "
                "k = EXCLUDED.k, initial = EXCLUDED.initial, scale = EXCLUDED.scale, "
                "base = EXCLUDED.base, weights = EXCLUDED.weights, strict = EXCLUDED.strict, "
                "position = EXCLUDED.position, bt_anchor = EXCLUDED.bt_anchor, "
                "bt_anchor_rating = EXCLUDED.bt_anchor_rating"
            ).format(qualified(schema, "arenas")),
            arena,
        )
    if rows.pairs:
        upsert_rows(cur, schema, "pairs", PAIR_COLUMNS, PAIR_TYPES, 4, rows.pairs)
    if rows.presence:
        upsert_rows(
            cur, schema, "arena_competitors", PRESENCE_COLUMNS, PRESENCE_TYPES, 2, rows.presence
        )
    if rows.configs:
        cur.executemany(
            sql.SQL(
                f"INSERT INTO {{}} ({CONFIG_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
            ).format(qualified(schema, "arena_configs")),
            rows.configs,
        )
    if rows.voids:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (position, event_id, target_event_id, target_position, reason) "
                "VALUES (%s, %s, %s, %s, %s)"
            ).format(qualified(schema, "voids")),
            rows.voids,
        )
    copy_rows(cur, schema, "matches", MATCH_COLUMNS, MATCH_TYPES, rows.matches)
    copy_rows(cur, schema, "rating_history", HISTORY_COLUMNS, HISTORY_TYPES, rows.history)
    if not rows.globals:
        return
    tracking.write(cur, schema, NAME, rows.position, rows.events)


def worth_sharding(conn: Any, schema: str) -> bool:
    """Whether a second shard (:class:`.shard.Shard`) has anything to rate: the live model in
    ``schema`` has category pools, or holds no standings yet (or does not exist)."""
    ratings = sql.Identifier(schema, "ratings")
    if conn.execute("SELECT to_regclass(%s)", (f"{schema}.ratings",)).fetchone() == (None,):
        return True
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) = 0 OR bool_or(category <> '') "
            "FROM (SELECT category FROM {} LIMIT 100000) r"
        ).format(ratings)
    ).fetchone()
    return bool(row and row[0])
