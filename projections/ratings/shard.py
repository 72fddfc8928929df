"""Sharding a rebuild of the ratings: which pools each of two processes rates, and what the
first hands the second.

Its own room because it is the contract between the two processes of a sharded rebuild
(:mod:`arbiter.services.processes.rebuild_worker`): :class:`Shard` names a half of the pools,
:class:`Forwarded` is the msgpack frame the arena-wide half sends the category half once per
page. Pure: whether sharding is worth it for a stored model is a question for the store
(:func:`arbiter.projections.ratings.storage.worth_sharding`).
"""

from __future__ import annotations

import msgspec
from arbiter.domain.events import ResultVoided

from .records import OVERALL, Match, PoolKey

__all__ = ["Forwarded", "Shard"]


class Forwarded(msgspec.Struct, array_like=True):
    """What the arena-wide shard of a rebuild forwards to the category shard (see
    :meth:`RatingsFold.take_forwarded`); msgpack-encoded, it is all the category shard reads."""

    matches: list[Match]
    voids: list[tuple[int, ResultVoided]]


class Shard(msgspec.Struct, frozen=True):
    """Half of the pools, so that a rebuild can fold the log in two processes at once: the
    arena-wide pools (``categories`` False) or the category pools (True). Pools are rated
    independently of each other, so the two shards' rows together are exactly the rows of one
    fold over the whole log, and each half of the history has its own partition
    (``migrations/ratings/0004``), which its shard indexes as soon as it is done.

    The arena-wide shard reads the log, keeps the small global tables (competitors, arenas,
    voids, the position) and forwards every result to the category shard as the :class:`Match`
    it made (with the players, score and settings a rating needs), and every void of a result
    with a category (:class:`Forwarded`). The category shard reads nothing else (no log, no
    decoding, no registry) and stores the ``matches`` table, which evens out the two halves'
    work: the arena-wide pools see every result, the category pools only some.
    """

    categories: bool

    def owns(self, key: PoolKey) -> bool:
        return (key[1] != OVERALL) is self.categories

    @property
    def keeps_globals(self) -> bool:
        return not self.categories

    @property
    def partition(self) -> tuple[str, str]:
        """(table, partition): the partition of the history only this shard writes."""
        part = "rating_history_categories" if self.categories else "rating_history_overall"
        return "rating_history", part
