"""The ratings read model: Elo standings per arena and category, folded from the log.

A package of rooms with one job each:

* :mod:`.records`: what the model is made of (standing, registry entry, rated result, history
  row) and the columns they are stored in;
* :mod:`.pool`: one rating pool and the Elo arithmetic inside it;
* :mod:`.fold`: :class:`RatingsFold`, the pure incremental fold, void replay included;
* :mod:`.shard`: the two halves of a sharded rebuild and what the first forwards the second;
* :mod:`.storage`: the SQL that loads a fold back and stores what it changed;
* :mod:`.audit`: what the audit compares and digests.

The names the projector, the rebuild, the audit and the tests use (``ratings.NAME``,
``ratings.RatingsFold``, ``ratings.load``, ``ratings.store``, ...) are re-exported here.
"""

from __future__ import annotations

from .audit import (
    MOD,
    TABLES,
    HistoryDigests,
    appended_rows,
    compare,
    compare_history,
    history_digests,
    history_hash,
    state_digest,
    stored_history,
    stored_rows,
)
from .fold import Changes, RatingsFold
from .pool import Pool
from .records import (
    CHECKPOINT_EVERY,
    HISTORY_COLUMNS,
    HISTORY_TYPES,
    MATCH_COLUMNS,
    MATCH_TYPES,
    NAME,
    OVERALL,
    Competitor,
    HistoryRow,
    Match,
    PoolKey,
    Standing,
    StandingKey,
    arena_row,
)
from .shard import Forwarded, Shard
from .storage import (
    PAIR_COLUMNS,
    PAIR_TYPES,
    RATING_COLUMNS,
    RATING_TYPES,
    Rows,
    load,
    prepare,
    store,
    worth_sharding,
    write,
)

__all__ = [
    "CHECKPOINT_EVERY",
    "HISTORY_COLUMNS",
    "HISTORY_TYPES",
    "MATCH_COLUMNS",
    "MATCH_TYPES",
    "MOD",
    "NAME",
    "OVERALL",
    "PAIR_COLUMNS",
    "PAIR_TYPES",
    "RATING_COLUMNS",
    "RATING_TYPES",
    "TABLES",
    "Changes",
    "Competitor",
    "Forwarded",
    "HistoryDigests",
    "HistoryRow",
    "Match",
    "Pool",
    "PoolKey",
    "RatingsFold",
    "Rows",
    "Shard",
    "Standing",
    "StandingKey",
    "appended_rows",
    "arena_row",
    "compare",
    "compare_history",
    "history_digests",
    "history_hash",
    "load",
    "prepare",
    "state_digest",
    "store",
    "stored_history",
    "stored_rows",
    "worth_sharding",
    "write",
]
