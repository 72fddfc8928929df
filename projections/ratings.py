"""The ratings read model: a pure fold of the log into Elo standings, plus the SQL that stores it.

:class:`RatingsFold` holds the whole state of the read model in memory (standings per arena,
category and competitor; arena settings; the registry) and applies events one at a time in log
order. It records what changed since the last :meth:`RatingsFold.take_changes`, so the projector
writes only dirty rows, and it emits one history row per rating change. The same fold runs in
the projector (incrementally, batch by batch), in a rebuild (from position 0) and in the audit
(in memory), which is what makes the three agree to the last bit.

Standings live in two pools per battle: the arena-wide pool (category ``""``) and, when the
battle names one, the category's pool. Each pool is rated independently from its own history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from arbiter.domain.elo import DEFAULT_SETTINGS, SCORES, ArenaSettings, pair_update
from arbiter.domain.events import ArenaConfigured, BattleCompleted, CompetitorRegistered, Event
from psycopg import Cursor, sql

NAME = "ratings"
_JSON = msgspec.json.Encoder(order="sorted")
OVERALL = ""
"""The category key of the arena-wide pool."""

PoolKey = tuple[str, str, str]
"""(arena, category, competitor)"""

HistoryRow = tuple[str, str, str, int, str, datetime, str, float, float, float, float, float]
"""(competitor, arena, category, position, event_id, occurred_at, opponent, score, expected, k,
rating_before, rating_after): one rating change, enough to re-derive it."""

HISTORY_COLUMNS = (
    "competitor", "arena", "category", "position", "event_id", "occurred_at", "opponent",
    "score", "expected", "k", "rating_before", "rating_after",
)  # fmt: skip
HISTORY_TYPES = (
    "text", "text", "text", "int8", "text", "timestamptz", "text",
    "float8", "float8", "float8", "float8", "float8",
)  # fmt: skip


class Standing(msgspec.Struct, gc=False):
    """One competitor in one pool."""

    rating: float
    games: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    last_position: int = 0
    last_at: datetime | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.rating, self.games, self.wins, self.losses, self.ties,
            self.last_position, self.last_at,
        )  # fmt: skip


class Competitor(msgspec.Struct, gc=False):
    """A registry entry: explicit (``competitor.registered``) or implicit (first seen)."""

    name: str | None = None
    provider: str | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    registered: bool = False
    first_position: int = 0
    last_position: int = 0

    def row(self) -> tuple[Any, ...]:
        return (
            self.name, self.provider, _JSON.encode(self.meta).decode(),
            self.registered, self.first_position, self.last_position,
        )  # fmt: skip


@dataclass
class Changes:
    """What a stretch of folding changed: keys of dirty rows and new history rows."""

    standings: set[PoolKey] = field(default_factory=set)
    competitors: set[str] = field(default_factory=set)
    arenas: set[str] = field(default_factory=set)
    history: list[HistoryRow] = field(default_factory=list)
    events: int = 0


class RatingsFold:
    """The ratings read model as a pure, incremental fold over ``(position, event)``."""

    def __init__(self) -> None:
        self.position = 0
        self.events = 0
        self.standings: dict[PoolKey, Standing] = {}
        self.competitors: dict[str, Competitor] = {}
        self.arenas: dict[str, tuple[ArenaSettings, int]] = {}
        self.changes = Changes()

    # -- folding -------------------------------------------------------------------------------

    def apply_all(self, events: Iterable[tuple[int, Event]]) -> None:
        """Apply events in order; positions must increase."""
        for position, event in events:
            self.apply(position, event)

    def apply(self, position: int, event: Event) -> None:
        """Apply one event at its log position."""
        if position <= self.position:
            raise ValueError(f"position {position} is not after {self.position}")
        if isinstance(event, BattleCompleted):
            self._battle(position, event)
        elif isinstance(event, CompetitorRegistered):
            self._registered(position, event)
        elif isinstance(event, ArenaConfigured):
            self._configured(position, event)
        self.position = position
        self.events += 1
        self.changes.events += 1

    def settings(self, arena: str) -> ArenaSettings:
        """The settings in force for an arena at the current position."""
        entry = self.arenas.get(arena)
        return DEFAULT_SETTINGS if entry is None else entry[0]

    def _configured(self, position: int, e: ArenaConfigured) -> None:
        new = self.settings(e.arena).patched(
            k=e.k, initial=e.initial, scale=e.scale, base=e.base, weights=e.weights, strict=e.strict
        )
        self.arenas[e.arena] = (new, position)
        self.changes.arenas.add(e.arena)

    def _registered(self, position: int, e: CompetitorRegistered) -> None:
        c = self.competitors.get(e.competitor)
        if c is None:
            c = self.competitors[e.competitor] = Competitor(first_position=position)
        c.name, c.provider, c.meta, c.registered = e.name, e.provider, dict(e.meta), True
        c.last_position = position
        self.changes.competitors.add(e.competitor)

    def _seen(self, position: int, competitor: str) -> None:
        if competitor not in self.competitors:
            self.competitors[competitor] = Competitor(
                first_position=position, last_position=position
            )
            self.changes.competitors.add(competitor)

    def _battle(self, position: int, e: BattleCompleted) -> None:
        self._seen(position, e.a)
        self._seen(position, e.b)
        if e.outcome is None:
            return
        settings = self.settings(e.arena)
        k = settings.k * settings.weight(e.judge)
        score_a = SCORES[e.outcome]
        pools = (OVERALL,) if e.category is None else (OVERALL, e.category)
        for category in pools:
            self._rate(position, e, category, score_a, k, settings)

    def _standing(self, key: PoolKey, settings: ArenaSettings) -> Standing:
        s = self.standings.get(key)
        if s is None:
            s = self.standings[key] = Standing(rating=settings.initial)
        return s

    def _rate(
        self,
        position: int,
        e: BattleCompleted,
        category: str,
        score_a: float,
        k: float,
        settings: ArenaSettings,
    ) -> None:
        key_a, key_b = (e.arena, category, e.a), (e.arena, category, e.b)
        sa, sb = self._standing(key_a, settings), self._standing(key_b, settings)
        before_a, before_b = sa.rating, sb.rating
        after_a, after_b, expected_a = pair_update(
            before_a, before_b, score_a, k, settings.scale, settings.base
        )
        for s, score, after in ((sa, score_a, after_a), (sb, 1.0 - score_a, after_b)):
            s.rating = after
            s.games += 1
            if score == 1.0:
                s.wins += 1
            elif score == 0.0:
                s.losses += 1
            else:
                s.ties += 1
            s.last_position = position
            s.last_at = e.occurred_at
        self.changes.standings.add(key_a)
        self.changes.standings.add(key_b)
        self.changes.history.append(
            (e.a, e.arena, category, position, e.event_id, e.occurred_at, e.b,
             score_a, expected_a, k, before_a, after_a)
        )  # fmt: skip
        self.changes.history.append(
            (e.b, e.arena, category, position, e.event_id, e.occurred_at, e.a,
             1.0 - score_a, 1.0 - expected_a, k, before_b, after_b)
        )  # fmt: skip

    def take_changes(self) -> Changes:
        """Hand over what changed since the last call and start a fresh record."""
        changes, self.changes = self.changes, Changes()
        return changes

    # -- comparison (audit) --------------------------------------------------------------------

    def rows(self) -> dict[str, dict[Any, tuple[Any, ...]]]:
        """Every stored row of the read model but history, keyed, for exact comparison."""
        return {
            "ratings": {k: s.row() for k, s in self.standings.items()},
            "competitors": {k: c.row() for k, c in self.competitors.items()},
            "arenas": {a: arena_row(s, p) for a, (s, p) in self.arenas.items()},
        }


def arena_row(s: ArenaSettings, position: int) -> tuple[Any, ...]:
    weights = _JSON.encode(s.weights).decode()
    return (s.k, s.initial, s.scale, s.base, weights, s.strict, position)


def history_hash(row: Iterable[Any]) -> int:
    """A row's 256-bit hash. Summed mod 2**256 per competitor, it digests a multiset of rows in
    constant memory and in any order, so the audit can compare millions of history rows."""
    text = "\x1f".join(
        v.astimezone(UTC).isoformat() if isinstance(v, datetime) else repr(v) for v in row
    ).encode()
    return int.from_bytes(hashlib.sha256(text).digest(), "big")


# -- storage ------------------------------------------------------------------------------------


def _q(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def load(cur: Cursor[Any], schema: str) -> RatingsFold:
    """Read the stored model back into a fold positioned where the store says it is."""
    fold = RatingsFold()
    cur.execute(sql.SQL("SELECT position, events FROM {}").format(_q(schema, "tracking")))
    row = cur.fetchone()
    if row is not None:
        fold.position, fold.events = int(row[0]), int(row[1])
    cur.execute(
        sql.SQL(
            "SELECT arena, category, competitor, rating, games, wins, losses, ties, "
            "last_position, last_at FROM {}"
        ).format(_q(schema, "ratings"))
    )
    for a, c, comp, *rest in cur.fetchall():
        fold.standings[(a, c, comp)] = Standing(*rest)
    cur.execute(
        sql.SQL(
            "SELECT competitor, name, provider, meta, registered, first_position, last_position "
            "FROM {}"
        ).format(_q(schema, "competitors"))
    )
    for comp, *rest in cur.fetchall():
        fold.competitors[comp] = Competitor(*rest)
    cur.execute(
        sql.SQL("SELECT arena, k, initial, scale, base, weights, strict, position FROM {}").format(
            _q(schema, "arenas")
        )
    )
    for arena, k, initial, scale, base, weights, strict, position in cur.fetchall():
        settings = ArenaSettings(k, initial, scale, base, dict(weights), strict)
        fold.arenas[arena] = (settings, int(position))
    fold.take_changes()
    return fold


def write(cur: Cursor[Any], schema: str, fold: RatingsFold, changes: Changes) -> None:
    """Store dirty rows, new history and the position, in the caller's transaction."""
    if changes.standings:
        keys = sorted(changes.standings)
        cols = list(zip(*(k + fold.standings[k].row() for k in keys), strict=True))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (arena, category, competitor, rating, games, wins, losses, ties, "
                "last_position, last_at) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::float8[], %s::int[], %s::int[], %s::int[], %s::int[], %s::int8[], "
                "%s::timestamptz[]) ON CONFLICT (arena, category, competitor) DO UPDATE SET "
                "rating = EXCLUDED.rating, games = EXCLUDED.games, wins = EXCLUDED.wins, "
                "losses = EXCLUDED.losses, ties = EXCLUDED.ties, "
                "last_position = EXCLUDED.last_position, last_at = EXCLUDED.last_at"
            ).format(_q(schema, "ratings")),
            [list(c) for c in cols],
        )
    if changes.competitors:
        keys_c = sorted(changes.competitors)
        cols = list(zip(*((k, *fold.competitors[k].row()) for k in keys_c), strict=True))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (competitor, name, provider, meta, registered, first_position, "
                "last_position) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::jsonb[], %s::bool[], %s::int8[], %s::int8[]) ON CONFLICT (competitor) DO "
                "UPDATE SET name = EXCLUDED.name, provider = EXCLUDED.provider, "
                "meta = EXCLUDED.meta, registered = EXCLUDED.registered, "
                "last_position = EXCLUDED.last_position"
            ).format(_q(schema, "competitors")),
            [list(c) for c in cols],
        )
    for arena in sorted(changes.arenas):
        settings, position = fold.arenas[arena]
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (arena, k, initial, scale, base, weights, strict, position) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (arena) DO UPDATE SET "
                "k = EXCLUDED.k, initial = EXCLUDED.initial, scale = EXCLUDED.scale, "
                "base = EXCLUDED.base, weights = EXCLUDED.weights, strict = EXCLUDED.strict, "
                "position = EXCLUDED.position"
            ).format(_q(schema, "arenas")),
            (arena, *arena_row(settings, position)),
        )
    copy_history(cur, schema, changes.history)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (projection, position, events, updated_at) VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position, "
            "events = EXCLUDED.events, updated_at = now()"
        ).format(_q(schema, "tracking")),
        (NAME, fold.position, fold.events),
    )


