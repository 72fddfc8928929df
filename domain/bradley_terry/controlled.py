"""Controlled Bradley-Terry: ratings fitted together with covariates of each battle, the public
Chatbot Arena board's "style control". Pure: no I/O.

The model: side ``a`` of battle ``k`` wins with probability ``sigmoid(t_a - t_b + x_k . beta)``
on the natural logit scale, where ``x_k`` holds one covariate per named metric. Each covariate is
what the public board computes for answer length and markdown counts (FastChat's
``construct_style_matrices``): the *normalised difference* of the two sides' values,
``(m_a - m_b) / (|m_a| + |m_b| + 1)`` (the public board writes ``m_a + m_b + 1``, the same for
the non-negative counts it uses; the absolute values keep the denominator positive for a metric
that may be negative), then *standardised* over the fitted results (minus its mean, divided by
its population standard deviation). ``beta_c`` is then the logit of one standard deviation of
covariate ``c``: the public board's reported coefficient. The ratings ``t`` are what is left of
the outcomes once those covariates are accounted for, and the board ranks by them.

Weights and ties as in the uncontrolled fit: a battle row carries the number of results it won
for each side (its own outcome plus its pairwise votes), a tie counts half a win each side; the
mean and standard deviation of a covariate are weighted by the results of each battle, so a
battle with three votes counts as the three results the fit sees. The ridge prior (``1e-6`` on
every parameter, competitors and coefficients) and the per-component centring are those of
:mod:`.solver`; the public board uses no penalty for the plain fit and a small one for style
control, which on real arena data moves nothing that is printed.

Solver: Newton on ``[competitor indicators | covariates]`` with a backtracking line search, the
``(n + m)`` square Hessian assembled with ``bincount`` (O(battles x m^2) per iteration), the
same conditioning along each connected group's constant vector as :func:`.solver.solve`.
Intervals: bootstrap over the results (a multinomial draw over every (battle, outcome) cell per
round, covariates fixed at their full-data standardisation, as the public board does), each
round warm-started from the full fit; the anchor, when given, is applied to every round. The
cost is per battle, not per pair: see the README for the measured numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from msgspec import Struct

from ..elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE
from .anchor import Anchor, anchor_index, anchor_ratings
from .pair_counts import FloatArray, IntArray
from .resampling import DEFAULT_LEVEL, DEFAULT_ROUNDS, cell_draw, outcome_cells
from .result import BTResult, sorted_result
from .solver import (
    DEFAULT_MAX_ITER,
    DEFAULT_RIDGE,
    DEFAULT_TOL,
    check_settings,
    components,
    newton_minimise,
    sigmoid_parts,
    to_elo,
)

__all__ = [
    "ControlledBattles",
    "ControlledResult",
    "Covariate",
    "controlled_leaderboard",
    "fit_controlled",
    "normalised_differences",
]


@dataclass(frozen=True, slots=True, eq=False)
class ControlledBattles:
    """Battles with their results and the named metrics of both sides, as the fit takes them.

    ``competitors`` sorted; battle ``k`` is ``competitors[a[k]]`` against ``competitors[b[k]]``
    with ``wins_a[k]``, ``wins_b[k]`` and ``ties[k]`` results (its outcome and its votes);
    ``metric_a[k, c]`` and ``metric_b[k, c]`` are the two sides' values of ``metrics[c]``.
    """

    competitors: tuple[str, ...]
    metrics: tuple[str, ...]
    a: IntArray
    b: IntArray
    wins_a: FloatArray
    wins_b: FloatArray
    ties: FloatArray
    metric_a: FloatArray
    metric_b: FloatArray

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, str, float, float, float, Sequence[float], Sequence[float]]],
        metrics: Sequence[str],
    ) -> ControlledBattles:
        """From rows ``(a, b, wins_a, wins_b, ties, values_a, values_b)`` (values in the order
        of ``metrics``), in any order: the same battles give the same arrays. Raises ValueError
        on a battle of a competitor against itself, a negative or non-finite count, or a
        non-finite metric value."""
        rows = list(rows)
        m = len(metrics)
        names = tuple(sorted({r[0] for r in rows} | {r[1] for r in rows}))
        index = {name: k for k, name in enumerate(names)}
        a = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
        b = np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=len(rows))
        if np.any(a == b):
            raise ValueError(f"battle {int(np.argmax(a == b))} pits a competitor against itself")
        counts = np.array([r[2:5] for r in rows], dtype=np.float64).reshape(-1, 3)
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError("result counts must be finite and non-negative")
        va = np.array([r[5] for r in rows], dtype=np.float64).reshape(-1, m)
        vb = np.array([r[6] for r in rows], dtype=np.float64).reshape(-1, m)
        if not (np.all(np.isfinite(va)) and np.all(np.isfinite(vb))):
            raise ValueError("metric values must be finite")
        # Battles in a canonical order (by every column), so the bootstrap's draws, which are
        # made per battle, do not depend on the order the rows came in.
        order = np.lexsort((*vb.T[::-1], *va.T[::-1], *counts.T[::-1], b, a))
        a, b, counts, va, vb = a[order], b[order], counts[order], va[order], vb[order]
        return cls(names, tuple(metrics), a, b, *counts.T, va, vb)

    @property
    def results(self) -> float:
        return float(self.wins_a.sum() + self.wins_b.sum() + self.ties.sum())


class Covariate(Struct, frozen=True, kw_only=True):
    """One controlled metric: its coefficient (logit of one standard deviation of the
    normalised difference; positive means the side with more of it tends to win) with the
    bootstrap's percentile interval, and the mean and standard deviation it was standardised by."""

    metric: str
    coefficient: float
    lower: float
    upper: float
    mean: float
    std: float


