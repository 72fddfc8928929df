"""Bradley-Terry maximum likelihood on the Elo scale, with bootstrap intervals. Pure: no I/O.

The model (DESIGN.md, Ratings): competitor ``i`` beats ``j`` with probability

    P(i beats j) = 1 / (1 + base ** ((r_j - r_i) / scale))

which is the logistic model ``sigmoid(t_i - t_j)`` on the natural logit scale
``t = (r - initial) * ln(base) / scale``. Public LLM leaderboards fit the same model by logistic
regression over battles; here it is fitted from the *pairwise outcome counts* (at most three
cells per unordered pair: ``i`` won, ``j`` won, tie), so the work per iteration depends on the
number of competitors and pairs, never on the number of battles, and the result cannot depend on
the order of the battles.

Conventions, chosen once and applied everywhere in this module:

* **Ties** count as half a win to each side (the Elo seeds score a tie 0.5).
* **Ridge prior.** The fit maximises the log-likelihood minus ``ridge / 2 * sum(t ** 2)`` on the
  natural logit scale, with ``ridge = 1e-6`` by default: the same penalty as scikit-learn's
  ``LogisticRegression(C=1e6)`` that public arena leaderboards have used. It is absolute, not
  per battle. On data where every competitor has both won and lost (more exactly: where the
  unpenalised maximum exists) it moves ratings by far less than 0.01 Elo points. Where the
  unpenalised maximum does not exist, it keeps the fit finite instead of letting it diverge: a
  competitor that never lost (or never won) lands about ``ln(battles / ridge)`` logits from
  the rest, i.e. roughly 2,000 Elo points above (below) them after a handful of battles and
  up to about 4,500 after millions. Read such a rating as "better than everyone, by an unknown
  margin", not as a number; its rank (by intervals) stays honest. A single battle puts its
  winner about 1,000 points above ``initial`` and its loser as far below. A larger ``ridge``
  shrinks such ratings towards ``initial``.
* **Anchor.** Ratings are defined up to a common shift; the mean rating is anchored at
  ``initial`` (public leaderboards anchor either one reference model or the mean; the mean
  needs no choice of model and does not move when one is retired). Competitors that never met,
  directly or through others, have no rating difference defined by the data: each connected
  component of the "has played" graph is centred at ``initial`` on its own (this is exactly
  what the ridge prior's optimum is), so the overall mean is ``initial`` too. A competitor with
  no battles is rated ``initial``.
* **Determinism.** :class:`PairCounts` holds competitors sorted by name and pairs sorted by
  index, so the same battles in any order give the same arrays, and the same arrays give the
  same floats. The bootstrap draws from :class:`numpy.random.Generator` seeded with ``seed``.

Solver: Newton's method on the penalised log-likelihood with a backtracking line search (the
objective is strictly convex, so it converges from any start), with a dense ``n x n`` Hessian:
O(pairs) per iteration to assemble and O(n^3) to solve: a few milliseconds per fit for 100
competitors, about half a second for 1,000 (where 100 bootstrap rounds take about half a
minute); beyond a few thousand competitors a sparse or MM solver would be needed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from msgspec import Struct

from .elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE

DEFAULT_RIDGE = 1e-6
"""L2 penalty on the natural logit scale (``ridge / 2 * sum(t**2)``): scikit-learn's ``C=1e6``."""
DEFAULT_ROUNDS = 100
DEFAULT_LEVEL = 0.95
DEFAULT_TOL = 1e-10
"""Newton stops when no competitor moves by more than this many logits (about 2e-8 Elo)."""
DEFAULT_MAX_ITER = 200

OUTCOME_CODES: dict[str, int] = {"a": 0, "b": 1, "tie": 2}
"""Battle outcome to code: ``a`` won, ``b`` won, tie. Integer arrays may use the codes directly."""

_A_WINS, _B_WINS, _TIE = 0, 1, 2
_PENDING = -1  # outcome None: the battle awaits votes and moves no rating (DESIGN.md)
_INVALID = -2
_OUTCOME_LOOKUP: dict[object, int] = {**OUTCOME_CODES, None: _PENDING}
_DENSE_CELLS = 1 << 22  # bincount over n*n*3 cells up to this size, np.unique beyond


FloatArray = np.ndarray
IntArray = np.ndarray


