"""The SQL behind ``GET /events``: pages of the log chosen through its index
(:mod:`arbiter.projections.event_index`), never a scan of the log.

A page is an ordered range of one index: ``event_competitors`` (competitor, position) for a
competitor, ``event_entities`` (entity, position) for an entity, otherwise ``event_index`` by
position or by one of its (column, position) indexes; the log's own rows are then read by
primary key for the events the page returns. Everything runs in one snapshot, so the page, its
``total`` and ``indexed`` (the position the index reflects) agree.

Decisions:

* The index is a read model: it answers up to ``indexed`` (the results projection's position),
  which ``head`` (the log's last position) may be a few events ahead of. An ascending page that
  comes back short has seen everything up to ``indexed``, so ``next_after`` moves there.
* ``total`` is exact: the count of every event matching the filters and the ``after`` /
  ``before`` bounds (not the cursor, so it stays the same from page to page) up to ``indexed``.
  With no filter but ``type`` and no bound, for a caller who sees everything (no keys
  enforced, or an admin), it is summed from ``event_counts`` (written by the same fold);
  otherwise it is a ``count(*)`` over the same index range as the page, whose cost grows with
  the number of matches (see benchmarks/README.md): so a non-admin key paging the whole log
  pays a count of it per page (``event_counts`` holds no owner, and private events are left
  out of the count).
* The cursor is opaque: the order, the last position and a digest of the filters. Appends land
  above every position already seen, so paging in either order neither skips nor repeats
  (a descending walk starts at ``indexed`` and moves down). A cursor used with other filters
  is refused (400), never followed silently.
* Private experiments: while keys are enforced, an event about an experiment (its trials, the
  score votes on them, voids of either) is left out, and not counted, unless the caller owns
  the experiment or is an admin (:mod:`..privacy`), in SQL, so pages are full and totals exact.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from arbiter.adapters.eventstore import StoredState
from arbiter.projections import tracking
from psycopg import sql

from ..errors import bad_parameter
from ..models.log import EventPage, LoggedEvent
from ..privacy import OWNERS, Viewer
from ..store import LOG, ReadStore
from .snapshot import RESULTS, snapshot
from .snapshot import results_table as _s

__all__ = ["EventFilter", "decode_cursor", "event_page"]

_STATE = msgspec.msgpack.Decoder(StoredState)
_MAX = 2**63 - 1


@dataclass(frozen=True)
class EventFilter:
    """What ``GET /events`` was asked for (all optional)."""

    types: tuple[str, ...] = ()
    arena: str | None = None
    category: str | None = None
    source: str | None = None
    competitor: str | None = None
    entity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int = 0
    before: int | None = None
    order: str = "asc"

    def digest(self) -> str:
        """What a cursor is bound to: every field but the page size."""
        text = msgspec.json.encode(
            [self.types, self.arena, self.category, self.source, self.competitor, self.entity,
             None if self.since is None else self.since.isoformat(),
             None if self.until is None else self.until.isoformat(),
             self.after, self.before, self.order]
        )  # fmt: skip
        return hashlib.sha256(text).hexdigest()[:16]


def _cursor(f: EventFilter, position: int) -> str:
    raw = f"{f.order}.{position}.{f.digest()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(f: EventFilter, cursor: str) -> int:
    """The position a cursor resumes from; 400 when it is not one of ours for this query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        order, position, digest = raw.split(".")
        value = int(position)
    except (ValueError, UnicodeDecodeError):
        raise bad_parameter(
            "cursor", "Query parameter `cursor` is not a cursor this API gave out."
        ) from None
    if order != f.order or digest != f.digest() or not 0 <= value <= _MAX:
        raise bad_parameter(
            "cursor",
            "Query parameter `cursor` was given out for another query: repeat the filters and "
            "`order` of the request that returned it, or start without a cursor.",
        )
    return value


