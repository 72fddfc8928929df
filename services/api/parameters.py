"""Query parameters: the ones every route shares, how ``as_of`` is read, and the check that
refuses the ones a route does not take.

Shared annotations (:data:`Limit`, :data:`Offset`, :data:`ArenaParam`, the optional filters of
the results lists...) live here so every route documents and bounds a parameter the same way.

Unknown query parameters are a 400 on every route, never silently ignored.

Litestar hands a handler the query parameters it declares and drops the rest without a word, so
``/events?source=x`` answered the whole log and ``/competitors?provider=x`` every competitor: a
filter the API does not have looked like one that matched everything. Here each route's accepted
names are taken from the very ``KwargsModel`` Litestar parses the request with (handed over by
the ``receive_route`` plugin hook as each route is registered, so a new route is covered without
a list to keep), and an app-level guard answers a request naming any other one with the API's
400 ``bad_parameter``, naming the unknown parameter and listing the accepted ones.

Where a seed called one of Arbiter's parameters by another name (``model`` for ``competitor``),
the refusal says so; there are no silent aliases. Litestar's own ``/schema`` pages are left alone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from .errors import ApiError, bad_parameter

__all__ = [
    "EXTRA_QUERY",
    "MAX_LIMIT",
    "MAX_POSITION",
    "OPEN_QUERY",
    "SEED_PARAMETER_NAMES",
    "ArenaFilter",
    "ArenaParam",
    "CategoryFilter",
    "CategoryParam",
    "CompetitorFilter",
    "Limit",
    "Offset",
    "QueryParameterCheck",
    "VoidedFilter",
    "parse_as_of",
    "refusal",
    "rfc3339",
    "text_filter",
]

MAX_LIMIT = 1000

Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")
]
Offset = Annotated[int, QueryParameter(ge=0, description="Rows to skip.")]
ArenaParam = Annotated[str, QueryParameter(min_length=1, max_length=128, description="Arena name.")]
CategoryParam = Annotated[
    str,
    QueryParameter(max_length=128, description="Category; empty or absent: the arena-wide pool."),
]


def text_filter(description: str) -> object:
    """An optional text filter of a results list: 1 to 128 characters."""
    return QueryParameter(min_length=1, max_length=128, description=description)


ArenaFilter = Annotated[str | None, text_filter("Only this arena.")]
CategoryFilter = Annotated[str | None, text_filter("Only this category.")]
CompetitorFilter = Annotated[str | None, text_filter("Only results this competitor took part in.")]
VoidedFilter = Annotated[
    bool | None,
    QueryParameter(
        description="true: only voided results; false: only results that count; absent: both."
    ),
]

_DIGITS = re.compile(r"[0-9]+")
MAX_POSITION = 2**63 - 1


def rfc3339(text: str) -> datetime | None:
    """An RFC 3339 date and time with its offset; None for anything else (a bare date, no
    offset): producer times are zoned, so a time without one would be a guess."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None and "T" in value.upper() else None


def parse_as_of(text: str) -> int | datetime:
    """A log position (a non-negative integer) or an RFC 3339 time with its offset."""
    value = text.strip()
    if _DIGITS.fullmatch(value):
        position = int(value)
        if position > MAX_POSITION:
            raise bad_parameter("as_of", f"Query parameter `as_of` ({text[:64]!r}) is too large.")
        return position
    when = rfc3339(value)
    if when is None:
        raise bad_parameter(
            "as_of",
            f"Query parameter `as_of` ({text[:64]!r}) is invalid: give a log position (an "
            "integer >= 0) or an RFC 3339 time with its offset, e.g. 2025-01-01T12:00:00Z.",
        )
    return when


# -- unknown parameters -------------------------------------------------------------------------

SEED_PARAMETER_NAMES: dict[str, str] = {
    "model": "competitor",  # seeds 003 and 004
    "model_id": "competitor",  # seed 000
    "scenario_id": "scenario",  # seed 000
    "run_id": "experiment_id",  # seed 004
    "entity_type": "type",  # seed 002's history log
}
"""Query parameter names the seeds used -> Arbiter's name for the same thing."""

_TYPED = re.compile(r"\{(\w+):\w+\}")

OPEN_QUERY = "open_query"
"""A handler ``opt`` key: the route takes query parameters named by data (an experiment's
dimension keys), so the guard hands their names on (scope key :data:`EXTRA_QUERY`: the route,
the unknown names, the declared ones) instead of refusing them, and the handler checks them
against the data, with the same 400 naming both (:func:`refusal`)."""
EXTRA_QUERY = "arbiter_extra_query"


class QueryParameterCheck(ReceiveRoutePlugin):
    """Records each HTTP route handler's accepted query parameters as routes are registered, and
    refuses requests that name others (:meth:`guard`, an app-level guard)."""

    def __init__(self, exempt_prefix: str = "/schema") -> None:
        self.exempt_prefix = exempt_prefix
        self._accepted: dict[BaseRouteHandler, tuple[str, frozenset[str]]] = {}
        self._single: dict[BaseRouteHandler, frozenset[str]] = {}
        """Per handler, the parameters that take one value: given twice, Litestar keeps the last
        and drops the other without a word, so the guard refuses that instead."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or route.path.startswith(self.exempt_prefix):
            return
        path = _TYPED.sub(r"{\1}", route.path)
        for handler, model in route.route_handler_map.values():
            names = frozenset(p.field_alias for p in model.expected_query_params)
            self._accepted[handler] = (path, names)
            self._single[handler] = frozenset(
                p.field_alias for p in model.expected_query_params if not p.is_sequence
            )

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        # Litestar hands guards a copy of the handler; the scope holds the one that was routed.
        found = self._accepted.get(connection.route_handler)
        if found is None:
            return
        path, names = found
        params = connection.query_params
        for name in sorted(self._single.get(connection.route_handler, frozenset())):
            if len(params.getall(name, [])) > 1:
                raise bad_parameter(
                    name,
                    f"Query parameter `{name[:64]}` is given more than once; "
                    f"{connection.scope.get('method', 'GET')} {path} takes one value for it.",
                )
        unknown = sorted(set(params) - names)
        if unknown:
            method = connection.scope.get("method", "GET")
            if connection.route_handler.opt.get(OPEN_QUERY):
                extra = (f"{method} {path}", unknown, names)
                connection.scope[EXTRA_QUERY] = extra  # type: ignore[literal-required]
                return
            raise refusal(f"{method} {path}", unknown, names)


def refusal(
    route: str, unknown: list[str], accepted: frozenset[str], more_accepted: str = ""
) -> ApiError:
    """The 400 for query parameters a route does not take; ``more_accepted`` ends the list of
    what it takes (e.g. "or a dimension key its trials carry: `persona`")."""
    shown = [f"`{name[:64]}`" for name in unknown[:5]]
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    noun = "Query parameter" if len(unknown) == 1 else "Query parameters"
    verb = "is" if len(unknown) == 1 else "are"
    message = f"{noun} {', '.join(shown)}{more} {verb} not accepted by {route}; "
    if accepted:
        message += "it takes " + ", ".join(f"`{n}`" for n in sorted(accepted))
        message += (f", {more_accepted}" if more_accepted else "") + "."
    else:
        message += "it takes no query parameters."
    hints = [
        f"`{name}` is the seeds' name for `{SEED_PARAMETER_NAMES[name]}`"
        for name in unknown
        if name in SEED_PARAMETER_NAMES and SEED_PARAMETER_NAMES[name] in accepted
    ]
    if hints:
        message += " " + "; ".join(hints) + "."
    return ApiError(400, "bad_parameter", message, field=unknown[0][:128])
