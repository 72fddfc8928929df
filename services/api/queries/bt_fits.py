"""Bradley-Terry fits kept in process memory for the leaderboard: by log position (the rows at a
position never change, so neither does the fit), one fit per key at a time however many ask, and
a pool's latest live fit reused while the log moves (:data:`BT_REFRESH_S`), refitted in the
background so that no request waits for a fit.

The background refits of pair-count boards run in a process of their own (:func:`_elsewhere`),
not on threads of the API's: a refit is a few hundred milliseconds of mostly-Python CPU every
``BT_REFRESH_S`` while events stream in, and on threads it took the interpreter's lock from the
event loop that answers every other request (``system=bt`` under a stream of 1,000 events/s:
p99 312 ms, 0.51 of the same-bytes route; see the README's "API reads under load"). A fit a
request waits for (the first, or one of another position or options) stays on threads: the
request needs it now, and a fresh process would first have to start and import numpy. So does a
controlled board's refit: its rows grow with the battles, and sending them is one pickle that
holds the interpreter's lock from start to end. The fit is the same function on the same rows
either way, so the floats are the same (``tests/test_api_boards.py`` compares them). The
function and its options live in :mod:`arbiter.services.bt_fitting`, outside the API's package,
so the refit process imports numpy and the domain, not Litestar and every route (nor the
metrics, whose multiprocess files ``--workers`` would otherwise get from it too). One process
per API process, taking refits in turn: many live pools refitted at once wait for each other
there, each serving its previous fit meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from arbiter.domain import bradley_terry as bt
from psycopg import sql

from ...parent_watch import exit_with
from ..store import ReadStore
from .bt_board import BTOptions, controlled_rows, fit_controlled, fit_pairs, resolve_anchor
from .snapshot import POSITIONS, Rows, positions_of, snapshot
from .snapshot import ratings_table as _r

__all__ = [
    "BT_CACHE_SIZE",
    "BT_REFRESH_S",
    "REFIT_POLL_S",
    "Fit",
    "Latest",
    "bt_fit",
    "clear_bt_cache",
    "fit_rows",
    "fitter",
    "latest",
    "live_pairs",
    "refit",
    "refit_process",
    "remember",
]

log = logging.getLogger("arbiter.api.boards")

BT_CACHE_SIZE = 64
"""Bradley-Terry fits kept in process memory, least recently used evicted."""
BT_REFRESH_S = 2.0
"""While the log moves, a pool's live Bradley-Terry board is refitted at most this often: a fit
with 100 bootstrap rounds costs up to a second of CPU, and refitting for every new position made
``system=bt`` fall to about one request a second under a stream of 1,000 events/s (measured with
benchmarks/api_load.py). The body's ``bootstrap.position`` says which position the fit reflects.
A fit older than this is refitted in the background and serves until the refit is done, so it
may trail by this plus one fit's time."""


Fit = bt.BTResult | bt.ControlledResult
_BT_CACHE: OrderedDict[tuple[Any, ...], Fit] = OrderedDict()
_BT_PENDING: dict[tuple[Any, ...], asyncio.Task[Fit]] = {}


@dataclass(frozen=True, slots=True)
class Latest:
    """The latest live fit of a pool: the position it reflects, when it was made (monotonic
    seconds), the fit and, with ``control``, how many battles it left out."""

    position: int
    at: float
    fit: Fit
    left_out: int | None


_BT_LATEST: OrderedDict[tuple[Any, ...], Latest] = OrderedDict()
"""(database, arena, category, settings, options, the arena's default anchor) -> the latest live
fit of that pool: what :data:`BT_REFRESH_S` reuses. Keyed before the pairs are read (the anchor
the fit applied is resolved from them, and is in the fit), so that a reuse reads no pairs.
Bounded like the cache (least recently stored evicted): the options (a seed, a level) are the
caller's to vary without end."""


async def bt_fit(key: tuple[Any, ...], compute: Callable[[], Awaitable[Fit]]) -> Fit:
    """The Bradley-Terry leaderboard ``compute`` makes, cached by ``key`` (database, pool, log
    position, settings, the bootstrap's rounds, seed and level, the anchor, the controlled
    metrics): the rows at a position never change, so neither does the fit.

    ``compute`` runs the fit off the event loop (a worker thread, or :func:`_elsewhere`), as a
    task of its own: concurrent requests for the same key
    share it, and a request that goes away does not cancel it (its result is cached for the
    next). Tasks are per event loop; results are plain data, shared by all."""
    cached = _BT_CACHE.get(key)
    if cached is not None:
        _BT_CACHE.move_to_end(key)
        return cached
    pending_key = (id(asyncio.get_running_loop()), key)
    task = _BT_PENDING.get(pending_key)
    if task is None:

        async def run() -> Fit:
            try:
                result = await compute()
            finally:
                _BT_PENDING.pop(pending_key, None)
            _BT_CACHE[key] = result
            while len(_BT_CACHE) > BT_CACHE_SIZE:
                _BT_CACHE.popitem(last=False)
            return result

        task = asyncio.create_task(run())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # always retrieved
        _BT_PENDING[pending_key] = task
    return await asyncio.shield(task)


def clear_bt_cache() -> None:
    _BT_CACHE.clear()
    _BT_LATEST.clear()


