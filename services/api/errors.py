"""The API's errors: :class:`ApiError`, its JSON body, the exception handlers, the OpenAPI entries.

Every error the API answers is JSON ``{status, code, message}`` (plus ``field`` where one is to
blame): a bad query parameter is a 400 ``bad_parameter``, an unreachable database or NATS a 503
``unavailable``, a bug a 500 ``internal`` (logged), never an HTML page or a bare traceback. This
is its own room (as ``litestar.exceptions`` is Litestar's) because every other module of the API
raises these errors, and none of them may import the app to do so.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import psycopg
from arbiter.domain.rejections import Code, Rejection
from arbiter.domain.validation import MAX_EVENT_BYTES
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from msgspec import Struct

__all__ = [
    "ERRORS",
    "EXCEPTION_HANDLERS",
    "ApiError",
    "ErrorBody",
    "bad_parameter",
    "error_responses",
    "first_line",
    "not_found",
    "route_errors",
]

log = logging.getLogger("arbiter.api")


class ErrorBody(Struct, omit_defaults=True):
    """Every error: an HTTP status, a stable machine-readable code and a sentence for people.

    ``field`` names the offending query parameter or event field; ``event_id`` and ``type`` are
    echoed from a rejected event when they could be read from it.
    """

    status: int
    code: str
    message: str
    field: str | None = None
    event_id: str | None = None
    type: str | None = None


class ApiError(Exception):
    """An error the API answers on purpose, with its status and stable code."""

    def __init__(self, status: int, code: str, message: str, **extra: str | None) -> None:
        super().__init__(message)
        self.body = ErrorBody(status=status, code=code, message=message, **extra)

    @classmethod
    def rejected(cls, rejection: Rejection) -> ApiError:
        return cls(
            400,
            str(rejection.code),
            rejection.message,
            field=rejection.field,
            event_id=rejection.event_id,
            type=rejection.type,
        )


def bad_parameter(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message, field=field)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: enough to say what failed, never a traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- OpenAPI ------------------------------------------------------------------------------------

ERRORS = {
    400: "A bad parameter (`bad_parameter`) or a rejected event (its rejection code).",
    401: "No valid API key (`unauthorized`): a bad key always, no key where one is needed "
    "(see README, Authentication).",
    403: "The API key lacks the route's scope (`forbidden`).",
    404: "Unknown resource (`not_found`).",
    409: "The log already holds this event_id with other content (`conflict`).",
    413: "Body over 64 KiB (`too_large`).",
    503: "Database or NATS unavailable (`unavailable`).",
}
"""What each error status means on most routes; a route group says it its own way where its
errors mean more (an upload's 413, an admin route's 404)."""


def error_responses(*statuses: int, text: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer, all :class:`ErrorBody`: ``statuses``
    plus 401 and 403, which every route answers when keys are enforced. ``text`` overrides
    :data:`ERRORS` for a route group."""
    described = {**ERRORS, **(text or {})}
    return {
        s: ResponseSpec(data_container=ErrorBody, description=described[s], generate_examples=False)
        for s in sorted({401, 403, *statuses})
    }


def route_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer. 400 is always among them: any route
    with a parameter answers a bad one with ``bad_parameter`` (Litestar would otherwise document
    its own 400 body, which this API never sends)."""
    return error_responses(400, *statuses)


# -- exception handlers -------------------------------------------------------------------------


def _respond(body: ErrorBody, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(body, status_code=body.status, headers=headers)


def _slug(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "error"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def _on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    headers = {"Retry-After": "1"} if exc.body.status == 503 else None
    if exc.body.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="arbiter"'}
    return _respond(exc.body, headers)


def _on_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorBody]:
    problems = [p for p in (exc.extra or []) if isinstance(p, dict)]
    if not problems:
        return _respond(ErrorBody(400, "bad_parameter", str(exc.detail)))
    first = problems[0]
    key = str(first.get("key") or "?")
    source = first.get("source")
    source = str(getattr(source, "value", source) or "query").lower()
    noun = {"query": "Query parameter", "path": "Path parameter"}.get(source, source.title())
    given = request.query_params.get(key) if source == "query" else None
    shown = f" (given {given[:64]!r})" if isinstance(given, str) else ""
    detail = str(first.get("message") or exc.detail).rstrip(".")
    message = f"{noun} `{key}`{shown} is invalid: {detail}."
    if len(problems) > 1:
        others = ", ".join(f"`{p.get('key')}`" for p in problems[1:])
        message += f" Also invalid: {others}."
    return _respond(ErrorBody(400, "bad_parameter", message, field=key))


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    path = request.url.path
    if status == 404:
        body = ErrorBody(404, "not_found", f"Nothing is served at {path}; see /schema.")
    elif status == 405:
        body = ErrorBody(405, "method_not_allowed", f"{request.method} is not allowed on {path}.")
    elif status == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        hint = (
            " Send large artefacts by URI (replay_uri, meta) instead of inline."
            if limit == MAX_EVENT_BYTES
            else ""
        )
        body = ErrorBody(
            413,
            str(Code.TOO_LARGE),
            f"The request body is over the limit of {limit} bytes for {request.method} "
            f"{path}.{hint}",
        )
    elif status >= 500:
        log.error("%s %s: %s", request.method, path, exc.detail)
        body = ErrorBody(status, "internal", "An internal error occurred; it has been logged.")
    else:
        body = ErrorBody(status, _slug(status), str(exc.detail))
    return _respond(body, exc.headers)


def _on_database(request: Request[Any, Any, Any], exc: psycopg.Error) -> Response[ErrorBody]:
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return _respond(
        ErrorBody(503, "unavailable", "The database is unavailable; try again shortly."),
        {"Retry-After": "1"},
    )


def _on_data(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[ErrorBody]:
    """A parameter the database cannot take (a NUL character, a number beyond bigint): the
    request's fault, so a 400, not a 500."""
    log.info("%s %s: %s", request.method, request.url.path, exc)
    return _respond(
        ErrorBody(
            400,
            "bad_parameter",
            f"A parameter has a value the database cannot take ({first_line(exc)}); "
            "remove NUL characters and keep numbers within 64-bit integers.",
        )
    )


def _on_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _respond(ErrorBody(500, "internal", "An internal error occurred; it has been logged."))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _on_api_error,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    psycopg.OperationalError: _on_database,  # includes psycopg_pool.PoolTimeout
    psycopg.DataError: _on_data,
    Exception: _on_internal,
}
"""The app's handlers, most specific first in meaning (Litestar picks by the exception's MRO)."""