def _where(
    f: EventFilter, viewer: Viewer, lo: int, hi: int
) -> tuple[sql.Composable, sql.Composable, dict[str, Any]]:
    """``FROM .. WHERE ..`` of the index rows matching ``f`` in positions (lo, hi), and the
    position column the range is walked by."""
    args: dict[str, Any] = {"lo": lo, "hi": hi}
    on_index: list[sql.Composable] = []
    if f.types:
        # A competitor's lookup rows carry the type: one index range, no join for it.
        column = "c.type" if f.competitor is not None else "i.type"
        on_type = sql.SQL(column + " = ANY(%(types)s)")
        args["types"] = list(f.types)
    for column in ("arena", "category", "source"):
        value = getattr(f, column)
        if value is not None:
            on_index.append(
                sql.SQL("i.{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
            )
            args[column] = value
    if f.since is not None:
        on_index.append(sql.SQL("i.occurred_at >= %(since)s"))
        args["since"] = f.since
    if f.until is not None:
        on_index.append(sql.SQL("i.occurred_at < %(until)s"))
        args["until"] = f.until
    if not viewer.everything:
        on_index.append(
            sql.SQL(
                "(i.experiment IS NULL OR EXISTS (SELECT 1 FROM {} o WHERE o.thing = "
                "'experiment:' || i.experiment AND o.owner = %(viewer)s))"
            ).format(OWNERS)
        )
        args["viewer"] = viewer.source  # None matches no owner
    # A lookup table drives the range when there is one (a competitor's or an entity's events
    # are an ordered slice of its key); the index's own row joins by position only when a
    # condition needs it.
    tables: list[sql.Composable] = []
    conditions: list[sql.Composable] = []
    if f.types:
        (conditions if f.competitor is not None else on_index).append(on_type)
    if f.competitor is not None:
        tables.append(sql.SQL("{} c").format(_s("event_competitors")))
        conditions.append(sql.SQL("c.competitor = %(competitor)s"))
        args["competitor"] = f.competitor
    if f.entity is not None:
        tables.append(sql.SQL("{} n").format(_s("event_entities")))
        conditions.append(sql.SQL("n.entity = %(entity)s"))
        if f.competitor is not None:
            conditions.append(sql.SQL("n.position = c.position"))
        args["entity"] = f.entity
    by = sql.SQL("c.position" if f.competitor is not None else "n.position")
    if not tables:
        by = sql.SQL("i.position")
    if on_index or not tables:
        tables.append(sql.SQL("{} i").format(_s("event_index")))
        if by.as_string() != "i.position":
            conditions.append(sql.SQL("i.position = {}").format(by))
    conditions.insert(0, sql.SQL("{0} > %(lo)s AND {0} < %(hi)s").format(by))
    body = sql.SQL("FROM {} WHERE {}").format(
        sql.SQL(", ").join(tables), sql.SQL(" AND ").join([*conditions, *on_index])
    )
    return body, by, args


async def event_page(
    reads: ReadStore, f: EventFilter, viewer: Viewer, limit: int, cursor: int | None
) -> EventPage:
    """One page of the log matching ``f``, with its exact total and the next cursor."""
    hi = _MAX if f.before is None else f.before
    lo = f.after
    page_lo, page_hi = lo, hi
    if cursor is not None:
        if f.order == "asc":
            page_lo = max(lo, cursor)
        else:
            page_hi = min(hi, cursor)
    body, by, args = _where(f, viewer, page_lo, page_hi)
    direction = sql.SQL("ASC" if f.order == "asc" else "DESC")
    page_query = sql.SQL(
        "SELECT e.notification_id, e.state FROM (SELECT {by} AS position {body} "
        "ORDER BY {by} {direction} LIMIT %(limit)s) p JOIN {log} e ON e.notification_id = "
        "p.position ORDER BY p.position {direction}"
    ).format(by=by, body=body, direction=direction, log=LOG)
    count_body, _, count_args = _where(f, viewer, lo, hi)
    plain = (
        viewer.everything
        and f.after == 0
        and f.before is None
        and f == EventFilter(types=f.types, order=f.order)
    )
    if plain:
        counted: tuple[sql.Composable, Any] = (
            sql.SQL("SELECT coalesce(sum(count), 0) FROM {}{}").format(
                _s("event_counts"),
                sql.SQL(" WHERE type = ANY(%(types)s)") if f.types else sql.SQL(""),
            ),
            {"types": list(f.types)},
        )
    else:
        counted = (sql.SQL("SELECT count(*) {}").format(count_body), count_args)
    async with snapshot(reads) as snap:
        indexed, (head,), (total,), rows = await snap.many(
            (tracking.position_query(RESULTS.schema, RESULTS.name), ()),
            (sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(LOG), ()),
            counted,
            (page_query, {**args, "limit": limit}),
        )  # fmt: skip
    events = [
        LoggedEvent(position=int(p), recorded_at=s.timestamp, event=s.body)
        for p, s in ((p, _STATE.decode(state)) for p, state in rows)
    ]
    indexed_at = int(indexed[0][0]) if indexed and indexed[0][0] is not None else 0
    if f.order == "asc":
        if len(events) == limit:
            last = events[-1].position
        else:  # everything matching up to the index's position (or the bound) was seen
            last = max(page_lo, min(indexed_at, hi - 1))
        next_cursor: str | None = _cursor(f, last)
    else:
        last = events[-1].position if events else page_lo
        next_cursor = _cursor(f, last) if len(events) == limit else None
    return EventPage(
        events=events,
        after=f.after,
        limit=limit,
        type=",".join(f.types) or None,
        next_after=last if f.order == "asc" else f.after,
        head=int(head[0]),
        total=int(total[0]),
        indexed=indexed_at,
        order=f.order,
        next=next_cursor,
    )
