"""Access never widens silently (issue 11, point 5), against the real servers.

* Ownership of writes is ruled by the real ingest, under the append's lock, from the log: a key
  may not write about what another key owns (``not_owner``), an admin key and the trusted NATS
  path may; the race of a second key publishing right behind the owner's first trial is lost
  by the second key every time.
* Private experiments leak through no shared route (``/events``, ``/events/{id}``, ``/stats``).
* ``auto`` stays enforced once keys were used; the last admin key needs ``--force``.
* A key created a moment ago is looked up, not treated as no key.
* The 413 of ``POST /admin/keys`` names its own limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from arbiter.adapters import keys
from arbiter.adapters.eventstore import EventLog
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from arbiter.services.cli import app as cli_app
from arbiter.services.processes.ingest import Ingest
from litestar.testing import AsyncTestClient
from typer.testing import CliRunner

from .api_events import battle, configured, score_vote, seed, trial, void, vote
from .helpers import ingest_all, rejected_messages, running_api, stored_source

AUTO = AuthConfig(mode="auto", public_reads=True, cache_ttl=0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wire(event: Any, source: str | None) -> dict[str, Any]:
    """The event as a worker would publish it on NATS, with this ``source``."""
    body: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(event))
    if source is not None:
        body["source"] = source
    return body


@pytest.fixture
def made(database_url: str) -> dict[str, tuple[str, str]]:
    """Keys by role: (key_id, token)."""
    out = {}
    for role, scopes in (
        ("owner", ["publish", "read"]),
        ("other", ["publish", "read"]),
        ("admin", ["admin"]),
    ):
        key, token = keys.create(database_url, role, scopes)
        out[role] = (key.key_id, token)
    return out


@pytest.fixture
async def client(database_url: str, nats_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, nats_url, auth=AUTO)) as c:
        yield c


def _logged_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute("SELECT event_id FROM arbiter_event_ids")}


# -- ownership of writes, in the ingest ---------------------------------------------------------


async def test_ingest_refuses_writes_about_another_keys_things(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    owner, other, admin = (f"key:{made[r][0]}" for r in ("owner", "other", "admin"))
    sent = [
        wire(trial("t1", "exp", "alpha"), owner),
        wire(trial("t2", "exp", "beta", at=1), other),  # refused: the owner's experiment
        wire(trial("t3", "exp", "beta", at=2), admin),
        wire(trial("t4", "exp", "beta", at=3), "worker-1"),  # NATS: full trust
        wire(score_vote("s1", "t1", 5, voter="v1"), other),  # refused
        wire(score_vote("s2", "t1", 4, voter="v2"), owner),
        wire(void("d1", "t1"), other),  # refused
        wire(void("d2", "s2"), other),  # refused: a vote about the owner's trial
        wire(battle("b1", "alpha", "beta"), owner),
        wire(vote("p1", "b1", "b", voter="v9"), other),  # pairwise votes stay open
        wire(void("d3", "b1"), other),  # refused: the owner's battle
        wire(void("d4", "p1"), other),  # one's own vote may be taken back
        wire(configured("c1", arena="voice", k=16.0), owner),
        wire(configured("c2", arena="voice", k=64.0), other),  # refused
        wire(configured("c3", arena="voice", k=24.0), owner),
        wire(battle("b2", "alpha", "beta", at=5), owner),
        wire(void("d5", "b2"), "worker-1"),  # NATS: full trust
        wire(battle("b3", "alpha", "beta", at=6), owner),
        wire(void("d6", "b3"), admin),
    ]
    await ingest_all(database_url, nats_url, sent)
    refused = {
        m["rejection"]["event_id"]: m["rejection"] for m in await rejected_messages(nats_url)
    }
    assert set(refused) == {"ev-t2", "ev-s1", "ev-d1", "ev-d2", "ev-d3", "ev-c2"}, refused
    assert {r["code"] for r in refused.values()} == {"not_owner"}
    assert made["owner"][0] in refused["ev-t2"]["message"]
    assert refused["ev-t2"]["field"] == "experiment_id"
    assert refused["ev-d3"]["field"] == "target_event_id"
    logged = _logged_ids(database_url)
    assert logged == {s["event_id"] for s in sent} - set(refused)


async def test_second_key_behind_the_owners_first_trial_always_loses(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    """The owner's first trial and another key's, back to back, through the real API and the
    real ingest running as in production: the other key's trial never enters the log (a 403
    from the API when the owner is already recorded, else ``not_owner`` from the ingest)."""
    rounds = 40
    ingest = Ingest(database_url, nats_url, batch_size=500)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    early = 0
    accepted = 0
    try:
        with running_api(database_url, nats_url) as base:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                for i in range(rounds):
                    first = wire(trial(f"a{i}", f"race{i}", "alpha"), None)
                    second = wire(trial(f"b{i}", f"race{i}", "beta"), None)
                    r1 = await http.post("/events", json=first, headers=bearer(made["owner"][1]))
                    r2 = await http.post("/events", json=second, headers=bearer(made["other"][1]))
                    assert r1.status_code == 202, r1.text
                    assert r2.status_code in (202, 403), r2.text
                    early += r2.status_code == 403
                    accepted += 1 + (r2.status_code == 202)
        for _ in range(400):
            if ingest.stats.received >= accepted:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    print(f"race: {early} of {rounds} refused by the API at once, the rest by the ingest")
    logged = _logged_ids(database_url)
    assert {f"ev-a{i}" for i in range(rounds)} <= logged
    assert not {f"ev-b{i}" for i in range(rounds)} & logged
    refused = [m["rejection"] for m in await rejected_messages(nats_url)]
    assert len(refused) == rounds - early and {r["code"] for r in refused} <= {"not_owner"}


async def test_race_in_one_batch_and_across_batches(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    """Straight on NATS (no API pre-check), owner then other key, many times: the ingest
    refuses the other key's trial in every one, whether both land in one append or two."""
    owner, other = (f"key:{made[r][0]}" for r in ("owner", "other"))
    sent = []
    for i in range(100):
        sent.append(wire(trial(f"a{i}", f"x{i}", "alpha", at=i), owner))
        sent.append(wire(trial(f"b{i}", f"x{i}", "beta", at=i), other))
    log = EventLog(database_url)
    try:  # half of them decided across two appends, one at a time
        for event in sent[:40]:
            outcome = log.append([_decode(event)])
            if event["event_id"].startswith("ev-b"):
                assert [r.code for _, r in outcome.rejected] == ["not_owner"]
    finally:
        log.close()
    await ingest_all(database_url, nats_url, sent[40:])
    logged = _logged_ids(database_url)
    assert {f"ev-a{i}" for i in range(100)} <= logged
    assert not any(e.startswith("ev-b") for e in logged)


