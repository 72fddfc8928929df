"""Arbiter's HTTP API (Litestar): read the read models and the log, publish events.

* Reads are plain SQL on an async pool (:mod:`.api_store`), one snapshot per request.
* ``POST /events`` validates exactly as a worker's message is validated (:func:`decode_event`) and
  publishes to JetStream (``Nats-Msg-Id`` = ``event_id``); the ingest appends it to the log.
* Every error is JSON ``{status, code, message}`` (plus ``field`` where one is to blame): a bad
  query parameter is a 400 ``bad_parameter``, an unreachable database or NATS a 503
  ``unavailable``, a bug a 500 ``internal`` (logged), never an HTML page or a bare traceback.

OpenAPI is served at ``/schema`` (``/schema/openapi.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal

import msgspec
import nats.errors
import psycopg
import uvicorn
from arbiter.adapters.bus import IngestBacklog, Publisher, ensure_streams, ingest_backlog
from arbiter.adapters.urls import redact
from arbiter.domain.events import (
    EVENT_TYPES,
    TYPE_NAMES,
    Event,
    TrialCompleted,
    content_digest,
    type_name,
)
from arbiter.domain.rejections import Code, Rejection
from arbiter.domain.validation import MAX_EVENT_BYTES, decode_event
from litestar import Controller, HttpMethod, Litestar, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIMediaType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter
from nats.js.errors import NoStreamResponseError

from .api_auth import AuthConfig, Authenticator
from .api_models import (
    Accepted,
    CompetitorDetail,
    CompetitorList,
    ComponentHealth,
    ErrorBody,
    EventPage,
    Health,
    History,
    Leaderboard,
    LoggedEvent,
    ProjectionHealth,
    QuarantinedEvent,
    error_responses,
)
from .api_privacy import viewer_of, visible
from .api_store import SCAN_WINDOW, ReadStore

log = logging.getLogger("arbiter.api")

MAX_LIMIT = 1000
HEALTH_TIMEOUT = 2.0

Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")
]
Offset = Annotated[int, QueryParameter(ge=0, description="Rows to skip.")]
ArenaParam = Annotated[str, QueryParameter(min_length=1, max_length=128, description="Arena name.")]
CategoryParam = Annotated[
    str,
    QueryParameter(max_length=128, description="Category; empty or absent: the arena-wide pool."),
]


# -- errors -------------------------------------------------------------------------------------


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


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


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
            f"A parameter has a value the database cannot take ({_first_line(exc)}); "
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


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer. 400 is always among them: any route
    with a parameter answers a bad one with ``bad_parameter`` (Litestar would otherwise document
    its own 400 body, which this API never sends)."""
    return error_responses(400, *statuses)


# -- NATS ---------------------------------------------------------------------------------------


