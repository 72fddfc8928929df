"""The point fit of a Bradley-Terry board: :func:`fit`. Pure.

It lives apart from :mod:`.solver` because it runs :func:`.rounds.solve_rounds` (the batched road
to :func:`.solver.solve`'s very floats, here on one row), and :mod:`.rounds` is built on
:mod:`.solver`: one module for both would make an import cycle.
"""

from __future__ import annotations

import numpy as np

from ..elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE
from .pair_counts import FloatArray, PairCounts
from .rounds import solve_rounds
from .solver import DEFAULT_MAX_ITER, DEFAULT_RIDGE, DEFAULT_TOL, check_settings, to_elo, to_logit

__all__ = ["fit"]


def fit(
    counts: PairCounts,
    *,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    start: FloatArray | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> FloatArray:
    """Bradley-Terry ratings on the Elo scale, one per ``counts.competitors`` (same order).

    Maximum likelihood of ``P(i beats j) = 1 / (1 + base ** ((r_j - r_i) / scale))`` with ties
    as half a win each, the ridge prior and the mean anchored at ``initial`` (see the module
    docstring for both). Always finite; an empty ``counts`` gives an empty array. ``start``
    (ratings, e.g. an earlier fit) only speeds up convergence: the optimum is unique. Newton
    stops when no rating moves by more than ``tol`` logits; if ``max_iter`` iterations do not
    get there a RuntimeWarning is issued and the last iterate returned. Raises ValueError on
    ``scale <= 0``, ``base <= 1`` or ``ridge <= 0``.
    """
    check_settings(scale, base, ridge)
    n = len(counts.competitors)
    theta0 = None if start is None else to_logit(start, scale, base, initial)
    if theta0 is not None and theta0.shape != (n,):
        raise ValueError("start must have one rating per competitor")
    half = 0.5 * counts.ties

    theta = solve_rounds(
        n,
        counts.i,
        counts.j,
        (counts.wins_i + half)[None, :],
        (counts.wins_j + half)[None, :],
        ridge,
        np.zeros(n) if theta0 is None else theta0,
        tol,
        max_iter,
    )[0]
    return to_elo(theta, scale, base, initial)
