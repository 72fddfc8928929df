"""Battles (or stored rows) to outcome counts per unordered pair: the fit's only input. Pure.

At most three cells per pair (``i`` won, ``j`` won, tie), so the fit's work depends on the
number of competitors and pairs, never on the number of battles, and the counts cannot depend
on the order of the battles: competitors are sorted by name and pairs by index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

__all__ = ["OUTCOME_CODES", "FloatArray", "IntArray", "PairCounts"]

OUTCOME_CODES: dict[str, int] = {"a": 0, "b": 1, "tie": 2}
"""Battle outcome to code: ``a`` won, ``b`` won, tie. Integer arrays may use the codes directly."""

_A_WINS, _B_WINS, _TIE = 0, 1, 2
_PENDING = -1  # outcome None: the battle awaits votes and moves no rating (DESIGN.md)
_INVALID = -2
_OUTCOME_LOOKUP: dict[object, int] = {**OUTCOME_CODES, None: _PENDING}
_DENSE_CELLS = 1 << 22  # bincount over n*n*3 cells up to this size, np.unique beyond


FloatArray = np.ndarray
IntArray = np.ndarray


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
