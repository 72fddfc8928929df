"""Unknown query parameters are a 400 on every route, never silently ignored.

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
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from .api import ApiError

SEED_PARAMETER_NAMES: dict[str, str] = {
    "model": "competitor",  # seeds 003 and 004
    "model_id": "competitor",  # seed 000
    "scenario_id": "scenario",  # seed 000
    "run_id": "experiment_id",  # seed 004
    "entity_type": "type",  # seed 002's history log
}
"""Query parameter names the seeds used -> Arbiter's name for the same thing."""

_TYPED = re.compile(r"\{(\w+):\w+\}")


class QueryParameterCheck(ReceiveRoutePlugin):
    """Records each HTTP route handler's accepted query parameters as routes are registered, and
    refuses requests that name others (:meth:`guard`, an app-level guard)."""

    def __init__(self, exempt_prefix: str = "/schema") -> None:
        self.exempt_prefix = exempt_prefix
        self._accepted: dict[BaseRouteHandler, tuple[str, frozenset[str]]] = {}

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or route.path.startswith(self.exempt_prefix):
            return
        path = _TYPED.sub(r"{\1}", route.path)
        for handler, model in route.route_handler_map.values():
            names = frozenset(p.field_alias for p in model.expected_query_params)
            self._accepted[handler] = (path, names)

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        # Litestar hands guards a copy of the handler; the scope holds the one that was routed.
        found = self._accepted.get(connection.route_handler)
        if found is None:
            return
        path, names = found
        unknown = sorted(set(connection.query_params) - names)
        if unknown:
            method = connection.scope.get("method", "GET")
            raise _refusal(f"{method} {path}", unknown, names)


def _refusal(route: str, unknown: list[str], accepted: frozenset[str]) -> ApiError:
    shown = [f"`{name[:64]}`" for name in unknown[:5]]
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    noun = "Query parameter" if len(unknown) == 1 else "Query parameters"
    verb = "is" if len(unknown) == 1 else "are"
    message = f"{noun} {', '.join(shown)}{more} {verb} not accepted by {route}; "
    if accepted:
        message += "it takes " + ", ".join(f"`{n}`" for n in sorted(accepted)) + "."
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
