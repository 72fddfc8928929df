"""The ratings fold: the log folded, purely and incrementally, into Elo standings; void replay.

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
  ``outcome`` null it is recorded and rates nothing until votes arrive, unless its arena has
  opted in to the auto-judge (``arena.configured`` ``auto_judge: true``) at that position and
  both metric sets suffice: then seed 000's composite decides it (:mod:`.judged`), with
  ``K x weights["auto"]``, and it counts as a battle with that outcome everywhere (Elo, pair
  counts and so Bradley-Terry, ``matches``). Votes on it rate as on any battle with an outcome.
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

Registry per arena. Besides the global registry (name, provider, meta, retirement), the fold
keeps each arena's members (:class:`Presence`: registered there by a ``competitor.registered``
whose ``arena`` is it, or seen in one of its results) and every ``arena.configured``'s settings
by position, so a board as of a past position knows the initial rating then in force.

Memory: every rated result stays in memory as a :class:`Match` (about 200 bytes), which a void
needs to replay its pool; about 200 MB per million results, in each of a sharded rebuild's two
processes.

This module does no I/O (the storage, :mod:`.storage`, reads and writes the tables); the arithmetic
inside one pool is :mod:`.pool`'s, the records it builds are :mod:`.records`'.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from arbiter.domain.elo import DEFAULT_SETTINGS, SCORES, ArenaSettings
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    BTAnchor,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    GameCompleted,
    ResultVoided,
    VoteCast,
)
from msgspec import structs

from .judged import auto_outcome
from .pool import Pool
from .records import (
    CHECKPOINT_EVERY,
    Competitor,
    HistoryRow,
    Match,
    PoolKey,
    Presence,
    Standing,
    StandingKey,
    arena_row,
)
from .shard import Forwarded, Shard

__all__ = ["Changes", "RatingsFold"]


@dataclass
class Changes:
    """What a stretch of folding changed: keys of dirty rows and new rows."""

    standings: set[StandingKey] = field(default_factory=set)
    removed: set[StandingKey] = field(default_factory=set)
    competitors: set[str] = field(default_factory=set)
    arenas: set[str] = field(default_factory=set)
    presence: set[tuple[str, str]] = field(default_factory=set)
    """(arena, competitor) of new or changed :class:`Presence` entries."""
    configs: list[tuple[Any, ...]] = field(default_factory=list)
    """New ``arena_configs`` rows: (arena, position, k, initial, scale, base, weights, strict)."""
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
        self.presence: dict[str, dict[str, Presence]] = {}
        """arena -> competitor -> its presence there (the registry per arena)."""
        self.configs: dict[tuple[str, int], tuple[Any, ...]] = {}
        """(arena, position) -> the settings each ``arena.configured`` put in force."""
        self.judged: set[str] = set()
        """Arenas whose auto-judge is on at the current position (see :mod:`.judged`)."""
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
        if isinstance(e.bt_anchor, BTAnchor):
            new = structs.replace(new, bt_anchor=(e.bt_anchor.competitor, e.bt_anchor.rating))
        elif e.bt_anchor == "mean":
            new = structs.replace(new, bt_anchor=None)
        self.arenas[e.arena] = (new, position)
        if e.auto_judge is not None:
            (self.judged.add if e.auto_judge else self.judged.discard)(e.arena)
        self.changes.arenas.add(e.arena)
        config = arena_row(new, position)[:6]
        self.configs[(e.arena, position)] = config
        self.changes.configs.append((e.arena, position, *config))

    def _registered(self, position: int, e: CompetitorRegistered) -> None:
        c = self.competitors.get(e.competitor)
        if c is None:
            c = self.competitors[e.competitor] = Competitor(first_position=position)
        c.name, c.provider, c.meta, c.registered = e.name, e.provider, dict(e.meta), True
        c.retired, c.retired_reason = False, None
        c.last_position = position
        self.changes.competitors.add(e.competitor)
        present = self.presence.setdefault(e.arena, {})
        p = present.get(e.competitor)
        if p is None:
            p = present[e.competitor] = Presence(first_position=position)
        if not p.registered:  # the first registration there: later ones change nothing here
            p.registered, p.registered_position = True, position
            self.changes.presence.add((e.arena, e.competitor))

    def _present(self, position: int, arena: str, competitors: Iterable[str]) -> None:
        """Competitors seen in a result of ``arena``: present there from now on."""
        present = self.presence.setdefault(arena, {})
        for c in competitors:
            if c not in present:
                present[c] = Presence(first_position=position)
                self.changes.presence.add((arena, c))

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
        present = self.presence.get(e.arena)
        if present is None or e.a not in present or e.b not in present:
            self._present(position, e.arena, (e.a, e.b))
        entry = self.arenas.get(e.arena)
        settings = DEFAULT_SETTINGS if entry is None else entry[0]
        score, judge = None if e.outcome is None else SCORES[e.outcome], e.judge
        if score is None and e.arena in self.judged:
            score = auto_outcome(e)
            judge = e.judge if score is None else "auto"
        m = Match(
            position, e.event_id, e.occurred_at, e.arena, e.category, "battle", e.battle_id,
            (e.a, e.b), None, score, settings.k * settings.weights.get(judge, 1.0),
            settings.scale, settings.base, settings.initial,
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
        self._present(position, e.arena, (p.competitor for p in e.participants))
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
                pool.maybe_checkpoint(index)
            pool.timeline.append(m)
            if m.ranks is None:
                pool.rate_pair(key, m, self.changes.history)
            else:
                pool.rate(key, m, self.changes.history)
            pool.count_pairs(m, 1)

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
                self.pools[key].count_pairs(m, -1)
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
                pool.maybe_checkpoint(i)
            m = pool.timeline[i]
            if m.live:
                pool.rate(key, m, None)
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
            "arena_competitors": {
                (a, c): p.row() for a, present in self.presence.items() for c, p in present.items()
            },
            "arena_configs": dict(self.configs),
            "pairs": {k: tuple(v) for k, v in self.pairs.items() if any(v)},
        }
