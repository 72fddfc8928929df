"""Evaluation jobs land in the read models and outlive the API (issue 13 point 5).

Against the real PostgreSQL and nats-server, with the real ingest and projectors: an upload
names a trial or a battle side, the finished job publishes the event through ``POST /events``'
path, the result shows up in ``/experiments/{id}/trials`` and ``/battles/{id}``, and a job whose
API stopped or died is resumed by the next runner, from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

pytest.importorskip("librosa")

from arbiter.adapters import keys
from arbiter.adapters.embedded import find_free_port
from arbiter.evals.synthetic import speechlike
from arbiter.projections import PROJECTIONS
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from arbiter.services.api.evaluation_jobs import MAX_ATTEMPTS, Evaluations
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from litestar.testing import AsyncTestClient

from ..helpers import running_ingest
from .test_api_evaluations import assert_error, wav_bytes

pytestmark = pytest.mark.evals

AUTO = AuthConfig(mode="auto", public_reads=True, cache_ttl=0)
CLIP = wav_bytes(speechlike(1.0, seed=5))
OTHER_CLIP = wav_bytes(speechlike(1.0, seed=6))


@pytest.fixture(autouse=True)
def eval_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_EVAL_MAX_UPLOAD_BYTES", "200000")
    monkeypatch.setenv("ARBITER_EVAL_POLL_S", "0.2")


def app(database_url: str, nats_url: str) -> AsyncTestClient[Any]:
    return AsyncTestClient(app=create_app(database_url, nats_url, auth=AUTO))


@pytest.fixture
async def client(database_url: str, nats_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with app(database_url, nats_url) as c:
        yield c


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def upload(
    client: AsyncTestClient[Any], clip: bytes, token: str | None = None, **fields: str
) -> str:
    response = await client.post(
        "/evaluations",
        files={"audio": ("clip.wav", clip, "audio/wav")},
        data={"competitor": "alpha", **fields},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def wait_for(
    client: AsyncTestClient[Any], job_id: str, token: str | None = None,
    statuses: tuple[str, ...] = ("done", "failed"), stage: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    for _ in range(1200):
        response = await client.get(f"/evaluations/{job_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in statuses and (stage is None or body["stage"] == stage):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {body}")


def project(database_url: str) -> None:
    for name in ("ratings", "results"):
        projector = Projector(database_url, PROJECTIONS[name])
        projector.catch_up()
        projector.close()


async def stop_runners(client: AsyncTestClient[Any]) -> None:
    """Stop this app's runners (in the app's own event loop), as if they were busy elsewhere."""
    await asyncio.to_thread(client.blocking_portal.call, client.app.state.evaluations.close)


def _trial(trial_id: str, prompt_index: int = 0) -> dict[str, str]:
    return {"experiment_id": "exp", "trial_id": trial_id, "prompt_index": str(prompt_index)}


async def test_trial_lands_in_the_experiment(database_url: str, nats_url: str) -> None:
    owner, token = keys.create(database_url, "owner", ["publish", "read"])
    _, other = keys.create(database_url, "other", ["publish", "read"])
    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            fields = {**_trial("t1", 2), "arena": "voice", "category": "support",
                      "occurred_at": "2026-11-30T10:00:00Z"}  # fmt: skip
            first = await wait_for(client, await upload(client, CLIP, token, **fields), token)
            assert first["status"] == "done" and first["verdict"] == "recorded", first
            assert first["event_id"].startswith("evals-trial-")
            assert first["target"] == {"experiment_id": "exp", "trial_id": "t1", "prompt_index": 2}
            # A retried upload (same clip, target, time): the log holds it, nothing is sent.
            again = await wait_for(client, await upload(client, CLIP, token, **fields), token)
            assert (again["status"], again.get("verdict")) == ("done", "duplicate"), again
            # The same clip without the time is another result for the trial: refused at once.
            fields.pop("occurred_at")
            late = await wait_for(client, await upload(client, CLIP, token, **fields), token)
            assert late["status"] == "failed" and late["error"]["code"] == "conflict", late
            assert again["event_id"] == first["event_id"]
            # Another clip for the same trial: the ingest refuses it, and the job says so.
            clash = await wait_for(client, await upload(client, OTHER_CLIP, token, **fields), token)
            assert (clash["status"], clash["verdict"]) == ("failed", "refused"), clash
            assert clash["error"]["code"] == "conflict", clash
            # Another key neither sees the jobs nor may publish into the owner's experiment.
            hidden = await client.get(f"/evaluations/{first['id']}", headers=bearer(other))
            assert_error(hidden, 404, "not_found")
            foreign = await client.post(
                "/evaluations",
                files={"audio": ("clip.wav", CLIP, "audio/wav")},
                data={"competitor": "alpha", **_trial("t9")},
                headers=bearer(other),
            )
            assert assert_error(foreign, 403, "forbidden")["field"] == "experiment_id"
    project(database_url)
    async with app(database_url, nats_url) as client:
        page = (await client.get("/experiments/exp/trials", headers=bearer(token))).json()
        assert [t["trial_id"] for t in page["trials"]] == ["t1"], page
        trial = page["trials"][0]
        assert (trial["competitor"], trial["prompt_index"], trial["status"]) == (
            "alpha", 2, "completed",
        )  # fmt: skip
        assert trial["metrics"]["duration_s"] == pytest.approx(1.0)
        assert trial["metrics"] == pytest.approx(first["metrics"])
        event = (await client.get(f"/events/{first['event_id']}", headers=bearer(token))).json()
        assert event["event"]["source"] == f"key:{owner.key_id}"
        assert (event["event"]["arena"], event["event"]["category"]) == ("voice", "support")


async def test_an_experiment_taken_meanwhile_fails_the_job_unpublished(
    database_url: str, nats_url: str
) -> None:
    """The upload passes (nobody owns the experiment yet); before the job publishes, another
    key's trial makes the experiment its own: the job is refused as ``POST /events`` would be."""
    _, first = keys.create(database_url, "first", ["publish", "read"])
    _, second = keys.create(database_url, "second", ["publish", "read"])
    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            await stop_runners(client)
            job_id = await upload(client, CLIP, second, **_trial("t2"))
            trial = {
                "type": "trial.completed", "event_id": "tr-1", "experiment_id": "exp",
                "occurred_at": "2026-11-30T10:00:00Z", "trial_id": "t1", "competitor": "x",
                "prompt_index": 0, "status": "completed",
            }  # fmt: skip
            sent = await client.post("/events", json=trial, headers=bearer(first))
            assert sent.status_code == 202, sent.text
            for _ in range(300):
                if (await client.get("/events/tr-1", headers=bearer(first))).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            portal = client.blocking_portal.call
            state = client.app.state
            await asyncio.to_thread(portal, state.evaluations.start, state.reads, state.bus)
            body = await wait_for(client, job_id, second)
    assert body["status"] == "failed" and body["error"]["code"] == "forbidden", body
    assert "event_id" not in body and "verdict" not in body


