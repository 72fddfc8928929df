"""The bootstrap's rounds fitted together: :func:`.solver.solve` on a stack of resamples. Pure.

Why: a board's cold fit is the point estimate plus 100 rounds, each a Newton solve of a few
iterations over every pair. Fitted one by one, a round paid numpy's per-call overhead ~40 times
per iteration on arrays of a few thousand pairs, and two scalar ``logaddexp`` passes per
evaluation of the objective; here each call covers a batch of rounds, the Hessian is assembled
through flat indices and ``take`` replaces fancy indexing. For 100 competitors (4,950 pairs)
and 100 rounds: 197 ms of CPU before, 135 ms here, on the shared 2-core VM (load 3; the
multinomial draws, another 100 ms, are unchanged: same seed, same draws).

The line search decides on a cheap estimate of the objective (one vectorised exp and log1p
pass) wherever the estimate's error cannot change the decision, and on the exact objective of
:func:`.solver.solve` (computed as it does) where it could: near convergence, where the
decision rests on rounding, that is every round's last step or two.

Same numbers, bit for bit: every round goes through exactly the floating-point operations of
:func:`.solver.solve`, in the same order. The per-round arithmetic is element-wise or a
reduction over one round's row (``bincount`` over offset indices sums each bin in the same
order as over one row; ``linalg.solve`` on a stack runs the same LAPACK routine per matrix;
row sums of a C-contiguous stack use the same pairwise summation as a 1-d sum; dot products are
taken row by row with ``@``); the line search's step lengths and stopping are kept per round.
A round in which some pair drew no battle (its "has played" graph may differ from the data's)
is fitted by :func:`.solver.solve` itself. So the gain needs well-sampled pairs: a pair of k
battles draws none with probability about e^-k, and in a pool of many pairs of one to three
battles nearly every round takes that one-by-one road (as fast as before, no slower).
tests/test_bt_rounds.py compares the two on random data with ties, sparse pairs and several
components.
"""

from __future__ import annotations

import warnings

import numpy as np

from .pair_counts import FloatArray, IntArray
from .solver import components, sigmoid_parts, solve

__all__ = ["BATCH_BYTES", "solve_rounds"]

_CLOSE = 256 * np.finfo(np.float64).eps
"""How far (relative to the objective's magnitude) :func:`_Rounds.solve`'s estimate of the
objective may be from solve()'s exact value: each term is within a few units in the last place
(numpy's exp and log1p are within 4 ulp; the max and sum add one each), and each side's
pairwise sum is within about 25 eps of the sum of its terms. 256 eps leaves room over that."""
BATCH_BYTES = 1 << 19
"""Rounds are fitted in batches whose per-pair arrays are about this size (13 rounds of 4,950
pairs): small enough to stay in the CPU's cache between the dozens of passes an iteration
makes over them (batches of all 100 rounds were a third slower), large enough that numpy's
per-call overhead is shared."""
_LIFT_BYTES = 1 << 25
"""Each round in a batch holds its own ``n x n`` Hessian and lift: batches are sized to keep
those under about 32 MiB (209 rounds at 100 competitors, 2 at 1,000), though
:data:`BATCH_BYTES` binds first (13 rounds at 100 competitors, 1 at 1,000)."""


