"""Request paths and query values in Unicode NFC, before routing: the ids they name were stored
in NFC (:mod:`arbiter.domain.identifiers` normalises every identifier at the ingest), so
``/competitors/cafe%CC%81`` (an e and a combining accent) must find the competitor the ingest
stored as ``café`` (one precomposed é), as the ingest made both spellings one competitor. Before
this, another spelling of the same name answered a 404, an empty board or a total of 0 without a
word.

The common request costs two ASCII checks: a path that is ASCII is NFC already, and a query
string whose percent-decoded bytes are ASCII has nothing to normalise. Only a query holding
non-ASCII text is parsed and encoded again (values keep their meaning: each key and value is
normalised on its own, then percent-encoded).

An id may hold ``/`` (``org/model`` is a common model name, and the ingest takes it). The
server decodes ``%2F`` before routing, so ``/competitors/org%2Fmodel`` matched no route (404)
and ``/competitors/x%2Fhistory`` answered competitor ``x``'s history, a wrong answer without a
word. Here a ``/`` that the raw path encodes is routed as :data:`SLASH`, a character no id can
hold (a control character, refused at the ingest), so the route sees one segment; and
:class:`SlashedIds`, after routing, gives the path parameters their ``/`` back.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes, urlencode

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from .errors import ErrorBody

__all__ = ["SLASH", "SlashedIds", "nfc_scope", "refuse_nul"]

SLASH = "\x00"
"""Stands for an encoded ``/`` inside a path segment while routing (see the module)."""
_SLASHED = "arbiter.slashed"
"""Scope key: :func:`nfc_scope` put :data:`SLASH` stand-ins in this request's path."""


def nfc_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` with its ``path`` and query values in NFC (the same scope when already so)."""
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    raw: bytes | None = scope.get("raw_path")
    new_path = path
    slashed = False
    if raw and (b"%2F" in raw or b"%2f" in raw):  # a "/" inside a segment
        new_path = "/".join(
            unquote(segment, errors="surrogateescape").replace("/", SLASH)
            for segment in raw.decode("ascii", "surrogateescape").split("/")
        )
        slashed = True
    if not new_path.isascii():
        new_path = _nfc(new_path)
    new_query = query
    if (b"%" in query or not query.isascii()) and not unquote_to_bytes(query).isascii():
        # surrogateescape both ways: bytes that are not UTF-8 go through unchanged, as the
        # router would have seen them (the default would have made them U+FFFD).
        text = query.decode("ascii", "surrogateescape")
        pairs = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
        normal = [(_nfc(k), _nfc(v)) for k, v in pairs]
        new_query = urlencode(normal, quote_via=quote, errors="surrogateescape").encode("ascii")
    if new_path is path and new_query is query:
        return scope
    return {**scope, "path": new_path, "query_string": new_query, _SLASHED: slashed}


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


class SlashedIds:
    """Middleware: path parameters routed with :data:`SLASH` get their ``/`` back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope.get("path_params")
        if params and scope.get(_SLASHED):  # only where nfc_scope put the stand-ins
            scope["path_params"] = {
                k: v.replace(SLASH, "/") if isinstance(v, str) else v for k, v in params.items()
            }
        await self.app(scope, receive, send)


async def refuse_nul(scope: dict[str, Any], send: Send) -> bool:
    """Answer a path holding a NUL (``%00``) with a 400 and return True. No id holds one (the
    ingest refuses control characters), and here it would read as the stand-in of an encoded
    ``/``: ``/competitors/x%00history`` answered competitor ``x/history`` (from the response
    cache, whose key is the routed path)."""
    if SLASH not in scope.get("path", ""):
        return False
    body = msgspec.json.encode(
        ErrorBody(400, "bad_parameter", "The path holds a NUL character (%00); no id holds one.")
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return True
