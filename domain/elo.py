"""Elo as pure functions, with the constants the seed arenas used.

Exactness matters more than speed here: the projector, a rebuild and the audit must produce the
same float to the last bit, so every path calls these functions with the same arguments in the
same order (the log's). No numpy: the update is sequential by nature and numpy's pow may differ
from Python's in the last ulp.
"""

from __future__ import annotations

from msgspec import Struct, field, structs

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_INITIAL",
    "DEFAULT_K",
    "DEFAULT_SCALE",
    "DEFAULT_SETTINGS",
    "DEFAULT_WEIGHTS",
    "SCORES",
    "ArenaSettings",
    "expected_score",
    "game_update",
    "pair_update",
    "rank_score",
]


DEFAULT_K = 32.0
DEFAULT_INITIAL = 1500.0
DEFAULT_SCALE = 400.0
DEFAULT_BASE = 10.0
DEFAULT_WEIGHTS: dict[str, float] = {"human": 1.5, "auto": 1.0}
"""Judge kind to K multiplier: a human verdict counts 1.5 times an automatic one (seed 000)."""

SCORES: dict[str, float] = {"a": 1.0, "b": 0.0, "tie": 0.5}
"""Score of side ``a`` for each outcome; side ``b`` scores ``1 - score``."""


class ArenaSettings(Struct, frozen=True):
    """The rating parameters of one arena. Changed only by ``arena.configured`` events."""

    k: float = DEFAULT_K
    initial: float = DEFAULT_INITIAL
    scale: float = DEFAULT_SCALE
    base: float = DEFAULT_BASE
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    strict: bool = False
    bt_anchor: tuple[str, float] | None = None
    """Default ``(competitor, rating)`` anchor of Bradley-Terry boards; None: the mean."""

    def weight(self, judge: str) -> float:
        """K multiplier for a judge; judges not named in ``weights`` count as 1.0."""
        return self.weights.get(judge, 1.0)

    def patched(self, **changes: object) -> ArenaSettings:
        """A copy with the given fields replaced; ``None`` values leave a field unchanged."""
        return structs.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_SETTINGS = ArenaSettings()


def expected_score(rating: float, opponent: float, scale: float, base: float) -> float:
    """Probability-like expected score of ``rating`` against ``opponent``: 1/(1+base^(d/scale)).

    A power too large for a float (an arena configured with a tiny scale or a huge base) is the
    limit it tends to, 0.0, where Python's ``**`` would raise and stop every fold of the log.
    """
    try:
        return 1.0 / (1.0 + base ** ((opponent - rating) / scale))
    except OverflowError:
        return 0.0


def pair_update(
    rating_a: float, rating_b: float, score_a: float, k: float, scale: float, base: float
) -> tuple[float, float, float]:
    """One pairwise Elo update.

    Returns ``(new_a, new_b, expected_a)``. The change is zero-sum: ``b`` moves by exactly the
    negative of ``a``'s delta, as in the seed arena.
    """
    expected_a = expected_score(rating_a, rating_b, scale, base)
    delta = k * (score_a - expected_a)
    return rating_a + delta, rating_b - delta, expected_a


def rank_score(rank: int, other: int) -> float:
    """Score of a player of ``rank`` against one of ``other`` (1 is best): 1, 0.5 or 0."""
    return 1.0 if rank < other else 0.5 if rank == other else 0.0


def game_update(
    ratings: list[float], ranks: list[int], k: float, scale: float, base: float
) -> tuple[list[float], list[float], list[float]]:
    """Multi-player Elo by pairwise decomposition over the pre-game ratings.

    Every pair (i, j) scores 1, 0.5 or 0 by rank; player i moves by the sum over its opponents of
    ``k * (S_ij - E_ij)``, all E from the ratings before the game, so seat order does not matter
    to anyone's expected score. Returns ``(new ratings, summed S, summed E)`` per player, in the
    given order; sums run over opponents in that order, which the log fixes.
    """
    n = len(ratings)
    new, scores, expected = [], [], []
    for i in range(n):
        s_sum = e_sum = 0.0
        for j in range(n):
            if j != i:
                s_sum += rank_score(ranks[i], ranks[j])
                e_sum += expected_score(ratings[i], ratings[j], scale, base)
        new.append(ratings[i] + k * (s_sum - e_sum))
        scores.append(s_sum)
        expected.append(e_sum)
    return new, scores, expected