async def test_battle_sides_publish_one_auto_judged_battle(
    database_url: str, nats_url: str
) -> None:
    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            side = {"battle_id": "b1", "arena": "voice", "scenario": "greeting"}
            a = await wait_for(
                client, await upload(client, CLIP, **side, side="a"), statuses=("waiting",)
            )
            assert a["stage"] == "waiting for side b" and "event_id" not in a
            taken = await client.post(
                "/evaluations",
                files={"audio": ("a.wav", CLIP, "audio/wav")},
                data={"competitor": "gamma", **side, "side": "a"},
            )
            assert "side a already has job" in assert_error(taken, 409, "conflict")["message"]
            elsewhere = await client.post(
                "/evaluations",
                files={"audio": ("b.wav", OTHER_CLIP, "audio/wav")},
                data={"competitor": "beta", **side, "arena": "text", "side": "b"},
            )
            assert "arena" in assert_error(elsewhere, 409, "conflict")["message"]
            b_id = await upload(client, OTHER_CLIP, **side, side="b", competitor="beta")
            b = await wait_for(client, b_id)
            assert (b["status"], b["verdict"]) == ("done", "recorded"), b
            a = await wait_for(client, a["id"])
            assert a["status"] == "done" and a["event_id"] == b["event_id"]
    project(database_url)
    async with app(database_url, nats_url) as client:
        battle = (await client.get("/battles/b1")).json()
        assert (battle["a"], battle["b"], battle["judge"]) == ("alpha", "beta", "auto"), battle
        assert battle["outcome"] in ("a", "b", "tie") and battle["scenario"] == "greeting"
        assert battle["metrics"]["a"] == pytest.approx(a["metrics"])
        assert battle["metrics"]["b"] == pytest.approx(b["metrics"])
    # The jobs' schema is the API's state, not a read model: the audit neither compares it nor
    # counts it as a table it does not compare, and the read models match the log.
    report = verify(database_url)
    assert report.ok, report.mismatches