class Bus:
    """The API's one :class:`Publisher`, opened on first use and reused while connected."""

    RETRY_AFTER = 1.0

    def __init__(
        self, nats_url: str | None, *, connect_timeout: float = 3.0, publish_timeout: float = 5.0
    ) -> None:
        self.url = nats_url
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self._publisher: Publisher | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def publisher(self) -> Publisher:
        """The connected publisher; :class:`ApiError` 503 when NATS cannot be reached. After a
        failed connect, requests fail fast for :attr:`RETRY_AFTER` seconds instead of each
        waiting out the connect timeout."""
        if self.url is None:
            raise ApiError(503, "unavailable", "NATS is not configured for this API.")
        async with self._lock:
            current = self._publisher
            if current is not None and (current.nc is None or current.nc.is_closed):
                self._publisher = current = None
            if current is None:
                if asyncio.get_running_loop().time() < self._retry_at:
                    raise ApiError(503, "unavailable", "NATS is unavailable; try again shortly.")
                current = await self._open()
                self._publisher = current
        if current.nc is None or not current.nc.is_connected:
            raise ApiError(503, "unavailable", "The connection to NATS is down; reconnecting.")
        return current

    async def _open(self) -> Publisher:
        assert self.url is not None
        publisher = Publisher(self.url)
        try:
            # The publisher reconnects forever, its first connect included: bound that here.
            await asyncio.wait_for(publisher.open(), self.connect_timeout)
        except Exception as exc:  # any failure to connect is a 503
            if publisher.nc is not None:
                with contextlib.suppress(Exception):
                    await publisher.nc.close()
            self._retry_at = asyncio.get_running_loop().time() + self.RETRY_AFTER
            log.warning("NATS at %s unavailable: %r", redact(self.url), exc)
            raise ApiError(503, "unavailable", "NATS is unavailable; try again shortly.") from exc
        return publisher

    async def publish(self, event: Event) -> Accepted:
        publisher = await self.publisher()
        try:
            try:
                (ack,) = await publisher.publish([event], timeout=self.publish_timeout)
            except NoStreamResponseError:
                # The stream was deleted under us: recreate it, then retry once.
                assert publisher.js is not None
                await ensure_streams(publisher.js)
                (ack,) = await publisher.publish([event], timeout=self.publish_timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("publish of %s failed: %r", event.event_id, exc)
            reason = getattr(exc, "description", None)
            said = f"NATS refused the event ({reason})" if reason else "NATS did not acknowledge"
            raise ApiError(
                503,
                "unavailable",
                f"{said}; retry it with the same event_id (retries are deduplicated).",
            ) from exc
        return Accepted(event_id=event.event_id, stream_seq=ack.seq, duplicate=bool(ack.duplicate))

    async def health(self) -> tuple[ComponentHealth, IngestBacklog | None]:
        """NATS's health and, when it answers, what waits in it for the ingest."""
        try:
            publisher = await self.publisher()
            assert publisher.nc is not None and publisher.js is not None
            await publisher.nc.flush(timeout=HEALTH_TIMEOUT)
        except ApiError as exc:
            return ComponentHealth(ok=False, error=exc.body.message), None
        except Exception as exc:  # reported, not raised
            return ComponentHealth(ok=False, error=f"NATS did not answer a ping: {exc!r}"), None
        try:
            backlog = await ingest_backlog(publisher.js, HEALTH_TIMEOUT)
        except Exception as exc:  # reported, not raised
            return ComponentHealth(ok=False, error=f"JetStream did not answer: {exc!r}"), None
        return ComponentHealth(ok=True), backlog

    async def close(self) -> None:
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            nc = publisher.nc
            try:
                await asyncio.wait_for(publisher.close(), 5.0)  # drains: in-flight acks land
            except Exception:  # NATS down: drop the connection (and its reconnect loop)
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()


# -- routes -------------------------------------------------------------------------------------


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012 - Litestar layer attribute

    @route(
        "/",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],  # HEAD: a probe's status and headers
        summary="Liveness, projection lag and the ingest's backlog in NATS",
        responses={
            400: _errors()[400],  # an unknown query parameter (api_params)
            503: ResponseSpec(Health, description="The database is unreachable."),
        },
        opt={"scope": "none"},  # always open, like /schema
    )
    async def health(
        self, reads: NamedDependency[ReadStore], bus: NamedDependency[Bus]
    ) -> Response[Health]:
        """200 while the database answers (``status`` is ``degraded`` if NATS does not);
        503 when it does not. ``lag_events`` is the log head minus the projection's position;
        events still in NATS are in ``ingest`` (``pending``: not yet in the log, of which
        ``ack_pending`` delivered and unacknowledged, ``redelivered`` delivered again), so a
        lag of 0 with ``ingest.pending`` 0 means everything published is folded. HEAD answers
        the same status and headers without the body (the server drops it)."""
        database = ComponentHealth(ok=True)
        projections: list[ProjectionHealth] = []
        try:
            head, positions = await reads.projection_positions(min(HEALTH_TIMEOUT, reads.timeout))
            projections = [
                ProjectionHealth(
                    name,
                    position,
                    head,
                    max(0, head - position),
                    updated_at,
                    count,
                    [QuarantinedEvent(q["position"], q["event_id"], q["error"]) for q in shown],
                )
                for name, position, updated_at, count, shown in positions
            ]
        except psycopg.Error as exc:
            database = ComponentHealth(ok=False, error=_first_line(exc))
        nats_health, backlog = await bus.health()
        status = "ok" if database.ok and nats_health.ok else "degraded"
        body = Health(status, database, nats_health, projections, backlog)
        return Response(body, status_code=200 if database.ok else 503)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class LeaderboardController(Controller):
    path = "/leaderboard"
    tags = ["ratings"]  # noqa: RUF012

    @get("/", summary="Leaderboard of an arena or category", responses=_errors(400, 503))
    async def leaderboard(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        limit: Limit = 100,
        offset: Offset = 0,
        system: Annotated[
            Literal["elo", "bt"],
            QueryParameter(description="`elo` (the folded ratings) or `bt` (Bradley-Terry)."),
        ] = "elo",
        as_of: Annotated[
            str | None,
            QueryParameter(
                max_length=64,
                description="The board as it stood at a log position (integer) or at an RFC "
                "3339 time (by the producers' `occurred_at`).",
            ),
        ] = None,
    ) -> Leaderboard:
        """Standings by rating (highest first, ties by competitor id); with ``system=elo``
        ``rank`` is ``offset`` + row number. ``system=bt``: Bradley-Terry maximum likelihood
        on the Elo scale (the arena's scale, base and initial) from the pool's pairwise counts,
        ``lower``/``upper`` its 95% bootstrap interval (100 rounds, seed 0) and ``rank`` 1 + the
        number of competitors whose lower bound is above this one's upper bound.

        Every row also carries the averages of the metrics its battles and trials carried in
        the pool (``metrics``; wer, semascore, prosody, quality, latency, cost and tokens picked
        out) and its average score vote, voided results excluded.

        ``as_of``: a position P rebuilds the board from the rating history (each competitor's
        last change at or before P); a time T means the last change in the pool whose producer
        time is at or before T (producer clocks, not arrival order: a late-arriving older
        result can fall after P). The averages are always current; while keys are enforced
        they count only the trials of experiments the caller may read."""
        from .api_queries import leaderboard, parse_as_of

        when = None if as_of is None else parse_as_of(as_of)
        return await leaderboard(
            reads, arena, category, limit, offset, system, when, viewer=viewer_of(request)
        )


