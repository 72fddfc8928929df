"""Seed 004's rating workflow (issue 13 point 6), against real PostgreSQL and the real folds:
``/experiments/{id}/trials`` filtered by ``rated_by``, ``unrated_by``, any dimension, ``status``
and ``competitor``, with ``voter`` each row's ``my_rating``; ``GET /votes?voter=V``.

A voter's rating of a trial is its latest score vote there that is not voided.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from arbiter.adapters import keys
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from litestar.testing import AsyncTestClient

from .api_events import assert_error, score_vote, seed, trial, void

AUTO = AuthConfig(mode="auto", public_reads=True, cache_ttl=0)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _experiment() -> list[Any]:
    """Six trials of experiment ``x`` over two competitors and three dimensions; ann rates
    t0, t1 (twice: 2 then 5) and t2 (voided later), bob rates t3."""
    dims = [
        {"persona": "calm", "style": "brief", "input_type": "text"},
        {"persona": "calm", "style": "long", "input_type": "audio"},
        {"persona": "rushed", "style": "brief", "input_type": "text"},
        {"persona": "rushed", "style": "long", "input_type": "text"},
        {"persona": "calm", "style": "brief"},
        {"persona": "stressed", "status": "vip"},
    ]
    events: list[Any] = [
        trial(f"t{i}", "x", ("m1", "m2")[i % 2], prompt=i, dimensions=d, at=i,
              status="failed" if i == 4 else "completed")
        for i, d in enumerate(dims)
    ]  # fmt: skip
    events += [trial("y0", "y", "m1", dimensions={"persona": "calm"}, at=9)]
    events += [
        score_vote("va0", "t0", 4, voter="ann", at=10),
        score_vote("va1", "t1", 2, voter="ann", at=11),
        score_vote("va1b", "t1", 5, voter="ann", at=12),
        score_vote("va2", "t2", 3, voter="ann", at=13),
        score_vote("vb3", "t3", 1, voter="bob", at=14),
        score_vote("vay", "y0", 2, voter="ann", at=15),
        void("vv2", "va2", at=16),
    ]
    return events


async def _ids(client: AsyncTestClient[Any], **params: Any) -> list[str]:
    response = await client.get("/experiments/x/trials", params=params)
    assert response.status_code == 200, response.text
    return [t["trial_id"] for t in response.json()["trials"]]


async def test_trials_filter_by_rater_and_carry_my_rating(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _experiment())
    assert await _ids(client, rated_by="ann") == ["t0", "t1"]  # t2's vote is voided
    assert await _ids(client, unrated_by="ann") == ["t2", "t3", "t4", "t5"]
    assert await _ids(client, rated_by="bob") == ["t3"]
    assert await _ids(client, rated_by="nobody") == []
    assert await _ids(client, rated_by="ann", unrated_by="bob") == ["t0", "t1"]

    body = (await client.get("/experiments/x/trials", params={"voter": "ann"})).json()
    assert body["voter"] == "ann"
    mine = {t["trial_id"]: t["my_rating"] for t in body["trials"]}
    assert mine == {"t0": 4, "t1": 5, "t2": None, "t3": None, "t4": None, "t5": None}
    plain = (await client.get("/experiments/x/trials")).json()
    assert all(t["my_rating"] is None for t in plain["trials"])

    # Voiding ann's later vote on t1 brings her earlier one back.
    seed(database_url, [void("vv1b", "va1b", at=20)])
    body = (await client.get("/experiments/x/trials", params={"voter": "ann"})).json()
    assert {t["trial_id"]: t["my_rating"] for t in body["trials"]}["t1"] == 2


async def test_trials_filter_by_any_dimension(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _experiment())
    assert await _ids(client, persona="calm") == ["t0", "t1", "t4"]
    assert await _ids(client, persona="calm", style="brief") == ["t0", "t4"]
    assert await _ids(client, input_type="audio") == ["t1"]
    assert await _ids(client, **{"dim.persona": "rushed"}) == ["t2", "t3"]
    assert await _ids(client, persona=["calm", "stressed"]) == ["t0", "t1", "t4", "t5"]
    # Both spellings of one key are one filter: either value matches.
    assert await _ids(client, **{"persona": "calm", "dim.persona": "rushed"}) == [
        "t0", "t1", "t2", "t3", "t4"
    ]  # fmt: skip
    assert await _ids(client, persona="calm", status="completed") == ["t0", "t1"]
    assert await _ids(client, persona="calm", competitor="m2") == ["t1"]
    assert await _ids(client, persona="rushed", unrated_by="bob") == ["t2"]
    # A dimension named like a parameter of the route: `status` is the trial status, and
    # `dim.status` the dimension.
    assert await _ids(client, **{"dim.status": "vip"}) == ["t5"]
    total = (await client.get("/experiments/x/trials", params={"persona": "calm"})).json()
    assert total["total"] == 3
    # A value as long as a trial may carry (256 characters) is a filter; a longer one a 400.
    assert await _ids(client, persona="p" * 256) == []
    too_long = await client.get("/experiments/x/trials", params={"persona": "p" * 257})
    assert "1 to 256 characters" in assert_error(too_long, 400, "bad_parameter")["message"]

    # A key no trial of the experiment carries (y's trials do not count) is a 400 naming the
    # route's parameters and the experiment's dimension keys.
    for name in ("mood", "dim.mood", "model"):
        refused = await client.get("/experiments/x/trials", params={name: "calm"})
        message = assert_error(refused, 400, "bad_parameter")["message"]
        assert f"`{name}`" in message
        assert "`rated_by`" in message and "`unrated_by`" in message and "`voter`" in message
        assert "`input_type`, `persona`, `status`, `style`" in message
    # An experiment without trials has no dimension keys: still a 400, not a 404.
    nothing = await client.get("/experiments/nope/trials", params={"persona": "calm"})
    assert assert_error(nothing, 400, "bad_parameter")["message"].endswith(": none.")
    assert_error(await client.get("/experiments/nope/trials"), 404, "not_found")
    # Other routes still refuse what they do not take.
    stats = await client.get("/stats", params={"persona": "calm"})
    assert_error(stats, 400, "bad_parameter")


async def test_votes_of_a_voter(database_url: str, client: AsyncTestClient[Any]) -> None:
    seed(database_url, _experiment())
    body = (await client.get("/votes", params={"voter": "ann"})).json()
    assert [(v["trial_id"], v["score"]) for v in body["votes"]] == [
        ("y0", 2), ("t1", 5), ("t0", 4),
    ]  # fmt: skip
    assert body["total"] == 3 and body["voter"] == "ann"
    first = body["votes"][0]
    assert first["experiment_id"] == "y" and first["competitor"] == "m1"
    assert first["vote_id"] == "vay" and first["trial_voided_by"] is None
    only_x = (await client.get("/votes", params={"voter": "ann", "experiment_id": "x"})).json()
    assert [v["trial_id"] for v in only_x["votes"]] == ["t1", "t0"]
    paged = (await client.get("/votes", params={"voter": "ann", "limit": 1, "offset": 1})).json()
    assert [v["trial_id"] for v in paged["votes"]] == ["t1"] and paged["total"] == 3
    seed(database_url, [void("vt0", "t0", at=30)])
    body = (await client.get("/votes", params={"voter": "ann"})).json()
    assert body["votes"][-1]["trial_voided_by"] == "ev-vt0"
    assert (await client.get("/votes", params={"voter": "nobody"})).json()["total"] == 0
    assert_error(await client.get("/votes"), 400, "bad_parameter")


async def test_votes_and_trials_of_a_private_experiment(database_url: str) -> None:
    """While keys are enforced, a voter's votes on trials of an experiment the caller may not
    read (another key's; one published without a key is the admins') are left out, and that
    experiment's trials (with their dimension keys) stay a 404."""
    owner, token = keys.create(database_url, "owner", ["publish", "read"])
    _, other = keys.create(database_url, "other", ["publish", "read"])
    _, admin = keys.create(database_url, "admin", ["admin"])
    mine = f"key:{owner.key_id}"
    events = [msgspec.structs.replace(e, source=mine) for e in _experiment()]
    seed(database_url, [*events, trial("p0", "public", "m1", dimensions={"k": "v"}, at=40)])
    seed(database_url, [score_vote("vp0", "p0", 3, voter="ann", at=41)])
    async with AsyncTestClient(app=create_app(database_url, None, auth=AUTO)) as client:

        async def votes(token: str | None) -> list[str]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.get("/votes", params={"voter": "ann"}, headers=headers)
            assert response.status_code == 200, response.text
            return [v["trial_id"] for v in response.json()["votes"]]

        assert await votes(admin) == ["p0", "y0", "t1", "t0"]
        assert await votes(token) == ["y0", "t1", "t0"]
        assert await votes(other) == []
        assert await votes(None) == []
        hidden = await client.get(
            "/experiments/x/trials",
            params={"mood": "x"},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert hidden.status_code == 404, hidden.text
        assert "persona" not in hidden.text
        shown = await client.get(
            "/experiments/x/trials",
            params={"persona": "calm", "voter": "ann"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert [t["my_rating"] for t in shown.json()["trials"]] == [4, 5, None]
