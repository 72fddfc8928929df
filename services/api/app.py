"""The API as an app: :func:`create_app` wires the routes, guards, dependencies, exception
handlers, lifespan and OpenAPI together; :func:`make_server` and :func:`serve` run it.

* Reads are plain SQL on an async pool (:mod:`.store`, :mod:`.queries`), one snapshot per request.
* ``POST /events`` validates exactly as a worker's message is validated and publishes to
  JetStream (:mod:`.bus`); the ingest appends it to the log.
* Every error is JSON ``{status, code, message}`` (:mod:`.errors`).

OpenAPI is served at ``/schema`` (``/schema/openapi.json``). This module is the only one that
imports the route modules; none of them imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from ..metrics import scrape_registry
from .auth import AuthConfig, Authenticator, authorise
from .bus import Bus
from .cache import (
    STORE,
    ReadModelWatch,
    ResponseStore,
    Validators,
    cache_config,
    response_cache_enabled,
)
from .docs import assets_router, swagger_plugin
from .errors import EXCEPTION_HANDLERS
from .evaluation_jobs import EvaluationConfig, Evaluations
from .front_door import FrontDoor
from .guards import in_order
from .normal_form import SlashedIds, nfc_scope, refuse_nul
from .parameters import QueryParameterCheck
from .replica import read_url_from_env
from .routes.admin import AdminController
from .routes.competitors import CompetitorController
from .routes.evaluations import evaluation_controller
from .routes.events import EventController
from .routes.experiment_status import ExperimentStatusController
from .routes.experiments import ExperimentController, StatsController
from .routes.health import HealthController
from .routes.leaderboard import LeaderboardController, LeaderboardStreamController
from .routes.leaderboard_history import LeaderboardHistoryController
from .routes.matchups import HeadToHeadController, MatchmakingController
from .routes.metrics import metrics, request_metrics
from .routes.results import BattleController, GameController, SummaryController
from .routes.votes import VoteController
from .single_flight import Flights, SingleFlight
from .store import ReadStore
from .warm_up import start_warm_up

__all__ = ["ArbiterApp", "create_app", "make_server", "serve"]


def _reads(state: State) -> ReadStore:
    return state.reads  # type: ignore[no-any-return]


def _bus(state: State) -> Bus:
    return state.bus  # type: ignore[no-any-return]


def _auth(state: State) -> Authenticator:
    return state.auth  # type: ignore[no-any-return]


class ArbiterApp(Litestar):
    """Litestar, with paths and query values put in NFC before routing (:mod:`.normal_form`)
    and the response cache's hits for keyless callers answered then (:mod:`.front_door`);
    everything else goes through Litestar as usual."""

    door: FrontDoor | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if await refuse_nul(scope, send):
                return
            scope = nfc_scope(scope)  # ids are stored in NFC (:mod:`.normal_form`)
            door = self.door
            if door is not None and await door.answer(scope, send):
                return
        await super().__call__(scope, receive, send)


def create_app(
    database_url: str,
    nats_url: str | None,
    *,
    pool_size: int = 10,
    pool_timeout: float = 5.0,
    nats_timeout: float = 3.0,
    auth: AuthConfig | None = None,
    read_database_url: str | None = None,
) -> Litestar:
    """The API as an ASGI app. The database pool opens at startup (without waiting: a database
    that is down yields 503s, not a failed start); NATS connects on first use. ``auth``
    (default: from ``ARBITER_AUTH``, ``ARBITER_PUBLIC_READS``, ``ARBITER_AUTH_CACHE_TTL``) says
    how API keys are enforced (:mod:`.auth`). ``read_database_url`` (default: from
    ``ARBITER_READ_DATABASE_URL``) sends the read routes to a streaming replica (:mod:`.replica`).
    """
    read_url = read_database_url or read_url_from_env()
    reads = ReadStore(database_url, max_size=pool_size, timeout=pool_timeout, read_url=read_url)
    bus = Bus(nats_url, connect_timeout=nats_timeout)
    evaluations = Evaluations(database_url, EvaluationConfig.from_env())
    authenticator = Authenticator(auth or AuthConfig.from_env(), reads)
    openapi_path = "/schema"
    parameters = QueryParameterCheck(exempt_prefix=openapi_path)
    responses = ResponseStore()
    watch = ReadModelWatch(
        database_url, responses, enabled=response_cache_enabled(), read_url=read_url
    )
    flights = Flights()
    door = FrontDoor(responses, watch, authenticator)

    @contextlib.asynccontextmanager
    async def lifespan(started: Litestar) -> AsyncIterator[None]:
        await reads.open()
        watch.start()
        started.state.warm_up = start_warm_up(started.template_engine)
        evaluations.start(reads, bus)
        try:
            yield
        finally:
            await watch.stop()
            await evaluations.close()
            await bus.close()
            await reads.close()

    # Here, not at the top: the pages import the API's modules, whose package imports this one,
    # so a top-level import would fail whenever a page module is imported first.
    from ..web.routes import web_router
    from ..web.templating import template_config

    app = ArbiterApp(
        # Logging is arbiter.services.logs' (ARBITER_LOG_FORMAT, --verbose): Litestar's default
        # config would reset the root logger to INFO in its own format when the app starts.
        logging_config=None,
        route_handlers=[
            HealthController,
            LeaderboardController,
            CompetitorController,
            EventController,
            evaluation_controller(evaluations.config),
            LeaderboardStreamController,
            LeaderboardHistoryController,
            HeadToHeadController,
            MatchmakingController,
            SummaryController,
            BattleController,
            GameController,
            ExperimentController,
            ExperimentStatusController,
            StatsController,
            VoteController,
            AdminController,
            assets_router(openapi_path),
            metrics,
            web_router(),  # the HTML pages at / and /ui/ (services/web)
        ],
        # Keys first, then the query's parameter names: one guard (see .guards).
        guards=[in_order(authorise, parameters.guard)],
        plugins=[parameters],
        middleware=[
            SlashedIds,  # ids holding "/" (.normal_form)
            request_metrics().middleware,
            Validators,
            DefineMiddleware(SingleFlight, flights=flights, door=door),  # innermost: see there
        ],
        stores={STORE: responses},
        response_cache_config=cache_config(),
        dependencies={
            "reads": Provide(_reads, sync_to_thread=False),
            "bus": Provide(_bus, sync_to_thread=False),
            "auth": Provide(_auth, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=template_config(),
        lifespan=[lifespan],
        state=State(
            {
                "reads": reads,
                "bus": bus,
                "evaluations": evaluations,
                "auth": authenticator,
                "metrics": scrape_registry(database_url),
                "watch": watch,
                "flights": flights,
                "door": door,
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Arbiter",
            version="1",
            description="Event-sourced rating engine: leaderboards, histories and the event log.",
            path=openapi_path,
            render_plugins=[swagger_plugin(openapi_path)],
        ),
    )
    app.door = door
    return app


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