class CompetitorController(Controller):
    path = "/competitors"
    tags = ["competitors"]  # noqa: RUF012

    @get("/", summary="The competitor registry", responses=_errors(400, 503))
    async def list_competitors(
        self,
        reads: NamedDependency[ReadStore],
        limit: Limit = 100,
        offset: Offset = 0,
        arena: ArenaParam = "default",
        status: Annotated[
            Literal["untested", "testing", "ranked", "retired"] | None,
            QueryParameter(description="Only competitors with this status in `arena`."),
        ] = None,
    ) -> CompetitorList:
        """Every competitor registered or seen in a result, by id, with its status in
        ``arena``: untested (no rated result in its arena-wide pool), testing (1 to 9), ranked
        (10 or more), retired."""
        return await reads.competitors(limit, offset, arena, status)

    @get(
        "/{competitor_id:str}",
        summary="One competitor and its standings",
        responses=_errors(404, 503),
    )
    async def get_competitor(
        self,
        reads: NamedDependency[ReadStore],
        competitor_id: FromPath[str],
        arena: ArenaParam = "default",
    ) -> CompetitorDetail:
        """Registry entry (``status`` in ``arena``) plus its standing (with rank) in every
        arena and category."""
        found = await reads.competitor(competitor_id, arena)
        if found is None:
            raise _not_found(f"Unknown competitor {competitor_id!r}.")
        return found

    @get(
        "/{competitor_id:str}/history",
        summary="A competitor's rating history",
        responses=_errors(400, 404, 503),
    )
    async def history(
        self,
        reads: NamedDependency[ReadStore],
        competitor_id: FromPath[str],
        arena: Annotated[
            str | None, QueryParameter(max_length=128, description="Only this arena.")
        ] = None,
        category: Annotated[
            str | None,
            QueryParameter(
                max_length=128, description="Only this category ('' = arena-wide pool)."
            ),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
        bucket: Annotated[
            Literal["day"] | None,
            QueryParameter(description="`day`: one point per UTC day of one pool."),
        ] = None,
    ) -> History:
        """Every rating change in log order (a battle with a category moves two pools, so it
        appears twice unless ``category`` is given); ``kind`` says what caused it, a ``void``
        row being the recomputation after a voided result (no opponent, score or K; a null
        ``rating_after`` when it left the competitor unrated in the pool).

        ``bucket=day``: a series for charts in one pool (``arena`` default ``default``,
        ``category`` default the arena-wide pool): per UTC day of the producers'
        ``occurred_at``, the rating after the day's last change, its low and high, the rated
        results that day and the counters after it; paginated by day."""
        if bucket is not None:
            from .api_queries import history_days

            found = await history_days(
                reads, competitor_id, arena or "default", category or "", limit, offset
            )
        else:
            found = await reads.history(competitor_id, arena, category, limit, offset)
        if found is None:
            raise _not_found(f"Unknown competitor {competitor_id!r}.")
        return found


@dataclass
class _PublishOperation(Operation):
    """Documents ``POST /events``' body, which the handler reads raw (not parsed by Litestar)."""

    def __post_init__(self) -> None:
        refs = {t.__struct_config__.tag: f"#/components/schemas/{t.__name__}" for t in EVENT_TYPES}
        self.request_body = RequestBody(
            required=True,
            description="One wire event (v1) as a JSON object, at most 64 KiB.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        one_of=[Reference(ref) for ref in refs.values()],
                        discriminator=Discriminator(property_name="type", mapping=refs),
                    )
                )
            },
        )


