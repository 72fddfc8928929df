"""Registry status, placement matchmaking and the most informative pair. Pure: no I/O.

Seed 003 (the LLM Snake arena) evaluates a new model with a 10-game placement: it "starts at the
median ELO and moves up or down by results", preferring opponents it has not met yet, with jumps
that shrink as the games go by ("early games make large jumps, late games fine-tune"). Its
registry tags every model untested / testing / ranked / retired. This module states those rules
as functions of the facts the read models already hold (ratings, results, counts), so the API,
the CLI and the tests all ask the same code and a replay of the log gives the same proposals.

What counts as a placement result: every rated result of the competitor in the pool, in log
order, the first :data:`PLACEMENT_GAMES` of them (a voided one is out): a battle, a pairwise vote,
and a game (``game.completed``), as seed 003's placement is ten *games*. A game is one result
(one game, one step of the walk, as it is one game in the registry's count), scored by the ranks:
see :func:`game_result`. Any game of the competitor counts, whether or not its opponent was the
one proposed, exactly as a battle does: the proposal is advice derived from the current ratings,
not a fact in the log, so checking a game against it would make a result count or not depending
on when one asks.

Two questions are answered:

* :func:`next_opponent`: whom should a competitor in placement play next?
* :func:`most_informative_pair`: with no competitor named, which game would teach the
  leaderboard the most?
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from msgspec import Struct

from .elo import expected_score, rank_score

__all__ = [
    "FIRST_STEP_FRACTION",
    "PLACEMENT_GAMES",
    "PRIOR_GAMES",
    "STATUSES",
    "Proposal",
    "game_result",
    "most_informative_pair",
    "next_opponent",
    "placement_target",
    "registry_status",
]


PLACEMENT_GAMES = 10
"""Rated results after which a competitor leaves ``testing`` and is ``ranked`` (seed 003)."""

FIRST_STEP_FRACTION = 0.25
"""First jump of the placement walk, as a fraction of the ladder (a quarter: median to quartile).

Each later result halves the jump, down to one rung. With 60 opponents that is 15, 7.5, 3.75,
1.9 then 1 rung: five straight wins take a competitor from the median to the top of the ladder by
its sixth game, which is what the seed's own schedule of jumps was tuned for.
"""

PRIOR_GAMES = 1.0
"""What the prior on a rating is worth, in even games, for :func:`most_informative_pair`.

