"""Read models: one module (or package) per projection, each a pure fold over events plus its SQL.

:data:`PROJECTIONS` is the registry the projector, ``arbiter rebuild`` and the audit iterate.
Shared by all of them: :mod:`.tracking` (the table that records where each projection stands)
and :mod:`.copy` (binary COPY and upserts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from arbiter.domain.events import Event
from psycopg import Cursor

from . import ratings, results

__all__ = ["PROJECTIONS", "Fold", "ProjectionSpec"]


class Fold(Protocol):
    """What every projection's in-memory state offers the runners."""

    position: int
    events: int

    def apply(self, position: int, event: Event) -> None: ...

    def take_changes(self) -> Any: ...


@dataclass(frozen=True)
class ProjectionSpec:
    """How to create, load and store one projection. Its tables live in schema ``arbiter_<name>``
    and are defined by ``migrations/<name>/NNNN_*.sql``."""

    name: str
    new: Callable[..., Fold]
    """() -> an empty fold; with ``shardable``, also (shard) -> one that folds only a shard."""
    load: Callable[[Cursor[Any], str], Fold]
    prepare: Callable[[Any, Any], Any]
    """(fold, changes) -> rows to store, copied out of the fold (cheap, pure)."""
    store: Callable[[Cursor[Any], str, Any], None]
    """(cursor, schema, rows): write prepared rows and the position, in the caller's tx."""
    deferred_indexes: tuple[str, ...] = ()
    """Indexes a rebuild drops while it fills the fresh tables and builds once at the end: one
    sort instead of a b-tree insert per row, worth it for keys that arrive in random order (an
    index on an increasing column, like the log position, is cheap to keep)."""

    shardable: bool = False
    """Whether ``new`` takes a :class:`arbiter.projections.ratings.Shard`, so that a rebuild
    of a long log can fold it in several processes at once."""

    def write(self, cur: Cursor[Any], schema: str, fold: Any, changes: Any) -> None:
        """Store what a batch changed, in the caller's transaction."""
        self.store(cur, schema, self.prepare(fold, changes))

    @property
    def schema(self) -> str:
        return f"arbiter_{self.name}"


PROJECTIONS: dict[str, ProjectionSpec] = {
    ratings.NAME: ProjectionSpec(
        ratings.NAME,
        ratings.RatingsFold,
        ratings.load,
        ratings.prepare,
        ratings.store,
        deferred_indexes=("rating_history_pkey", "matches_pkey"),
        shardable=True,
    ),
    results.NAME: ProjectionSpec(
        results.NAME,
        results.ResultsFold,
        results.load,
        results.prepare,
        results.store,
        deferred_indexes=results.DEFERRED_INDEXES,
    ),
}
