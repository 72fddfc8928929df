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
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode

__all__ = ["nfc_scope"]


def nfc_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` with its ``path`` and query values in NFC (the same scope when already so)."""
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    new_path = path if path.isascii() else _nfc(path)
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
    return {**scope, "path": new_path, "query_string": new_query}


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
