"""``/events``: query the log (filtered, in either order, through its index:
:mod:`..queries.events`), read one event, and publish one.

``POST /events`` validates exactly as a worker's message is validated (:func:`decode_event`) and
publishes to JetStream (``Nats-Msg-Id`` = ``<event_id>:<content digest>``); the ingest appends it
to the log. Reads leave out the events of experiments the caller may not see (:mod:`..privacy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from arbiter.domain.events import EVENT_TYPES, type_name
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import MAX_EVENT_BYTES, decode_event
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIMediaType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter

from ..auth import current_key, owner_source
from ..bus import Bus
from ..errors import ApiError, not_found, route_errors
from ..models.log import Accepted, EventPage, LoggedEvent
from ..parameters import MAX_POSITION, ArenaFilter, CategoryFilter, Limit, text_filter
from ..privacy import viewer_of, visible
from ..publishing import publish_checked
from ..queries.event_params import event_types, parse_time
from ..queries.events import EventFilter, decode_cursor, event_page
from ..store import ReadStore

__all__ = ["EventController"]


@dataclass
class _PublishOperation(Operation):
    """Documents ``POST /events``' body, which the handler reads raw (not parsed by Litestar)."""

    def __post_init__(self) -> None:
        refs = {t.__struct_config__.tag: f"#/components/schemas/{t.__name__}" for t in EVENT_TYPES}
        self.request_body = RequestBody(
            required=True,
            description="One wire event (v1) as a JSON object, at most 64 KiB.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        one_of=[Reference(ref) for ref in refs.values()],
                        discriminator=Discriminator(property_name="type", mapping=refs),
                    )
                )
            },
        )


class EventController(Controller):
    path = "/events"
    tags = ["events"]  # noqa: RUF012

    @get("/", summary="The event log, filtered, in order", responses=route_errors(400, 503))
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        after: Annotated[
            int,
            QueryParameter(
                ge=0, le=MAX_POSITION, description="Exclusive lower bound on the log position."
            ),
        ] = 0,
        before: Annotated[
            int | None,
            QueryParameter(
                ge=1, le=MAX_POSITION, description="Exclusive upper bound on the log position."
            ),
        ] = None,
        limit: Limit = 100,
        event_type: Annotated[
            list[str] | None,
            QueryParameter(
                name="type",
                description="Only events of these types: repeat the parameter or separate them "
                "with commas.",
            ),
        ] = None,
        arena: ArenaFilter = None,
        category: CategoryFilter = None,
        source: Annotated[str | None, text_filter("Only events with this source.")] = None,
        competitor: Annotated[
            str | None,
            text_filter(
                "Only events that name this competitor: its battles, games, trials, the votes "
                "on them, voids of any of those, its registrations and retirements."
            ),
        ] = None,
        entity: Annotated[
            str | None,
            text_filter(
                "Only events that name this battle, game, trial or experiment id (the result "
                "itself, votes on it, voids of either; an experiment's trials)."
            ),
        ] = None,
        since: Annotated[
            str | None,
            QueryParameter(
                description="Only events whose `occurred_at` is at or after this "
                "RFC 3339 time (producer time)."
            ),
        ] = None,
        until: Annotated[
            str | None,
            QueryParameter(
                description="Only events whose `occurred_at` is before this RFC 3339 "
                "time (producer time)."
            ),
        ] = None,
        order: Annotated[
            Literal["asc", "desc"],
            QueryParameter(description="`asc` (oldest first, the default) or `desc`."),
        ] = "asc",
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=256, description="`next` of the previous page (same filters)."
            ),
        ] = None,
    ) -> EventPage:
        """Events in log order (``order=desc``: newest first), served from the log's index, a
        projection kept by the results projector (``indexed`` says how far it has read; ``head``
        is the log's end). Filters combine with AND. Page with ``cursor`` = the last page's
        ``next`` (ascending pages may also resume with ``after`` = ``next_after``): nothing is
        skipped or repeated while events are appended. ``total`` counts every match of the
        filters and bounds (exact). While keys are enforced, the events of experiments the
        caller may not read (their trials, score votes and voids) are left out and not
        counted."""
        f = EventFilter(
            types=event_types(event_type),
            arena=arena,
            category=category,
            source=source,
            competitor=competitor,
            entity=entity,
            since=None if since is None else parse_time("since", since),
            until=None if until is None else parse_time("until", until),
            after=after,
            before=before,
            order=order,
        )
        position = None if cursor is None else decode_cursor(f, cursor)
        return await event_page(reads, f, viewer_of(request), limit, position)

    @get(
        "/{event_id:str}",
        summary="One event and its log position",
        responses=route_errors(404, 503),
    )
    async def get_event(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        event_id: FromPath[str],
    ) -> LoggedEvent:
        """The accepted event with this ``event_id``, where it sits in the log (404 as for an
        unknown id when it is about an experiment the caller may not read)."""
        found = await reads.event(event_id)
        if found is not None and not await visible(reads, viewer_of(request), [found]):
            found = None
        if found is None:
            raise not_found(f"No event with event_id {event_id!r} is in the log.")
        return found

    @post(
        "/",
        summary="Publish an event",
        status_code=202,
        request_max_body_size=MAX_EVENT_BYTES,
        operation_class=_PublishOperation,
        responses=route_errors(400, 409, 413, 503),
        opt={"scope": "publish"},
    )
    async def publish(
        self,
        request: Request[Any, Any, Any],
        bus: NamedDependency[Bus],
        reads: NamedDependency[ReadStore],
    ) -> Accepted:
        """Validate the event as the ingest would and publish it to NATS (``Nats-Msg-Id`` =
        ``<event_id>:<content digest>``). 202 means JetStream holds it; the ingest appends it to
        the log shortly (an ingest-time rejection goes to ``ARBITER_REJECTED``). An event id the
        log already holds is answered at once: 409 ``conflict`` when its content differs, 202
        with ``duplicate: true`` and nothing published when it is the same.

        Needs a key with ``publish`` when keys are enforced; the event's ``source`` is then set
        to ``key:<key_id>``. A ``source`` starting with ``key:`` that is not the caller's own key
        is refused (400 ``reserved_source``)."""
        raw = await request.body()
        result = decode_event(raw)
        if isinstance(result, Rejection):
            raise ApiError.rejected(result)
        key = current_key(request)
        own = None if key is None else owner_source(key)
        if result.source is not None and result.source.startswith("key:") and result.source != own:
            raise ApiError(
                400,
                "reserved_source",
                "`source` values starting with `key:` are set by the API from the API key that "
                "published the event; leave `source` out or use another value.",
                field="source",
                event_id=result.event_id,
                type=type_name(result),
            )
        admin = key is not None and key.allows("admin")
        return await publish_checked(reads, bus, result, own=own, admin=admin)
