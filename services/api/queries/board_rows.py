"""A leaderboard row from what a board's reads found: its standing, the averages of its
metrics (the named ones picked out), its score votes, its name and provider. Every board (Elo
and Bradley-Terry, live or as of a position) builds its page's rows here, at every
recomputation of the board."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arbiter.domain.placement import PLACEMENT_GAMES

from ..models.ratings import LeaderboardRow

__all__ = ["NAMED_METRICS", "board_row"]

NAMED_METRICS: dict[str, tuple[str, ...]] = {
    "wer": ("wer",),
    "semascore": ("semascore",),
    "prosody": ("prosody_score", "prosody"),
    "quality": ("quality_score", "quality"),
    "latency_ms": ("latency_ms",),
    "cost_usd": ("cost_usd",),
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
}
"""Leaderboard field -> the metric keys it is read from, first present wins (the evals publish
``prosody_score`` and ``quality_score``)."""


def _named(averages: dict[str, float]) -> dict[str, float | None]:
    """The row's named metric fields (:data:`NAMED_METRICS`) from its averages. Plain loops: a
    generator per field was a third of building a page's rows, which every recomputation of a
    board does."""
    named: dict[str, float | None] = {}
    for field, keys in NAMED_METRICS.items():
        value = None
        for key in keys:
            if key in averages:
                value = averages[key]
                break
        named[field] = value
    return named


def board_row(
    rank: int,
    competitor: str,
    rating: float,
    counters: Sequence[int],
    names: dict[str, tuple[Any, Any]],
    metrics: dict[str, dict[str, float]],
    scores: dict[str, tuple[int, int]],
    lower: float | None = None,
    upper: float | None = None,
) -> LeaderboardRow:
    games, wins, losses, ties = (int(v) for v in counters)
    name, provider = names.get(competitor, (None, None))
    averages = metrics.get(competitor, {})
    named = _named(averages)
    score_sum, votes = scores.get(competitor, (0, 0))
    return LeaderboardRow(
        rank,
        competitor,
        name,
        provider,
        float(rating),
        games,
        wins,
        losses,
        ties,
        wins / games if games else 0.0,
        lower=lower,
        upper=upper,
        metrics=averages,
        avg_score=score_sum / votes if votes else None,
        score_votes=votes,
        provisional=games < PLACEMENT_GAMES,
        **named,
    )
