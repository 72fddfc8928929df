"""API keys, scopes and experiment ownership, against a real PostgreSQL and nats-server.

Keys are made through the CLI (``arbiter keys``) and through ``/admin/keys``; the API runs in
process (AsyncTestClient) with the auth configuration each test needs (cache TTL 0, so a
revocation is seen at once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from arbiter.adapters import keys
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from arbiter.services.cli import app as cli_app
from litestar.testing import AsyncTestClient
from typer.testing import CliRunner

from .api_events import T0, battle, registered, seed, trial
from .helpers import stored_source

AUTO = AuthConfig(mode="auto", public_reads=True, cache_ttl=0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event(label: str, **extra: Any) -> dict[str, Any]:
    body = {
        "type": "battle.completed",
        "event_id": f"ev-{label}",
        "occurred_at": T0.isoformat(),
        "battle_id": label,
        "a": "x",
        "b": "y",
        "outcome": "a",
    }
    body.update(extra)
    return body


@pytest.fixture
def made(database_url: str) -> dict[str, tuple[str, str]]:
    """Keys by role: (key_id, token)."""
    out = {}
    for role, scopes in (
        ("reader", ["read"]),
        ("publisher", ["publish"]),
        ("other", ["publish", "read"]),
        ("admin", ["admin"]),
    ):
        key, token = keys.create(database_url, role, scopes)
        out[role] = (key.key_id, token)
    return out


def client_for(database_url: str, nats_url: str | None, config: AuthConfig = AUTO) -> Any:
    return AsyncTestClient(app=create_app(database_url, nats_url, auth=config))


@pytest.fixture
async def client(database_url: str, nats_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with client_for(database_url, nats_url) as c:
        yield c


# -- keys: CLI and table ------------------------------------------------------------------------


def test_cli_create_list_revoke(database_url: str, nats_url: str) -> None:
    runner = CliRunner()
    env = {"ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url}
    args = ["keys", "create", "--name", "ci", "--scope", "read", "--scope", "publish"]
    created = runner.invoke(cli_app, args, env=env)
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    key_id = keys.key_id_of(token)
    assert key_id is not None and key_id.startswith("ak_") and len(key_id) == 11
    assert created.output.count(token) == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT key_id, scopes, sha256 FROM public.arbiter_api_keys").fetchall()
    # Only the hash is stored; the token itself is nowhere in the table.
    assert rows == [(key_id, ["read", "publish"], hashlib.sha256(token.encode()).digest())]
    assert token.split(".", 1)[1].encode() not in bytes(rows[0][2])

    listed = runner.invoke(cli_app, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and key_id in listed.output and token not in listed.output
    assert token.split(".", 1)[1] not in listed.output

    bad = runner.invoke(cli_app, ["keys", "create", "--name", "x", "--scope", "root"], env=env)
    assert bad.exit_code == 2 and "root" in bad.output

    revoked = runner.invoke(cli_app, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert keys.list_keys(database_url)[0].revoked_at is not None
    assert runner.invoke(cli_app, ["keys", "revoke", "ak_00000000"], env=env).exit_code == 1


async def test_admin_keys_routes(
    database_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    admin = bearer(made["admin"][1])
    # Admin routes need an admin key even before any key exists (auto), and otherwise.
    assert (await client.get("/admin/keys")).status_code == 401
    assert (await client.get("/admin/keys", headers=bearer(made["reader"][1]))).status_code == 403

    r = await client.post("/admin/keys", json={"name": "bot", "scopes": ["publish"]}, headers=admin)
    assert r.status_code == 201, r.text
    token, key_id = r.json()["token"], r.json()["key"]["key_id"]
    assert keys.key_id_of(token) == key_id

    listed = await client.get("/admin/keys", headers=admin)
    assert listed.status_code == 200
    assert key_id in {k["key_id"] for k in listed.json()["keys"]}
    assert token.split(".", 1)[1] not in listed.text  # secrets never listed

    bad = await client.post("/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert bad.status_code == 400

    assert (await client.post("/events", json=event("1"), headers=bearer(token))).status_code == 202
    r = await client.delete(f"/admin/keys/{key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    again = await client.post("/events", json=event("2"), headers=bearer(token))
    assert again.status_code == 401 and again.json()["code"] == "unauthorized"
    assert (await client.delete("/admin/keys/ak_nope", headers=admin)).status_code == 404


async def test_admin_keys_bootstrap_when_off(database_url: str, nats_url: str) -> None:
    async with client_for(database_url, nats_url, AuthConfig(mode="off")) as c:
        r = await c.post("/admin/keys", json={"name": "first", "scopes": ["admin"]})
        assert r.status_code == 201, r.text


# -- publishing ---------------------------------------------------------------------------------


async def test_publish_needs_publish_scope(
    nats_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    r = await client.post("/events", json=event("1"))
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    r = await client.post("/events", json=event("1"), headers=bearer(made["reader"][1]))
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text

    key_id, token = made["publisher"]
    r = await client.post("/events", json=event("1", source="worker-7"), headers=bearer(token))
    assert r.status_code == 202, r.text
    assert await stored_source(nats_url, r.json()["stream_seq"]) == f"key:{key_id}"
    # X-API-Key works as well.
    r = await client.post("/events", json=event("2"), headers={"X-API-Key": token})
    assert r.status_code == 202, r.text

    # No client may impersonate a key.
    r = await client.post("/events", json=event("3", source="key:other"), headers=bearer(token))
    assert r.status_code == 400 and r.json()["code"] == "reserved_source", r.text


async def test_reserved_source_refused_without_keys(nats_url: str, database_url: str) -> None:
    async with client_for(database_url, nats_url) as c:  # auto, no key yet: open
        assert (await c.post("/events", json=event("1"))).status_code == 202
        r = await c.post("/events", json=event("2", source="key:ak_12345678"))
        assert r.status_code == 400 and r.json()["code"] == "reserved_source"


async def test_bad_and_revoked_keys_are_401_and_never_logged(
    database_url: str,
    client: AsyncTestClient[Any],
    made: dict[str, tuple[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, token = made["publisher"]
    wrong = f"{key_id}.{'A' * 43}"
    for headers in (bearer(wrong), bearer("garbage"), {"Authorization": f"Basic {token}"}):
        r = await client.post("/events", json=event("1"), headers=headers)
        assert r.status_code == 401, r.text
        assert token not in r.text and wrong not in r.text
    # An invalid key is refused on public routes too.
    assert (await client.get("/leaderboard", headers=bearer(wrong))).status_code == 401
    keys.revoke(database_url, key_id)
    r = await client.post("/events", json=event("1"), headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    secret = token.split(".", 1)[1]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert secret not in logged and "A" * 43 not in logged
    assert key_id in caplog.text  # the public id is logged, to say what was refused


async def test_revocation_waits_for_the_cache_ttl(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    config = AuthConfig(mode="on", cache_ttl=3600)
    key_id, token = made["publisher"]
    async with client_for(database_url, nats_url, config) as c:
        assert (await c.post("/events", json=event("1"), headers=bearer(token))).status_code == 202
        keys.revoke(database_url, key_id)  # behind this API's back: cached for the TTL
        assert (await c.post("/events", json=event("2"), headers=bearer(token))).status_code == 202


# -- reads --------------------------------------------------------------------------------------


READS = (
    "/leaderboard",
    "/competitors",
    "/competitors/alpha",
    "/competitors/alpha/history",
    "/head-to-head?competitor=alpha",  # once `?a=alpha&b=beta`, which the API ignored
    "/battles",
    "/games",
    "/summary",
    "/stats",
    "/events",
)


async def test_public_reads_without_key(
    database_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    seed(database_url, [registered("alpha"), battle("b1", "alpha", "beta")])
    for path in (*READS, "/health"):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)


async def test_private_reads_need_read_scope(
    database_url: str, nats_url: str, made: dict[str, tuple[str, str]]
) -> None:
    seed(database_url, [registered("alpha"), battle("b1", "alpha", "beta")])
    config = AuthConfig(mode="auto", public_reads=False, cache_ttl=0)
    async with client_for(database_url, nats_url, config) as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/schema/openapi.json")).status_code == 200
        for path in READS:
            assert (await c.get(path)).status_code == 401, path
            assert (await c.get(path, headers=bearer(made["publisher"][1]))).status_code == 403
            r = await c.get(path, headers=bearer(made["reader"][1]))
            assert r.status_code == 200, (path, r.text)
            assert (await c.get(path, headers=bearer(made["admin"][1]))).status_code == 200


async def test_experiments_visible_to_owner_and_admin_only(
    database_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    owner_id, owner = made["publisher"]
    seed(
        database_url,
        [
            trial("t1", "exp1", "alpha", source=f"key:{owner_id}"),
            trial("t2", "exp1", "beta", at=1, source=f"key:{owner_id}"),
            trial("t3", "nats-exp", "alpha", at=2, source="worker-1"),
        ],
    )
    for route in ("trials", "results"):
        path = f"/experiments/exp1/{route}"
        assert (await client.get(path, headers=bearer(owner))).status_code == 200
        assert (await client.get(path, headers=bearer(made["admin"][1]))).status_code == 200
        for headers in (bearer(made["other"][1]), {}):
            r = await client.get(path, headers=headers)
            assert r.status_code == 404 and r.json()["code"] == "not_found", (path, r.text)
        nats_path = f"/experiments/nats-exp/{route}"
        assert (await client.get(nats_path, headers=bearer(owner))).status_code == 404
        assert (await client.get(nats_path, headers=bearer(made["admin"][1]))).status_code == 200
    # Another key may not publish trials into an experiment it does not own.
    foreign = {
        "type": "trial.completed",
        "event_id": "ev-t9",
        "occurred_at": T0.isoformat(),
        "experiment_id": "exp1",
        "trial_id": "t9",
        "competitor": "alpha",
        "prompt_index": 0,
        "status": "completed",
        "metrics": {},
    }
    r = await client.post("/events", json=foreign, headers=bearer(made["other"][1]))
    assert r.status_code == 403, r.text
    assert (await client.post("/events", json=foreign, headers=bearer(owner))).status_code == 202


async def test_experiments_open_without_keys(database_url: str, nats_url: str) -> None:
    seed(database_url, [trial("t1", "exp1", "alpha", source="worker-1")])
    async with client_for(database_url, nats_url) as c:  # auto, no keys: not enforcing
        assert (await c.get("/experiments/exp1/results")).status_code == 200


# -- admin rebuild ------------------------------------------------------------------------------


async def test_admin_rebuild_needs_admin(
    database_url: str, client: AsyncTestClient[Any], made: dict[str, tuple[str, str]]
) -> None:
    seed(database_url, [registered("alpha"), battle("b1", "alpha", "beta")])
    assert (await client.post("/admin/rebuild/ratings")).status_code == 401
    r = await client.post("/admin/rebuild/ratings", headers=bearer(made["publisher"][1]))
    assert r.status_code == 403
    r = await client.post("/admin/rebuild/ratings", headers=bearer(made["admin"][1]))
    assert r.status_code == 200, r.text
    assert r.json()["projection"] == "ratings" and r.json()["events"] == 2
    r = await client.post("/admin/rebuild/nope", headers=bearer(made["admin"][1]))
    assert r.status_code == 404
    board = await client.get("/leaderboard")
    assert board.status_code == 200 and board.json()["total"] == 2


async def test_admin_rebuild_that_fails_says_so_and_keeps_the_board(
    database_url: str,
    client: AsyncTestClient[Any],
    made: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(database_url, [registered("alpha"), battle("b1", "alpha", "beta")])
    monkeypatch.setenv("ARBITER_REBUILD_WORKERS", "2")
    monkeypatch.setenv("ARBITER_FAULT_REBUILD_WORKER", "1")
    r = await client.post("/admin/rebuild/ratings", headers=bearer(made["admin"][1]))
    assert r.status_code == 500, r.text
    assert r.json()["code"] == "rebuild_failed" and "unchanged" in r.json()["message"]
    board = await client.get("/leaderboard")
    assert board.status_code == 200 and board.json()["total"] == 2


# -- secrets in URLs ----------------------------------------------------------------------------


async def test_nats_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    from arbiter.adapters.urls import redact
    from arbiter.services.api.bus import Bus
    from arbiter.services.api.errors import ApiError

    assert redact("nats://arbiter:s3cret-pw@nats:4222") == "nats://arbiter:***@nats:4222"
    caplog.set_level(logging.DEBUG)
    bus = Bus(f"nats://arbiter:s3cret-pw@127.0.0.1:{closed_port()}", connect_timeout=0.5)
    with pytest.raises(ApiError):
        await bus.publisher()
    await bus.close()
    assert "NATS at" in caplog.text and "s3cret-pw" not in caplog.text


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
