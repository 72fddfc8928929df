"""Hot reads from memory: the encoded answers of the read routes, cached per read-model state.

Read models change only when a projector commits, so an answer computed once stays right until
then. :class:`ReadModelWatch` keeps the current state of every projection (position and
generation, from the ``tracking`` tables) in memory, re-reading it whenever the projectors'
``NOTIFY`` on :data:`arbiter.projections.tracking.CHANNEL` arrives (PostgreSQL delivers it at
their commit), and then drops the cached answers that state made stale. The answers themselves
are cached by Litestar's response cache (after the key guard, so a revoked key is refused as
before), under the key :func:`cache_key`: path, the query string as sent, the caller's view of
private data (:class:`arbiter.services.api.privacy.Viewer`) and, as the request arrived
(:func:`pin_state`), the state of the projections the route reads (:data:`READS`: its
``opt``, by default every projection). An answer computed while the state moved is stored under
the old state's key, which only requests that arrived before the move build: each gets an answer
of its arrival state or newer, and it can never be served as newer than it is (the next move of
a projection it reads drops it).

Why per projection: the ratings and the results projectors commit separately, each several
times a second while events stream in (about 20 each at 1,000 events/s, one per ingest batch).
Keyed on the whole state, every route was recomputed at both; ``/head-to-head`` and
``/competitors/{id}/history`` read the ratings model only, ``/stats`` the results model only,
so half of those recomputations were of answers that could not have changed.

How fresh: as before, every answer reflects a committed state of the read models and says which
(its ``position``). A request that arrives between a commit and the notification (well under a
millisecond on one host) gets the answer of the state just before, as it would have if it had
arrived a moment earlier. While the watch has no connection (the database restarting) nothing is
served from the cache, so a lost notification cannot leave a stale answer in place.
With a read replica (``ARBITER_READ_DATABASE_URL``) the state is the replica's, installed only
once the replica has replayed what the primary notified: :mod:`.replica` says how.

Conditional requests: each cached route's answer carries ``ETag`` (a digest of the cache key, so
of the state and of who asks) and ``Cache-Control: no-cache`` (clients and proxies may keep it,
but revalidate: ``private`` when a key was presented, or when the route itself said
``private``, as the pages do); :class:`Validators` answers a matching ``If-None-Match`` with 304
and no body. :data:`CACHED_PATHS` lists the routes; the rest (the log,
lists that page through results, streams, writes) are computed per request as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import psycopg
from arbiter.projections import PROJECTIONS, tracking
from arbiter.services import commits
from litestar import Request
from litestar.config.response_cache import ResponseCacheConfig
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from msgspec import msgpack
from psycopg import sql

from . import replica as replica_state
from .auth import PAGE_KEY_COOKIE
from .privacy import viewer_of

__all__ = [
    "CACHED_PATHS",
    "CACHE_S",
    "READS",
    "STORE",
    "ReadModelWatch",
    "ResponseStore",
    "Validators",
    "answer_key",
    "cache_config",
    "cache_key",
    "etag_of",
    "expire_within",
    "not_modified_headers",
    "pin_state",
    "response_cache_enabled",
    "state_token",
    "validated_headers",
    "validator_headers",
    "wants",
]

log = logging.getLogger("arbiter.api.cache")

CACHE_S = 60
"""What the cached routes pass as ``cache=``: a safety net only, since entries go as soon as the
state moves."""
CACHED_PATHS = frozenset(
    {
        "/leaderboard",
        "/competitors/{competitor_id:str}",
        "/competitors/{competitor_id:str}/history",
        "/head-to-head",
        "/summary",
        "/stats",
    }
)
"""Route paths (as Litestar writes them) whose answers are cached."""
CACHE_ENV = "ARBITER_RESPONSE_CACHE"
STORE = "arbiter_responses"
REFRESH_S = 1.0
_KEY = "arbiter_cache_key"

READS = "reads"
"""A cached route's ``opt`` key: the names of the projections its answer is read from (a tuple;
absent: all of them). Its cache entries are keyed on, and dropped at moves of, those only. A
route that names too few would serve an answer older than its arrival state: name every
projection whose tables or position the answer shows."""
_NAMES = tuple(sorted(PROJECTIONS))
"""The order of the (position, generation) pairs in a state (:func:`.replica.state_of`)."""

_UNTAGGED = "arbiter_untagged"
UNTAGGED_HEADER = b"x-arbiter-untagged"
"""Set on a cached answer of :func:`expire_within` as it is stored, so that :class:`Validators`
gives it no ``ETag`` when it is served from the cache too; taken off before it is sent."""
_ARRIVAL = "arbiter_state_at_arrival"


class ReadModelWatch:
    """The read models' current state, kept by LISTEN (see the module docstring)."""

    def __init__(
        self,
        database_url: str,
        store: ResponseStore,
        enabled: bool = True,
        read_url: str | None = None,
    ) -> None:
        self.database_url = database_url
        self.read_url = read_url or database_url
        """Whose state keys the cache: the server answers come from (a replica: see
        :mod:`.replica`)."""
        self.store = store
        self.enabled = enabled
        """False: ``ARBITER_RESPONSE_CACHE=off``, every answer computed per request."""
        self.state: tuple[int, ...] | None = None
        """(position, generation) of every projection, flattened; None while not listening."""
        self._task: asyncio.Task[None] | None = None
        self._commits = 0
        """Commits this process has made (:mod:`arbiter.services.commits`), so a refresh that
        read the state before one of them does not install that older state."""

    def start(self) -> None:
        if self.enabled:
            commits.subscribe(self._committed)
            self._task = asyncio.create_task(self._run(), name="read-model-watch")

    def _committed(self) -> None:
        """A projector of this process committed: answer uncached until the watch has read the
        new state (at the NOTIFY, which follows within a millisecond)."""
        self._commits += 1
        self.state = None

    async def stop(self) -> None:
        commits.unsubscribe(self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.state = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(tracking.CHANNEL))
                    )
                    delay = 0.2
                    if self.read_url != self.database_url:
                        await self._follow_replica(conn)
                    while True:
                        # After LISTEN, so no commit falls between the read and the listening.
                        # The generator holds the connection, so the read comes after it stops:
                        # at a notification, or every REFRESH_S seconds regardless (a safety net,
                        # should one be missed; it costs one tiny query).
                        await self._refresh(conn)
                        async for _ in conn.notifies(timeout=REFRESH_S, stop_after=1):
                            pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: serve uncached until it is back
                self.state = None
                log.warning("response cache off, reconnecting in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _follow_replica(self, listening: psycopg.AsyncConnection[Any]) -> None:
        """Forever: at each notification on the primary (or every REFRESH_S), the primary's
        state; uncached until the replica has replayed it; then the replica's state."""
        async with await psycopg.AsyncConnection.connect(
            self.read_url, autocommit=True, connect_timeout=5
        ) as replica:
            while True:
                target = await replica_state.read_state(listening)
                if not replica_state.caught_up(await replica_state.read_state(replica), target):
                    self.state = None  # the primary is ahead: answers computed on the replica
                    await replica_state.wait_for_replica(replica, target)
                await self._refresh(replica)
                async for _ in listening.notifies(timeout=REFRESH_S, stop_after=1):
                    self.state = None  # committed on the primary: off until the replica has it

    async def _refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        commits_before = self._commits
        state = await replica_state.read_state(conn)
        if state != self.state:
            self.store.drop_stale(state)  # no await: nothing runs in between
            # Unless a commit of this process came after the read (then its callback has set
            # None, and the next notification installs the newer state).
            self.state = state if self._commits == commits_before else None


class ResponseStore(MemoryStore):
    """Litestar's memory store, with a ``get`` that does not take the store's lock: every hit
    is a ``get``, and the lock (an anyio ``Lock``, acquired and released with checkpoints) cost
    a tenth of a cached answer. Reading without it is safe on the one event loop the store
    serves: the read and the expiry check run without an ``await`` in between, so no ``set`` or
    ``delete_all`` can interleave, and every writer still takes the lock among writers. An
    expired entry, or a ``renew_for``, takes the locked path (which removes or renews it)."""

    def __init__(self) -> None:
        super().__init__()
        self._sooner: dict[str, timedelta] = {}
        """Cache key -> expiry shorter than the route's, for the answer about to be stored
        (:func:`expire_within`)."""

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        found = self._store.get(key)
        if found is None:
            return None
        if renew_for or found.expired:
            return await super().get(key, renew_for)
        return found.data

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """As Litestar's, but an answer marked by :func:`expire_within` expires sooner and is
        stored with :data:`UNTAGGED_HEADER`."""
        if (sooner := self._sooner.pop(key, None)) is not None:
            expires_in = sooner
            messages = msgpack.decode(value)
            messages[0]["headers"] = [*messages[0].get("headers", []), [UNTAGGED_HEADER, b"1"]]
            value = msgpack.encode(messages)
        await super().set(key, value, expires_in)

    def drop_stale(self, state: tuple[int, ...]) -> None:
        """Drop the answers keyed on a projection state other than ``state``'s; answers of routes
        whose projections did not move stay (:data:`READS`). Synchronous, without the store's
        lock: on the one event loop the store serves nothing can interleave with it, so the
        watch installs the new state right after, with no moment in between where requests
        would be answered uncached (each computing its own answer, sharing no flight: under
        load that window cost more than the recomputation itself). A writer that took the lock
        before and writes after stores an answer under a stale key only requests pinned to that
        state build, as :meth:`ReadModelWatch._refresh` always allowed."""
        current = set(state_token(state).split(";"))

        def stale(key: str) -> bool:
            return not current.issuperset(key.rpartition("|")[2].split(";"))

        for key in [k for k in self._store if stale(k)]:
            del self._store[key]
        for key in [k for k in self._sooner if stale(k)]:
            del self._sooner[key]

    def peek(self, key: str) -> bytes | None:
        """The stored answer under ``key`` if it has not expired, without the lock or an await
        (:mod:`.front_door`); an expired one is left for :meth:`get` to remove."""
        found = self._store.get(key)
        return None if found is None or found.expired else found.data

    def size(self) -> int:
        return len(self._store)

    def expire_sooner(self, key: str, seconds: float) -> None:
        self._sooner[key] = timedelta(seconds=max(seconds, 0.001))


def cache_key(request: Request[Any, Any, Any]) -> str:
    """Path, canonical query, viewer and read-model state, built once per request: Litestar asks
    again when it stores the answer, and by then the state may have moved, so the answer would be
    filed under a state newer than its own. A key no request repeats when the cache is off or the
    watch is not listening (then nothing is served from the cache, nor stored)."""
    if (known := request.scope.get(_KEY)) is not None:  # type: ignore[misc]
        return known  # type: ignore[no-any-return]
    watch: ReadModelWatch = request.app.state["watch"]
    scope = request.scope
    state = scope.get(_ARRIVAL, watch.state)  # type: ignore[misc]
    if state is None or not watch.enabled:
        return f"uncached:{id(request)}"  # not put in the scope: nothing stored, no ETag
    viewer = viewer_of(request)
    who = "*" if viewer.everything else (viewer.source or "-")
    if request.cookies.get(PAGE_KEY_COOKIE):  # the pages say whether a key is kept: not shared
        who += "+cookie"
    # The query string exactly as sent: any normalising (order, blanks, encodings) risks two
    # requests the route reads differently sharing an answer (``arena=`` is a 400, no
    # ``arena`` is the default arena).
    query = request.scope.get("query_string", b"").decode("latin-1")
    key = answer_key(request.scope["path"], query, who, state_token(state, reads_of(scope)))
    request.scope[_KEY] = key  # type: ignore[literal-required]  # for Validators
    return key


def answer_key(path: str, query: str, who: str, token: str) -> str:
    """The cache key of an answer (:func:`cache_key`, :mod:`.front_door`). The path is the
    decoded one, which may hold ``?`` (an id may: ``/competitors/m%3F``), so it is quoted: else
    ``/competitors/m?`` with the query ``?`` and ``/competitors/m??`` would share a key. who and
    token hold no ``|``, so the key splits from the right whatever the query holds."""
    return f"{quote(path, safe='/')}?{query}|{who}|{token}"


def reads_of(scope: Scope) -> tuple[str, ...]:
    """The projections the scope's route reads (:data:`READS`), in state order."""
    handler = scope.get("route_handler")
    named = getattr(handler, "opt", {}).get(READS) if handler is not None else None
    if named is None:
        return _NAMES
    unknown = set(named) - set(_NAMES)
    if unknown:
        raise ValueError(f"opt reads= names unknown projections {sorted(unknown)}")
    return tuple(n for n in _NAMES if n in named)


def state_token(state: tuple[int, ...], names: tuple[str, ...] = _NAMES) -> str:
    """``name=position.generation`` of each of ``names``, joined by ``;``: the part of a cache key
    (and of a single-flight group) that says which read-model state the answer is of."""
    return ";".join(
        f"{n}={state[2 * i]}.{state[2 * i + 1]}" for i, n in enumerate(_NAMES) if n in names
    )


def pin_state(scope: Scope) -> tuple[int, ...] | None:
    """Keep the read-model state as the request arrives, in its scope: its cache key is built
    with that state, not the one current when the key is built after the guards. The answer it
    gets reflects that state or a newer one, as a request that arrived a moment earlier would
    have got; and requests that arrived together share one key (:mod:`.single_flight`). None:
    the request is answered uncached."""
    watch: ReadModelWatch = scope["litestar_app"].state["watch"]
    state = watch.state if watch.enabled else None
    scope[_ARRIVAL] = state  # type: ignore[literal-required]
    return state


def expire_within(request: Request[Any, Any, Any], seconds: float) -> None:
    """This answer is right now, but for at most ``seconds`` more of this read-model state (a
    Bradley-Terry board built on a fit that may be reused only that much longer): cache it for
    no longer, and give it no ``ETag``, since the answer for the same state after that differs
    (a fresh fit) and a client's copy must not be confirmed by a 304 then. Call it in the
    handler."""
    request.scope[_UNTAGGED] = True  # type: ignore[literal-required]
    key = cache_key(request)
    if request.scope.get(_KEY) is not None:  # type: ignore[misc]
        store: ResponseStore = request.app.stores.get(STORE)  # type: ignore[assignment]
        store.expire_sooner(key, seconds)


def _store_only_answers(scope: Any, status: int) -> bool:
    """Only answers (200) of requests that got a real key are stored."""
    return status == 200 and scope.get(_KEY) is not None


def cache_config() -> ResponseCacheConfig:
    return ResponseCacheConfig(
        default_expiration=CACHE_S,
        key_builder=cache_key,
        store=STORE,
        cache_response_filter=_store_only_answers,
    )


def response_cache_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """``ARBITER_RESPONSE_CACHE``: ``on`` (the default) or ``off`` (every answer computed per
    request, e.g. to measure what the cache saves); anything else is refused."""
    value = environ.get(CACHE_ENV, "on").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ValueError(f"{CACHE_ENV}={environ[CACHE_ENV]!r}: it takes on or off")
    return value == "on"


class Validators:
    """ASGI middleware for the cached routes: ``ETag`` (a digest of the request's cache key, so
    of the read-model state the answer was looked up in and of who asks), ``Cache-Control:
    no-cache`` (``private`` when a key was presented, else ``public``) and ``Vary`` on each 200,
    and a 304 without a body when ``If-None-Match`` names that tag."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        wanted = _header(scope, b"if-none-match")
        done = False

        async def validated(message: Message) -> None:
            nonlocal done
            if done:
                return
            untagged = scope.get(_UNTAGGED)  # type: ignore[attr-defined]
            key = None if untagged else scope.get(_KEY)  # type: ignore[attr-defined]
            if message["type"] == "http.response.start" and any(
                name == UNTAGGED_HEADER for name, _ in message.get("headers", ())
            ):  # a cached answer of expire_within
                kept = [(k, v) for k, v in message["headers"] if k != UNTAGGED_HEADER]
                message = {**message, "headers": kept}  # type: ignore[typeddict-item]
                key = None
            if message["type"] == "http.response.start" and message["status"] == 200 and key:
                # A key in a header or in the pages' cookie: the answer is that viewer's, so a
                # shared cache must not keep it for others.
                keyed = bool(
                    _header(scope, b"authorization")
                    or _header(scope, b"x-api-key")
                    or (f"{PAGE_KEY_COOKIE}=" in (_header(scope, b"cookie") or ""))
                )
                headers, etag = validated_headers(message.get("headers", []), key, keyed)
                if wanted and wants(wanted, etag):
                    done = True
                    kept = not_modified_headers(headers)
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        await self.app(scope, receive, validated)


def validator_headers(key: str, keyed: bool) -> tuple[list[tuple[bytes, bytes]], str]:
    """The headers :class:`Validators` adds to a cached route's 200 (and :mod:`.front_door` to
    the same answer), and its ETag: ``keyed`` when the request presented a key, so that a shared
    cache keeps the answer for that caller only."""
    etag = etag_of(key)
    return [
        (b"etag", etag.encode()),
        (b"cache-control", b"private, no-cache" if keyed else b"public, no-cache"),
        (b"vary", b"Authorization, X-API-Key, Cookie"),
    ], etag


def validated_headers(
    headers: Iterable[tuple[bytes, bytes]], key: str, keyed: bool
) -> tuple[list[tuple[bytes, bytes]], str]:
    """``headers`` of a cached route's 200 with :func:`validator_headers` added, in place of any
    ``Cache-Control`` the route set itself (an answer with two said two things); a route's own
    ``private`` stays private (the pages' router says it of every page: one may show what only
    its key may see)."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.lower() == b"cache-control":
            keyed = keyed or b"private" in value.lower()
        else:
            kept.append((name, value))
    added, etag = validator_headers(key, keyed)
    return [*kept, *added], etag


def wants(if_none_match: str, etag: str | None) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or is ``*``)."""
    tags = {t.strip() for t in if_none_match.split(",")}
    return "*" in tags or (etag is not None and etag in tags)


def not_modified_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers a 304 keeps of the 200's."""
    return [(k, v) for k, v in headers if k.lower() in _KEPT_ON_304]


_KEPT_ON_304 = frozenset({b"etag", b"cache-control", b"vary", b"date"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def etag_of(key: str) -> str:
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'
