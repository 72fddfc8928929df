"""Experiments' lifecycle (issue 13 point 3): ``experiment.created`` and
``experiment.completed`` through NATS, the ingest's decisions on them, and ``GET /experiments``
and ``GET /experiments/{id}`` against the real servers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from arbiter.adapters import keys
from arbiter.domain.validation import decode_event

from .helpers import T0, ingest_all, raw, rejected_messages, running_api
from .test_event_types import ev, project_all, score, trial

AT = T0.isoformat()


def created(exp: str, competitors: list[str], prompts: int, **extra: Any) -> dict[str, Any]:
    return ev("experiment.created", f"create-{exp}", experiment_id=exp, name=f"Exp {exp}",
              competitors=competitors, prompt_count=prompts, **extra)  # fmt: skip


def closed(exp: str, **extra: Any) -> dict[str, Any]:
    return ev("experiment.completed", f"close-{exp}", experiment_id=exp, **extra)


def in_exp(i: int, exp: str, competitor: str, prompt: int, **extra: Any) -> dict[str, Any]:
    t = trial(i, competitor, experiment_id=exp, prompt_index=prompt, **extra)
    t["event_id"] = f"trial-ev-{exp}-{i}"
    t["trial_id"] = f"trial-{exp}-{i}"
    return t


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_TARGET_ATTEMPTS", "3")
    monkeypatch.setenv("ARBITER_TARGET_DELAY", "0.1")


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"webhook_url": "ftp://example.com/x"}, "invalid_value", "webhook_url"),
        ({"webhook_url": "https://user:pw@example.com/x"}, "invalid_value", "webhook_url"),
        ({"webhook_url": "/relative"}, "invalid_value", "webhook_url"),
        ({"competitors": ["a", "a"]}, "duplicate_participant", "competitors[1]"),
        ({"competitors": []}, "invalid_value", "competitors"),
        ({"prompt_count": 0}, "invalid_value", "prompt_count"),
        ({"models": ["a"]}, "unknown_field", "models"),
    ],
)
def test_a_bad_declaration_is_refused_with_its_field(
    change: dict[str, Any], code: str, field: str
) -> None:
    rejection = decode_event(raw({**created("e", ["a", "b"], 2), **change}))
    assert getattr(rejection, "code", None) == code, rejection
    assert rejection.field == field  # type: ignore[union-attr]


async def test_lifecycle_end_to_end(database_url: str, nats_url: str) -> None:
    """Declared -> created; a trial -> running; every expected trial -> completed (counted per
    cell at most trials_per_prompt); a close completes an experiment whatever is missing."""
    payloads = [
        created("full", ["x", "y"], 2, webhook_url="https://example.com/hook"),
        created("idle", ["x"], 1),
        created("partial", ["x", "y"], 3, trials_per_prompt=2),
        in_exp(1, "full", "x", 0), in_exp(2, "full", "x", 1), in_exp(3, "full", "y", 0),
        in_exp(4, "full", "y", 1, status="failed"),  # failed trials arrived too
        in_exp(5, "full", "z", 0),  # not declared: recorded, unexpected
        in_exp(6, "partial", "x", 0), in_exp(7, "partial", "x", 0), in_exp(8, "partial", "x", 0),
        in_exp(9, "undeclared", "x", 0),
        score(1, "trial-full-1", "ann", 4),
        closed("partial", reason="budget"),
    ]  # fmt: skip
    ingest = await ingest_all(database_url, nats_url, payloads)
    assert ingest.stats.appended == len(payloads), await rejected_messages(nats_url)
    project_all(database_url)
    with running_api(database_url, nats_url) as base:
        listed = httpx.get(f"{base}/experiments").json()
        by_id = {e["experiment_id"]: e for e in listed["experiments"]}
        assert listed["total"] == 4
        full = by_id["full"]
        assert full["status"] == "completed" and full["completed_by"] == "trials"
        assert (full["expected_trials"], full["trials"], full["counted_trials"]) == (4, 5, 4)
        assert (full["unexpected_trials"], full["failed_trials"], full["ratings"]) == (1, 1, 1)
        assert full["webhook_url"] == "https://example.com/hook"
        assert full["created_at"].startswith("2025-01-01T00:00:00")
        assert by_id["idle"]["status"] == "created" and by_id["idle"]["trials"] == 0
        partial = by_id["partial"]
        assert partial["status"] == "completed" and partial["completed_by"] == "closed"
        assert (partial["expected_trials"], partial["counted_trials"]) == (12, 2)
        assert partial["close_reason"] == "budget"
        undeclared = by_id["undeclared"]
        assert undeclared["status"] == "running" and undeclared["name"] is None
        assert undeclared["expected_trials"] is None and undeclared["trials"] == 1
        running = httpx.get(f"{base}/experiments", params={"status": "created"}).json()
        assert [e["experiment_id"] for e in running["experiments"]] == ["idle"]
        bad = httpx.get(f"{base}/experiments", params={"status": "done"})
        assert bad.status_code == 400
        one = httpx.get(f"{base}/experiments/full").json()
        assert one == full
        assert httpx.get(f"{base}/experiments/nope").status_code == 404
        # A void takes a counted trial back: running again.
        more = [ev("result.voided", "void-3", target_event_id="trial-ev-full-3")]
        await ingest_all(database_url, nats_url, more)
        project_all(database_url)
        again = httpx.get(f"{base}/experiments/full").json()
        assert again["status"] == "running" and again["voided_trials"] == 1
        assert again["counted_trials"] == 3 and again["completed_at"] is None


async def test_lifecycle_decisions(database_url: str, nats_url: str) -> None:
    """One declaration and one close per experiment (conflict), no trial after the close
    (conflict: it was accepted and changed results announced as final), a close needs the
    experiment (unknown_target), and keys own experiments (not_owner)."""
    a, b = "key:ak_0000000a", "key:ak_0000000b"
    payloads = [
        created("e1", ["x"], 1, source=a),
        {**created("e1", ["y"], 1, source=a), "event_id": "create-again"},  # conflict
        closed("e1", source=b),  # not_owner
        closed("ghost"),  # unknown_target, after retries
        in_exp(1, "e2", "x", 0, source=b),
        created("e2", ["x"], 1, source=a),  # not_owner: b's trials came first
        created("e3", ["x"], 1, source=b),
        in_exp(2, "e3", "x", 0, source=a),  # not_owner: a trial into b's experiment
        closed("e1", source=a),
        {**closed("e1", source=a), "event_id": "close-again"},  # conflict
        in_exp(3, "e1", "x", 0, source=a),  # conflict: e1 is closed, its results final
    ]
    await ingest_all(database_url, nats_url, payloads)
    codes = {m["rejection"]["event_id"]: m["rejection"]["code"]
             for m in await rejected_messages(nats_url)}  # fmt: skip
    assert codes == {
        "create-again": "conflict",
        "close-e1": "not_owner",
        "close-ghost": "unknown_target",
        "create-e2": "not_owner",
        "trial-ev-e3-2": "not_owner",
        "close-again": "conflict",
        "trial-ev-e1-3": "conflict",
    }


async def test_each_key_lists_its_own_experiments(database_url: str, nats_url: str) -> None:
    admin_key, admin = keys.create(database_url, "admin", ["admin"])
    a_key, a = keys.create(database_url, "a", ["read", "publish"])
    b_key, b = keys.create(database_url, "b", ["read", "publish"])
    payloads = [
        created("ea", ["x"], 1, source=f"key:{a_key.key_id}"),
        created("eb", ["x"], 1, source=f"key:{b_key.key_id}"),
        in_exp(1, "nats", "x", 0, source="worker"),
    ]
    await ingest_all(database_url, nats_url, payloads)
    project_all(database_url)

    def ids(token: str | None) -> list[str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = httpx.get(f"{base}/experiments", headers=headers).json()
        return sorted(e["experiment_id"] for e in body["experiments"])

    with running_api(database_url, nats_url) as base:
        assert ids(a) == ["ea"] and ids(b) == ["eb"] and ids(None) == []
        assert ids(admin) == ["ea", "eb", "nats"]
        as_b = {"Authorization": f"Bearer {b}"}
        assert httpx.get(f"{base}/experiments/ea", headers=as_b).status_code == 404
        assert httpx.get(f"{base}/experiments/ea/deliveries", headers=as_b).status_code == 404
        as_a = {"Authorization": f"Bearer {a}"}
        assert httpx.get(f"{base}/experiments/ea", headers=as_a).json()["status"] == "created"
        # The declarations are private to their experiments' owners on the shared routes too.
        summary = httpx.get(f"{base}/summary", headers=as_b).json()
        assert summary["events"].get("experiment.created") == 1
        as_admin = {"Authorization": f"Bearer {admin}"}
        summary = httpx.get(f"{base}/summary", headers=as_admin).json()
        assert summary["events"]["experiment.created"] == 2
        log = httpx.get(f"{base}/events", headers=as_b).json()
        assert [e["event"]["event_id"] for e in log["events"]] == ["create-eb"]
        assert httpx.get(f"{base}/events/create-ea", headers=as_b).status_code == 404
        # POST /events says not_owner at once for another key's experiment.
        foreign = httpx.post(f"{base}/events", json=closed("ea"), headers=as_b)
        assert foreign.status_code == 403 and foreign.json()["code"] == "forbidden"
        own = httpx.post(f"{base}/events", json=closed("ea"), headers=as_a)
        assert own.status_code == 202, own.text
    assert admin_key.key_id


async def test_a_huge_declaration_lists_with_its_exact_count(
    database_url: str, nats_url: str
) -> None:
    """64 competitors x 1,000,000 prompts x 1,000,000 trials each is a valid declaration; its
    expected count (6.4e13) does not fit a 32-bit integer, and computing it as one made every
    GET /experiments fail (and the webhook worker's look with it)."""
    huge = [f"m{i}" for i in range(64)]
    payloads = [
        created("huge", huge, 1_000_000, trials_per_prompt=1_000_000),
        created("s", ["x"], 1),
    ]
    ingest = await ingest_all(database_url, nats_url, payloads)
    assert ingest.stats.appended == 2, await rejected_messages(nats_url)
    project_all(database_url)
    with running_api(database_url, nats_url) as base:
        listed = httpx.get(f"{base}/experiments")
        assert listed.status_code == 200, listed.text
        by_id = {e["experiment_id"]: e for e in listed.json()["experiments"]}
        assert by_id["huge"]["expected_trials"] == 64 * 10**12
        assert by_id["s"]["status"] == "created"


async def test_completed_at_is_the_last_counted_trial(database_url: str, nats_url: str) -> None:
    """A trial beyond ``trials_per_prompt`` is recorded but not counted, so it does not move
    ``completed_at``; once a counted trial is voided, the next one in log order counts."""
    hour = 3600

    def at(i: int, seconds: int) -> dict[str, Any]:
        t = in_exp(i, "late", "x", 0)
        t["occurred_at"] = T0.fromtimestamp(T0.timestamp() + seconds, T0.tzinfo).isoformat()
        return t

    payloads = [created("late", ["x"], 1), at(1, hour), at(2, 3 * hour), at(3, 2 * hour)]
    await ingest_all(database_url, nats_url, payloads)
    project_all(database_url)
    with running_api(database_url, nats_url) as base:
        first = httpx.get(f"{base}/experiments/late").json()
        assert (first["status"], first["trials"], first["counted_trials"]) == ("completed", 3, 1)
        assert first["completed_at"].startswith("2025-01-01T01:00:00"), first
        assert first["last_trial_at"].startswith("2025-01-01T03:00:00"), first
        void = [ev("result.voided", "void-late-1", target_event_id="trial-ev-late-1")]
        await ingest_all(database_url, nats_url, void)
        project_all(database_url)
        after = httpx.get(f"{base}/experiments/late").json()
        assert after["status"] == "completed" and after["counted_trials"] == 1
        assert after["completed_at"].startswith("2025-01-01T03:00:00"), after