# ---------------------------------------------------------------------------------------------
# Input: pairwise outcome counts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class PairCounts:
    """Outcome counts per unordered pair of competitors.

    ``competitors`` are sorted by name; pair ``k`` is ``(competitors[i[k]], competitors[j[k]])``
    with ``i[k] < j[k]``, pairs sorted by ``(i, j)`` and distinct. ``wins_i[k]`` battles were
    won by ``i[k]``, ``wins_j[k]`` by ``j[k]``, ``ties[k]`` were tied. Counts are finite and
    non-negative floats (normally whole numbers; see :func:`bootstrap_samples`). The arrays are
    read-only. Build one with :meth:`from_battles`, :meth:`from_rows` or :meth:`empty`.
    """

    competitors: tuple[str, ...]
    i: IntArray
    j: IntArray
    wins_i: FloatArray
    wins_j: FloatArray
    ties: FloatArray

    def __post_init__(self) -> None:
        n = len(self.competitors)
        if len(set(self.competitors)) != n:
            raise ValueError("competitors must be distinct")
        if list(self.competitors) != sorted(self.competitors):
            raise ValueError("competitors must be sorted")
        arrays: dict[str, np.ndarray] = {}
        for name, dtype in (
            ("i", np.int64),
            ("j", np.int64),
            ("wins_i", np.float64),
            ("wins_j", np.float64),
            ("ties", np.float64),
        ):
            value = np.array(getattr(self, name), dtype=dtype)  # a private copy
            if value.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional")
            value.setflags(write=False)
            arrays[name] = value
            object.__setattr__(self, name, value)
        if len({a.shape[0] for a in arrays.values()}) != 1:
            raise ValueError("i, j, wins_i, wins_j and ties must have the same length")
        i, j = arrays["i"], arrays["j"]
        if i.size:
            if i.min() < 0 or j.max() >= n:
                raise ValueError("competitor index out of range")
            if not np.all(i < j):
                raise ValueError("pairs must have i < j")
            code = i * n + j
            if not np.all(code[1:] > code[:-1]):
                raise ValueError("pairs must be distinct and sorted by (i, j)")
        for name in ("wins_i", "wins_j", "ties"):
            value = arrays[name]
            if not np.all(np.isfinite(value)) or np.any(value < 0):
                raise ValueError(f"{name} must be finite and non-negative")

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def empty(cls, competitors: Iterable[str] = ()) -> PairCounts:
        """No battles among ``competitors`` (all rated ``initial`` by :func:`fit`)."""
        z = np.zeros(0)
        return cls(tuple(sorted(set(competitors))), z.astype(np.int64), z.astype(np.int64), z, z, z)

    @classmethod
    def from_battles(
        cls,
        a_ids: Sequence[str] | np.ndarray,
        b_ids: Sequence[str] | np.ndarray,
        outcomes: Sequence[str | None] | np.ndarray,
        *,
        competitors: Iterable[str] = (),
    ) -> PairCounts:
        """Aggregate battles ``(a_ids[k], b_ids[k], outcomes[k])`` into pair counts.

        ``outcomes`` are ``"a"`` (a won), ``"b"`` or ``"tie"``; ``None`` (a battle still
        awaiting votes) is skipped; an integer array may hold the codes of
        :data:`OUTCOME_CODES` instead. ``competitors`` adds names that have no battle (they
        are rated ``initial``). Raises ValueError on mismatched lengths, an unknown outcome or
        a battle of a competitor against itself. The counting is numpy throughout (one
        ``bincount`` over pair-and-outcome codes); mapping names to indices is a dict lookup.
        """
        n_battles = len(a_ids)
        if len(b_ids) != n_battles or len(outcomes) != n_battles:
            raise ValueError("a_ids, b_ids and outcomes must have the same length")
        codes: dict[str, int] = {}
        ia = _index(a_ids, codes)
        ib = _index(b_ids, codes)
        for name in competitors:
            codes.setdefault(name, len(codes))
        if isinstance(outcomes, np.ndarray) and np.issubdtype(outcomes.dtype, np.integer):
            oc = outcomes.astype(np.int64, copy=False)
            if np.any((oc < 0) | (oc > _TIE)):
                raise ValueError("integer outcome codes must be 0 (a), 1 (b) or 2 (tie)")
        else:
            items = outcomes.tolist() if isinstance(outcomes, np.ndarray) else outcomes
            oc = np.fromiter(
                map(_OUTCOME_LOOKUP.get, items, repeat(_INVALID)), dtype=np.int64, count=n_battles
            )
            if np.any(oc == _INVALID):
                bad = items[int(np.argmax(oc == _INVALID))]
                raise ValueError(f"unknown outcome {bad!r}: expected 'a', 'b', 'tie' or None")
        names, remap = _sorted_names(codes)
        n = len(names)
        if n_battles == 0:
            return cls.empty(names)
        ia, ib = remap[ia], remap[ib]
        if np.any(ia == ib):
            k = int(np.argmax(ia == ib))
            raise ValueError(f"battle {k} pits {names[ia[k]]!r} against itself")
        rated = oc != _PENDING
        if not np.all(rated):
            ia, ib, oc = ia[rated], ib[rated], oc[rated]
        lo = np.minimum(ia, ib)
        hi = np.maximum(ia, ib)
        # Outcome from the side of the lower index: a swapped battle turns "a won" into "hi won".
        swapped = (ia > ib) & (oc != _TIE)
        rel = np.where(swapped, 1 - oc, oc)
        cell = (lo * n + hi) * 3 + rel
        if n * n * 3 <= max(_DENSE_CELLS, 4 * cell.size):
            table = np.bincount(cell, minlength=n * n * 3).reshape(n * n, 3)
            pair = np.flatnonzero(table.any(axis=1))
            table = table[pair]
        else:
            uniq, cnt = np.unique(cell, return_counts=True)
            pair, inv = np.unique(uniq // 3, return_inverse=True)
            table = np.zeros((pair.size, 3), dtype=np.int64)
            table[inv, uniq % 3] = cnt
        table = table.astype(np.float64)
        return cls(names, pair // n, pair % n, table[:, 0], table[:, 1], table[:, 2])

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, str, float, float, float]],
        *,
        competitors: Iterable[str] = (),
    ) -> PairCounts:
        """Pair counts from rows ``(a, b, wins_a, wins_b, ties)``, as a table would store them.

        Rows may name a pair in either order and more than once: they are summed. The inverse
        of :meth:`rows`. Raises ValueError on a row of a competitor against itself or on a
        negative or non-finite count.
        """
        a_names: list[str] = []
        b_names: list[str] = []
        values: list[tuple[float, float, float]] = []
        for a, b, wa, wb, t in rows:
            a_names.append(a)
            b_names.append(b)
            values.append((wa, wb, t))
        codes: dict[str, int] = {}
        ia = _index(a_names, codes)
        ib = _index(b_names, codes)
        for name in competitors:
            codes.setdefault(name, len(codes))
        names, remap = _sorted_names(codes)
        n = len(names)
        if not values:
            return cls.empty(names)
        v = np.array(values, dtype=np.float64).reshape(-1, 3)
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError("counts must be finite and non-negative")
        ia, ib = remap[ia], remap[ib]
        if np.any(ia == ib):
            k = int(np.argmax(ia == ib))
            raise ValueError(f"row {k} pits {names[ia[k]]!r} against itself")
        swapped = ia > ib
        w_lo = np.where(swapped, v[:, 1], v[:, 0])
        w_hi = np.where(swapped, v[:, 0], v[:, 1])
        code = np.minimum(ia, ib) * n + np.maximum(ia, ib)
        pair, inv = np.unique(code, return_inverse=True)
        inv = inv.reshape(-1)
        sums = [np.bincount(inv, weights=w, minlength=pair.size) for w in (w_lo, w_hi, v[:, 2])]
        keep = (sums[0] + sums[1] + sums[2]) > 0
        return cls(names, pair[keep] // n, pair[keep] % n, *(s[keep] for s in sums))

    # -- views ----------------------------------------------------------------------------

    @property
    def battles(self) -> float:
        """Total number of battles (ties included)."""
        return float(self.wins_i.sum() + self.wins_j.sum() + self.ties.sum())

    def rows(self) -> list[tuple[str, str, float, float, float]]:
        """``(a, b, wins_a, wins_b, ties)`` per pair with ``a < b``: :meth:`from_rows`' input."""
        names = self.competitors
        return [
            (names[a], names[b], wa, wb, t)
            for a, b, wa, wb, t in zip(
                self.i.tolist(),
                self.j.tolist(),
                self.wins_i.tolist(),
                self.wins_j.tolist(),
                self.ties.tolist(),
                strict=True,
            )
        ]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairCounts):
            return NotImplemented
        return self.competitors == other.competitors and all(
            np.array_equal(getattr(self, f), getattr(other, f))
            for f in ("i", "j", "wins_i", "wins_j", "ties")
        )

    __hash__ = None  # type: ignore[assignment]