class EventController(Controller):
    path = "/events"
    tags = ["events"]  # noqa: RUF012

    @get("/", summary="The event log, in order", responses=_errors(400, 503))
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        after: Annotated[
            int, QueryParameter(ge=0, description="Exclusive lower bound on the log position.")
        ] = 0,
        limit: Limit = 100,
        event_type: Annotated[
            str | None,
            QueryParameter(
                name="type",
                description=f"Only events of this type; looks through at most {SCAN_WINDOW} "
                "positions per request (follow `next_after`).",
            ),
        ] = None,
    ) -> EventPage:
        """Accepted events after ``after`` in log order. Resume from ``next_after``; with a
        ``type`` a page may be short (even empty) before the log's end, so page until
        ``next_after`` reaches ``head``. While keys are enforced, the events of experiments the
        caller may not read (their trials, score votes and voids) are left out of the page, so
        a page may be short then too."""
        if event_type is not None and event_type not in TYPE_NAMES:
            raise ApiError(
                400,
                "bad_parameter",
                f"Query parameter `type` is invalid: {event_type!r} is not one of "
                f"{', '.join(TYPE_NAMES)}.",
                field="type",
            )
        page = await reads.events(after, limit, event_type)
        page.events = await visible(reads, viewer_of(request), page.events)
        return page

    @get("/{event_id:str}", summary="One event and its log position", responses=_errors(404, 503))
    async def get_event(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        event_id: FromPath[str],
    ) -> LoggedEvent:
        """The accepted event with this ``event_id``, where it sits in the log (404 as for an
        unknown id when it is about an experiment the caller may not read)."""
        found = await reads.event(event_id)
        if found is not None and not await visible(reads, viewer_of(request), [found]):
            found = None
        if found is None:
            raise _not_found(f"No event with event_id {event_id!r} is in the log.")
        return found

    @post(
        "/",
        summary="Publish an event",
        status_code=202,
        request_max_body_size=MAX_EVENT_BYTES,
        operation_class=_PublishOperation,
        responses=_errors(400, 409, 413, 503),
        opt={"scope": "publish"},
    )
    async def publish(
        self,
        request: Request[Any, Any, Any],
        bus: NamedDependency[Bus],
        reads: NamedDependency[ReadStore],
    ) -> Accepted:
        """Validate the event as the ingest would and publish it to NATS (``Nats-Msg-Id`` =
        ``<event_id>:<content digest>``). 202 means JetStream holds it; the ingest appends it to
        the log shortly (an ingest-time rejection goes to ``ARBITER_REJECTED``). An event id the
        log already holds is answered at once: 409 ``conflict`` when its content differs, 202
        with ``duplicate: true`` and nothing published when it is the same.

        Needs a key with ``publish`` when keys are enforced; the event's ``source`` is then set
        to ``key:<key_id>``. A ``source`` starting with ``key:`` that is not the caller's own key
        is refused (400 ``reserved_source``)."""
        from arbiter.domain.decisions import is_key

        from .api_auth import current_key, experiment_owner, owner_source

        raw = await request.body()
        result = decode_event(raw)
        if isinstance(result, Rejection):
            raise ApiError.rejected(result)
        key = current_key(request)
        own = None if key is None else owner_source(key)
        if result.source is not None and result.source.startswith("key:") and result.source != own:
            raise ApiError(
                400,
                "reserved_source",
                "`source` values starting with `key:` are set by the API from the API key that "
                "published the event; leave `source` out or use another value.",
                field="source",
                event_id=result.event_id,
                type=type_name(result),
            )
        if own is not None:
            assert key is not None
            result = msgspec.structs.replace(result, source=own)
            if isinstance(result, TrialCompleted) and not key.allows("admin"):
                owner = await experiment_owner(reads, result.experiment_id)
                if is_key(owner) and owner != own:  # the ingest's rule (not_owner), said early
                    raise ApiError(
                        403,
                        "forbidden",
                        f"Experiment {result.experiment_id!r} belongs to another publisher; "
                        "use another experiment_id.",
                        field="experiment_id",
                        event_id=result.event_id,
                    )
        recorded = await reads.recorded_digest(result.event_id)
        if recorded is not None:
            if recorded != content_digest(result):
                raise ApiError(
                    409,
                    "conflict",
                    f"event_id {result.event_id!r} is already in the log with other content; "
                    "use a new event_id for a new event, or resend the original unchanged.",
                    field="event_id",
                    event_id=result.event_id,
                    type=type_name(result),
                )
            return Accepted(event_id=result.event_id, stream_seq=None, duplicate=True)
        return await bus.publish(result)


