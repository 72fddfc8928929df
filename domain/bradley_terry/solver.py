"""The Bradley-Terry fit: penalised maximum likelihood by Newton's method. Pure.

Works on the natural logit scale ``t = (r - initial) * ln(base) / scale`` and converts to and
from the Elo scale at the edges; the ridge prior, the per-component anchor and the solver's
cost are described in :mod:`arbiter.domain.bradley_terry`. :func:`solve` is shared with the
bootstrap (:mod:`.resampling`), which fits every resample warm-started from the point estimate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from .pair_counts import FloatArray, IntArray

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_RIDGE",
    "DEFAULT_TOL",
    "check_settings",
    "components",
    "newton_minimise",
    "sigmoid_parts",
    "solve",
    "to_elo",
    "to_logit",
]

DEFAULT_RIDGE = 1e-6
"""L2 penalty on the natural logit scale (``ridge / 2 * sum(t**2)``): scikit-learn's ``C=1e6``."""
DEFAULT_TOL = 1e-10
"""Newton stops when no competitor moves by more than this many logits (about 2e-8 Elo)."""
DEFAULT_MAX_ITER = 200


def check_settings(scale: float, base: float, ridge: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("scale must be positive")
    if not (math.isfinite(base) and base > 1):
        raise ValueError("base must be greater than 1")
    if not (math.isfinite(ridge) and ridge > 0):
        raise ValueError("ridge must be positive (it is what keeps unbeaten competitors finite)")


def components(n: int, i: IntArray, j: IntArray) -> IntArray:
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


def sigmoid_parts(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``sigmoid(d)`` and ``sigmoid(d) * sigmoid(-d)``, overflow-free."""
    e = np.exp(-np.abs(d))
    inv = 1.0 / (1.0 + e)
    s = np.where(d >= 0, inv, e * inv)
    return s, e * inv * inv


def solve(
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
    comp = components(n, i, j)
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

    def newton_step(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        d = theta[i] - theta[j]
        s, h_unit = sigmoid_parts(d)
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
        return grad, centre(-np.linalg.solve(hess, grad))

    return newton_minimise(theta, objective, newton_step, centre, tol, max_iter, "Bradley-Terry")


def newton_minimise(
    x: FloatArray,
    objective: Callable[[FloatArray], tuple[float, float]],
    newton_step: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    centre: Callable[[FloatArray], FloatArray],
    tol: float,
    max_iter: int,
    what: str,
) -> FloatArray:
    """Newton's method with a backtracking (Armijo) line search, from ``x``: ``objective``
    gives ``(value, magnitude)`` (the magnitude bounds the rounding in the value), ``newton_step``
    the gradient and the (centred) step. Stops when no coordinate moves by more than ``tol``, or
    when no step decreases the objective beyond its rounding (at the optimum); after
    ``max_iter`` iterations warns (RuntimeWarning naming ``what``) and returns the last iterate.
    Shared by the pair-count fit and the controlled fit (:mod:`.controlled`)."""
    value, magnitude = objective(x)
    for _ in range(max_iter):
        grad, step = newton_step(x)
        slope = float(grad @ step)
        slack = 64 * np.finfo(np.float64).eps * magnitude  # rounding in F itself
        t = 1.0
        for _ in range(60):
            candidate = x + t * step
            new_value, new_magnitude = objective(candidate)
            if new_value <= value + 1e-4 * t * slope + slack:
                break
            t *= 0.5
        else:  # no decrease even for a tiny step: at the optimum to rounding
            return x
        x = centre(candidate)
        value, magnitude = new_value, new_magnitude
        if t * float(np.max(np.abs(step))) <= tol:
            return x
    warnings.warn(
        f"{what} fit did not converge in {max_iter} Newton iterations",
        RuntimeWarning,
        stacklevel=4,
    )
    return x


def to_elo(theta: FloatArray, scale: float, base: float, initial: float) -> FloatArray:
    return initial + theta * (scale / math.log(base))


def to_logit(rating: FloatArray, scale: float, base: float, initial: float) -> FloatArray:
    return (np.asarray(rating, dtype=np.float64) - initial) * (math.log(base) / scale)