class ControlledResult(Struct, frozen=True, kw_only=True):
    """A controlled board: the ratings (ranked and sorted as an uncontrolled one) and the
    coefficients, in the order the metrics were named."""

    board: BTResult
    covariates: tuple[Covariate, ...]


def normalised_differences(
    battles: ControlledBattles,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(features, mean, std)``: the standardised normalised difference per battle and metric
    (``(battles, metrics)``), weighted by each battle's results. Raises ValueError naming a
    metric that does not vary over the results (its coefficient would not be defined)."""
    va, vb = battles.metric_a, battles.metric_b
    diff = (va - vb) / (np.abs(va) + np.abs(vb) + 1.0)
    weight = battles.wins_a + battles.wins_b + battles.ties
    total = float(weight.sum())
    if total <= 0:
        raise ValueError("no results to fit")
    mean = weight @ diff / total
    std = np.sqrt(weight @ (diff - mean) ** 2 / total)
    for c, s in enumerate(std.tolist()):
        if not s > 1e-12 * max(1.0, abs(float(mean[c]))):
            raise ValueError(
                f"metric {battles.metrics[c]!r} has the same normalised difference in every "
                "battle fitted: its effect cannot be told apart from the ratings"
            )
    return (diff - mean) / std, mean, std


def _by_side(a: IntArray, b: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per competitor: the sum of ``values`` over its battles as ``a`` minus those as ``b``."""
    return np.bincount(a, weights=values, minlength=n) - np.bincount(b, weights=values, minlength=n)


def _solve(
    n: int,
    a: IntArray,
    b: IntArray,
    w_a: FloatArray,
    w_b: FloatArray,
    x: FloatArray,
    ridge: float,
    start: FloatArray | None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> FloatArray:
    """Penalised maximum likelihood of ``[t | beta]`` (natural logit scale), ``t`` centred per
    connected group: Newton with an Armijo line search, as :func:`.solver.solve`."""
    total = w_a + w_b
    keep = total > 0
    if not np.all(keep):
        a, b, w_a, w_b, total, x = a[keep], b[keep], w_a[keep], w_b[keep], total[keep], x[keep]
    m = x.shape[1]
    comp = components(n, a, b)
    sizes = np.bincount(comp, minlength=n)[comp].astype(np.float64)

    def centre(p: FloatArray) -> FloatArray:
        t = p[:n]
        return np.concatenate([t - np.bincount(comp, weights=t, minlength=n)[comp] / sizes, p[n:]])

    def objective(p: FloatArray) -> tuple[float, float]:
        z = p[a] - p[b] + x @ p[n:]
        terms = w_a * np.logaddexp(0.0, -z) + w_b * np.logaddexp(0.0, z)
        value = float(terms.sum()) + 0.5 * ridge * float(p @ p)
        return value, float(terms.sum()) + abs(value)

    p = np.zeros(n + m) if start is None else centre(np.asarray(start, dtype=np.float64).copy())
    same = comp[:, None] == comp[None, :]
    lift = np.zeros((n + m, n + m))
    lift[:n, :n] = same * ((float(total.sum()) / n + ridge) / sizes)[None, :]
    pair = a * n + b
    idx = np.arange(n)

    def newton_step(p: FloatArray) -> tuple[FloatArray, FloatArray]:
        z = p[a] - p[b] + x @ p[n:]
        s, h_unit = sigmoid_parts(z)
        r = total * s - w_a  # dF/dz per battle
        grad = np.concatenate([_by_side(a, b, r, n), x.T @ r]) + ridge * p
        h = total * h_unit
        hess = lift.copy()
        cross = np.bincount(pair, weights=h, minlength=n * n).reshape(n, n)
        cross = cross + cross.T
        hess[:n, :n] -= cross
        hess[idx, idx] += cross.sum(axis=1) + ridge
        hx = x * h[:, None]
        side = np.stack([_by_side(a, b, hx[:, c], n) for c in range(m)], axis=1)
        hess[:n, n:] = side
        hess[n:, :n] = side.T
        hess[n:, n:] += x.T @ hx + ridge * np.eye(m)
        return grad, centre(-np.linalg.solve(hess, grad))

    return newton_minimise(p, objective, newton_step, centre, tol, max_iter, "controlled BT")


def fit_controlled(
    battles: ControlledBattles,
    *,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
) -> tuple[FloatArray, FloatArray]:
    """``(ratings on the Elo scale per competitor, coefficients per metric)``: the point fit."""
    check_settings(scale, base, ridge)
    x, _, _ = normalised_differences(battles)
    n = len(battles.competitors)
    half = 0.5 * battles.ties
    p = _solve(
        n, battles.a, battles.b, battles.wins_a + half, battles.wins_b + half, x, ridge, None
    )
    return to_elo(p[:n], scale, base, initial), p[n:]


def controlled_leaderboard(
    battles: ControlledBattles,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    anchor: Anchor | None = None,
) -> ControlledResult:
    """Fit, bootstrap (``rounds`` resamples of the results, ``numpy.random.default_rng(seed)``)
    and rank by the controlled ratings; the coefficients with their intervals at ``level``.
    Raises ValueError on ``rounds < 1``, a level outside (0, 1), an anchor competitor without
    battles, or a metric that does not vary (see :func:`normalised_differences`)."""
    check_settings(scale, base, ridge)
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    names = battles.competitors
    if anchor is not None:
        anchor_index(names, anchor)
    x, mean, std = normalised_differences(battles)
    n, m = len(names), len(battles.metrics)
    cells = outcome_cells(battles.wins_a, battles.wins_b, battles.ties)
    half = 0.5 * battles.ties
    point = _solve(n, battles.a, battles.b, battles.wins_a + half, battles.wins_b + half, x,
                   ridge, None)  # fmt: skip
    nonzero, probs, n_draw = cell_draw(cells)
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, n + m))
    for k in range(rounds):
        drawn = np.zeros(cells.size)
        drawn[nonzero] = rng.multinomial(n_draw, probs)
        drawn = drawn.reshape(-1, 3)
        samples[k] = _solve(n, battles.a, battles.b, drawn[:, 0] + 0.5 * drawn[:, 2],
                            drawn[:, 1] + 0.5 * drawn[:, 2], x, ridge, point)  # fmt: skip
    q = 50 * (1 - level)
    rating = anchor_ratings(to_elo(point[:n], scale, base, initial), names, anchor)
    elo_samples = anchor_ratings(to_elo(samples[:, :n], scale, base, initial), names, anchor)
    lower, upper = np.percentile(elo_samples, [q, 100 - q], axis=0)
    c_lower, c_upper = np.percentile(samples[:, n:], [q, 100 - q], axis=0)
    board = sorted_result(
        names, rating, lower, upper, battles=n_draw, rounds=rounds, seed=seed,
        level=level, anchor=anchor,
    )  # fmt: skip
    covariates = tuple(
        Covariate(metric=metric, coefficient=float(point[n + c]), lower=float(c_lower[c]),
                  upper=float(c_upper[c]), mean=float(mean[c]), std=float(std[c]))
        for c, metric in enumerate(battles.metrics)
    )  # fmt: skip
    return ControlledResult(board=board, covariates=covariates)
