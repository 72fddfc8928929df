"""Anchoring a Bradley-Terry fit like the public Chatbot Arena board: one competitor at a rating.

Bradley-Terry defines ratings up to a common shift, so two boards with the same differences can
still print different numbers. Arbiter centres each connected group on the arena's ``initial``
(see :mod:`arbiter.domain.bradley_terry`); the public board does not. Facts of the public board
(FastChat's ``compute_mle_elo`` and its style-control variant, as of the 2024 boards):

* logistic regression without intercept on ``+ln(10)`` / ``-ln(10)`` columns for the two sides,
  ratings = ``400 * coefficient + 1000`` (scale 400, base 10, initial 1000);
* a tie counts as half a win for each side (the battle is duplicated, one copy won by each);
  ``tie`` and ``tie (bothbad)`` alike;
* then every rating is shifted so that ``mixtral-8x7b-instruct-v0.1`` is exactly 1114, in the
  point fit and in every bootstrap round, so that competitor's interval is a single point.

An anchor is that last step: ``(competitor, rating)``; :func:`anchor_ratings` shifts a fit (or
each row of the bootstrap samples) by one constant so the competitor lands on the rating.
Competitors outside the anchor's connected group move by the same constant: their difference to
it is not defined by the data, and a single shift keeps every defined difference unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from .pair_counts import FloatArray

__all__ = [
    "CHATBOT_ARENA_ANCHOR",
    "Anchor",
    "anchor_index",
    "anchor_ratings",
    "parse_anchor",
]

Anchor = tuple[str, float]
"""``(competitor, rating)``: the competitor's rating after anchoring."""

CHATBOT_ARENA_ANCHOR: Anchor = ("mixtral-8x7b-instruct-v0.1", 1114.0)
"""The public board's anchor (FastChat's ``compute_mle_elo``)."""

MAX_ANCHOR_RATING = 1e9
"""The same bound as an arena's ``initial``: keeps every shifted rating finite."""


def parse_anchor(text: str) -> Anchor:
    """``COMPETITOR:RATING`` -> ``(competitor, rating)``. The rating is after the *last* colon,
    so a competitor id may itself hold colons. Raises ValueError naming the expected form."""
    competitor, sep, number = text.rpartition(":")
    if not sep or not competitor or competitor != competitor.strip():
        raise ValueError(
            f"anchor {text!r} is not of the form COMPETITOR:RATING (e.g. "
            f"{CHATBOT_ARENA_ANCHOR[0]}:1114)"
        )
    try:
        rating = float(number)
    except ValueError:
        rating = math.nan
    if not math.isfinite(rating) or abs(rating) > MAX_ANCHOR_RATING:
        raise ValueError(
            f"anchor {text!r}: the rating after the last ':' must be a finite number within "
            f"±{MAX_ANCHOR_RATING:g}"
        )
    return competitor, rating


def anchor_ratings(
    ratings: FloatArray, competitors: tuple[str, ...], anchor: Anchor | None
) -> FloatArray:
    """``ratings`` (one per competitor, last axis; a 2-D array is anchored row by row) shifted so
    that the anchor's competitor has the anchor's rating; unchanged when ``anchor`` is None.
    Raises ValueError when the competitor is not among ``competitors``."""
    if anchor is None:
        return ratings
    k = anchor_index(competitors, anchor)
    rating = anchor[1]
    ratings = np.asarray(ratings, dtype=np.float64)
    return ratings + (rating - ratings[..., k : k + 1])


def anchor_index(competitors: tuple[str, ...], anchor: Anchor) -> int:
    """Where the anchor's competitor is in ``competitors``; ValueError naming it when absent."""
    try:
        return competitors.index(anchor[0])
    except ValueError:
        raise ValueError(f"anchor competitor {anchor[0]!r} has no battles in this pool") from None
