"""The experiment, stats, event log, event, battle and game pages against real PostgreSQL,
without a browser (those tests are tests/test_web_browser.py): each renders, each number it
shows is the JSON route's, the log page takes exactly the query parameters of ``GET /events``,
and a private experiment shows only to its owner's key. Plus the pure parts: the bar chart and
the route mirror."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.adapters import keys
from arbiter.domain.events import ExperimentCreated
from arbiter.domain.experiments import TrialRecord, experiment_results
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from arbiter.services.api.models.results import ExperimentReport
from arbiter.services.web import log as log_page
from arbiter.services.web.bars import bars
from arbiter.services.web.experiment import PAIRS_AMONG, top_pairs
from arbiter.services.web.units import unit_of
from litestar.testing import AsyncTestClient
from msgspec import structs

from .api_events import T0, battle, game, score_vote, seed, trial, void, vote
from .web_html import Page, parse


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def html(client: AsyncTestClient[Any], url: str, status: int = 200, **kw: Any) -> Page:
    response = await client.get(url, **kw)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def _trials() -> list[Any]:
    """Experiment 'exp': three voices on two prompts, one failure, a score vote, a void."""
    out: list[Any] = []
    for p in range(2):
        for n, (voice, persona) in enumerate((("v1", "calm"), ("v2", "calm"), ("v3", "loud"))):
            out.append(trial(
                f"t{p}{voice}", "exp", voice, prompt=p, arena="tts", at=p,
                status="failed" if (p, voice) == (1, "v3") else "completed",
                metrics={"ttfb_ms": 200.0 + 90 * n + p, "generation_time_ms": 900.0 + 40 * n,
                         "duration_s": 3.0 + n, "silence_ratio": 0.1 * (n + 1),
                         "cost_usd": 0.002 * (n + 1)},
                dimensions={"persona": persona},
            ))  # fmt: skip
    return [
        *out,
        score_vote("s1", "t0v1", 4),
        trial("tx", "exp", "v2", prompt=1, arena="tts", at=3, metrics={"ttfb_ms": 5.0}),
        void("vx", "tx", at=4),
    ]


def _values(page: Page, table: str, column: int) -> list[str]:
    return [r.cells[column].value for r in page.table(table)]


async def test_experiment_page_shows_the_results_route(database_url, client) -> None:
    seed(database_url, _trials())
    got = await html(client, "/ui/experiments/exp")
    report = (await client.get("/experiments/exp/results")).json()
    assert list(got.by("rankings", "data-competitor")) == [
        r["competitor"] for r in report["rankings"]
    ]
    assert [float(v) for v in _values(got, "rankings", 2)] == [
        r["composite"] for r in report["rankings"]
    ]
    assert [m["data-competitor"] for m in got.marks] == [
        r["competitor"] for r in report["rankings"]
    ]
    competitors = got.by("competitors", "data-competitor")
    for c in report["competitors"]:
        cells = competitors[c["competitor"]].cells
        assert int(cells[1].value) == c["completed"] and int(cells[2].value) == c["failed"]
        assert float(cells[3].value) == c["avg_ttfb_ms"]
        assert cells[3].text.endswith(" ms") and cells[8].text.endswith(" USD")
    h2h = [[r.attrs["data-a"], r.attrs["data-b"], *[int(c.value) for c in r.cells[2:]]]
           for r in got.table("head-to-head")]  # fmt: skip
    assert h2h == [[h["a"], h["b"], h["a_wins"], h["b_wins"], h["ties"]]
                   for h in report["head_to_head"]]  # fmt: skip
    winner = next(a for t, a in got.elements if a.get("id") == "winner")
    assert winner["data-winner"] == (report["winner"] or "")
    assert winner["data-confidence"] == report["confidence"]
    assert "voided" in next(r for r in got.table("trials") if "tx" in r.cells[1].text).attrs.get(
        "class", ""
    )


async def test_declared_experiment_without_trials_and_unknown_one(database_url, client) -> None:
    seed(database_url, [ExperimentCreated(
        event_id="c1", occurred_at=T0, experiment_id="planned", name="Planned",
        competitors=["v1", "v2"], prompt_count=3)])  # fmt: skip
    got = await html(client, "/ui/experiments/planned")
    assert "No trial yet" in got.text and "of 6 expected" in got.text
    got = await html(client, "/ui/experiments/nothing", 404)
    assert "not_found" in got.text


@pytest.mark.parametrize("query", ["", "?group_by=persona", "?order=avg_score&arena=tts"])
async def test_stats_page_shows_the_stats_route(database_url, client, query) -> None:
    seed(database_url, _trials())
    got = await html(client, "/ui/stats" + query)
    body = (await client.get("/stats" + query)).json()
    rows = got.table("stats")
    assert [r.attrs["data-group"] for r in rows] == [g["key"] or "" for g in body["groups"]]
    assert "total cost (USD)" in got.headers["stats"]
    assert "average ttfb_ms (ms)" in got.headers["stats"]
    for row, group in zip(rows, body["groups"], strict=True):
        cell = {c.attrs.get("data-measure"): c for c in row.cells}
        assert int(cell["count"].value) == group["count"]
        assert float(cell["total_cost_usd"].value) == group["total_cost_usd"]
        assert float(cell["metric:ttfb_ms"].value) == group["metrics"]["ttfb_ms"]
    figures = [a["data-measure"] for t, a in got.elements if t == "figure"]
    assert "total_cost_usd" in figures and "metric:ttfb_ms" in figures
    key = "data-competitor" if "group_by" not in query else "data-group"
    drawn = [(f, g["key"]) for f in figures for g in body["groups"] if not _missing(f, g)]
    assert len(got.marks) == len(drawn)
    assert all(key in m for m in got.marks)


def _missing(measure: str, group: dict[str, Any]) -> bool:
    if measure.startswith("metric:"):
        return group["metrics"].get(measure.removeprefix("metric:")) is None
    return group[measure] is None


async def test_stats_page_refuses_what_the_route_refuses(database_url, client) -> None:
    seed(database_url, _trials())
    got = await html(client, "/ui/stats?group_by=colour", 400)
    assert "persona" in got.text  # the 400 names the dimensions the trials carry
    got = await html(client, "/ui/stats?run_id=exp", 400)
    assert "`experiment_id`" in got.text


async def test_log_page_takes_the_events_route_parameters(database_url, client) -> None:
    seed(database_url, [battle("b1", "x", "y"), battle("b2", "y", "z"), *_trials()])
    schema = (await client.get("/schema/openapi.json")).json()
    route = {p["name"] for p in schema["paths"]["/events"]["get"]["parameters"]}
    assert {f.name for f in log_page.FILTERS} == route
    signature = inspect.signature(log_page.log_page).parameters
    assert {p for p in signature if p not in ("request", "reads")} == {
        f.argument for f in log_page.FILTERS
    }
    for query in (
        "?limit=3",
        "?type=trial.completed",
        "?after=2&limit=2",
        "?order=desc&limit=2",
        "?competitor=y&type=battle.completed",
    ):
        got = await html(client, "/ui/log" + query)
        body = (await client.get("/events" + query)).json()
        assert [r.attrs["data-event-id"] for r in got.table("events")] == [
            e["event"]["event_id"] for e in body["events"]
        ]
    got = await html(client, "/ui/log?limit=3")
    nxt = next(a["href"] for t, a in got.elements if "next" in a.get("class", ""))
    assert nxt.startswith("?limit=3&")  # the filters kept, the route's resume field added
    follow = await html(client, "/ui/log" + nxt)
    body = (await client.get("/events" + nxt)).json()
    assert [r.attrs["data-event-id"] for r in follow.table("events")] == [
        e["event"]["event_id"] for e in body["events"]
    ]
    assert body["events"][0]["position"] == 4
    assert "`bogus`" in (await html(client, "/ui/log?bogus=1", 400)).text
    assert "limit" in (await html(client, "/ui/log?limit=0", 400)).text
    assert "type" in (await html(client, "/ui/log?type=nope", 400)).text


async def test_event_battle_and_game_pages(database_url, client) -> None:
    seed(database_url, [
        battle("b1", "x", "y", outcome=None, metrics={"a": {"ttfb_ms": 300.0},
                                                    "b": {"ttfb_ms": 250.5}}),
        vote("u1", "b1", "a"), vote("u2", "b1", "b", voter="u2"),
        game("g1", ("x", 1, 10.0), ("y", 2, 4.0), ("z", 3)),
    ])  # fmt: skip
    b = (await client.get("/battles/b1")).json()
    got = await html(client, "/ui/battles/b1")
    assert "1 / 1 / 0" in got.text
    assert [r.cells[0].value for r in got.table("votes-table")] == [
        str(v["position"]) for v in b["vote_list"]
    ]
    metrics = got.by("metrics", "data-metric")["ttfb_ms"].cells
    assert (metrics[1].value, metrics[2].value) == ("300.0", "250.5")
    assert metrics[1].text == "300.000 ms"
    g = (await client.get("/games/g1")).json()
    got = await html(client, "/ui/games/g1")
    assert list(got.by("participants", "data-competitor")) == [
        p["competitor"] for p in g["participants"]
    ]
    event = (await client.get("/events/ev-b1")).json()
    got = await html(client, "/ui/log/ev-b1")
    assert f"log position {event['position']}" in got.text
    assert "/ui/battles/b1" in {a.get("href") for _, a in got.elements}
    for missing in ("/ui/battles/nope", "/ui/games/nope", "/ui/log/nope"):
        assert "not_found" in (await html(client, missing, 404)).text


async def test_private_experiment_shows_only_to_its_owner(database_url) -> None:
    owner, owner_token = keys.create(database_url, "owner", ["read", "publish"])
    _, other_token = keys.create(database_url, "other", ["read"])
    seed(database_url, [
        trial("p1", "secret", "v1", arena="tts", source=f"key:{owner.key_id}",
              metrics={"ttfb_ms": 300.0}),
        battle("b1", "x", "y"),
    ])  # fmt: skip
    app = create_app(database_url, None, auth=AuthConfig(mode="auto", public_reads=False))
    async with AsyncTestClient(app=app) as client:
        asked = await html(client, "/ui/experiments/secret", 401)
        assert any(a.get("action") == "/ui/key" for t, a in asked.elements if t == "form")
        await html(client, "/ui/log", 401)
        other = {"Authorization": f"Bearer {other_token}"}
        await html(client, "/ui/experiments/secret", 404, headers=other)
        log = await html(client, "/ui/log", headers=other)
        assert [r.attrs["data-event-id"] for r in log.table("events")] == ["ev-b1"]
        stats = await html(client, "/ui/stats", headers=other)
        assert stats.table("stats") == []
        mine = {"Authorization": f"Bearer {owner_token}"}
        got = await html(client, "/ui/experiments/secret", headers=mine)
        assert list(got.by("competitors", "data-competitor")) == ["v1"]
        log = await html(client, "/ui/log", headers=mine)
        assert [r.attrs["data-event-id"] for r in log.table("events")] == ["ev-p1", "ev-b1"]


# -- pure parts ---------------------------------------------------------------------------------


def test_bars_draw_one_escaped_mark_per_value_and_none_for_a_missing_one() -> None:
    svg = parse(bars([("a<b", 2.0), ("c", None), (None, -1.0)], "ms", "latency",
                     key_attribute="data-competitor"))  # fmt: skip
    assert [m["data-competitor"] for m in svg.marks] == ["a<b", "(none)"]
    assert "a<b" in svg.text and "latency (ms)" in svg.text
    assert "<b" not in bars([("a<b", 1.0)], "ms", "t").replace("&lt;b", "")
    widths = [float(m["width"]) for m in svg.marks]
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.02)


def test_units_come_from_the_names() -> None:
    assert [unit_of(n) for n in ("ttfb_ms", "duration_s", "cost_usd", "wer", "silence_ratio")] == [
        "ms",
        "s",
        "USD",
        "",
        "ratio",
    ]


def test_head_to_head_table_keeps_the_pairs_among_the_best_ranked() -> None:
    records = [
        TrialRecord(
            trial_id=f"{c}-{p}", competitor=f"c{c:02d}", prompt_index=p, status="completed",
            metrics={"ttfb_ms": 100.0 + 37 * c + p, "generation_time_ms": 900.0 - 5 * c,
                     "duration_s": 2.0, "silence_ratio": 0.1},
        )
        for c in range(12)
        for p in range(3)
    ]  # fmt: skip
    results = experiment_results(records)
    report = ExperimentReport(
        **structs.asdict(results), experiment_id="x", voided=0, results_position=0
    )
    pairs = top_pairs(report)
    best = {r.competitor for r in report.rankings[:PAIRS_AMONG]}
    assert len(report.head_to_head) == 66 and len(pairs) == 45
    assert all(h.a in best and h.b in best for h in pairs)
    assert "c11" not in best  # the slowest is left out


async def test_cached_pages_move_with_the_read_models(database_url, client) -> None:
    """The experiment and stats pages are kept in the response cache; a new trial shows at once
    (the cache is keyed by the read models' state), and the cached page is the fresh one."""
    seed(database_url, _trials())
    watch = client.app.state["watch"]
    deadline = time.monotonic() + 30
    while watch.state is None:  # the watch listens: answers are cached from here on
        assert time.monotonic() < deadline, "the read-model watch never started"
        await asyncio.sleep(0.02)
    before = await client.get("/ui/experiments/exp")
    again = await client.get("/ui/experiments/exp")
    assert before.text == again.text and "etag" in again.headers
    stats = await html(client, "/ui/stats")
    assert stats.by("stats", "data-group")["v1"].cells[1].value == "2"
    seed(database_url, [trial("t9", "exp", "v1", prompt=2, arena="tts", at=9,
                              metrics={"ttfb_ms": 250.0})])  # fmt: skip
    after = parse((await client.get("/ui/experiments/exp")).text)
    assert after.by("competitors", "data-competitor")["v1"].cells[1].value == "3"
    stats = await html(client, "/ui/stats")
    assert stats.by("stats", "data-group")["v1"].cells[1].value == "3"


async def test_log_next_page_keeps_every_value_of_a_repeated_filter(database_url, client) -> None:
    """The route reads every `type` given and its cursor covers them all: a next link that kept
    only the first value was another query's, and following it was a 400."""
    seed(database_url, [battle("b1", "x", "y"), battle("b2", "y", "z"), *_trials()])
    query = "?type=battle.completed&type=trial.completed&limit=1"
    got = await html(client, "/ui/log" + query)
    nxt = next(a["href"] for t, a in got.elements if "next" in a.get("class", ""))
    assert "type=battle.completed" in nxt and "type=trial.completed" in nxt
    follow = await html(client, "/ui/log" + nxt)
    body = (await client.get("/events" + nxt)).json()
    assert [r.attrs["data-event-id"] for r in follow.table("events")] == [
        e["event"]["event_id"] for e in body["events"]
    ]


async def test_a_log_page_at_its_bound_has_no_next_link(database_url, client) -> None:
    """A short page that reached ``before`` (ascending) or the log's start (descending) is the
    last: its next link led to an empty page with the same link, for ever."""
    seed(database_url, [battle("b1", "x", "y"), battle("b2", "y", "z"), battle("b3", "x", "z")])
    for query in ("?before=3", "?order=desc"):
        got = await html(client, "/ui/log" + query)
        assert len(got.table("events")) == 2 if query == "?before=3" else 3
        assert not [a for t, a in got.elements if "next" in a.get("class", "")], query
