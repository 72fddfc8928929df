"""Bradley-Terry boards fitted from stored rows: the options a ``system=bt`` board takes, and
the two fits (pair counts; battles with covariates), importing numpy and the domain only.

Why a module outside the API's package: the API fits on its own threads when a request waits
for the fit, and in a process of its own for its background refits
(:func:`arbiter.services.api.queries.bt_fits._elsewhere`), which receives these functions and
:class:`BTOptions` by name. Importing them from the API's package would load Litestar, every
route and the metrics into that process as well.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from arbiter.domain import bradley_terry as bt

from .bt_threads import on_two_threads

__all__ = [
    "BT_LEVEL",
    "BT_ROUNDS",
    "BT_SEED",
    "BTOptions",
    "fit_controlled",
    "fit_pairs",
    "one_blas_thread",
    "steady_heap",
]

Rows = Sequence[Sequence[Any]]
"""Rows as the database returns them."""

BT_ROUNDS = 100
BT_SEED = 0
BT_LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class BTOptions:
    """The ``system=bt`` parameters, parsed. ``anchor`` None: the arena's default; ``"mean"``:
    no anchor. Hashable: part of the fit cache's key."""

    rounds: int = BT_ROUNDS
    seed: int = BT_SEED
    level: float = BT_LEVEL
    anchor: bt.Anchor | Literal["mean"] | None = None
    control: tuple[str, ...] = ()


@functools.cache
def one_blas_thread() -> None:
    """Limit numpy's BLAS to one thread in this process, once. A fit solves a small dense
    Newton system (129 x 129 for the public arena) a few times per bootstrap round, and
    OpenBLAS's threads only add hand-offs at that size; on a busy host they spin against the
    other processes: on the shared 2-core test VM (load 15) 200 solves of 129 x 129 took 9.1 s
    with OpenBLAS's default of 2 threads and 0.1 s with 1, and 20 bootstrap rounds on the real
    arena counts 6.5 s and 0.6 s. Nothing else in the API or the CLI needs threaded BLAS."""
    from threadpoolctl import threadpool_limits  # loads numpy's BLAS info: only when fitting

    threadpool_limits(1, user_api="blas")


@functools.cache
def steady_heap() -> None:
    """Allocate and free one 16 MiB block, once per process, so that glibc's malloc serves the
    fit's temporaries from its heap. A bootstrap batch makes dozens of arrays of about 0.5 MiB
    per Newton iteration (domain/bradley_terry/rounds.py); glibc maps any block above its mmap
    threshold (128 KiB at start) straight from the kernel and unmaps it on free, so each of
    them cost fresh page faults: 80 of the 330 ms of CPU of a cold board of 100 competitors
    and 100,000 battles in a new process. Freeing a mapped block raises the threshold to
    its size for the rest of the process (and the heap's trim threshold to twice that), which
    is all this does: the block is never touched, so it costs no page. Other allocators ignore
    it. (32 MiB is glibc's ceiling for that raise: a block of that size would not raise it.)"""
    import numpy as np

    block = np.empty(16 << 20, dtype=np.uint8)
    del block


def fit_pairs(
    pairs: Rows, settings: tuple[float, float, float], options: BTOptions, anchor: bt.Anchor | None
) -> bt.BTResult:
    """The uncontrolled board from stored pair rows ``(x, y, x_wins, y_wins, ties)``."""
    one_blas_thread()
    steady_heap()
    scale, base, initial = settings
    counts = bt.PairCounts.from_rows(
        (x, y, float(a), float(b), float(t)) for x, y, a, b, t in pairs
    )
    return bt.leaderboard(
        counts, rounds=options.rounds, seed=options.seed, level=options.level, scale=scale,
        base=base, initial=initial, anchor=anchor, run=on_two_threads,
    )  # fmt: skip


def fit_controlled(
    rows: Rows, settings: tuple[float, float, float], options: BTOptions, anchor: bt.Anchor | None
) -> bt.ControlledResult:
    """The controlled board from :func:`controlled_rows`' rows; ValueError (a 400 for the
    caller) when a metric does not vary over the battles."""
    one_blas_thread()
    steady_heap()
    scale, base, initial = settings
    if not rows:
        raise ValueError(
            f"no battle of this pool with results has {', '.join(options.control)} on both sides"
        )
    battles = bt.ControlledBattles.from_rows(rows, options.control)
    return bt.controlled_leaderboard(
        battles, rounds=options.rounds, seed=options.seed, level=options.level, scale=scale,
        base=base, initial=initial, anchor=anchor,
    )  # fmt: skip
