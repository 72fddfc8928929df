"""``/leaderboard?system=bt`` beyond the defaults, against real PostgreSQL: the anchor (parameter
and the arena's default from ``arena.configured``), the bootstrap's ``rounds``/``seed``/``level``
(and that the reused fit is keyed by them), ``control`` (style control from the battles'
metrics) and the 400s for every bad form. Expectations come from the domain functions on the
counts or battles written out here, which tests/test_bradley_terry.py checks against independent
logistic regressions."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.domain import bradley_terry as bt
from arbiter.domain.events import BTAnchor
from arbiter.services.api import create_app
from arbiter.services.api.queries import bt_fits as api_queries
from litestar.testing import AsyncTestClient

from .api_events import assert_error, battle, configured, seed, void, vote

OUTCOMES = [("a", "b", "a")] * 3 + [("a", "b", "b")] + [("b", "c", "a")] * 2
OUTCOMES += [("b", "c", "b"), ("b", "c", "tie"), ("a", "c", "a"), ("c", "a", "a")]
COUNTS = [("a", "b", 3, 1, 0), ("b", "c", 2, 1, 1), ("a", "c", 1, 1, 0)]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    api_queries.clear_bt_cache()
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _battles(**kw: Any) -> list[Any]:
    return [battle(f"b{i}", a, b, o, at=i, **kw) for i, (a, b, o) in enumerate(OUTCOMES, 1)]


async def _bt(client: AsyncTestClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/leaderboard", params={"system": "bt", **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["competitor"]: r for r in body["rows"]}


async def test_anchor_parameter_and_bootstrap_parameters(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(database_url, _battles())
    counts = bt.PairCounts.from_rows(COUNTS)
    plain = await _bt(client)
    anchored = await _bt(client, anchor="b:1114")
    assert anchored["bootstrap"]["anchor"] == {"competitor": "b", "rating": 1114.0}
    expected = bt.leaderboard(counts, anchor=("b", 1114.0))
    rows = _by_name(anchored)
    assert rows["b"]["rating"] == 1114.0 and rows["b"]["lower"] == rows["b"]["upper"] == 1114.0
    for name, r, lo, hi in zip(expected.competitors, expected.rating, expected.lower,
                               expected.upper, strict=True):  # fmt: skip
        assert (rows[name]["rating"], rows[name]["lower"], rows[name]["upper"]) == pytest.approx(
            (r, lo, hi), abs=1e-9
        )
    # Only a shift: every difference is the unanchored board's.
    base = _by_name(plain)
    shift = rows["a"]["rating"] - base["a"]["rating"]
    assert shift == pytest.approx(1114.0 - base["b"]["rating"])
    assert all(rows[c]["rating"] - base[c]["rating"] == pytest.approx(shift) for c in base)
    assert (await _bt(client, anchor="mean"))["rows"] == plain["rows"]

    # rounds, seed and level reach the fit, and the reused live fit is keyed by them.
    custom = await _bt(client, rounds=7, seed=3, level=0.5)
    assert {k: custom["bootstrap"][k] for k in ("rounds", "seed", "level")} == {
        "rounds": 7, "seed": 3, "level": 0.5,
    }  # fmt: skip
    want = bt.leaderboard(counts, rounds=7, seed=3, level=0.5)
    assert [r["lower"] for r in custom["rows"]] == pytest.approx(list(want.lower))
    assert [r["upper"] for r in custom["rows"]] == pytest.approx(list(want.upper))
    again = await _bt(client)
    assert again["bootstrap"]["rounds"] == 100 and again["rows"] == plain["rows"]
    # Callers vary the options without end: the reused live fits stay bounded like the cache.
    for s in range(api_queries.BT_CACHE_SIZE + 5):
        await _bt(client, rounds=1, seed=s)
    assert len(api_queries._BT_LATEST) == api_queries.BT_CACHE_SIZE


async def test_arena_default_anchor(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _battles(category="math"))
    seed(database_url, [battle("x1", "d", "e", "a", category="chat")])
    seed(database_url, [configured("cfg", bt_anchor=BTAnchor(competitor="c", rating=1000.0))])
    body = await _bt(client)
    assert body["bootstrap"]["anchor"] == {"competitor": "c", "rating": 1000.0}
    assert _by_name(body)["c"]["rating"] == 1000.0
    # A pool without the default's competitor falls back to the mean, and says so.
    chat = await _bt(client, category="chat")
    assert chat["bootstrap"]["anchor"] is None
    assert sum(r["rating"] for r in chat["rows"]) == pytest.approx(2 * 1500.0)
    # The parameter wins over the default; `mean` turns it off for one request.
    assert _by_name(await _bt(client, anchor="a:0"))["a"]["rating"] == 0.0
    assert (await _bt(client, anchor="mean"))["bootstrap"]["anchor"] is None
    # "mean" in an event goes back to the mean for everyone.
    seed(database_url, [configured("cfg2", bt_anchor="mean")])
    assert (await _bt(client))["bootstrap"]["anchor"] is None


async def test_bad_bt_parameters_are_400s(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _battles())
    cases = [
        ({"rounds": 0}, "1 to 1,000"),
        ({"rounds": 1001}, "1 to 1,000"),
        ({"seed": -1}, "seed"),
        ({"level": 1}, "between 0 and 1"),
        ({"level": 0}, "between 0 and 1"),
        ({"anchor": "b"}, "COMPETITOR:RATING"),
        ({"anchor": "b:x"}, "finite number"),
        ({"anchor": "b:inf"}, "finite number"),
        ({"anchor": "nobody:1000"}, "no battles in this pool"),
        ({"control": "len,,x"}, "comma"),
        ({"control": "len,len"}, "distinct"),
        ({"control": "len,a\x00b"}, "control character"),
        ({"control": "len", "as_of": "3"}, "as_of"),
    ]
    for params, words in cases:
        body = assert_error(
            await client.get("/leaderboard", params={"system": "bt", **params}),
            400,
            "bad_parameter",
        )
        assert words in body["message"], (params, body)
        assert body["field"] == next(iter(params)), (params, body)
    body = assert_error(
        await client.get("/leaderboard", params={"rounds": 5}), 400, "bad_parameter"
    )
    assert "system=bt" in body["message"] and body["field"] == "rounds"


def _metrics(la: float, lb: float, ma: float, mb: float) -> dict[str, dict[str, float]]:
    return {"a": {"tokens": la, "bold": ma}, "b": {"tokens": lb, "bold": mb}}


async def test_control_fits_the_battles_metrics(database_url: str, client: AsyncTestClient) -> None:
    rng = random.Random(5)
    events: list[Any] = []
    rows: list[tuple[str, str, float, float, float, list[float], list[float]]] = []
    names = ["p", "q", "r", "s"]
    for i in range(120):
        a, b = rng.sample(names, 2)
        la, lb, ma, mb = (float(rng.randint(0, 900)) for _ in range(4))
        outcome = rng.choice(["a", "a", "b", "tie", None] if la > lb else ["a", "b", "b", "tie"])
        events.append(battle(f"c{i}", a, b, outcome, at=i, metrics=_metrics(la, lb, ma, mb)))
        if outcome is None:  # awaiting votes: two votes settle it
            events += [
                vote(f"v{i}a", f"c{i}", "a", voter="u1"),
                vote(f"v{i}b", f"c{i}", "tie", "u2"),
            ]
        if i == 7:
            events.append(void(f"x{i}", f"c{i}"))
            continue
        wins = {"a": (1, 0, 0), "b": (0, 1, 0), "tie": (0, 0, 1), None: (1, 0, 1)}[outcome]
        rows.append((a, b, *map(float, wins), [la, ma], [lb, mb]))
    events.append(battle("nometric", "p", "q", "a", at=200, metrics={"a": {"tokens": 3}}))
    events.append(battle("pending", "p", "q", None, at=201, metrics=_metrics(1, 2, 3, 4)))
    seed(database_url, events)

    body = await _bt(client, control="tokens,bold", rounds=20, seed=4, anchor="p:1114")
    expected = bt.controlled_leaderboard(
        bt.ControlledBattles.from_rows(rows, ("tokens", "bold")), rounds=20, seed=4,
        anchor=("p", 1114.0),
    )  # fmt: skip
    assert body["bootstrap"]["left_out"] == 1 and body["bootstrap"]["battles"] == sum(
        sum(r[2:5]) for r in rows
    )
    got = body["bootstrap"]["control"]
    assert [c["metric"] for c in got] == ["tokens", "bold"]
    for g, w in zip(got, expected.covariates, strict=True):
        assert (g["coefficient"], g["lower"], g["upper"], g["mean"], g["std"]) == pytest.approx(
            (w.coefficient, w.lower, w.upper, w.mean, w.std)
        )
    assert [(r["competitor"], r["rank"]) for r in body["rows"]] == list(
        zip(expected.board.competitors, expected.board.rank, strict=True)
    )
    assert [r["rating"] for r in body["rows"]] == pytest.approx(list(expected.board.rating))
    assert got[0]["coefficient"] > 0  # the longer answer was made to win more often
    # Controlled and uncontrolled fits are cached apart.
    plain = await _bt(client, anchor="p:1114")
    assert plain["bootstrap"]["control"] is None
    assert [r["rating"] for r in plain["rows"]] != [r["rating"] for r in body["rows"]]
    # A metric that no battle has on both sides leaves nothing to fit: a 400 naming it.
    missing = await client.get("/leaderboard", params={"system": "bt", "control": "nope"})
    assert "nope" in assert_error(missing, 400, "bad_parameter")["message"]


async def test_an_anchor_outside_the_controlled_battles_says_so(
    database_url: str, client: AsyncTestClient
) -> None:
    """``t`` has battles in the pool, but none with the controlled metric: the 400 said "no
    battles in this pool", which is false of the pool; it names the metric now."""
    events = [
        battle(f"m{i}", "p", "q", "a" if i % 3 else "b", at=i, metrics=_metrics(i, 2, 1, 1))
        for i in range(6)
    ]
    seed(database_url, [*events, battle("t1", "t", "p", "a", at=10)])
    response = await client.get(
        "/leaderboard", params={"system": "bt", "control": "tokens", "anchor": "t:1000"}
    )
    message = assert_error(response, 400, "bad_parameter")["message"]
    assert "'t' has no battles in this pool with tokens on both sides" in message, message
    plain = await client.get("/leaderboard", params={"system": "bt", "anchor": "t:1000"})
    assert plain.status_code == 200, plain.text  # uncontrolled, t is in the pool