async def test_a_side_finishing_second_in_a_race_says_recorded(
    database_url: str, nats_url: str
) -> None:
    """Two runners finishing the two sides of a battle at once both publish it; the second
    gets a duplicate and ended both jobs ``verdict: duplicate`` although the pair recorded the
    battle (found by a review). Played here: the battle is recorded by side b's runner, then
    side a's runner, holding the rows as it read them before b's runner stored the event id,
    finishes with the same event."""
    from dataclasses import replace

    from arbiter.services.api.evaluation_store import get_job
    from arbiter.services.api.evaluation_targets import event_for_battle

    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            side = {"battle_id": "race", "arena": "voice"}
            a_id = await upload(client, CLIP, **side, side="a")
            await wait_for(client, a_id, statuses=("waiting",))
            b_id = await upload(client, OTHER_CLIP, **side, side="b", competitor="beta")
            assert (await wait_for(client, b_id))["verdict"] == "recorded"
            evaluations = client.app.state.evaluations

            async def second_runner() -> None:
                async with await psycopg.AsyncConnection.connect(
                    database_url, autocommit=True
                ) as conn:
                    a_row, b_row = await get_job(conn, a_id), await get_job(conn, b_id)
                    assert a_row is not None and b_row is not None
                    a_seen, b_seen = replace(a_row, event_id=None), replace(b_row, event_id=None)
                    await evaluations._finish(
                        conn, a_seen, [a_seen, b_seen], event_for_battle(a_seen, b_seen)
                    )

            await asyncio.to_thread(client.blocking_portal.call, second_runner)
            for job_id in (a_id, b_id):
                body = (await client.get(f"/evaluations/{job_id}")).json()
                assert (body["status"], body["verdict"]) == ("done", "recorded"), body


async def test_a_job_whose_api_died_is_resumed(database_url: str, nats_url: str) -> None:
    """A runner claims the job on its session and dies; while that session lives no other
    runner takes the job, once it is gone the next runner resumes it from the stored audio."""
    async with app(database_url, nats_url) as client:
        await stop_runners(client)
        job_id = await upload(client, CLIP, **_trial("t1"))
    dead = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    claimed = await Evaluations(database_url).claim(dead)  # the API that will die
    assert claimed is not None and claimed.job_id == job_id and claimed.attempts == 1
    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            await asyncio.sleep(1.0)  # five polls of the live runner: the job is not its to take
            body = (await client.get(f"/evaluations/{job_id}")).json()
            assert (body["status"], body["attempts"]) == ("running", 1), body
            await dead.close()  # the API dies: its session, and the job's lock, are gone
            body = await wait_for(client, job_id)
            assert (body["status"], body["attempts"], body["verdict"]) == ("done", 2, "recorded")
    project(database_url)
    async with app(database_url, nats_url) as client:
        page = (await client.get("/experiments/exp/trials")).json()
        assert [t["trial_id"] for t in page["trials"]] == ["t1"]


async def test_a_job_interrupted_too_often_fails_with_the_reason(
    database_url: str, nats_url: str
) -> None:
    async with app(database_url, nats_url) as client:
        await stop_runners(client)
        job_id = await upload(client, CLIP, **_trial("t1"))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        dead = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        claimed = await Evaluations(database_url).claim(dead)
        assert claimed is not None and claimed.attempts == attempt
        await dead.close()
    async with app(database_url, nats_url) as client:
        body = await wait_for(client, job_id)
    assert body["status"] == "failed" and body["error"]["code"] == "interrupted", body
    assert f"Interrupted by an API restart {MAX_ATTEMPTS} times" in body["error"]["message"]
    assert "event_id" not in body