def solve_rounds(
    n: int,
    i: IntArray,
    j: IntArray,
    w_ij: FloatArray,
    w_ji: FloatArray,
    ridge: float,
    start: FloatArray,
    tol: float,
    max_iter: int,
) -> FloatArray:
    """``(rounds, n)``: row ``k`` is ``solve(n, i, j, w_ij[k], w_ji[k], ridge, start, tol,
    max_iter)``, the same floats. ``w_ij`` and ``w_ji`` are ``(rounds, pairs)``."""
    rounds = w_ij.shape[0]
    out = np.empty((rounds, n))
    total = w_ij + w_ji
    full = np.all(total > 0, axis=1) if i.size else np.zeros(rounds, dtype=bool)
    for k in np.flatnonzero(~full).tolist():
        out[k] = solve(n, i, j, w_ij[k], w_ji[k], ridge, start, tol, max_iter)
    rows = np.flatnonzero(full)
    if rows.size:
        batch = max(1, min(_LIFT_BYTES // (16 * n * n), BATCH_BYTES // (8 * i.size)))
        fitter = _Rounds(n, i, j, ridge)
        for first in range(0, rows.size, batch):
            part = rows[first : first + batch]
            out[part] = fitter.solve(w_ij[part], w_ji[part], total[part], start, tol, max_iter)
    return out


class _Rounds:
    """What every full round shares: the pairs, their components and the index arithmetic."""

    def __init__(self, n: int, i: IntArray, j: IntArray, ridge: float) -> None:
        self.n, self.i, self.j, self.ridge = n, i, j, ridge
        self.comp = components(n, i, j)
        self.sizes = np.bincount(self.comp, minlength=n)[self.comp].astype(np.float64)
        self.same = self.comp[:, None] == self.comp[None, :]
        self.ij = i * n + j  # positions in a flattened n x n Hessian
        self.ji = j * n + i
        self.diag = np.arange(n) * (n + 1)

    def _bincount(self, index: IntArray, weights: FloatArray) -> FloatArray:
        """Per row of ``weights``, ``np.bincount(index, weights=row, minlength=n)``."""
        m = weights.shape[0]
        offset = (np.arange(m) * self.n)[:, None] + index[None, :]
        flat = np.bincount(offset.reshape(-1), weights=weights.reshape(-1), minlength=m * self.n)
        return flat.reshape(m, self.n)

    def centre(self, t: FloatArray) -> FloatArray:
        return t - np.take(self._bincount(self.comp, t), self.comp, axis=1) / self.sizes

    def differences(self, t: FloatArray) -> FloatArray:
        """``t_i - t_j`` per pair, per row (``take``: ten times faster than ``t[:, i]``)."""
        return np.take(t, self.i, axis=1) - np.take(t, self.j, axis=1)

    def solve(
        self,
        w_ij: FloatArray,
        w_ji: FloatArray,
        total: FloatArray,
        start: FloatArray,
        tol: float,
        max_iter: int,
    ) -> FloatArray:
        n, ridge = self.n, self.ridge
        m = w_ij.shape[0]
        first = np.asarray(start, dtype=np.float64).copy()
        first = first - np.bincount(self.comp, weights=first, minlength=n)[self.comp] / self.sizes
        x = np.broadcast_to(first, (m, n)).copy()
        kappa = np.array([float(total[k].sum()) / n + ridge for k in range(m)])
        lift = self.same[None, :, :] * (kappa[:, None] / self.sizes[None, :])[:, None, :]

        def objective(
            t: FloatArray, at: IntArray, exact: bool = True
        ) -> tuple[FloatArray, FloatArray]:
            """``exact``: what :func:`.solver.solve`'s objective computes, the same floats. Else
            an estimate within a few units in the last place of each term, from numpy's
            vectorised exp and log1p: a tenth of the time of the scalar ``logaddexp`` pass."""
            d = self.differences(t)
            # softplus(x) = max(x, 0) + log1p(exp(-|x|)); and logaddexp(0, x) is
            # max(x, 0) + logaddexp(0, -|x|) to the bit (numpy computes it as
            # x + log1p(exp(-x)) or log1p(exp(x)), whichever side x is on): one pass for both
            # terms
            m = -np.abs(d)
            shared = np.logaddexp(0.0, m) if exact else np.log1p(np.exp(m))
            terms = w_ij[at] * (np.maximum(-d, 0.0) + shared)
            terms += w_ji[at] * (np.maximum(d, 0.0) + shared)
            tt = np.array([float(row @ row) for row in t])
            value = terms.sum(axis=1) + 0.5 * ridge * tt
            return value, np.abs(terms).sum(axis=1) + np.abs(value)

        def estimate(t: FloatArray, at: IntArray) -> tuple[FloatArray, FloatArray]:
            return objective(t, at, exact=False)

        def newton_step(t: FloatArray, at: IntArray) -> tuple[FloatArray, FloatArray]:
            d = self.differences(t)
            s, h_unit = sigmoid_parts(d)
            r = total[at] * s - w_ij[at]
            grad = self._bincount(self.i, r) - self._bincount(self.j, r) + ridge * t
            h = total[at] * h_unit
            hess = lift[at]  # a copy: fancy indexing
            flat = hess.reshape(-1)
            within = (np.arange(at.size) * (n * n))[:, None]
            flat[within + self.ij] -= h
            flat[within + self.ji] -= h
            flat[within + self.diag] += self._bincount(self.i, h)
            flat[within + self.diag] += self._bincount(self.j, h) + ridge
            return grad, self.centre(-np.linalg.solve(hess, grad[:, :, None])[:, :, 0])

        # The line search decides on estimates: `value` is the estimate at `base`, the point
        # whose exact objective solve() would hold (its last accepted candidate, not centred).
        value, magnitude = estimate(x, np.arange(m))
        base = x.copy()
        exact = np.full((m, 2), np.nan)  # objective() at `base` (value, magnitude), once known
        active = np.arange(m)
        eps64 = 64 * np.finfo(np.float64).eps
        for _ in range(max_iter):
            if active.size == 0:
                break
            grad, step = newton_step(x[active], active)
            slope = np.array([float(g @ s) for g, s in zip(grad, step, strict=True)])
            t = np.ones(active.size)
            candidate = np.empty_like(step)
            new_value = np.empty(active.size)
            new_magnitude = np.empty(active.size)
            exact_new = np.full((active.size, 2), np.nan)  # exact value there, when computed
            searching = np.arange(active.size)  # positions in `active` still halving t
            for _ in range(60):
                rows = active[searching]
                candidate[searching] = x[rows] + t[searching, None] * step[searching]
                nv, nm = estimate(candidate[searching], rows)
                ok = self._armijo(
                    nv, value[rows], t[searching], slope[searching], eps64 * magnitude[rows]
                )
                # Where the estimates are too close to the threshold for their error to be
                # ruled out, decide on the exact objective at both points, as solve() does.
                close = (
                    np.abs(nv - (value[rows] + 1e-4 * t[searching] * slope[searching]))
                    <= _CLOSE * (nm + magnitude[rows]) + eps64 * magnitude[rows]
                )
                if np.any(close):
                    at = rows[close]
                    unknown = at[np.isnan(exact[at, 0])]
                    if unknown.size:
                        exact[unknown, 0], exact[unknown, 1] = objective(base[unknown], unknown)
                    env, enm = objective(candidate[searching[close]], at)
                    decided = self._armijo(
                        env, exact[at, 0], t[searching[close]], slope[searching[close]],
                        eps64 * exact[at, 1],
                    )  # fmt: skip
                    ok[close] = decided
                    exact_new[searching[close][decided]] = np.stack([env, enm], axis=1)[decided]
                new_value[searching[ok]] = nv[ok]
                new_magnitude[searching[ok]] = nm[ok]
                searching = searching[~ok]
                if searching.size == 0:
                    break
                t[searching] *= 0.5
            moved = np.ones(active.size, dtype=bool)
            moved[searching] = False  # no decrease even for a tiny step: at the optimum
            rows = active[moved]
            base[rows] = candidate[moved]
            x[rows] = self.centre(candidate[moved])
            value[rows] = new_value[moved]
            magnitude[rows] = new_magnitude[moved]
            exact[rows] = exact_new[moved]
            size = t[moved] * np.max(np.abs(step[moved]), axis=1)
            active = rows[size > tol]
        if active.size:
            warnings.warn(
                f"Bradley-Terry fit did not converge in {max_iter} Newton iterations",
                RuntimeWarning,
                stacklevel=4,
            )
        return x

    @staticmethod
    def _armijo(
        new: FloatArray, value: FloatArray, t: FloatArray, slope: FloatArray, slack: FloatArray
    ) -> FloatArray:
        """:func:`.solver.newton_minimise`'s acceptance test, term for term."""
        return new <= value + 1e-4 * t * slope + slack