async def test_a_controlled_refit_runs_on_the_apis_threads(
    database_url: str, client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controlled board's background refit stays in the API's process (its rows grow with the
    battles: sent to the refit process they would be pickled under the interpreter's lock): a
    fit that only this process can run (a closure, which no other process can unpickle) is the
    one that lands."""
    api_queries.clear_bt_cache()
    seed(database_url, [
        battle(f"m{i}", "p", "q", "a" if i % 3 else "b", at=i,
               metrics=_metrics(float(i), float(9 - i), 1.0, 2.0))
        for i in range(8)
    ])  # fmt: skip
    params = {"system": "bt", "control": "tokens", "rounds": 5}
    assert (await client.get("/leaderboard", params=params)).json()["bootstrap"]["position"] == 8
    monkeypatch.setattr(api_queries, "BT_REFRESH_S", 0.0)
    ran: list[int] = []
    real = api_queries.fit_controlled

    def here_only(*args: Any) -> Any:
        ran.append(1)
        return real(*args)

    monkeypatch.setattr(api_queries, "fit_controlled", here_only)
    seed(database_url, [battle("m8", "q", "p", "a", at=8, metrics=_metrics(1.0, 2.0, 3.0, 4.0))])
    stale = (await client.get("/leaderboard", params=params)).json()
    assert stale["bootstrap"]["position"] == 8  # the previous fit serves; a refit has started
    deadline = time.monotonic() + 20
    while api_queries._BT_REFITS:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert ran  # the refit ran here: it did not fail
    latest = [v for k, v in api_queries._BT_LATEST.items() if k[4].control == ("tokens",)]
    assert [v.position for v in latest] == [9]
