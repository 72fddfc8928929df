"""Authentication and authorisation for the HTTP API: API keys, scopes, experiment ownership.

This module holds the key guard and its cache; the ``/admin`` routes that manage keys are
:mod:`.routes.admin`, and who may see a private experiment is :mod:`.privacy`.

How a request is judged (one app-level Litestar guard, :func:`authorise`):

* The token comes from ``Authorization: Bearer <token>`` or, failing that, ``X-API-Key: <token>``;
  for the web pages only (``GET`` routes with ``opt["key_cookie"]``) also from the session cookie
  :data:`PAGE_KEY_COOKIE` that the pages' key form sets.
  Keys, their scopes and their storage are :mod:`arbiter.adapters.keys` (SHA-256 of the token
  stored, compared with :func:`hmac.compare_digest`).
* ``ARBITER_AUTH``: ``auto`` (the default) enforces keys once a key has been created (revoked
  keys count: revoking the last key does not open the API again; only ``ARBITER_AUTH=off``
  does), so a fresh local install needs none; ``on`` always enforces; ``off`` never does (every
  route open, presented keys ignored). Admin routes are the exception to ``auto``: they need an
  admin key unless ``ARBITER_AUTH=off``, so nobody can mint the first key over HTTP; the first
  key is created with ``arbiter keys create`` (which needs the database itself).
* When enforcing, a presented token that is unknown, malformed or revoked is a 401
  ``unauthorized`` on every route (public ones included); a missing token is a 401 where a key
  is needed; a key without the route's scope is a 403 ``forbidden``. ``admin`` implies every
  scope.
* What a route needs is its ``opt["scope"]``: ``read`` (the default: leaderboards, competitors,
  history, head-to-head, battles, games, summary, stats, matchmaking, events, evaluation status),
  ``publish`` (``POST /events``, ``POST /evaluations``), ``admin`` (``/admin/...``), ``owner``
  (``/experiments/{id}/trials`` and ``/results``) or ``none`` (``/health``, ``/schema``).
  ``ARBITER_PUBLIC_READS`` (default true) leaves ``read`` routes open without a key; set it to
  false and they need a key with ``read``.
* Ownership: ``POST /events`` with a key stamps the event's ``source`` as ``key:<key_id>``; a
  client may not send a ``source`` starting with ``key:`` other than its own (400
  ``reserved_source``), so no client can impersonate a key. An experiment belongs to the
  ``source`` of its first trial (log order, recorded by the event store; see
  :mod:`.privacy`). Its trials and results are served to that key and to admin keys; any
  other key, or no key, gets the same 404 as an unknown experiment (as seed 001 does), so ids do
  not leak, and the same rule holds on ``/events``, ``/events/{id}`` and ``/stats``. Trials
  published straight on NATS (a worker's own ``source``, no key) are therefore visible to admins
  only while enforcing; NATS credentials are full trust (a NATS publisher can write any
  ``source``). Writes about a key's things (trials into its experiment, score votes, voids, arena
  settings) are ruled by the ingest (``not_owner``, :mod:`arbiter.domain.decisions`); ``POST
  /events`` refuses a foreign trial early (403) as a courtesy.
* Lookups are cached in memory for ``ARBITER_AUTH_CACHE_TTL`` seconds (default 5): a revoked
  key keeps working for at most that long in an API process that had just seen it (keys created
  or revoked through this process's ``/admin/keys`` take effect at once here). 0 disables the
  cache. Only found keys are cached: a key id that is not found is looked up again on its next
  request, and a presented token makes ``auto`` check again whether keys exist, so a key created
  a moment ago is never treated as no key at all (its events keep their owner). While the
  database is unreachable the last lookup stands (so ``POST /events``, which needs only NATS,
  keeps working for keys seen before the outage); with none, it is a 503.
* No secret is logged: failures log the key id (public) and the reason, never the token; the
  error bodies never echo it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from arbiter.adapters import keys
from arbiter.adapters.keys import ANY_KEY, SELECT_ONE, ApiKey
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from .errors import ApiError
from .privacy import EVERYONE, NOBODY, Viewer, experiment_owner, set_viewer
from .store import ReadStore

__all__ = [
    "PAGE_KEY_COOKIE",
    "AuthConfig",
    "Authenticator",
    "Mode",
    "Scope",
    "authorise",
    "current_key",
    "owner_source",
    "unauthorized",
]

log = logging.getLogger("arbiter.api.auth")

Mode = Literal["auto", "on", "off"]
Scope = Literal["read", "publish", "admin", "owner", "none"]
_STATE_KEY = "arbiter_api_key"


def _truthy(value: str) -> bool:
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class AuthConfig:
    mode: Mode = "auto"
    public_reads: bool = True
    cache_ttl: float = 5.0

    @classmethod
    def from_env(cls) -> AuthConfig:
        """``ARBITER_AUTH`` (auto|on|off), ``ARBITER_PUBLIC_READS`` (true|false),
        ``ARBITER_AUTH_CACHE_TTL`` (seconds); a bad value is a configuration error."""
        mode = os.environ.get("ARBITER_AUTH", "auto").strip().lower() or "auto"
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"ARBITER_AUTH must be auto, on or off, not {mode!r}")
        ttl = float(os.environ.get("ARBITER_AUTH_CACHE_TTL", "5"))
        if not ttl >= 0:
            raise ValueError("ARBITER_AUTH_CACHE_TTL must be a number of seconds >= 0")
        public = _truthy(os.environ.get("ARBITER_PUBLIC_READS", "true"))
        return cls(mode=mode, public_reads=public, cache_ttl=ttl)  # type: ignore[arg-type]


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


class Authenticator:
    """Key lookups, cached for ``config.cache_ttl`` seconds. Always on the primary, also when
    reads go to a replica: a key created a moment ago (here or by ``arbiter keys create``) must
    work at once, and a revoked one stop, whatever the replica's delay; the table is tiny."""

    def __init__(self, config: AuthConfig, reads: ReadStore) -> None:
        self.config = config
        self.reads = reads
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._any: tuple[float, bool] | None = None
        self.rebuild_lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop the cache (after this process created or revoked a key)."""
        self._keys.clear()
        self._any = None

    async def _fetch(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        async with self.reads.primary.connection(timeout=self.reads.timeout) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def any_key(self, *, fresh: bool = False) -> bool:
        """Whether a key was ever created. ``fresh``: ask the database even if a cached "no"
        is still valid (a token was presented: its key may have just been created)."""
        now = time.monotonic()
        if self._any is not None and self._any[0] > now and (self._any[1] or not fresh):
            return self._any[1]
        try:
            (row,) = await self._fetch(ANY_KEY, ())
        except psycopg.OperationalError:
            if self._any is None:
                raise  # a 503: nothing known to go on
            return self._any[1]  # the database is away: the last answer stands
        self._any = (now + self.config.cache_ttl, bool(row[0]))
        return bool(row[0])

    async def key(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            rows = await self._fetch(SELECT_ONE, (key_id,))
        except psycopg.OperationalError:
            if cached is None:
                raise
            return cached[1]  # the database is away: the last lookup stands
        if not rows:
            return None  # a miss is not cached: the key may be created a moment later
        found = ApiKey.from_row(rows[0])
        if len(self._keys) > 10_000:  # bounded
            self._keys.clear()
        self._keys[key_id] = (now + self.config.cache_ttl, found)
        return found

    def keyless_viewer(self) -> Viewer | None:
        """The viewer :func:`authorise` gives a ``read`` request without a key, if that is known
        without asking the database: everyone while keys are not enforced, nobody (public
        reads) while they are. None when it would have to ask (``auto`` mode, the cached
        "any key?" answer expired) or the read is refused (keys enforced, reads not public).
        :mod:`.front_door` answers such requests from the cache only when this is not None."""
        mode = self.config.mode
        if mode == "off":
            return EVERYONE
        if mode == "auto":
            known = self._any
            if known is None or known[0] <= time.monotonic():
                return None
            if not known[1]:
                return EVERYONE
        return NOBODY if self.config.public_reads else None

    async def enforcing(self, scope: str, presented: bool) -> bool:
        mode = self.config.mode
        if mode == "off":
            return False
        if mode == "on" or scope == "admin":
            return True
        return await self.any_key(fresh=presented)

    async def resolve(self, token: str) -> ApiKey:
        """The active key whose token this is; 401 (never naming the token) otherwise."""
        key_id = keys.key_id_of(token)
        if key_id is None:
            log.info("refused a malformed API key")
            raise unauthorized("The API key is malformed; send the token `arbiter keys create` "
                               "printed, as `Authorization: Bearer <token>`.")  # fmt: skip
        key = await self.key(key_id)
        if key is None or not key.matches(token):
            log.info("refused API key %s: unknown key or wrong secret", key_id)
            raise unauthorized("The API key is not valid.")
        if not key.active:
            log.info("refused API key %s: revoked", key_id)
            raise unauthorized(f"The API key {key_id} has been revoked.")
        return key


PAGE_KEY_COOKIE = "arbiter_key"
"""The session cookie the web pages keep a key in (:mod:`arbiter.services.web.keys`). It is read
for ``GET`` routes marked ``opt["key_cookie"]`` (the pages, and the live board stream the
leaderboard page listens to: an ``EventSource`` cannot send headers) and nowhere else. A browser
sends cookies with requests other sites start, so a JSON route, and above all a write, that
accepted it could be driven by a cross-site request (CSRF); the JSON API takes headers only."""


def _token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    api_key = connection.headers.get("x-api-key")
    return None if api_key is None else api_key.strip()


def current_key(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey | None:
    """The key the request was authenticated with (None: no key, or auth not enforced)."""
    return connection.scope.get(_STATE_KEY)  # type: ignore[return-value]


def owner_source(key: ApiKey) -> str:
    return f"key:{key.key_id}"


async def authorise(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app-level guard; see the module docstring for the rules."""
    if connection.url.path.startswith("/schema"):
        return
    scope: str = handler.opt.get("scope", "read")
    if scope == "none":
        return
    auth: Authenticator = connection.app.state.auth
    token = _token(connection)
    if token is None and handler.opt.get("key_cookie") and connection.scope.get("method") == "GET":
        token = connection.cookies.get(PAGE_KEY_COOKIE)  # pages only: see PAGE_KEY_COOKIE
    if not await auth.enforcing(scope, token is not None):
        set_viewer(connection, EVERYONE)
        return
    key = await auth.resolve(token) if token is not None else None
    connection.scope[_STATE_KEY] = key  # type: ignore[literal-required]
    if key is None:
        set_viewer(connection, NOBODY)
    else:
        set_viewer(connection, Viewer(key.allows("admin"), owner_source(key)))
    if scope == "owner":
        if key is not None and key.allows("admin"):
            return
        experiment_id = str(connection.path_params.get("experiment_id", ""))
        owner = await experiment_owner(auth.reads, experiment_id)
        if key is None or owner != owner_source(key):
            # The same answer as an unknown experiment: no key learns another's ids.
            raise ApiError(404, "not_found", f"Experiment {experiment_id!r} has no trials.")
        return
    if scope == "read" and auth.config.public_reads:
        return
    if key is None:
        raise unauthorized(
            f"This route needs an API key with the `{scope}` scope: send "
            "`Authorization: Bearer <token>` (or `X-API-Key: <token>`)."
        )
    if not key.allows(scope):
        log.info("API key %s lacks scope %s for %s", key.key_id, scope, connection.url.path)
        raise ApiError(403, "forbidden", f"The API key {key.key_id} lacks the `{scope}` scope.")
