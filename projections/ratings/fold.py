"""The ratings read model: a pure fold of the log into Elo standings, plus the SQL that stores it.

:class:`RatingsFold` holds the state of the read model in memory (standings per arena, category
and competitor; pairwise counts; arena settings; the registry; every rated result in compact
form) and applies events one at a time in log order. It records what changed since the last
:meth:`RatingsFold.take_changes`, so the projector writes only dirty rows, and it emits one
history row per rating change. The same fold runs in the projector (incrementally, batch by
batch), in a rebuild (from position 0) and in the audit (in memory), which is what makes the
three agree to the last bit.

Pools. A result counts in the arena-wide pool (category ``""``) and, when it names one, in its
category's pool; each pool is rated independently from its own history.

What is rated, and with which K (all settings are those in force at the result's position):

* ``battle.completed`` with an outcome: one pairwise result, ``K x weights[judge]``. With
  ``outcome`` null it is recorded and rates nothing until votes arrive.
* ``vote.cast`` (pairwise): one result between the battle's ``a`` and ``b`` in the battle's
  arena and category, ``K x weights["human"]``. Score votes (1-5 on trials) rate nothing here.
* ``game.completed``: multi-player Elo (:func:`arbiter.domain.elo.game_update`),
  ``K x weights["auto"]`` (games are judged by their rules). Counters: a win for the only player
  on the best rank, a tie for players sharing it, a loss for everyone else.

Voids. ``result.voided`` marks its target dead (a voided battle takes its votes with it) and
replays each affected pool from the last checkpoint before the target, skipping dead results, so
every standing is what it would be had the result never happened. Checkpoints (a copy of the
pool's standings) are taken every :data:`CHECKPOINT_EVERY` results while folding; after a
restart there are none until a void replays the pool from its start and lays them down again.
The void stays visible: one history row of kind ``void`` per standing it changed.

Memory: every rated result stays in memory as a :class:`Match` (about 200 bytes), which a void
needs to replay its pool; about 200 MB per million results, in each of a sharded rebuild's two
processes.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from arbiter.domain.elo import (
    DEFAULT_SETTINGS,
    SCORES,
    ArenaSettings,
    game_update,
    rank_score,
)
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    GameCompleted,
    ResultVoided,
    VoteCast,
)
from psycopg import Cursor, sql

from .copy import copy_rows, qualified, upsert_rows

NAME = "ratings"
_JSON = msgspec.json.Encoder(order="sorted")
OVERALL = ""
"""The category key of the arena-wide pool."""
CHECKPOINT_EVERY = 1024
"""Results between two checkpoints of a pool (a void replays at most this many plus the tail)."""

PoolKey = tuple[str, str]
"""(arena, category)"""
StandingKey = tuple[str, str, str]
"""(arena, category, competitor)"""

HISTORY_COLUMNS = (
    "competitor", "arena", "category", "position", "event_id", "occurred_at", "kind",
    "opponent", "score", "expected", "k", "rating_before", "rating_after",
    "games", "wins", "losses", "ties",
)  # fmt: skip
HISTORY_TYPES = (
    "text", "text", "text", "int8", "text", "timestamptz", "text",
    "text", "float8", "float8", "float8", "float8", "float8",
    "int4", "int4", "int4", "int4",
)  # fmt: skip
HistoryRow = tuple[Any, ...]
"""One rating change, in :data:`HISTORY_COLUMNS` order: enough to re-derive it."""

MATCH_COLUMNS = (
    "position", "event_id", "occurred_at", "arena", "category", "kind", "battle_id",
    "players", "ranks", "score", "k", "scale", "base", "initial",
)  # fmt: skip
MATCH_TYPES = (
    "int8", "text", "timestamptz", "text", "text", "text", "text",
    "text", "text", "float8", "float8", "float8", "float8", "float8",
)  # fmt: skip
_DECODE_PLAYERS = msgspec.json.Decoder(tuple[str, ...])
_DECODE_RANKS = msgspec.json.Decoder(tuple[int, ...])


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

    def copy(self) -> Standing:
        return Standing(*self.row())


class Competitor(msgspec.Struct, gc=False):
    """A registry entry: explicit (``competitor.registered``) or implicit (first seen)."""

    name: str | None = None
    provider: str | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    registered: bool = False
    first_position: int = 0
    last_position: int = 0
    retired: bool = False
    retired_reason: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.name, self.provider, _JSON.encode(self.meta).decode(),
            self.registered, self.first_position, self.last_position,
            self.retired, self.retired_reason,
        )  # fmt: skip


class Match(msgspec.Struct, gc=False):
    """One result as the ratings see it, with the settings in force when it was folded."""

    position: int
    event_id: str
    occurred_at: datetime
    arena: str
    category: str | None
    kind: str
    """battle, vote or game"""
    battle_id: str | None
    players: tuple[str, ...]
    ranks: tuple[int, ...] | None
    """Games: each player's rank. None for pairwise results."""
    score: float | None
    """Pairwise: the score of ``players[0]``; None for a battle awaiting votes."""
    k: float
    scale: float
    base: float
    initial: float
    live: bool = True

    @property
    def rated(self) -> bool:
        return self.ranks is not None or self.score is not None

    def pools(self) -> tuple[PoolKey, ...]:
        if self.category is None:
            return ((self.arena, OVERALL),)
        return ((self.arena, OVERALL), (self.arena, self.category))

    def pairs(self) -> Iterator[tuple[str, str, float]]:
        """Every pair of players with the first one's score."""
        if self.ranks is None:
            assert self.score is not None
            yield self.players[0], self.players[1], self.score
            return
        n = len(self.players)
        for i in range(n):
            for j in range(i + 1, n):
                yield self.players[i], self.players[j], rank_score(self.ranks[i], self.ranks[j])

    def row(self) -> tuple[Any, ...]:
        return (
            self.position, self.event_id, self.occurred_at, self.arena, self.category,
            self.kind, self.battle_id, _JSON.encode(self.players).decode(),
            None if self.ranks is None else _JSON.encode(self.ranks).decode(), self.score,
            self.k, self.scale, self.base, self.initial,
        )  # fmt: skip


