"""``/admin``: API key management and projection rebuilds. Every route needs an ``admin`` key
(unless ``ARBITER_AUTH=off``); the guard that says so is :mod:`..auth`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from arbiter.adapters import keys
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.rebuild import RebuildError
from arbiter.services.processes.rebuild import rebuild as rebuild_projection
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from ..auth import Authenticator
from ..errors import ApiError, error_responses
from ..models.admin import CreatedKey, KeyInfo, KeyList, NewKey, RebuildReport
from ..store import ReadStore

__all__ = ["AdminController"]

log = logging.getLogger("arbiter.api.auth")

_ADMIN_ERRORS = {
    400: "A bad parameter or body (`bad_parameter`).",
    404: "Unknown key or projection (`not_found`).",
    409: "The last active admin key; repeat with `force=true` to revoke it (`last_admin_key`).",
    413: "The body is over the route's limit, named in the message (`too_large`).",
    500: "The rebuild failed; the live read model is unchanged (`rebuild_failed`).",
    503: "Database unavailable (`unavailable`).",
}


def _admin_errors(*statuses: int) -> dict[int, ResponseSpec]:
    return error_responses(400, *statuses, text=_ADMIN_ERRORS)


class AdminController(Controller):
    """``/admin``: key management and rebuilds; every route needs an ``admin`` key (unless
    ``ARBITER_AUTH=off``)."""

    path = "/admin"
    tags = ["admin"]  # noqa: RUF012
    opt = {"scope": "admin"}  # noqa: RUF012

    @get("/keys", summary="List API keys", responses=_admin_errors(503), opt={"scope": "admin"})
    async def list_keys(self, reads: NamedDependency[ReadStore]) -> KeyList:
        """Every key, revoked ones included, without secrets (only ids, names and scopes)."""
        found = await asyncio.to_thread(keys.list_keys, reads.database_url)
        return KeyList([KeyInfo.of(k) for k in found])

    @post(
        "/keys",
        summary="Create an API key",
        status_code=201,
        request_max_body_size=4096,
        responses=_admin_errors(413, 503),
        opt={"scope": "admin"},
    )
    async def create_key(
        self,
        data: JSONBody[NewKey],
        reads: NamedDependency[ReadStore],
        auth: NamedDependency[Authenticator],
    ) -> CreatedKey:
        """Creates a key and returns its token: this answer is the only place it ever appears
        (only its SHA-256 is stored). Keep it secret."""
        try:
            key, token = await asyncio.to_thread(
                keys.create, reads.database_url, data.name, data.scopes
            )
        except keys.BadKeyRequest as exc:
            raise ApiError(400, "bad_parameter", str(exc)) from exc
        auth.forget()
        log.info("created API key %s (%s)", key.key_id, ",".join(key.scopes))
        return CreatedKey(KeyInfo.of(key), token)

    @delete(
        "/keys/{key_id:str}",
        summary="Revoke an API key",
        status_code=200,
        responses=_admin_errors(404, 409, 503),
        opt={"scope": "admin"},
    )
    async def revoke_key(
        self,
        key_id: FromPath[str],
        reads: NamedDependency[ReadStore],
        auth: NamedDependency[Authenticator],
        force: Annotated[
            bool,
            QueryParameter(description="Revoke even the last active admin key (default false)."),
        ] = False,
    ) -> KeyInfo:
        """Revokes the key (kept, with ``revoked_at``); a second revoke is a no-op. Other API
        processes stop accepting it within their cache TTL. The last active admin key is
        revoked only with ``force=true`` (else 409 ``last_admin_key``): without an admin key,
        keys can be managed only with ``arbiter keys`` on the database. Revoking every key
        does not open the API: keys stay enforced until ``ARBITER_AUTH=off``."""
        try:
            key = await asyncio.to_thread(keys.revoke, reads.database_url, key_id, force=force)
        except keys.LastAdminKey as exc:
            raise ApiError(
                409, "last_admin_key", f"{exc} Repeat with `?force=true` to revoke it anyway."
            ) from exc
        if key is None:
            raise ApiError(404, "not_found", f"No API key {key_id!r}.")
        auth.forget()
        log.info("revoked API key %s", key_id)
        return KeyInfo.of(key)

    @post(
        "/rebuild/{projection:str}",
        summary="Rebuild a projection",
        status_code=200,
        responses=_admin_errors(404, 500, 503),
        opt={"scope": "admin"},
    )
    async def rebuild(
        self,
        projection: FromPath[str],
        reads: NamedDependency[ReadStore],
        auth: NamedDependency[Authenticator],
    ) -> RebuildReport:
        """Rebuilds the projection from position 0 into fresh tables and swaps them in
        atomically (as ``arbiter rebuild``), in a worker thread; answers when it is done."""
        spec = PROJECTIONS.get(projection)
        if spec is None:
            raise ApiError(
                404,
                "not_found",
                f"No projection {projection!r}; one of {', '.join(sorted(PROJECTIONS))}.",
            )
        async with auth.rebuild_lock:  # one rebuild at a time from this process
            try:
                result = await asyncio.to_thread(rebuild_projection, reads.database_url, spec)
            except RebuildError as exc:
                log.error("rebuild of %s failed: %s", projection, exc)
                raise ApiError(
                    500, "rebuild_failed",
                    f"The rebuild of {projection!r} failed and the live read model is "
                    f"unchanged: {str(exc).splitlines()[0]} (the API's log has the details).",
                ) from exc  # fmt: skip
        log.info("rebuilt %s: %d events", projection, result.events)
        return RebuildReport(
            result.projection, result.events, result.position, result.generation, result.seconds
        )