async def test_an_api_stopped_mid_job_leaves_it_to_the_next(
    database_url: str, nats_url: str
) -> None:
    """The first API measures the clip but cannot reach NATS (none listens at its URL), so the
    job waits, running, until that API stops. The next API, with NATS, resumes it: measured
    already, it only publishes."""
    nowhere = f"nats://127.0.0.1:{find_free_port()}"
    async with app(database_url, nowhere) as client:
        job_id = await upload(client, CLIP, **_trial("t1"))
        stuck = await wait_for(client, job_id, statuses=("running",), stage="waiting for NATS")
        assert stuck["metrics"]["duration_s"] == pytest.approx(1.0) and stuck["attempts"] == 1
    with running_ingest(database_url, nats_url):
        async with app(database_url, nats_url) as client:
            body = await wait_for(client, job_id)
    assert (body["status"], body["attempts"], body["verdict"]) == ("done", 2, "recorded"), body
    assert body["metrics"] == stuck["metrics"] and body["started_at"] > stuck["started_at"]


async def test_list_newest_first_own_jobs_filters(database_url: str, client) -> None:
    _, mine = keys.create(database_url, "mine", ["publish", "read"])
    _, theirs = keys.create(database_url, "theirs", ["publish", "read"])
    _, admin = keys.create(database_url, "admin", ["admin"])
    await stop_runners(client)  # the jobs stay queued: this is about the listing
    ids = [await upload(client, CLIP, mine, **_trial(f"m{i}")) for i in range(3)]
    other = await upload(client, CLIP, theirs, competitor="beta", **_trial("o1"))
    page = (await client.get("/evaluations", headers=bearer(mine))).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1] and page["total"] == 3
    assert {(j["status"], j["competitor"]) for j in page["jobs"]} == {("queued", "alpha")}
    page = (await client.get("/evaluations", headers=bearer(admin))).json()
    assert [j["id"] for j in page["jobs"]] == [other, *ids[::-1]]
    params = {"competitor": "beta"}
    page = (await client.get("/evaluations", params=params, headers=bearer(admin))).json()
    assert [j["id"] for j in page["jobs"]] == [other]
    params = {"limit": "1", "offset": "1", "status": "queued"}
    page = (await client.get("/evaluations", params=params, headers=bearer(mine))).json()
    assert [j["id"] for j in page["jobs"]] == [ids[1]] and page["total"] == 3
    params = {"status": "done"}
    page = (await client.get("/evaluations", params=params, headers=bearer(mine))).json()
    assert page["jobs"] == [] and page["total"] == 0
    bad = await client.get("/evaluations", params={"status": "finished"}, headers=bearer(mine))
    assert "waiting" in assert_error(bad, 400, "bad_parameter")["message"]
    unknown = await client.get("/evaluations", params={"state": "done"}, headers=bearer(mine))
    assert "state" in assert_error(unknown, 400, "bad_parameter")["message"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({}, "experiment_id", "names no target"),
        ({"experiment_id": "e", "prompt_index": "0"}, "trial_id", "`trial_id` is missing"),
        ({"experiment_id": "e", "trial_id": "t", "prompt_index": "x"}, "prompt_index", "integer"),
        ({"battle_id": "b"}, "side", "`side` is missing"),
        ({"battle_id": "b", "side": "c"}, "side", "`a` or `b`"),
        ({"battle_id": "b", "side": "a", "trial_id": "t"}, "trial_id", "Both a trial"),
    ],
)
async def test_a_bad_target_is_400_naming_what_is_accepted(
    client, fields: dict[str, str], field: str, words: str
) -> None:
    response = await client.post(
        "/evaluations",
        files={"audio": ("clip.wav", CLIP, "audio/wav")},
        data={"competitor": "alpha", **fields},
    )
    body = assert_error(response, 400, "bad_parameter")
    assert body["field"] == field and words in body["message"], body
    assert "`battle_id` and `side`" in body["message"] and "`prompt_index`" in body["message"]