class Forwarded(msgspec.Struct, array_like=True):
    """What the arena-wide shard of a rebuild forwards to the category shard (see
    :meth:`RatingsFold.take_forwarded`); msgpack-encoded, it is all the category shard reads."""

    matches: list[Match]
    voids: list[tuple[int, ResultVoided]]


class Shard(msgspec.Struct, frozen=True):
    """Half of the pools, so that a rebuild can fold the log in two processes at once: the
    arena-wide pools (``categories`` False) or the category pools (True). Pools are rated
    independently of each other, so the two shards' rows together are exactly the rows of one
    fold over the whole log, and each half of the history has its own partition
    (``migrations/ratings/0004``), which its shard indexes as soon as it is done.

    The arena-wide shard reads the log, keeps the small global tables (competitors, arenas,
    voids, the position) and forwards every result to the category shard as the :class:`Match`
    it made (with the players, score and settings a rating needs), and every void of a result
    with a category (:class:`Forwarded`). The category shard reads nothing else (no log, no
    decoding, no registry) and stores the ``matches`` table, which evens out the two halves'
    work: the arena-wide pools see every result, the category pools only some.
    """

    categories: bool

    def owns(self, key: PoolKey) -> bool:
        return (key[1] != OVERALL) is self.categories

    @property
    def keeps_globals(self) -> bool:
        return not self.categories

    @property
    def partition(self) -> tuple[str, str]:
        """(table, partition): the partition of the history only this shard writes."""
        part = "rating_history_categories" if self.categories else "rating_history_overall"
        return "rating_history", part

    @staticmethod
    def worth_it(conn: Any, schema: str) -> bool:
        """Whether a second shard has anything to rate: the live model in ``schema`` has
        category pools, or holds no standings yet (or does not exist)."""
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


@dataclass
class Pool:
    """One rating pool: its members' standings and pair counts, what changed in them, its
    timeline of rated results and its checkpoints.

    Standings and pair counts live per pool, keyed by competitor (and by pair), not in one
    table keyed by (arena, category, competitor): the hot path of the fold then hashes strings,
    whose hashes are cached, instead of building and hashing a tuple per lookup.
    """

    standings: dict[str, Standing] = field(default_factory=dict)
    pairs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(x, y) with x < y -> [x wins, y wins, ties]"""
    dirty: set[str] = field(default_factory=set)
    """Members whose standing changed since :meth:`RatingsFold.take_changes`."""
    dirty_pairs: set[tuple[str, str]] = field(default_factory=set)
    timeline: list[Match] = field(default_factory=list)
    checkpoints: list[tuple[int, dict[str, Standing]]] = field(default_factory=list)
    """(timeline index i, the members' standings before timeline[i]), by increasing i."""
    last_checkpoint: int = 0
    """The index of the last checkpoint (0: none), kept in step with ``checkpoints``."""


@dataclass
class Changes:
    """What a stretch of folding changed: keys of dirty rows and new rows."""

    standings: set[StandingKey] = field(default_factory=set)
    removed: set[StandingKey] = field(default_factory=set)
    competitors: set[str] = field(default_factory=set)
    arenas: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str, str, str]] = field(default_factory=set)
    matches: list[Match] = field(default_factory=list)
    voids: list[tuple[int, str, str, int, str | None]] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    events: int = 0


