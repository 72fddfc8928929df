"""One rating pool and the arithmetic that rates a result in it.

A pool is an (arena, category): its members' standings and pair counts are rated only from its
own results. The fold (:mod:`.fold`) decides which pools a result lands in and when a void
replays one; this module holds what happens inside one pool: the Elo update (the pairwise one
written out, it is the hot path), the pair counts, and the checkpoints a void replays from.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arbiter.domain.elo import game_update

from .records import CHECKPOINT_EVERY, HistoryRow, Match, PoolKey, Standing

__all__ = ["Pool"]


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

    def count_pairs(self, m: Match, sign: int) -> None:
        """Add (``sign`` 1) or take back (-1) a result's pairwise outcomes in this pool."""
        counts_of, dirty = self.pairs, self.dirty_pairs
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

    def rate(self, key: PoolKey, m: Match, history: list[HistoryRow] | None) -> None:
        """Apply one rated result to this pool's standings, and append its history rows to
        ``history`` (None: a void's replay, which records its own rows)."""
        if m.ranks is None:
            self.rate_pair(key, m, history)
            return
        arena, category = key
        members = self.standings
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
        if history is None:
            return
        self.dirty.update(m.players)
        for i, s in enumerate(standings):
            history.append(
                (m.players[i], arena, category, m.position, m.event_id, m.occurred_at, m.kind,
                 None, scores[i], expected[i], m.k, before[i], after[i], s.games, s.wins,
                 s.losses, s.ties)
            )  # fmt: skip

    def rate_pair(self, key: PoolKey, m: Match, history: list[HistoryRow] | None) -> None:
        """The pairwise case of :meth:`rate`, written out: it is the hot path. The update is
        :func:`arbiter.domain.elo.pair_update`'s, expression for expression, so the floats are
        the same to the last bit (``tests/test_elo.py`` checks the two against each other)."""
        a, b = m.players
        score = m.score
        assert score is not None
        members = self.standings
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
        if history is None:
            return
        dirty = self.dirty
        dirty.add(a)
        dirty.add(b)
        arena, category = key
        history.append(
            (a, arena, category, m.position, m.event_id, m.occurred_at, m.kind, b, score,
             expected_a, m.k, before_a, after_a, sa.games, sa.wins, sa.losses, sa.ties)
        )  # fmt: skip
        history.append(
            (b, arena, category, m.position, m.event_id, m.occurred_at, m.kind, a, 1.0 - score,
             1.0 - expected_a, m.k, before_b, after_b, sb.games, sb.wins, sb.losses, sb.ties)
        )  # fmt: skip

    def maybe_checkpoint(self, index: int) -> None:
        """Copy the standings before ``timeline[index]`` if the last copy is far enough back
        (at least :data:`CHECKPOINT_EVERY` results, and four per member)."""
        every = max(CHECKPOINT_EVERY, 4 * len(self.standings))
        if index - self.last_checkpoint >= every:
            self.checkpoints.append((index, {c: s.copy() for c, s in self.standings.items()}))
            self.last_checkpoint = index
