"""What the live leaderboard streams share: one look at the ratings position per moment, and one
board per query and position, however many streams are open in this process.

Without it every open ``/leaderboard/stream`` queried the position every half second and, at
each move, computed its board on its own: a hundred viewers of one board were two hundred
queries a second at rest and a hundred identical board computations per move. Here the position
is read at most once per :data:`FRESH_S` (a stream may see a move up to that much later than it
would alone), and a board is computed once per (arena, category, limit, viewer) and position;
streams waiting for the same one wait for the same computation.

A computation is shared, never cancelled by one stream going away (``asyncio.shield``); a
failed one is not kept (the next stream asks again). Boards of older positions are dropped when
the position moves on; a stream still behind computes its own, unshared.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .models.ratings import Leaderboard
from .privacy import Viewer
from .queries import leaderboard as q
from .store import ReadStore

__all__ = ["COUNTS", "FRESH_S", "BoardFeed", "FeedCounts", "feed_of"]

FRESH_S = 0.25
"""How long a look at the position is reused (half the streams' polling interval)."""

T = TypeVar("T")
_Key = tuple[str, str, int, Viewer]


@dataclass
class FeedCounts:
    """What the feeds of this process did (tests check the sharing by these)."""

    looks: int = 0
    boards: int = 0


COUNTS = FeedCounts()


class BoardFeed:
    """The shared position and boards of one :class:`ReadStore` (see the module docstring)."""

    def __init__(self, reads: ReadStore) -> None:
        self.reads = reads
        self._look: tuple[float, asyncio.Future[int]] | None = None
        self._boards: dict[_Key, asyncio.Future[Leaderboard]] = {}
        self._boards_at = -1

    async def position(self) -> int:
        """The ratings projection's position, as read at most :data:`FRESH_S` ago."""
        now = asyncio.get_running_loop().time()
        look = self._look
        if look is None or now - look[0] >= FRESH_S or _failed(look[1]):
            COUNTS.looks += 1
            look = self._look = (now, _shared(q.tracking_position(self.reads)))
        return await asyncio.shield(look[1])

    async def board(
        self, arena: str, category: str, limit: int, viewer: Viewer, position: int
    ) -> Leaderboard:
        """The Elo board (top ``limit``) read once the position is at least ``position``."""
        if position < self._boards_at:  # behind the others: its own, not kept
            return await self._compute(arena, category, limit, viewer)
        if position > self._boards_at:
            self._boards, self._boards_at = {}, position
        key = (arena, category, limit, viewer)
        found = self._boards.get(key)
        if found is None or _failed(found):
            found = self._boards[key] = _shared(self._compute(arena, category, limit, viewer))
        return await asyncio.shield(found)

    async def _compute(self, arena: str, category: str, limit: int, viewer: Viewer) -> Leaderboard:
        COUNTS.boards += 1
        return await q.leaderboard(self.reads, arena, category, limit, 0, viewer=viewer)


def _shared(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """``work`` as a task that several streams await; its failure is retrieved here too, so one
    whose streams all went away is not reported as never retrieved."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


def _failed(future: asyncio.Future[T]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


_feeds: weakref.WeakKeyDictionary[ReadStore, BoardFeed] = weakref.WeakKeyDictionary()


def feed_of(reads: ReadStore) -> BoardFeed:
    """The feed of ``reads`` (one per read store, so one per app and event loop)."""
    feed = _feeds.get(reads)
    if feed is None:
        feed = _feeds[reads] = BoardFeed(reads)
    return feed