# -- the app ------------------------------------------------------------------------------------


def _reads(state: State) -> ReadStore:
    return state.reads  # type: ignore[no-any-return]


def _bus(state: State) -> Bus:
    return state.bus  # type: ignore[no-any-return]


def _auth(state: State) -> Authenticator:
    return state.auth  # type: ignore[no-any-return]


def create_app(
    database_url: str,
    nats_url: str | None,
    *,
    pool_size: int = 10,
    pool_timeout: float = 5.0,
    nats_timeout: float = 3.0,
    auth: AuthConfig | None = None,
) -> Litestar:
    """The API as an ASGI app. The database pool opens at startup (without waiting: a database
    that is down yields 503s, not a failed start); NATS connects on first use. ``auth``
    (default: from ``ARBITER_AUTH``, ``ARBITER_PUBLIC_READS``, ``ARBITER_AUTH_CACHE_TTL``) says
    how API keys are enforced (:mod:`.api_auth`)."""
    from .api_auth import AdminController, Authenticator, authorise
    from .api_boards import (
        HeadToHeadController,
        LeaderboardStreamController,
        MatchmakingController,
        SummaryController,
    )
    from .api_evaluations import Evaluations
    from .api_params import QueryParameterCheck
    from .api_results import BattleController, ExperimentController, GameController, StatsController

    reads = ReadStore(database_url, max_size=pool_size, timeout=pool_timeout)
    bus = Bus(nats_url, connect_timeout=nats_timeout)
    evaluations = Evaluations.from_env()
    authenticator = Authenticator(auth or AuthConfig.from_env(), reads)
    openapi_path = "/schema"
    parameters = QueryParameterCheck(exempt_prefix=openapi_path)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await reads.open()
        try:
            yield
        finally:
            evaluations.close()
            await bus.close()
            await reads.close()

    return Litestar(
        route_handlers=[
            HealthController,
            LeaderboardController,
            CompetitorController,
            EventController,
            evaluations.controller(),
            LeaderboardStreamController,
            HeadToHeadController,
            MatchmakingController,
            SummaryController,
            BattleController,
            GameController,
            ExperimentController,
            StatsController,
            AdminController,
        ],
        guards=[authorise, parameters.guard],  # keys first, then the query's parameter names
        plugins=[parameters],
        dependencies={
            "reads": Provide(_reads, sync_to_thread=False),
            "bus": Provide(_bus, sync_to_thread=False),
            "auth": Provide(_auth, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State(
            {"reads": reads, "bus": bus, "evaluations": evaluations, "auth": authenticator}
        ),
        openapi_config=OpenAPIConfig(
            title="Arbiter",
            version="1",
            description="Event-sourced rating engine: leaderboards, histories and the event log.",
            path=openapi_path,
        ),
    )


def make_server(
    database_url: str, nats_url: str | None, host: str = "127.0.0.1", port: int = 8000
) -> uvicorn.Server:
    """A uvicorn server for the API; ``server.run()`` blocks, ``server.should_exit = True``
    stops it (from another thread too)."""
    config = uvicorn.Config(
        create_app(database_url, nats_url),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    return uvicorn.Server(config)


def serve(database_url: str, nats_url: str | None, host: str, port: int) -> None:
    """Run the API until interrupted (in the calling thread or process)."""
    make_server(database_url, nats_url, host, port).run()
