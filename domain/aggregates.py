"""Order-independent sums and means that cannot overflow: what every read model averages with.

Both are ``math.fsum`` (exactly rounded, so the same values in any order give the same float,
which the incremental = rebuild = audit property relies on). ``math.fsum`` raises OverflowError
when a partial sum leaves the float range, even if the true sum would not; within the ranges the
ingest accepts (:mod:`.metrics`, every value within 10^15) no sum of fewer than 10^293 values can,
so for accepted events the fast path is the only path. The fallback keeps a read model answering
for values accepted before those ranges existed (a log written by an earlier version): it sums
the values scaled by an exact power of two (exact unless values below 10^-288 are mixed in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean", "total"]


_SHIFT = 64
"""Scaling exponent of the fallback: 2^64 values of the largest float still sum in range."""


def total(values: Sequence[float]) -> float:
    """The exactly rounded sum of finite ``values`` (0.0 for none). A true sum beyond the float
    range (impossible for accepted values) is ``±inf``, which the API shows as null."""
    try:
        return math.fsum(values)
    except OverflowError:
        scaled = math.fsum(math.ldexp(v, -_SHIFT) for v in values)
        try:
            return math.ldexp(scaled, _SHIFT)
        except OverflowError:
            return math.copysign(math.inf, scaled)


def mean(values: Sequence[float]) -> float | None:
    """The average of finite ``values``, ``None`` for none. Never overflows: an average lies
    between the smallest and the largest value, so it is always a finite float."""
    if not values:
        return None
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        scaled = math.fsum(math.ldexp(v, -_SHIFT) for v in values)
        try:
            return math.ldexp(scaled / len(values), _SHIFT)
        except OverflowError:  # rounded a hair past the largest value, itself the bound
            return max(values) if scaled > 0 else min(values)