One even game carries a Fisher information of 1/4 (logit units); a prior worth one such game is a
standard deviation of 2 logits, about 350 Elo points: "somewhere on the usual leaderboard".
"""

STATUSES = ("untested", "testing", "ranked", "retired")


class Proposal(Struct, frozen=True, kw_only=True):
    """A proposed game between ``competitor`` and ``opponent``, with the reason for it.

    For :func:`most_informative_pair` ``competitor`` and ``opponent`` are simply the two sides
    (the lower id first). Ratings are Elo points; ``information`` is the expected reduction of the
    leaderboard's total rating variance in Elo points squared (pair proposals only).
    """

    competitor: str
    opponent: str
    opponent_rating: float
    competitor_rating: float | None = None
    win_probability: float | None = None
    """Elo expected score of ``competitor`` against ``opponent``, where both are rated."""
    target_rating: float | None = None
    """Where the placement walk aims (placement proposals only)."""
    placement_game: int | None = None
    """1-based number of the game proposed within placement (placement proposals only)."""
    information: float | None = None
    reason: str


def registry_status(rated_results: int, retired: bool) -> str:
    """The seed registry's status of a competitor in one arena.

    ``retired`` wins over everything (a retired competitor takes no new results, whatever its
    record). Otherwise: no rated result yet is ``untested``; from the first until
    :data:`PLACEMENT_GAMES` rated results it is ``testing`` (in placement, its rating still
    moving fast and not yet comparable); from then on ``ranked``.
    """
    if rated_results < 0:
        raise ValueError(f"rated_results must be >= 0, got {rated_results}")
    if retired:
        return "retired"
    if rated_results == 0:
        return "untested"
    if rated_results < PLACEMENT_GAMES:
        return "testing"
    return "ranked"


def game_result(competitor: str, players: Sequence[str], ranks: Sequence[int]) -> tuple[str, float]:
    """One game as a placement result of ``competitor``: ``(opponent, score)``.

    Two players: the other one, and 1, 0.5 or 0 as ``competitor`` finished ahead, level or behind
    (rank 1 is best). More players: the score is the mean of its pairwise scores by rank (the
    share of the others it finished ahead of, a level one counting half), so the walk moves by
    the same ``2s - 1`` rule; the opponent is the other player nearest to it in rank (it is the
    one the game measured it against most closely: the runner-up for the winner, the one just
    above for the last), a tie of distance going to the better-ranked, then to the smaller id.
    """
    if len(players) != len(ranks) or competitor not in players or len(players) < 2:
        raise ValueError(f"{competitor!r} is not one of two or more players of this game")
    own = ranks[players.index(competitor)]
    others = [(rank, player) for player, rank in zip(players, ranks, strict=True)]
    others = [(rank, player) for rank, player in others if player != competitor]
    score = sum(rank_score(own, rank) for rank, _ in others) / len(others)
    _, opponent = min((abs(rank - own), rank, player) for rank, player in others)[1:]
    return opponent, score


def placement_target(
    ladder: Sequence[float], placement_results: Sequence[tuple[str, float]]
) -> tuple[float, float]:
    """Replay the placement walk: ``(target rating, position on the ladder)``.

    ``ladder`` holds the opponents' ratings in ascending order. The walk runs in rank space, not
    in rating space, because ratings bunch up (a few strong models far above a dense middle) and a
    step in points would skip the crowd or crawl through it; the seed sized its jumps as a share
    of the rankings for the same reason. It is a noisy binary search (a stochastic approximation
    with halving steps): start at the median position, move up a step after a win and down after
    a loss (a result of score ``s`` moves ``(2s - 1)`` steps, so a tie stays), then halve the
    step, never below one rung so that late games still fine-tune and an early fluke can be
    walked back. The target rating interpolates the ladder at that position, so before any
    result it is exactly the median rating.
    """
    n = len(ladder)
    if n == 0:
        raise ValueError("the ladder is empty")
    position = (n - 1) / 2
    step = n * FIRST_STEP_FRACTION
    floor = min(1.0, step)
    for opponent, score in placement_results:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score against {opponent!r} must be in [0, 1], got {score}")
        position = min(max(position + (2.0 * score - 1.0) * step, 0.0), n - 1.0)
        step = max(step / 2.0, floor)
    target = float(np.interp(position, np.arange(n, dtype=float), np.asarray(ladder, float)))
    return target, position


def next_opponent(
    competitor: str,
    ratings: Mapping[str, float],
    placement_results: Sequence[tuple[str, float]],
    exclude: Collection[str] = frozenset(),
    *,
    scale: float = 400.0,
    base: float = 10.0,
) -> Proposal | None:
    """The next placement opponent for ``competitor``, or ``None`` if nobody is left to play.

    ``ratings`` are the current ratings of the arena's rated pool (the competitor itself may be
    among them and is ignored); ``exclude`` removes ids that cannot play (retired, unavailable).
    ``placement_results`` are the competitor's placement games in log order as
    ``(opponent, score)`` with score 1 for a win, 0.5 for a tie and 0 for a loss.

    The rule, after seed 003's ``select_next_opponent``:

    1. The target is :func:`placement_target`: the median of the pool, moved up after a win and
       down after a loss by a step that halves each game.
    2. After a win, only opponents rated above the one just beaten are candidates, after a loss
       only those below the one lost to, when any remain (the seed's "after a win, prefer
       strictly higher-rated opponents"), so the walk never steps the wrong way, even when the
       rung at the target has been played already.
    3. Among those, the ones met least often in placement: any not met yet first (one
       opponent's quirks should not decide a placement); only when every opponent on that side
       has been met does a rematch come, with those met least. (The seed put novelty before
       direction, which after a run of wins in a small pool sends a winner *down* to the best
       unmet opponent, a game that says nothing about how high it belongs.)
    4. The candidate nearest the target rating is proposed; ties go to the lower rating, then to
       the smaller id, so the proposal is deterministic.

    Past results are replayed against the *current* ladder, so the proposal is a function of the
    read model's state (nothing else to store) and the same log always proposes the same game.
    Placement is over after :data:`PLACEMENT_GAMES`; asked again, the walk simply continues with
    one-rung steps, and the reason says so.
    """
    pool = sorted(
        (float(rating), cid)
        for cid, rating in ratings.items()
        if cid != competitor and cid not in exclude
    )
    if not pool:
        return None
    target, position = placement_target([r for r, _ in pool], placement_results)

    candidates = pool
    direction = ""
    if placement_results:
        last, score = placement_results[-1]
        last_rating = ratings.get(last)
        if last_rating is not None and score != 0.5:
            won = score > 0.5
            side = [(r, c) for r, c in pool if (r > last_rating if won else r < last_rating)]
            if side:
                candidates = side
                verb, where = ("beat", "above") if won else ("lost to", "below")
                direction = f" {where} {last} ({last_rating:.1f}), whom it {verb} last,"

    met = Counter(opponent for opponent, _ in placement_results)
    fewest = min(met.get(cid, 0) for _, cid in candidates)
    candidates = [(r, cid) for r, cid in candidates if met.get(cid, 0) == fewest]
    why = "not met yet in placement" if fewest == 0 else f"met least ({fewest}x) in placement"

    rating, opponent = min(candidates, key=lambda c: (abs(c[0] - target), c[0], c[1]))
    game = len(placement_results) + 1
    if not placement_results:
        start = f"first placement game: the median of {len(pool)} rated opponents"
    else:
        start = (
            f"placement game {game}: after {_record(placement_results)} the walk stands at rung "
            f"{position + 1:.1f} of {len(pool)}"
        )
    if game > PLACEMENT_GAMES:
        start += f" (placement of {PLACEMENT_GAMES} games is over; one-rung steps from here)"
    own = ratings.get(competitor)
    return Proposal(
        competitor=competitor,
        opponent=opponent,
        opponent_rating=rating,
        competitor_rating=None if own is None else float(own),
        win_probability=None if own is None else expected_score(float(own), rating, scale, base),
        target_rating=target,
        placement_game=game,
        reason=(
            f"{start}, target {target:.1f}; {opponent} ({rating:.1f}) is the nearest "
            f"opponent{direction} {why}"
        ),
    )


def _record(results: Sequence[tuple[str, float]]) -> str:
    wins = sum(1 for _, s in results if s > 0.5)
    losses = sum(1 for _, s in results if s < 0.5)
    return f"{wins}W {losses}L {len(results) - wins - losses}T"


def most_informative_pair(
    ratings: Mapping[str, float],
    *,
    games: Mapping[str, int] | None = None,
    pair_counts: Mapping[tuple[str, str], int] | None = None,
    exclude: Collection[str] = frozenset(),
    scale: float = 400.0,
    base: float = 10.0,
    prior_games: float = PRIOR_GAMES,
) -> Proposal | None:
    """The pair whose next result is expected to reduce the leaderboard's uncertainty the most.

    The criterion is A-optimal design on a Bradley-Terry (Elo) model, in its Laplace
    approximation:

    * A game between ``i`` and ``j`` observes the difference ``θi - θj`` (logit units) with
      Fisher information ``f = p(1 - p)``, ``p`` the Elo win probability: an even game teaches
      the most (1/4), a foregone one almost nothing.
    * Each rating's variance is ``v = 1 / I``, where ``I`` is the prior (``prior_games`` even
      games) plus the information of the games it has played: from ``pair_counts`` exactly
      (``Σ n_ij p_ij (1 - p_ij)``, the diagonal of the Fisher information matrix), else from
      ``games`` as if every game had been even (an upper bound), else the prior alone.
    * Adding one game is a rank-one update of the covariance ``Σ`` (diagonal here), and the total
      variance falls by ``f (v_i² + v_j²) / (1 + f (v_i + v_j))``.

    So the chosen pair is close in rating (large ``f``) and little played (large ``v``); a
    lopsided pair or two well-known competitors score low. This is the quantity active-sampling
    arenas aim at (cut the uncertainty of the ranking per vote), with the diagonal approximation
    keeping it a handful of vectorised numpy operations over all pairs (O(n²) memory, fine for
    the hundreds of competitors a leaderboard holds). ``information`` in the proposal is that
    reduction in Elo points squared. Exact ties go to the lexicographically smallest id pair.
    Fewer than two competitors: ``None``.
    """
    ids = sorted(cid for cid in ratings if cid not in exclude)
    n = len(ids)
    if n < 2:
        return None
    c = math.log(base) / scale  # Elo points to logits
    r = np.array([float(ratings[cid]) for cid in ids])
    diff = (r[:, None] - r[None, :]) * c
    p = 1.0 / (1.0 + np.exp(-diff))  # p[i, j]: i beats j
    f = p * (1.0 - p)

    info = np.full(n, 0.25 * prior_games)
    if pair_counts is not None:
        index = {cid: k for k, cid in enumerate(ids)}
        counts = np.zeros((n, n))
        for (a, b), count in pair_counts.items():
            if count < 0:
                raise ValueError(f"pair count of {a!r} and {b!r} is negative: {count}")
            i, j = index.get(a), index.get(b)
            if i is None or j is None or i == j:
                continue
            counts[i, j] += count
            counts[j, i] += count
        info += (counts * f).sum(axis=1)
        played = counts.sum(axis=1)
    elif games is not None:
        played = np.array([float(games.get(cid, 0)) for cid in ids])
        if (played < 0).any():
            raise ValueError("games played must be >= 0")
        info += 0.25 * played
    else:
        played = np.zeros(n)
    v = 1.0 / info

    gain = f * (v[:, None] ** 2 + v[None, :] ** 2) / (1.0 + f * (v[:, None] + v[None, :]))
    gain[np.tril_indices(n)] = -np.inf  # each unordered pair once, never a competitor with itself
    i, j = divmod(int(np.argmax(gain)), n)  # first maximum in row-major order: smallest ids
    reduction = float(gain[i, j]) / c**2
    a, b = ids[i], ids[j]
    return Proposal(
        competitor=a,
        opponent=b,
        competitor_rating=float(r[i]),
        opponent_rating=float(r[j]),
        win_probability=float(p[i, j]),
        information=reduction,
        reason=(
            f"{a} ({r[i]:.1f}, {played[i]:g} games) vs {b} ({r[j]:.1f}, {played[j]:g} games): "
            f"win probability {p[i, j]:.2f}; its result is expected to cut the leaderboard's "
            f"total rating variance by {reduction:.0f} Elo², the most of any of "
            f"{n * (n - 1) // 2} pairs"
        ),
    )