def _index(names: Sequence[str] | np.ndarray, codes: dict[str, int]) -> IntArray:
    """Index of each name in first-seen order, extending ``codes``."""
    items = names.tolist() if isinstance(names, np.ndarray) else names
    return np.fromiter(
        (codes.setdefault(x, len(codes)) for x in items), dtype=np.int64, count=len(items)
    )


def _sorted_names(codes: dict[str, int]) -> tuple[tuple[str, ...], IntArray]:
    """Names sorted, and the map from first-seen index to sorted index."""
    for name in codes:
        if not isinstance(name, str):
            raise ValueError(f"competitor ids must be strings, got {name!r}")
    names = tuple(sorted(codes))
    position = {name: k for k, name in enumerate(names)}
    remap = np.fromiter((position[name] for name in codes), dtype=np.int64, count=len(codes))
    return names, remap


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------


def _check_settings(scale: float, base: float, ridge: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("scale must be positive")
    if not (math.isfinite(base) and base > 1):
        raise ValueError("base must be greater than 1")
    if not (math.isfinite(ridge) and ridge > 0):
        raise ValueError("ridge must be positive (it is what keeps unbeaten competitors finite)")


def _components(n: int, i: IntArray, j: IntArray) -> IntArray:
    """Connected-component label (its smallest member) of each competitor, numpy only."""
    labels = np.arange(n)
    if i.size == 0:
        return labels
    while True:
        new = labels.copy()
        np.minimum.at(new, i, labels[j])
        np.minimum.at(new, j, labels[i])
        new = new[new]  # pointer jumping: halves the remaining distance
        if np.array_equal(new, labels):
            return labels
        labels = new


def _sigmoid_parts(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``sigmoid(d)`` and ``sigmoid(d) * sigmoid(-d)``, overflow-free."""
    e = np.exp(-np.abs(d))
    inv = 1.0 / (1.0 + e)
    s = np.where(d >= 0, inv, e * inv)
    return s, e * inv * inv


def _solve(
    n: int,
    i: IntArray,
    j: IntArray,
    w_ij: FloatArray,
    w_ji: FloatArray,
    ridge: float,
    start: FloatArray | None,
    tol: float,
    max_iter: int,
) -> FloatArray:
    """Penalised maximum likelihood on the natural logit scale, centred per component.

    ``w_ij`` is ``i``'s score against ``j`` (wins plus half the ties), ``w_ji`` ``j``'s.
    Minimises ``F(t) = sum(w_ij softplus(t_j - t_i) + w_ji softplus(t_i - t_j)) + ridge/2 |t|^2``
    by Newton's method with a backtracking (Armijo) line search.
    """
    total = w_ij + w_ji
    keep = total > 0
    if not np.all(keep):
        i, j, w_ij, w_ji, total = i[keep], j[keep], w_ij[keep], w_ji[keep], total[keep]
    comp = _components(n, i, j)
    sizes = np.bincount(comp, minlength=n)[comp].astype(np.float64)  # own component's size

    def centre(t: FloatArray) -> FloatArray:
        # The optimum has every component's mean at 0 (sum of the likelihood gradient over a
        # component vanishes, so ridge * sum(t) does too); shifting a component changes the
        # likelihood not at all and the penalty only downwards.
        return t - np.bincount(comp, weights=t, minlength=n)[comp] / sizes

    def objective(t: FloatArray) -> tuple[float, float]:
        d = t[i] - t[j]
        terms = w_ij * np.logaddexp(0.0, -d) + w_ji * np.logaddexp(0.0, d)
        value = float(terms.sum()) + 0.5 * ridge * float(t @ t)
        return value, float(np.abs(terms).sum()) + abs(value)

    theta = np.zeros(n) if start is None else centre(np.asarray(start, dtype=np.float64).copy())
    if i.size == 0:
        return np.zeros(n)
    # Curvature added along each component's constant vector, where the objective is flat but
    # for the ridge: conditions the Newton system without changing the step (after centring).
    same = comp[:, None] == comp[None, :]
    kappa = float(total.sum()) / n + ridge
    lift = same * (kappa / sizes)[None, :]
    diag = np.arange(n)
    value, magnitude = objective(theta)
    for _ in range(max_iter):
        d = theta[i] - theta[j]
        s, h_unit = _sigmoid_parts(d)
        r = total * s - w_ij  # dF/dd per pair
        grad = (
            np.bincount(i, weights=r, minlength=n)
            - np.bincount(j, weights=r, minlength=n)
            + ridge * theta
        )
        h = total * h_unit
        hess = lift.copy()
        hess[i, j] -= h
        hess[j, i] -= h
        hess[diag, diag] += np.bincount(i, weights=h, minlength=n)
        hess[diag, diag] += np.bincount(j, weights=h, minlength=n) + ridge
        step = centre(-np.linalg.solve(hess, grad))
        slope = float(grad @ step)
        slack = 64 * np.finfo(np.float64).eps * magnitude  # rounding in F itself
        t = 1.0
        for _ in range(60):
            candidate = theta + t * step
            new_value, new_magnitude = objective(candidate)
            if new_value <= value + 1e-4 * t * slope + slack:
                break
            t *= 0.5
        else:  # no decrease even for a tiny step: at the optimum to rounding
            return theta
        theta = centre(candidate)
        value, magnitude = new_value, new_magnitude
        if t * float(np.max(np.abs(step))) <= tol:
            return theta
    warnings.warn(
        f"Bradley-Terry fit did not converge in {max_iter} Newton iterations",
        RuntimeWarning,
        stacklevel=3,
    )
    return theta


def _to_elo(theta: FloatArray, scale: float, base: float, initial: float) -> FloatArray:
    return initial + theta * (scale / math.log(base))


def _to_logit(rating: FloatArray, scale: float, base: float, initial: float) -> FloatArray:
    return (np.asarray(rating, dtype=np.float64) - initial) * (math.log(base) / scale)


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
    _check_settings(scale, base, ridge)
    n = len(counts.competitors)
    theta0 = None if start is None else _to_logit(start, scale, base, initial)
    if theta0 is not None and theta0.shape != (n,):
        raise ValueError("start must have one rating per competitor")
    half = 0.5 * counts.ties
    theta = _solve(
        n,
        counts.i,
        counts.j,
        counts.wins_i + half,
        counts.wins_j + half,
        ridge,
        theta0,
        tol,
        max_iter,
    )
    return _to_elo(theta, scale, base, initial)


# ---------------------------------------------------------------------------------------------
# Bootstrap and ranks
# ---------------------------------------------------------------------------------------------


def bootstrap_samples(
    counts: PairCounts,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    point: FloatArray | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> FloatArray:
    """Ratings fitted on ``rounds`` resamples of the battles: an array ``(rounds, n)``.

    Resampling N battles with replacement is one multinomial draw of N over the distinct
    (pair, outcome) cells with probabilities ``count / N``; all rounds are drawn at once from
    ``numpy.random.default_rng(seed)``, so a seed gives the same samples on every run. Each
    round is fitted warm-started from ``point`` (the full-data fit; computed when not given).
    N is the rounded total count; with non-integer counts (weights) the resample is of that
    many battles in the counts' proportions. Raises ValueError when ``rounds < 1``.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    _check_settings(scale, base, ridge)
    n = len(counts.competitors)
    if point is None:
        point = fit(counts, scale=scale, base=base, initial=initial, ridge=ridge, tol=tol)
    theta0 = _to_logit(point, scale, base, initial)
    cells = np.stack([counts.wins_i, counts.wins_j, counts.ties], axis=1).reshape(-1)
    nonzero = np.flatnonzero(cells > 0)
    total = float(cells.sum())
    n_draw = round(total)
    if nonzero.size == 0 or n_draw == 0:
        return np.broadcast_to(np.asarray(point, dtype=np.float64), (rounds, n)).copy()
    rng = np.random.default_rng(seed)
    probs = cells[nonzero] / total
    probs /= probs.sum()
    draws = rng.multinomial(n_draw, probs, size=rounds).astype(np.float64)
    dense = np.zeros((rounds, cells.size))
    dense[:, nonzero] = draws
    dense = dense.reshape(rounds, -1, 3)
    w_ij = dense[:, :, 0] + 0.5 * dense[:, :, 2]
    w_ji = dense[:, :, 1] + 0.5 * dense[:, :, 2]
    out = np.empty((rounds, n))
    for k in range(rounds):
        theta = _solve(n, counts.i, counts.j, w_ij[k], w_ji[k], ridge, theta0, tol, max_iter)
        out[k] = _to_elo(theta, scale, base, initial)
    return out


def intervals(samples: FloatArray, level: float = DEFAULT_LEVEL) -> tuple[FloatArray, FloatArray]:
    """Percentile interval per competitor (column) of bootstrap ``samples``."""
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    q = 50 * (1 - level)
    lower, upper = np.percentile(samples, [q, 100 - q], axis=0)
    return lower, upper


def bootstrap(
    counts: PairCounts,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    level: float = DEFAULT_LEVEL,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    point: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """``(lower, upper)``: the 2.5 and 97.5 percentiles (``level`` 0.95) of the bootstrap.

    See :func:`bootstrap_samples`. Percentile intervals usually contain the point estimate, but
    nothing forces them to on very skewed data (e.g. a competitor with two battles).
    """
    samples = bootstrap_samples(
        counts, rounds, seed, scale=scale, base=base, initial=initial, ridge=ridge, point=point
    )
    return intervals(samples, level)


def rank_with_intervals(rating: FloatArray, lower: FloatArray, upper: FloatArray) -> IntArray:
    """Rank = 1 + the number of competitors whose lower bound is strictly above this upper bound.

    The rule of public arena leaderboards: a competitor is ranked below only those that are
    better beyond doubt, so several may share a rank and ranks may skip. ``rating`` is not used
    by the rule; it is taken so that callers pass the three aligned arrays (their lengths are
    checked). O(n log n).
    """
    rating, lower, upper = (np.asarray(x, dtype=np.float64) for x in (rating, lower, upper))
    if not (rating.shape == lower.shape == upper.shape) or rating.ndim != 1:
        raise ValueError("rating, lower and upper must be one-dimensional and of equal length")
    ordered = np.sort(lower)
    above = ordered.size - np.searchsorted(ordered, upper, side="right")
    return 1 + above.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The leaderboard
# ---------------------------------------------------------------------------------------------


class BTResult(Struct, frozen=True, kw_only=True):
    """A Bradley-Terry leaderboard, sorted by rating (descending; name breaks ties).

    The fields are aligned: ``competitors[k]`` has ``rating[k]`` in ``[lower[k], upper[k]]``
    (the bootstrap's percentile interval at ``level``) and ``rank[k]``
    (:func:`rank_with_intervals`). ``battles`` is the number of battles fitted, ``rounds`` and
    ``seed`` the bootstrap's.
    """

    competitors: tuple[str, ...]
    rating: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    rank: tuple[int, ...]
    battles: int
    rounds: int
    seed: int
    level: float = DEFAULT_LEVEL

    def rows(self) -> list[tuple[int, str, float, float, float]]:
        """``(rank, competitor, rating, lower, upper)`` per line, in display order."""
        return list(
            zip(self.rank, self.competitors, self.rating, self.lower, self.upper, strict=True)
        )


def leaderboard(
    counts: PairCounts,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
) -> BTResult:
    """Fit, bootstrap and rank: the whole leaderboard for ``counts``. See :func:`fit`."""
    rating = fit(counts, scale=scale, base=base, initial=initial, ridge=ridge)
    lower, upper = bootstrap(
        counts,
        rounds,
        seed,
        level=level,
        scale=scale,
        base=base,
        initial=initial,
        ridge=ridge,
        point=rating,
    )
    rank = rank_with_intervals(rating, lower, upper)
    order = sorted(range(rating.size), key=lambda k: (-rating[k], counts.competitors[k]))
    return BTResult(
        competitors=tuple(counts.competitors[k] for k in order),
        rating=tuple(rating[order].tolist()),
        lower=tuple(lower[order].tolist()),
        upper=tuple(upper[order].tolist()),
        rank=tuple(rank[order].tolist()),
        battles=round(counts.battles),
        rounds=rounds,
        seed=seed,
        level=level,
    )
