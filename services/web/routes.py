"""The web router: every page handler, the key form and the static files, under one Router
that marks them as pages (``opt["key_cookie"]``: the auth guard may read the key cookie), keeps them
out of the OpenAPI schema and answers their errors as HTML (:mod:`.failures`).

A page module exports its handlers in ``HANDLERS``; add a module's to :data:`PAGES`.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from . import arenas, board, competitor, experiment, head_to_head, log, records, stats
from .failures import PAGE_EXCEPTION_HANDLERS
from .keys import keep_key
from .templating import STATIC

__all__ = ["PAGES", "web_router"]

PAGES: tuple[Any, ...] = (
    *arenas.HANDLERS,
    *board.HANDLERS,
    *head_to_head.HANDLERS,
    *competitor.HANDLERS,
    *experiment.HANDLERS,
    *stats.HANDLERS,
    *log.HANDLERS,
    *records.HANDLERS,
)


def web_router() -> Router:
    """The pages as one Router, mounted at ``/`` by the app."""
    static = create_static_files_router(
        path="/ui/static", directories=[STATIC], opt={"scope": "none"}, include_in_schema=False
    )
    return Router(
        path="/",
        route_handlers=[*PAGES, keep_key, static],
        opt={"key_cookie": True},
        include_in_schema=False,
        exception_handlers=PAGE_EXCEPTION_HANDLERS,
        # A page may show what only its key may see: never kept by a shared cache, and a
        # browser asks again (the live state is what a page is for).
        cache_control=CacheControlHeader(private=True, no_cache=True),
    )
