"""``/``: the arenas page, the one ``arbiter up`` points at: each arena with its competitors,
results (battles, games and trials that count; voided ones apart) and last activity."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from ..api.privacy import viewer_of
from ..api.queries.arenas import arenas
from ..api.store import ReadStore

__all__ = ["HANDLERS", "arenas_page"]


@get("/", name="web-arenas")
async def arenas_page(
    request: Request[Any, Any, Any], reads: NamedDependency[ReadStore]
) -> Template:
    """Every arena, by name."""
    position, results_position, found = await arenas(reads, viewer_of(request))
    return Template(
        template_name="arenas.html",
        context={"arenas": found, "position": position, "results_position": results_position},
    )


HANDLERS = (arenas_page,)