def copy_history(cur: Cursor[Any], schema: str, rows: list[HistoryRow]) -> None:
    """Bulk-append history rows with binary COPY: the fastest path PostgreSQL offers, and with
    the column types given up front psycopg packs rows in C (about 4x faster than text COPY,
    measured on 300k rows)."""
    if not rows:
        return
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _q(schema, "rating_history"), sql.SQL(", ").join(map(sql.Identifier, HISTORY_COLUMNS))
    )
    with cur.copy(stmt) as copy:
        copy.set_types(HISTORY_TYPES)
        for row in rows:
            copy.write_row(row)


def stored_rows(cur: Cursor[Any], schema: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """The stored counterpart of :meth:`RatingsFold.rows`."""
    out: dict[str, dict[Any, tuple[Any, ...]]] = {}
    cur.execute(
        sql.SQL(
            "SELECT arena, category, competitor, rating, games, wins, losses, ties, "
            "last_position, last_at FROM {}"
        ).format(_q(schema, "ratings"))
    )
    out["ratings"] = {(r[0], r[1], r[2]): tuple(r[3:]) for r in cur.fetchall()}
    cur.execute(
        sql.SQL(
            "SELECT competitor, name, provider, meta, registered, first_position, last_position "
            "FROM {}"
        ).format(_q(schema, "competitors"))
    )
    out["competitors"] = {
        r[0]: (r[1], r[2], _JSON.encode(r[3]).decode(), *r[4:]) for r in cur.fetchall()
    }
    cur.execute(
        sql.SQL("SELECT arena, k, initial, scale, base, weights, strict, position FROM {}").format(
            _q(schema, "arenas")
        )
    )
    out["arenas"] = {r[0]: (*r[1:5], _JSON.encode(r[5]).decode(), *r[6:]) for r in cur.fetchall()}
    return out


def stored_history(cur: Cursor[Any], schema: str, chunk: int = 50_000) -> Iterator[HistoryRow]:
    """Every stored history row, streamed with a server-side cursor."""
    cols = sql.SQL(", ").join(map(sql.Identifier, HISTORY_COLUMNS))
    with cur.connection.cursor(name="arbiter_history_scan") as named:
        named.itersize = chunk
        named.execute(sql.SQL("SELECT {} FROM {}").format(cols, _q(schema, "rating_history")))
        yield from named