class RatingsFold:
    """The ratings read model as a pure, incremental fold over ``(position, event)``."""

    def __init__(self, shard: Shard | None = None) -> None:
        self.shard = shard
        """Rate only this shard's pools (None: all of them); see :class:`Shard`."""
        self.keeps_globals = shard is None or shard.keeps_globals
        self._owns: dict[PoolKey, bool] = {}
        forwarding = shard is not None and shard.keeps_globals
        self.forwarded: Forwarded | None = Forwarded([], []) if forwarding else None
        """The arena-wide shard of a rebuild hands the category shard what it needs as it goes:
        every result (as the :class:`Match` it made) and every void of one with a category.
        See :meth:`take_forwarded` and :meth:`apply_forwarded`."""
        self.position = 0
        self.events = 0
        self.competitors: dict[str, Competitor] = {}
        self.arenas: dict[str, tuple[ArenaSettings, int]] = {}
        self.pools: dict[PoolKey, Pool] = {}
        self.by_event: dict[str, Match] = {}
        self.battles: dict[str, Match] = {}
        self.votes: dict[str, list[Match]] = {}
        """battle event_id -> the vote matches cast on it"""
        self.voids: list[tuple[int, str, str, int, str | None]] = []
        self.changes = Changes()

    @property
    def standings(self) -> dict[StandingKey, Standing]:
        """Every standing by (arena, category, competitor): a view built on each call."""
        pools = self.pools.items()
        return {(a, c, comp): s for (a, c), p in pools for comp, s in p.standings.items()}

    @property
    def pairs(self) -> dict[tuple[str, str, str, str], list[int]]:
        """Every pair count by (arena, category, x, y): a view built on each call."""
        pools = self.pools.items()
        return {(a, c, x, y): n for (a, c), p in pools for (x, y), n in p.pairs.items()}

    def pool(self, key: PoolKey) -> Pool:
        """The pool ``key``, created empty on first use."""
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool()
        return pool

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
        elif isinstance(event, VoteCast):
            self._vote(position, event)
        elif isinstance(event, GameCompleted):
            self._game(position, event)
        elif isinstance(event, ResultVoided):
            self._void(position, event)
        elif isinstance(event, CompetitorRegistered):
            self._registered(position, event)
        elif isinstance(event, CompetitorRetired):
            self._retired(position, event)
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
        c.retired, c.retired_reason = False, None
        c.last_position = position
        self.changes.competitors.add(e.competitor)

    def _retired(self, position: int, e: CompetitorRetired) -> None:
        c = self.competitors.get(e.competitor)
        if c is None:
            c = self.competitors[e.competitor] = Competitor(first_position=position)
        c.retired, c.retired_reason = True, e.reason
        c.last_position = position
        self.changes.competitors.add(e.competitor)

    def _seen(self, position: int, competitor: str) -> None:
        if competitor not in self.competitors:
            self.competitors[competitor] = Competitor(
                first_position=position, last_position=position
            )
            self.changes.competitors.add(competitor)

    def _match(
        self, position: int, e: Event, kind: str, players: tuple[str, ...], judge: str, **kw: Any
    ) -> Match:
        settings = self.settings(e.arena)
        return Match(
            position=position, event_id=e.event_id, occurred_at=e.occurred_at, arena=e.arena,
            category=e.category, kind=kind, players=players, k=settings.k * settings.weight(judge),
            scale=settings.scale, base=settings.base, initial=settings.initial, **kw,
        )  # fmt: skip

    def _battle(self, position: int, e: BattleCompleted) -> None:
        # Written out (no helper calls): battles are most of most logs.
        competitors = self.competitors
        if e.a not in competitors:
            self._seen(position, e.a)
        if e.b not in competitors:
            self._seen(position, e.b)
        entry = self.arenas.get(e.arena)
        settings = DEFAULT_SETTINGS if entry is None else entry[0]
        m = Match(
            position, e.event_id, e.occurred_at, e.arena, e.category, "battle", e.battle_id,
            (e.a, e.b), None, None if e.outcome is None else SCORES[e.outcome],
            settings.k * settings.weights.get(e.judge, 1.0), settings.scale, settings.base,
            settings.initial,
        )  # fmt: skip
        self.battles[e.battle_id] = m
        self._add(m)

    def _vote(self, position: int, e: VoteCast) -> None:
        if e.battle_id is None or e.choice is None:
            return
        battle = self.battles.get(e.battle_id)
        if battle is None or not battle.live:
            return
        settings = self.settings(battle.arena)
        m = Match(
            position=position, event_id=e.event_id, occurred_at=e.occurred_at,
            arena=battle.arena, category=battle.category, kind="vote", battle_id=e.battle_id,
            players=battle.players, ranks=None, score=SCORES[e.choice],
            k=settings.k * settings.weight("human"), scale=settings.scale, base=settings.base,
            initial=settings.initial,
        )  # fmt: skip
        self.votes.setdefault(battle.event_id, []).append(m)
        self._add(m)

    def _game(self, position: int, e: GameCompleted) -> None:
        for p in e.participants:
            self._seen(position, p.competitor)
        m = self._match(
            position, e, "game", tuple(p.competitor for p in e.participants), "auto",
            battle_id=None, ranks=tuple(p.rank for p in e.participants), score=None,
        )  # fmt: skip
        self._add(m)

    def owns(self, key: PoolKey) -> bool:
        """Whether this fold rates pool ``key`` (always, unless it is one shard of several)."""
        owned = self._owns.get(key)
        if owned is None:
            owned = self._owns[key] = self.shard is None or self.shard.owns(key)
        return owned

    def _add(self, m: Match) -> None:
        """A new result: remember it, and rate it in each of its pools."""
        self.by_event[m.event_id] = m
        keys = m.pools()
        if self.forwarded is not None:
            self.forwarded.matches.append(m)
        else:
            self.changes.matches.append(m)
        if m.ranks is None and m.score is None:
            return  # a battle awaiting votes
        pools = self.pools
        for key in keys:
            if self.shard is not None and not self.owns(key):
                continue
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = Pool()
            index = len(pool.timeline)
            if index - pool.last_checkpoint >= CHECKPOINT_EVERY:
                self._maybe_checkpoint(pool, index)
            pool.timeline.append(m)
            if m.ranks is None:
                self._rate_pair(key, pool, m, True)
            else:
                self._rate(key, pool, m, emit=True)
            self._count_pairs(pool, m, 1)

    def _count_pairs(self, pool: Pool, m: Match, sign: int) -> None:
        """Add (``sign`` 1) or take back (-1) a result's pairwise outcomes in one pool."""
        counts_of, dirty = pool.pairs, pool.dirty_pairs
        if m.ranks is None:  # the hot path: one pair
            x, y = pk = m.players
            score_x = m.score
            if y < x:
                pk, score_x = (y, x), 1.0 - score_x  # type: ignore[operator]
            counts = counts_of.get(pk)
            if counts is None:
                counts = counts_of[pk] = [0, 0, 0]
            counts[0 if score_x == 1.0 else 1 if score_x == 0.0 else 2] += sign
            dirty.add(pk)
            return
        for x, y, score_x in m.pairs():
            if y < x:
                x, y, score_x = y, x, 1.0 - score_x
            counts = counts_of.get((x, y))
            if counts is None:
                counts = counts_of[(x, y)] = [0, 0, 0]
            counts[0 if score_x == 1.0 else 1 if score_x == 0.0 else 2] += sign
            dirty.add((x, y))

    def _rate(self, key: PoolKey, pool: Pool, m: Match, *, emit: bool) -> None:
        """Apply one rated result to one pool's standings (and record history if ``emit``)."""
        if m.ranks is None:
            self._rate_pair(key, pool, m, emit)
            return
        arena, category = key
        members = pool.standings
        standings = []
        for c in m.players:
            s = members.get(c)
            if s is None:
                s = members[c] = Standing(rating=m.initial)
            standings.append(s)
        before = [s.rating for s in standings]
        after, scores, expected = game_update(before, list(m.ranks), m.k, m.scale, m.base)
        top = min(m.ranks)
        shared = m.ranks.count(top) > 1
        for i, s in enumerate(standings):
            s.rating = after[i]
            s.games += 1
            if m.ranks[i] != top:
                s.losses += 1
            elif shared:
                s.ties += 1
            else:
                s.wins += 1
            s.last_position = m.position
            s.last_at = m.occurred_at
        if not emit:
            return
        pool.dirty.update(m.players)
        for i, s in enumerate(standings):
            self.changes.history.append(
                (m.players[i], arena, category, m.position, m.event_id, m.occurred_at, m.kind,
                 None, scores[i], expected[i], m.k, before[i], after[i], s.games, s.wins,
                 s.losses, s.ties)
            )  # fmt: skip

    def _rate_pair(self, key: PoolKey, pool: Pool, m: Match, emit: bool) -> None:
        """The pairwise case of :meth:`_rate`, written out: it is the hot path. The update is
        :func:`arbiter.domain.elo.pair_update`'s, expression for expression, so the floats are
        the same to the last bit (``tests/test_elo.py`` checks the two against each other)."""
        a, b = m.players
        score = m.score
        assert score is not None
        members = pool.standings
        sa = members.get(a)
        if sa is None:
            sa = members[a] = Standing(rating=m.initial)
        sb = members.get(b)
        if sb is None:
            sb = members[b] = Standing(rating=m.initial)
        before_a, before_b = sa.rating, sb.rating
        try:
            expected_a = 1.0 / (1.0 + m.base ** ((before_b - before_a) / m.scale))
        except OverflowError:
            expected_a = 0.0
        delta = m.k * (score - expected_a)
        sa.rating = after_a = before_a + delta
        sb.rating = after_b = before_b - delta
        sa.games += 1
        sb.games += 1
        if score == 1.0:
            sa.wins += 1
            sb.losses += 1
        elif score == 0.0:
            sa.losses += 1
            sb.wins += 1
        else:
            sa.ties += 1
            sb.ties += 1
        sa.last_position = sb.last_position = m.position
        sa.last_at = sb.last_at = m.occurred_at
        if not emit:
            return
        dirty = pool.dirty
        dirty.add(a)
        dirty.add(b)
        arena, category = key
        history = self.changes.history
        history.append(
            (a, arena, category, m.position, m.event_id, m.occurred_at, m.kind, b, score,
             expected_a, m.k, before_a, after_a, sa.games, sa.wins, sa.losses, sa.ties)
        )  # fmt: skip
        history.append(
            (b, arena, category, m.position, m.event_id, m.occurred_at, m.kind, a, 1.0 - score,
             1.0 - expected_a, m.k, before_b, after_b, sb.games, sb.wins, sb.losses, sb.ties)
        )  # fmt: skip

    def _maybe_checkpoint(self, pool: Pool, index: int) -> None:
        every = max(CHECKPOINT_EVERY, 4 * len(pool.standings))
        if index - pool.last_checkpoint >= every:
            pool.checkpoints.append((index, {c: s.copy() for c, s in pool.standings.items()}))
            pool.last_checkpoint = index

    # -- voids ---------------------------------------------------------------------------------

    def _void(self, position: int, e: ResultVoided) -> None:
        target = self.by_event.get(e.target_event_id)
        if target is None or not target.live:
            return  # not a result the ratings know (a trial), or already dead
        victims = [target]
        if target.kind == "battle":
            victims += [v for v in self.votes.get(target.event_id, ()) if v.live]
        record = (position, e.event_id, e.target_event_id, target.position, e.reason)
        self.voids.append(record)
        if self.keeps_globals:
            self.changes.voids.append(record)
            if self.forwarded is not None and target.category is not None:
                self.forwarded.voids.append((position, e))
        first: dict[PoolKey, int] = {}
        for m in victims:
            m.live = False
            if not m.rated:
                continue
            for key in m.pools():
                if not self.owns(key):
                    continue
                self._count_pairs(self.pools[key], m, -1)
                first[key] = min(first.get(key, m.position), m.position)
        for key in sorted(first):
            self._replay(key, first[key], position, e)

    def _replay(self, key: PoolKey, from_position: int, position: int, e: ResultVoided) -> None:
        """Recompute a pool from the last checkpoint at or before ``from_position``."""
        arena, category = key
        pool = self.pools[key]
        index = bisect.bisect_left(pool.timeline, from_position, key=lambda m: m.position)
        old = {c: s.copy() for c, s in pool.standings.items()}
        while pool.checkpoints and pool.checkpoints[-1][0] > index:
            pool.checkpoints.pop()
        pool.last_checkpoint = pool.checkpoints[-1][0] if pool.checkpoints else 0
        start, snapshot = pool.checkpoints[-1] if pool.checkpoints else (0, {})
        pool.standings = {c: s.copy() for c, s in snapshot.items()}
        for i in range(start, len(pool.timeline)):
            if i > start:
                self._maybe_checkpoint(pool, i)
            m = pool.timeline[i]
            if m.live:
                self._rate(key, pool, m, emit=False)
        for c in sorted(set(old) | set(pool.standings)):
            sk = (arena, category, c)
            was, now = old.get(c), pool.standings.get(c)
            if now is None:
                self.changes.removed.add(sk)
                pool.dirty.discard(c)
            elif was is None or was.row() != now.row():
                pool.dirty.add(c)
                self.changes.removed.discard(sk)
            else:
                continue
            self.changes.history.append(
                (c, arena, category, position, e.event_id, e.occurred_at, "void", None, None,
                 None, None, None if was is None else was.rating,
                 None if now is None else now.rating,
                 *((now.games, now.wins, now.losses, now.ties) if now else (0, 0, 0, 0)))
            )  # fmt: skip

    def take_changes(self) -> Changes:
        """Hand over what changed since the last call and start a fresh record."""
        changes, self.changes = self.changes, Changes()
        for (arena, category), pool in self.pools.items():
            if pool.dirty:
                changes.standings.update((arena, category, c) for c in pool.dirty)
                pool.dirty = set()
            if pool.dirty_pairs:
                changes.pairs.update((arena, category, x, y) for x, y in pool.dirty_pairs)
                pool.dirty_pairs = set()
        return changes

    def take_appends(self) -> Changes:
        """Hand over only the new append-only rows (history, matches, voids), keeping the dirty
        keys of the tables that are updated in place for a later :meth:`take_changes`. A rebuild
        stores those once, at the end, instead of rewriting most rows every page."""
        now = self.changes
        appends = Changes(history=now.history, matches=now.matches, voids=now.voids)
        now.history, now.matches, now.voids = [], [], []
        return appends

    def remember(self, m: Match) -> None:
        """Index a battle or vote made elsewhere (stored, or forwarded), as folding it would:
        votes find their battle, and a void of a battle finds its votes."""
        if m.kind == "battle":
            assert m.battle_id is not None
            self.battles[m.battle_id] = m
        elif m.kind == "vote":
            assert m.battle_id is not None
            self.votes.setdefault(self.battles[m.battle_id].event_id, []).append(m)

    def take_forwarded(self) -> Forwarded:
        """Hand over what the category shard needs since the last call (arena-wide shard)."""
        assert self.forwarded is not None, "only the arena-wide shard of a rebuild forwards"
        out, self.forwarded = self.forwarded, Forwarded([], [])
        return out

    def apply_forwarded(self, batch: Forwarded) -> None:
        """Fold what the arena-wide shard forwarded (category shard): its results and voids,
        in log order. The matches carry the settings and players they were made with, so this
        shard needs neither the log nor the registry."""
        voids = iter(batch.voids)
        void = next(voids, None)
        for m in batch.matches:
            while void is not None and void[0] < m.position:
                self._void(*void)
                void = next(voids, None)
            m.live = True  # it was when it was made; a later void in the batch comes after
            self.remember(m)
            self._add(m)
            self.position = m.position
        while void is not None:
            self._void(*void)
            void = next(voids, None)
        if batch.voids:
            self.position = max(self.position, batch.voids[-1][0])

    # -- comparison (audit) --------------------------------------------------------------------

    def rows(self) -> dict[str, dict[Any, tuple[Any, ...]]]:
        """Every stored row of the read model but history and matches, keyed, for comparison."""
        return {
            "ratings": {k: s.row() for k, s in self.standings.items()},
            "competitors": {k: c.row() for k, c in self.competitors.items()},
            "arenas": {a: arena_row(s, p) for a, (s, p) in self.arenas.items()},
            "pairs": {k: tuple(v) for k, v in self.pairs.items() if any(v)},
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


RATING_COLUMNS = (
    "arena", "category", "competitor", "rating", "games", "wins", "losses", "ties",
    "last_position", "last_at",
)  # fmt: skip
RATING_TYPES = (
    "text", "text", "text", "float8", "int4", "int4", "int4", "int4", "int8", "timestamptz",
)  # fmt: skip
PAIR_COLUMNS = ("arena", "category", "x", "y", "x_wins", "y_wins", "ties")
PAIR_TYPES = ("text", "text", "text", "text", "int4", "int4", "int4")
_RATING_COLS = (
    "arena, category, competitor, rating, games, wins, losses, ties, last_position, last_at"
)
_COMPETITOR_COLS = (
    "competitor, name, provider, meta, registered, first_position, last_position, retired, "
    "retired_reason"
)
_ARENA_COLS = "arena, k, initial, scale, base, weights, strict, position"


def load(cur: Cursor[Any], schema: str) -> RatingsFold:
    """Read the stored model back into a fold positioned where the store says it is."""
    fold = RatingsFold()
    cur.execute(sql.SQL("SELECT position, events FROM {}").format(qualified(schema, "tracking")))
    row = cur.fetchone()
    if row is not None:
        fold.position, fold.events = int(row[0]), int(row[1])
    cur.execute(sql.SQL(f"SELECT {_RATING_COLS} FROM {{}}").format(qualified(schema, "ratings")))
    for a, c, comp, *rest in cur.fetchall():
        fold.pool((a, c)).standings[comp] = Standing(*rest)
    cur.execute(
        sql.SQL(f"SELECT {_COMPETITOR_COLS} FROM {{}}").format(qualified(schema, "competitors"))
    )
    for comp, *rest in cur.fetchall():
        fold.competitors[comp] = Competitor(*rest)
    cur.execute(sql.SQL(f"SELECT {_ARENA_COLS} FROM {{}}").format(qualified(schema, "arenas")))
    for arena, k, initial, scale, base, weights, strict, position in cur.fetchall():
        settings = ArenaSettings(k, initial, scale, base, dict(weights), strict)
        fold.arenas[arena] = (settings, int(position))
    cur.execute(
        sql.SQL("SELECT arena, category, x, y, x_wins, y_wins, ties FROM {}").format(
            qualified(schema, "pairs")
        )
    )
    for arena, category, x, y, *counts in cur.fetchall():
        fold.pool((arena, category)).pairs[(x, y)] = list(counts)
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
    thread can store them while the fold goes on (see :func:`arbiter.services.rebuild`)."""

    removed: list[StandingKey]
    standings: list[tuple[Any, ...]]
    competitors: list[tuple[Any, ...]]
    arenas: list[tuple[Any, ...]]
    pairs: list[tuple[Any, ...]]
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
                f"INSERT INTO {{}} ({_COMPETITOR_COLS}) SELECT * FROM unnest(%s::text[], "
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
                f"INSERT INTO {{}} ({_ARENA_COLS}) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (arena) DO UPDATE SET "
                "k = EXCLUDED.k, initial = EXCLUDED.initial, scale = EXCLUDED.scale, "
                "base = EXCLUDED.base, weights = EXCLUDED.weights, strict = EXCLUDED.strict, "
                "position = EXCLUDED.position"
            ).format(qualified(schema, "arenas")),
            arena,
        )
    if rows.pairs:
        upsert_rows(cur, schema, "pairs", PAIR_COLUMNS, PAIR_TYPES, 4, rows.pairs)
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
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (projection, position, events, updated_at) VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position, "
            "events = EXCLUDED.events, updated_at = now()"
        ).format(qualified(schema, "tracking")),
        (NAME, rows.position, rows.events),
    )


def stored_rows(cur: Cursor[Any], schema: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """The stored counterpart of :meth:`RatingsFold.rows`."""
    out: dict[str, dict[Any, tuple[Any, ...]]] = {}
    cur.execute(sql.SQL(f"SELECT {_RATING_COLS} FROM {{}}").format(qualified(schema, "ratings")))
    out["ratings"] = {(r[0], r[1], r[2]): tuple(r[3:]) for r in cur.fetchall()}
    cur.execute(
        sql.SQL(f"SELECT {_COMPETITOR_COLS} FROM {{}}").format(qualified(schema, "competitors"))
    )
    out["competitors"] = {
        r[0]: (r[1], r[2], _JSON.encode(r[3]).decode(), *r[4:]) for r in cur.fetchall()
    }
    cur.execute(sql.SQL(f"SELECT {_ARENA_COLS} FROM {{}}").format(qualified(schema, "arenas")))
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
