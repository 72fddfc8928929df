"""The key form: ``POST /ui/key`` keeps an API key in a session cookie for the pages.

Why a cookie and not script: a page is rendered on the server, so the key must reach the server
with the page's ``GET``; a browser sends headers only for script requests. The cookie
(:data:`~arbiter.services.api.auth.PAGE_KEY_COOKIE`) is a session cookie (no ``Max-Age``: gone
when the browser closes), ``HttpOnly`` (no script can read it), ``SameSite=Strict`` (not sent
with requests other sites start) and ``Path=/``; the auth guard reads it for page ``GET``
routes only, never for the JSON API or a write (CSRF).

The form checks the key before keeping it (a typo is answered at once, not by the next page),
refuses a post from another origin (no site may plant its key in a visitor's browser), and
sends the browser back to the page it came from (a local path only: no open redirect). An empty
key forgets the one kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from msgspec import Struct

from ..api.auth import PAGE_KEY_COOKIE, Authenticator
from ..api.errors import ApiError

__all__ = ["KeyForm", "keep_key", "local_path"]


class KeyForm(Struct):
    key: str = ""
    next: str = "/"


def local_path(target: str) -> str:
    """``target`` if it is a path on this site, else ``/``."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # no Origin: not a cross-site browser post
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


@post("/ui/key", opt={"scope": "none"}, status_code=303)
async def keep_key(
    request: Request[Any, Any, Any],
    data: Annotated[KeyForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect | Template:
    """Keep (or with an empty key, forget) the API key the pages send; back to ``next``."""
    if not _same_origin(request):
        raise ApiError(403, "forbidden", "The key form may be posted from this site only.")
    token = data.key.strip()
    secure = request.url.scheme == "https"
    if token:
        auth: Authenticator = request.app.state.auth
        try:
            await auth.resolve(token)
        except ApiError as refused:  # unknown, malformed or revoked: the form again, and why
            return Template(
                template_name="error.html",
                context={"error": refused.body, "next": local_path(data.next)},
                status_code=refused.body.status,
            )
        cookie = Cookie(
            key=PAGE_KEY_COOKIE, value=token, path="/", httponly=True, samesite="strict",
            secure=secure,
        )  # fmt: skip
    else:
        cookie = Cookie(
            key=PAGE_KEY_COOKIE, value="", path="/", httponly=True, samesite="strict",
            secure=secure, max_age=0,
        )  # fmt: skip
    return Redirect(path=local_path(data.next), status_code=303, cookies=[cookie])