def _decode(body: dict[str, Any]) -> Any:
    from arbiter.domain.validation import decode_event

    return decode_event(json.dumps(body).encode())


def test_owners_are_filled_from_an_older_log(
    database_url: str, made: dict[str, tuple[str, str]]
) -> None:
    """A log written before ``arbiter_owners`` existed gets its owners from the log itself."""
    owner = f"key:{made['owner'][0]}"
    events = [
        trial("t1", "exp", "alpha", source=owner),
        trial("t2", "exp", "beta", source="worker-1"),
        trial("t3", "nats-exp", "beta", source="worker-1"),
        battle("b1", "alpha", "beta", source=owner),
        battle("b2", "alpha", "beta"),
        configured("c1", arena="voice", source=owner),
    ]
    seed(database_url, events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = conn.execute("SELECT thing, owner FROM arbiter_owners ORDER BY 1").fetchall()
        conn.execute("DROP TABLE arbiter_owners")
    EventLog(database_url).close()
    with psycopg.connect(database_url) as conn:
        after = conn.execute("SELECT thing, owner FROM arbiter_owners ORDER BY 1").fetchall()
    assert (
        after
        == before
        == [
            ("arena:voice", owner),
            ("experiment:exp", owner),
            ("experiment:nats-exp", "worker-1"),
            ("trial:t1", owner),
            ("trial:t2", owner),
            ("trial:t3", "worker-1"),
        ]
    )


# -- private experiments on shared routes -------------------------------------------------------


async def test_private_experiments_leak_through_no_shared_route(
    database_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    owner_id, owner = made["owner"]
    source = f"key:{owner_id}"
    seed(
        database_url,
        [
            battle("b1", "alpha", "beta"),
            trial("t1", "secret", "alpha", source=source, dimensions={"persona": "p"}),
            trial("t2", "secret", "beta", at=1, source=source),
            msgspec.structs.replace(score_vote("s1", "t1", 5, at=2), source=source),
            msgspec.structs.replace(void("d1", "t2", at=3), source=source),
            trial("t3", "open", "alpha", at=4, source="worker-1"),
        ],
    )
    private = {"ev-t1", "ev-t2", "ev-s1", "ev-d1"}
    everything = private | {"ev-b1", "ev-t3"}
    viewers = {
        "anonymous": {},
        "other": bearer(made["other"][1]),
        "owner": bearer(owner),
        "admin": bearer(made["admin"][1]),
    }
    unknown = await client.get("/events/ev-nope")
    for who, headers in viewers.items():
        sees_secret = who in ("owner", "admin")
        sees_open = who == "admin"  # a NATS worker's experiment: admins only while enforcing
        expected = (
            {"ev-b1"} | (private if sees_secret else set()) | ({"ev-t3"} if sees_open else set())
        )
        page = await client.get("/events", headers=headers)
        assert page.status_code == 200, page.text
        assert {e["event"]["event_id"] for e in page.json()["events"]} == expected, who
        assert page.json()["next_after"] == page.json()["head"] == 6
        assert page.json()["total"] == len(expected), who  # hidden events are not counted
        alpha = (await client.get("/events?competitor=alpha", headers=headers)).json()
        named = {e["event"]["event_id"] for e in alpha["events"]}
        assert named == expected - {"ev-t2", "ev-d1"} and alpha["total"] == len(named), who
        typed = await client.get("/events?type=trial.completed", headers=headers)
        got = {e["event"]["event_id"] for e in typed.json()["events"]}
        assert got == expected & {"ev-t1", "ev-t2", "ev-t3"}, who
        for event_id in everything:
            r = await client.get(f"/events/{event_id}", headers=headers)
            if event_id in expected:
                assert r.status_code == 200, (who, event_id, r.text)
            else:  # the same answer as an id that is not in the log
                assert r.status_code == 404, (who, event_id, r.text)
                assert r.json()["message"] == unknown.json()["message"].replace("ev-nope", event_id)
        stats = (await client.get("/stats?experiment_id=secret", headers=headers)).json()
        nothing = (await client.get("/stats?experiment_id=nope", headers=headers)).json()
        if sees_secret:
            assert stats["trials"] == 1 and stats["groups"], who  # t2 is voided
        else:
            assert {k: v for k, v in stats.items() if k != "experiment_id"} == {
                k: v for k, v in nothing.items() if k != "experiment_id"
            }, who
        overall = (await client.get("/stats", headers=headers)).json()
        assert overall["trials"] == (1 if sees_secret else 0) + (1 if sees_open else 0), who
        # /summary counts nothing of what the caller may not read, events by type included.
        summary = (await client.get("/summary", headers=headers)).json()
        trials_seen = {"ev-t1", "ev-t2", "ev-t3"} & expected
        assert summary["trials"] == len(trials_seen - {"ev-t2"}), who  # t2 is voided
        assert summary["voided"]["trials"] == (1 if sees_secret else 0), who
        assert summary["votes"] == (1 if sees_secret else 0), who
        assert summary["experiments"] == (1 if sees_secret else 0) + (1 if sees_open else 0), who
        by_type = {
            "battle.completed": 1,
            "trial.completed": len(trials_seen),
            "vote.cast": 1 if sees_secret else 0,
            "result.voided": 1 if sees_secret else 0,
        }
        assert summary["events"] == {t: n for t, n in by_type.items() if n}, who
        assert summary["events_total"] == len(expected), who


def _alpha(body: dict[str, Any]) -> tuple[float | None, int]:
    (row,) = [r for r in body["rows"] if r["competitor"] == "alpha"]
    return row["metrics"].get("latency_ms"), row["score_votes"]


def _first_board(base: str, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.stream("GET", f"{base}/leaderboard/stream", headers=headers, timeout=10) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                return json.loads(line.split(":", 1)[1])  # type: ignore[no-any-return]
    raise AssertionError("no leaderboard event")


async def test_leaderboard_and_its_stream_average_only_visible_trials(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    """The leaderboard's metric averages and score votes mix in a private experiment's trials
    for its owner and admins only: anonymous callers and other keys get the battles' alone, on
    ``/leaderboard`` and on ``/leaderboard/stream``."""
    source = f"key:{made['owner'][0]}"
    seed(
        database_url,
        [
            battle("b1", "alpha", "beta", metrics={"a": {"latency_ms": 100.0}, "b": {}}),
            trial("t1", "secret", "alpha", source=source, metrics={"latency_ms": 300.0}),
            msgspec.structs.replace(score_vote("s1", "t1", 5), source=source),
        ],
    )
    expected = {
        "anonymous": ((100.0, 0), {}),
        "other": ((100.0, 0), bearer(made["other"][1])),
        "owner": ((200.0, 1), bearer(made["owner"][1])),
        "admin": ((200.0, 1), bearer(made["admin"][1])),
    }
    async with AsyncTestClient(app=create_app(database_url, nats_url, auth=AUTO)) as c:
        for who, (want, headers) in expected.items():
            for system in ("elo", "bt"):
                r = await c.get(f"/leaderboard?system={system}", headers=headers)
                assert r.status_code == 200, r.text
                assert _alpha(r.json()) == want, (who, system)
    with running_api(database_url, nats_url) as base:
        for who, (want, headers) in expected.items():
            assert _alpha(await asyncio.to_thread(_first_board, base, headers)) == want, who


def test_metric_sums_recomputed_by_the_migration_equal_the_fold(
    database_url: str, made: dict[str, tuple[str, str]]
) -> None:
    """Migration 0003 recomputes the sums from the battles and trials tables, split by owner;
    on a folded log that gives exactly the rows the fold keeps (those that still count)."""
    from arbiter.adapters.migrations import migration_files

    owner, other = (f"key:{made[r][0]}" for r in ("owner", "other"))
    seed(
        database_url,
        [
            battle("b1", "alpha", "beta", metrics={"a": {"wer": 0.1}, "b": {"wer": 0.3}}),
            battle("b2", "alpha", "beta", category="c", metrics={"a": {"wer": 0.2}, "b": {}}),
            trial("t1", "x", "alpha", source=owner, metrics={"wer": 0.5, "cost_usd": 1.0}),
            trial("t2", "x", "beta", source=owner, metrics={"wer": 0.7}, category="c"),
            trial("t3", "y", "alpha", source=other, metrics={"wer": 0.9}),
            trial("t4", "z", "alpha", metrics={"wer": 0.4}),
            trial("t5", "y", "alpha", source=other, metrics={"wer": 0.8}),
            msgspec.structs.replace(void("d1", "t5"), source=other),
            void("d2", "b2"),
        ],
    )
    (text,) = [t for v, _, t in migration_files("results") if v == 3]
    recompute = text[text.index("INSERT INTO") :]
    query = (
        "SELECT arena, category, competitor, metric, of_trials, owner, total, count "
        "FROM competitor_metrics WHERE count > 0 ORDER BY 1, 2, 3, 4, 5, 6"
    )
    with psycopg.connect(database_url) as conn:
        conn.execute("SET search_path TO arbiter_results")
        folded = conn.execute(query).fetchall()
        conn.execute("TRUNCATE competitor_metrics")
        conn.execute(recompute.encode())
        assert conn.execute(query).fetchall() == folded
    assert ("default", "", "alpha", "wer", True, owner, pytest.approx(0.5), 1) in [
        (*r[:6], float(r[6]), r[7]) for r in folded
    ]


async def test_shared_routes_stay_open_while_keys_are_not_enforced(
    database_url: str, nats_url: str
) -> None:
    seed(database_url, [trial("t1", "exp", "alpha", source="key:ak_0000abcd")])
    async with AsyncTestClient(app=create_app(database_url, nats_url, auth=AUTO)) as c:
        page = (await c.get("/events")).json()
        assert [e["event"]["event_id"] for e in page["events"]] == ["ev-t1"]
        assert (await c.get("/stats?experiment_id=exp")).json()["trials"] == 1


# -- enforcement never switches off by itself ---------------------------------------------------


async def test_revoking_the_last_key_keeps_keys_enforced(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    key, token = keys.create(database_url, "only", ["publish"])
    body = wire(battle("b1", "alpha", "beta"), None)
    assert (await client.post("/events", json=body)).status_code == 401
    keys.revoke(database_url, key.key_id)
    r = await client.post("/events", json=body)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
    assert (await client.post("/events", json=body, headers=bearer(token))).status_code == 401


async def test_the_last_admin_key_is_revoked_only_with_force(
    database_url: str, nats_url: str, client: AsyncTestClient[Any]
) -> None:
    runner = CliRunner()
    env = {"ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url}
    first, _ = keys.create(database_url, "first", ["admin"])
    second, second_token = keys.create(database_url, "second", ["admin", "read"])
    assert runner.invoke(cli_app, ["keys", "revoke", first.key_id], env=env).exit_code == 0
    refused = runner.invoke(cli_app, ["keys", "revoke", second.key_id], env=env)
    assert refused.exit_code == 1, refused.output
    assert "last active admin key" in refused.output and "--force" in refused.output
    assert keys.list_keys(database_url)[1].revoked_at is None

    r = await client.delete(f"/admin/keys/{second.key_id}", headers=bearer(second_token))
    assert r.status_code == 409 and r.json()["code"] == "last_admin_key", r.text
    assert "force=true" in r.json()["message"]
    assert keys.list_keys(database_url)[1].revoked_at is None
    bad = await client.delete(
        f"/admin/keys/{second.key_id}?force=maybe", headers=bearer(second_token)
    )
    assert bad.status_code == 400

    forced = runner.invoke(cli_app, ["keys", "revoke", second.key_id, "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert all(k.revoked_at is not None for k in keys.list_keys(database_url))


async def test_http_force_revokes_the_last_admin_key(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    key, token = keys.create(database_url, "admin", ["admin"])
    r = await client.delete(f"/admin/keys/{key.key_id}?force=true", headers=bearer(token))
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    # Keys stay enforced: the admin routes are closed now, and publishing needs a key.
    assert (await client.get("/admin/keys", headers=bearer(token))).status_code == 401
    assert (await client.post("/events", json=wire(battle("b", "x", "y"), None))).status_code == 401


async def test_a_key_created_within_the_cache_ttl_keeps_its_owner(
    database_url: str, nats_url: str
) -> None:
    """The API has cached "no keys yet" (TTL one hour); a key created now, behind its back, is
    looked up when presented: the event it publishes is stamped with it, not stored as
    anonymous."""
    config = AuthConfig(mode="auto", public_reads=True, cache_ttl=3600)
    async with AsyncTestClient(app=create_app(database_url, nats_url, auth=config)) as c:
        assert (await c.get("/leaderboard")).status_code == 200  # caches: no key exists
        key, token = keys.create(database_url, "fresh", ["publish"])
        r = await c.post(
            "/events", json=wire(trial("t1", "exp", "alpha"), None), headers=bearer(token)
        )
        assert r.status_code == 202, r.text
        assert await stored_source(nats_url, r.json()["stream_seq"]) == f"key:{key.key_id}"
        # Now enforced for everyone, at once: no anonymous publish slips in after the key.
        anonymous = await c.post("/events", json=wire(trial("t2", "exp2", "alpha"), None))
        assert anonymous.status_code == 401, anonymous.text


# -- the 413 of /admin/keys ---------------------------------------------------------------------


async def test_admin_keys_413_names_its_own_limit(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    _, token = keys.create(database_url, "admin", ["admin"])
    big = {"name": "x" * 5000, "scopes": ["read"]}
    r = await client.post("/admin/keys", json=big, headers=bearer(token))
    assert r.status_code == 413, r.text
    message = r.json()["message"]
    assert "4096 bytes" in message and "/admin/keys" in message, message
    assert "replay_uri" not in message  # that advice is for events
    events = await client.post(
        "/events",
        content=b" " * 70_000,
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert events.status_code == 413 and "65536 bytes" in events.json()["message"]
