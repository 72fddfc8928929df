"""Errors on the pages: the API's error handlers, answered as an HTML page.

Each handler here runs the JSON handler for the same exception (so the status, code, message,
logging and headers such as ``Retry-After`` are decided in one place, :mod:`..api.errors`) and
renders its body into ``error.html``; a 401 carries the key form, so a page that needs a key
asks for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from ..api.errors import EXCEPTION_HANDLERS, ErrorBody

__all__ = ["PAGE_EXCEPTION_HANDLERS"]

Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]


def _as_page(json_handler: Handler) -> Handler:
    def handle(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        answer = json_handler(request, exc)
        body = answer.content
        assert isinstance(body, ErrorBody)
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
        return Template(
            template_name="error.html",
            context={"error": body, "next": request.url.path + (
                "?" + request.url.query if request.url.query else "")},
            status_code=answer.status_code,
            headers=headers,
        )  # fmt: skip

    return handle


PAGE_EXCEPTION_HANDLERS: dict[Any, Any] = {
    kind: _as_page(handler) for kind, handler in EXCEPTION_HANDLERS.items()
}