_BT_REFITS: dict[tuple[Any, ...], asyncio.Task[None]] = {}
"""(event loop, live pool key) -> its refit in progress (:func:`refit`)."""
REFIT_POLL_S = 0.1
"""How long an answer built on a fit older than BT_REFRESH_S (its refit in progress) may be
cached: the refit's result is then picked up within this."""


def live_pairs() -> sql.Composable:
    """The pool's pairwise counts now (``%(arena)s``, ``%(category)s``)."""
    return sql.SQL(
        "SELECT x, y, x_wins, y_wins, ties FROM {} WHERE arena = %(arena)s "
        "AND category = %(category)s AND x_wins + y_wins + ties > 0 ORDER BY x, y"
    ).format(_r("pairs"))


def remember(live: tuple[Any, ...], latest: Latest) -> None:
    _BT_LATEST[live] = latest
    _BT_LATEST.move_to_end(live)
    while len(_BT_LATEST) > BT_CACHE_SIZE:
        _BT_LATEST.popitem(last=False)


def refit(reads: ReadStore, live: tuple[Any, ...], recent: Latest) -> None:
    """Refit the live pool ``live`` in a task of its own (one per pool and event loop at a time):
    its pairs read in a snapshot of their own, the fit made by :func:`bt_fit`, then kept as the
    pool's latest. Meanwhile the previous fit serves, so no request waits for a fit while the log
    moves (a fit of 100 competitors costs up to a second of CPU: every request of the route
    waited for it, every BT_REFRESH_S). If the refit fails (the pool changed so that the fit is
    refused, the database went away) the previous fit is forgotten: the next request fits
    itself, and says why it cannot."""
    pending = (id(asyncio.get_running_loop()), live)
    if pending in _BT_REFITS:
        return
    arena, category, opts = live[1], live[2], live[4]

    async def refit() -> None:
        try:
            left_out: int | None = None
            async with snapshot(reads) as snap:
                if opts.control:  # the battles' rows, not the pairs, at the results' position
                    (positions,) = await snap.many(POSITIONS)
                    pairs, left_out = await controlled_rows(snap, arena, category, opts.control)
                    at = positions_of(positions)[1]
                else:
                    positions, pairs = await snap.many(
                        POSITIONS, (live_pairs(), {"arena": arena, "category": category})
                    )
                    at = positions_of(positions)[0]
            # A pair-count fit in the refit process; a controlled fit on threads, as a request's:
            # its rows grow with the battles, and sending them there is one pickle, which holds
            # the interpreter's lock from start to end (1.8 s for a million such rows, measured
            # on the 2-core VM), where a fit on threads lets the event loop in every few ms.
            result = await fit_rows(live, at, pairs, elsewhere=not opts.control)
            remember(live, Latest(at, time.monotonic(), result, left_out))
        except Exception as exc:
            if _BT_LATEST.get(live) is recent:
                _BT_LATEST.pop(live, None)
            log.warning("Bradley-Terry refit of %s/%s failed: %s", arena, category, exc)
        finally:
            _BT_REFITS.pop(pending, None)

    _BT_REFITS[pending] = asyncio.create_task(refit(), name="bt-refit")


async def fit_rows(
    live: tuple[Any, ...], position: int, pairs: Rows, *, elsewhere: bool = False
) -> Fit:
    """The fit of pool ``live`` (database, arena, category, settings, options, the arena's
    default anchor) from its rows read at ``position`` (pair counts, or the controlled fit's
    battle rows), through the fit cache: the one way the request path and the background refit
    key and make a fit, so they share it. ``elsewhere``: fitted in the refit process
    (:func:`_elsewhere`), else on a worker thread."""
    database_url, arena, category, settings, opts, default = live
    anchor = resolve_anchor(opts, default, {r[0] for r in pairs} | {r[1] for r in pairs})
    fit = fitter(opts)
    key = (database_url, arena, category, position, settings, opts, anchor)
    args = (pairs, settings, opts, anchor)
    if elsewhere:
        return await bt_fit(key, lambda: _elsewhere(fit, *args))
    return await bt_fit(key, lambda: asyncio.to_thread(fit, *args))


_REFIT_PROCESS: ProcessPoolExecutor | None = None
"""One process for every background refit of this API process, started at the first (a
``spawn``: no fork of a process running threads), kept for the next ones."""


def refit_process() -> ProcessPoolExecutor:
    """The refit process of this API process, started if there is none."""
    global _REFIT_PROCESS
    if _REFIT_PROCESS is None:
        _REFIT_PROCESS = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with,
            initargs=(os.getpid(),),
        )
    return _REFIT_PROCESS


async def _elsewhere(fit: Callable[..., Fit], *args: Any) -> Fit:
    """``fit(*args)`` in the refit process. If that process died (killed, out of memory), this
    refit fails (its caller forgets the old fit, as for any failed refit) and the next one starts
    a new process."""
    global _REFIT_PROCESS
    process = refit_process()
    try:
        return await asyncio.get_running_loop().run_in_executor(process, fit, *args)
    except BrokenProcessPool:
        if _REFIT_PROCESS is process:  # not one a later refit has started since
            _REFIT_PROCESS = None
        raise


def fitter(opts: BTOptions) -> Callable[..., Fit]:
    """The fit a board of these options makes: controlled (covariates) or from the pairs."""
    return fit_controlled if opts.control else fit_pairs


def latest(live: tuple[Any, ...]) -> Latest | None:
    """The pool's latest live fit, if one is kept."""
    return _BT_LATEST.get(live)
