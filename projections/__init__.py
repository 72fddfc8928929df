"""Read models: one module per projection, each a pure fold over events plus its SQL.

:data:`PROJECTIONS` is the registry the projector, ``arbiter rebuild`` and the audit iterate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from arbiter.domain.events import Event
from psycopg import Cursor

from . import ratings, results


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
    new: Callable[[], Fold]
    load: Callable[[Cursor[Any], str], Fold]
    write: Callable[[Cursor[Any], str, Any, Any], None]
    bulk_tables: tuple[str, ...] = ()
    """Append-only tables a rebuild fills without their indexes, which it builds once at the end
    (one sort instead of a b-tree insert per row)."""

    @property
    def schema(self) -> str:
        return f"arbiter_{self.name}"


PROJECTIONS: dict[str, ProjectionSpec] = {
    ratings.NAME: ProjectionSpec(
        ratings.NAME,
        ratings.RatingsFold,
        ratings.load,
        ratings.write,
        bulk_tables=("rating_history", "matches"),
    ),
    results.NAME: ProjectionSpec(results.NAME, results.ResultsFold, results.load, results.write),
}
