"""``/ui/log`` (the event log, with the filters of ``GET /events``) and ``/ui/log/{event_id}``
(one event: its JSON, where it sits, what it is about).

The list page takes exactly the query parameters ``GET /events`` takes (:mod:`.route_mirror`)
and calls that route's function, so its rows, privacy and paging are the JSON route's. Paging
follows the route's own resume field: its cursor (``next``) where it gives one, else
``next_after``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from arbiter.domain.events import TYPE_NAMES, to_builtins, type_name
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from ..api.errors import not_found
from ..api.models.log import LoggedEvent
from ..api.privacy import viewer_of, visible
from ..api.routes.events import EventController
from ..api.store import ReadStore
from .route_mirror import mirror
from .templating import path_segment

__all__ = ["HANDLERS", "event_page", "log_page", "subject"]

_LIST = EventController.list_events.fn

_RESULT_PAGES = {"battle_id": "/ui/battles/", "game_id": "/ui/games/"}
"""Event fields that name something with its own page."""


def subject(logged: LoggedEvent) -> dict[str, Any]:
    """What a row of the log shows of an event besides its position and type: its arena, the
    competitors it names and a link to the battle or game it records (if any: ``link``, its
    id encoded as a path segment, and ``link_text``, the path as written)."""
    body = to_builtins(logged.event)
    result = next(
        ((base, str(body[field])) for field, base in _RESULT_PAGES.items() if body.get(field)),
        None,
    )
    # The id as one path segment: `b#1` would link to battle `b`, `b?x=1` to a query.
    link = None if result is None else result[0] + path_segment(result[1])
    competitors = [body[k] for k in ("a", "b", "competitor") if isinstance(body.get(k), str)]
    competitors += [p["competitor"] for p in body.get("participants") or () if "competitor" in p]
    return {
        "arena": body.get("arena"),
        "competitors": competitors,
        "link": link,
        "link_text": None if result is None else result[0] + result[1],
        "experiment": body.get("experiment_id"),
        "target": body.get("target_event_id"),
    }


def _next_link(page: Any, chosen: dict[str, list[str]]) -> str | None:
    """The query of the next page: the route's own cursor (``next``) with the same filters when
    it gives one and more may follow, else ``after`` = ``next_after`` while the page has not
    reached the log's head."""
    names = {f.name for f in FILTERS}
    cursor = getattr(page, "next", None)
    descending = getattr(page, "order", "asc") == "desc"
    if isinstance(cursor, str) and "cursor" in names:
        end = getattr(page, "indexed", page.head)  # the last position a next page could hold
        before = chosen.get("before")
        if before:
            end = min(end, int(before[0]) - 1)
        ahead = page.next_after < end
        # A short page is the last one, unless an ascending walk stopped short of the end.
        if len(page.events) >= page.limit or (not descending and ahead):
            return "?" + urlencode({**chosen, "cursor": cursor}, doseq=True)
        return None
    after = getattr(page, "next_after", None)
    # ``after`` resumes an ascending walk only: a descending page without a cursor is the last.
    if (
        not descending
        and after is not None
        and "after" in names
        and after < getattr(page, "head", after)
    ):
        return "?" + urlencode({**chosen, "after": after}, doseq=True)
    return None


async def log_page(
    request: Request[Any, Any, Any], reads: NamedDependency[ReadStore], **filters: Any
) -> Template:
    """The log, one page at a time, filtered as ``GET /events`` filters."""
    page = await _LIST(None, request=request, reads=reads, **filters)
    # Every value of a repeated filter (`type`), as the route read them: the cursor's digest
    # covers them all, so a next link with fewer would be another query's.
    chosen = {
        f.name: [v for v in request.query_params.getall(f.name, []) if v != ""] for f in FILTERS
    }
    chosen = {k: v for k, v in chosen.items() if v}
    next_link = _next_link(page, chosen)
    return Template(
        template_name="log.html",
        context={
            "page": page,
            "rows": [(e, type_name(e.event), subject(e)) for e in page.events],
            "filters": FILTERS,
            "chosen": {k: ",".join(v) for k, v in chosen.items()},  # the form: one box each
            "next_link": next_link,
        },
    )


FILTERS = mirror(_LIST, log_page, vocabularies={"type": TYPE_NAMES})
log_handler = get("/ui/log", name="web-log")(log_page)


@get("/ui/log/{event_id:str}", name="web-event")
async def event_page(
    request: Request[Any, Any, Any], reads: NamedDependency[ReadStore], event_id: FromPath[str]
) -> Template:
    """One event as the log holds it (the 404 of an unknown id when the caller may not see
    it, as ``GET /events/{id}``)."""
    found = await reads.event(event_id)
    if found is not None and not await visible(reads, viewer_of(request), [found]):
        found = None
    if found is None:
        raise not_found(f"No event with event_id {event_id!r} is in the log.")
    return Template(
        template_name="event.html",
        context={
            "logged": found,
            "kind": type_name(found.event),
            "about": subject(found),
            "body": json.dumps(to_builtins(found.event), indent=2, sort_keys=True, default=str),
        },
    )


HANDLERS = (log_handler, event_page)
