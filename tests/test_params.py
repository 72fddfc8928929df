"""What the API does not understand is a 400 naming what it does (issue 11, point 3).

Unknown query parameters on every route (the routes are read from the app itself, so a new
route is covered without touching this file), seed names for Arbiter's parameters, and a
``group_by`` dimension that no trial in scope carries. Against a real PostgreSQL, with the read
model seeded through the store and both projectors.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from .api_events import assert_error, seed, trial

UNKNOWN = "zz_not_a_parameter"
_TYPED = re.compile(r"\{(\w+):\w+\}")


def _routes() -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, Litestar's own /schema pages aside. The app
    is only built (nothing connects), so collection needs no server."""
    app = create_app("postgresql://unused@127.0.0.1:1/unused", None)
    return sorted(
        (method, _TYPED.sub(r"{\1}", route.path))
        for route in app.routes
        if isinstance(route, HTTPRoute) and not route.path.startswith("/schema")
        for method in route.route_handler_map
    )


ROUTES = _routes()


@pytest.fixture(scope="module")
async def open_client(servers: tuple[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    """Keys off, so admin routes reach the parameter check too; on the real PostgreSQL (no
    request gets as far as a query: each is refused first)."""
    app = create_app(servers[0], servers[1], auth=AuthConfig(mode="off"))
    async with AsyncTestClient(app=app) as c:
        yield c


@pytest.fixture(scope="module")
async def documented(open_client: AsyncTestClient[Any]) -> dict[tuple[str, str], list[str]]:
    """The query parameters /schema documents per operation: the independent list the refusal
    must name."""
    schema = (await open_client.get("/schema/openapi.json")).json()
    return {
        (method.upper(), path): sorted(p["name"] for p in op.get("parameters", [])
                                       if p["in"] == "query")
        for path, operations in schema["paths"].items()
        for method, op in operations.items()
    }  # fmt: skip


def test_the_routes_are_found() -> None:
    assert len(ROUTES) >= 40 and ("GET", "/events") in ROUTES and ("POST", "/events") in ROUTES
    assert ("DELETE", "/admin/keys/{key_id}") in ROUTES and ("GET", "/leaderboard/stream") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_an_unknown_parameter_is_refused_on_every_route(
    open_client: AsyncTestClient[Any],
    documented: dict[tuple[str, str], list[str]],
    method: str,
    path: str,
) -> None:
    if path == "/experiments/{experiment_id}/trials":
        pytest.skip("takes any dimension key its experiment's trials carry, so its refusal reads "
                    "the read model: tests/test_rating_workflow.py checks it")  # fmt: skip
    url = re.sub(r"\{\w+\}", "x", path)
    response = await open_client.request(method, url, params={UNKNOWN: "1"})
    if method == "HEAD":  # the status of the GET, no body
        assert response.status_code == 400 and not response.content
        return
    if path == "/" or path.startswith("/ui/"):  # the web pages: the same refusal, as a page
        assert response.status_code == 400 and "text/html" in response.headers["content-type"]
        assert f"`{UNKNOWN}` is not accepted by {method} {path};" in html.unescape(response.text)
        return
    body = assert_error(response, 400, "bad_parameter")
    assert body["field"] == UNKNOWN
    assert f"`{UNKNOWN}` is not accepted by {method} {path};" in body["message"], body
    accepted = documented.get((method, path), [])  # OPTIONS is not documented: it takes none
    if accepted:
        assert body["message"].endswith("it takes " + ", ".join(f"`{n}`" for n in accepted) + ".")
    else:
        assert body["message"].endswith("it takes no query parameters.")


async def test_the_schema_still_serves(open_client: AsyncTestClient[Any]) -> None:
    assert (await open_client.get("/schema/openapi.json")).status_code == 200


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def test_filters_the_api_lacks_are_refused_not_ignored(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, [trial("t1", "e1", "m1", metrics={"latency_ms": 10.0})])
    # Both once answered everything, as if the filter had matched it all.
    body = assert_error(await client.get("/events", params={"player": "x"}), 400, "bad_parameter")
    assert body["message"] == (
        "Query parameter `player` is not accepted by GET /events; it takes `after`, `arena`, "
        "`before`, `category`, `competitor`, `cursor`, `entity`, `limit`, `order`, `since`, "
        "`source`, `type`, `until`."
    )
    body = assert_error(
        await client.get("/competitors", params={"provider": "x"}), 400, "bad_parameter"
    )
    assert "`provider`" in body["message"] and "`status`" in body["message"]
    # Several at once are all named; a seed's name is named with Arbiter's.
    body = assert_error(
        await client.get("/battles", params={"model": "m1", "page": "2"}), 400, "bad_parameter"
    )
    assert body["message"].startswith("Query parameters `model`, `page` are not accepted")
    assert body["message"].endswith("`model` is the seeds' name for `competitor`.")
    body = assert_error(await client.get("/stats", params={"run_id": "e1"}), 400, "bad_parameter")
    assert "`run_id` is the seeds' name for `experiment_id`" in body["message"]
    # Known parameters still work, and an empty value of an unknown one is still unknown.
    assert (await client.get("/events", params={"limit": 1})).status_code == 200
    assert_error(await client.get("/events?player="), 400, "bad_parameter")


async def test_group_by_a_dimension_no_trial_carries(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(
        database_url,
        [
            trial("t1", "e1", "m1", dimensions={"persona": "pirate", "style": "terse"}),
            trial("t2", "e1", "m2", at=1, dimensions={"persona": "nurse"}),
            trial("t3", "e2", "m1", at=2),
        ],
    )
    # It once answered one null group holding every trial.
    body = assert_error(
        await client.get("/stats", params={"group_by": "model"}), 400, "bad_parameter"
    )
    assert body["field"] == "group_by"
    assert body["message"] == (
        "group_by 'model' is a dimension that none of the 3 trials in scope carries (`model` is "
        "the seeds' name for `competitor`); group by `competitor` or a dimension they carry "
        "(`persona`, `style`)."
    )
    # In scope means after the filters: e2's trial carries no persona, e1's do.
    body = assert_error(
        await client.get("/stats", params={"group_by": "persona", "experiment_id": "e2"}),
        400,
        "bad_parameter",
    )
    assert body["message"] == (
        "group_by 'persona' is a dimension that none of the 1 trials in scope carries; they "
        "carry no dimension at all: group by `competitor`."
    )
    persona = (await client.get("/stats", params={"group_by": "persona"})).json()
    assert [(g["key"], g["count"]) for g in persona["groups"]] == [
        ("nurse", 1),
        ("pirate", 1),
        (None, 1),
    ]
    # Nothing in scope: nothing to check the key against and nothing to group.
    empty = await client.get("/stats", params={"group_by": "model", "experiment_id": "none"})
    assert empty.status_code == 200, empty.text
    assert (empty.json()["trials"], empty.json()["groups"]) == (0, [])


@pytest.mark.parametrize(
    "url",
    [
        "/events?source=a&source=b",
        "/leaderboard?arena=x&arena=y",
        "/competitors?limit=1&limit=2",
        "/stats?group_by=persona&group_by=competitor",
    ],
)
async def test_a_one_value_parameter_given_twice_is_refused(
    client: AsyncTestClient[Any], url: str
) -> None:
    """Litestar keeps the last of two values of a one-value parameter and drops the other
    without a word; the answer would be for a query the caller did not make."""
    name = url.split("?")[1].split("=")[0]
    body = assert_error(await client.get(url), 400, "bad_parameter")
    assert body["field"] == name and "more than once" in body["message"]


async def test_a_many_value_parameter_may_repeat(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/events?type=battle.completed&type=vote.cast")
    assert r.status_code == 200, r.text
