"""Hostile input through the real pipeline: NATS -> ingest -> log -> projectors, and POST /events.

A corpus of malicious or broken messages (deep nesting, huge strings, NaN and infinities, bad
UTF-8 and lone surrogates, NUL characters, 10,000 participants, bad ranks, absurd timestamps,
wrong types for every field type, non-objects, an empty message) must each land on
``ARBITER_REJECTED`` with its code, and must leave the database exactly as the valid events alone
left it. SQL in every string field is valid input: it must be stored verbatim, and the tables must
still be there afterwards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from arbiter.adapters.bus import Publisher
from arbiter.domain.events import EVENT_DECODER
from arbiter.domain.validation import MAX_EVENT_BYTES
from arbiter.projections import PROJECTIONS
from arbiter.services.api import create_app
from arbiter.services.processes.projector import Projector
from litestar.testing import AsyncTestClient
from nats.errors import MaxPayloadError

from .api_events import assert_error
from .helpers import ingest_all, rejected_messages
from .test_schemathesis import running_api

AT = "2025-01-01T00:00:00Z"
SQL = "'; DROP TABLE arbiter_events; --"
"""A classic injection, valid as an identifier: it must be stored as the text it is."""


def sql(n: int | str) -> str:
    return f"{SQL} {n}"


# -- the valid events: SQL in every string field -------------------------------------------------


def valid_events() -> list[dict[str, Any]]:
    a, b = sql("a') OR 1=1; --"), 'Robert"); DROP TABLE arbiter_ratings.ratings; --'
    common = {"occurred_at": AT, "source": sql("src"), "arena": sql("arena")}
    return [
        {"type": "arena.configured", "event_id": sql("cfg"), "occurred_at": AT,
         "arena": sql("arena"), "weights": {sql("judge"): 2.0}},
        {"type": "competitor.registered", "event_id": SQL, "occurred_at": AT, "competitor": a,
         "name": sql("name"), "provider": sql("provider"), "meta": {sql("key"): sql("value")},
         "source": sql("src")},
        {"type": "battle.completed", "event_id": sql("battle"), **common,
         "category": sql("category"), "battle_id": sql("battle_id"), "a": a, "b": b,
         "outcome": "a", "judge": sql("judge"), "scenario": sql("scenario"),
         "metrics": {"a": {sql("metric"): 1.0}, "b": {sql("metric"): 2.0}},
         "meta": {sql("k"): [sql("v")]}},
        {"type": "battle.completed", "event_id": sql("battle2"), **common,
         "battle_id": sql("battle_id2"), "a": b, "b": a, "outcome": None},
        {"type": "vote.cast", "event_id": sql("vote"), **common, "vote_id": sql("vote_id"),
         "voter": sql("voter"), "battle_id": sql("battle_id2"), "choice": "b"},
        {"type": "game.completed", "event_id": sql("game"), **common, "game_id": sql("game_id"),
         "participants": [{"competitor": a, "rank": 1, "meta": {sql("m"): sql("n")}},
                          {"competitor": b, "rank": 2}, {"competitor": sql("c"), "rank": 2}],
         "replay_uri": sql("uri"), "meta": {sql("k"): sql("v")}},
        {"type": "trial.completed", "event_id": sql("trial"), **common,
         "experiment_id": sql("experiment"), "trial_id": sql("trial_id"), "competitor": a,
         "prompt_index": 0, "status": "failed", "error": sql("error"),
         "metrics": {sql("latency"): 1.5}, "dimensions": {sql("persona"): sql("style")}},
        {"type": "vote.cast", "event_id": sql("score"), **common, "vote_id": sql("score_id"),
         "voter": sql("voter"), "trial_id": sql("trial_id"), "score": 3},
        {"type": "result.voided", "event_id": sql("void"), **common,
         "target_event_id": sql("battle"), "reason": sql("reason")},
        {"type": "competitor.retired", "event_id": sql("retire"), **common,
         "competitor": sql("c"), "reason": sql("reason")},
        # Extreme but valid settings: base ** (d / scale) overflows a float, which once raised
        # OverflowError in every fold of the log.
        {"type": "arena.configured", "event_id": "x-cfg", "occurred_at": AT, "arena": "extreme",
         "k": 1e6, "scale": 1.0, "base": 1e300, "initial": -1e9, "weights": {"auto": 1000}},
        *({"type": "battle.completed", "event_id": f"x-{i}", "occurred_at": AT,
           "arena": "extreme", "battle_id": f"x-{i}", "a": "x", "b": "y",
           "outcome": "ab"[i % 2]} for i in range(4)),
        {"type": "game.completed", "event_id": "x-game", "occurred_at": AT, "arena": "extreme",
         "game_id": "x-game", "participants": [{"competitor": "x", "rank": 1},
                                               {"competitor": "y", "rank": 2},
                                               {"competitor": "z", "rank": 3}]},
    ]  # fmt: skip


# -- the hostile corpus ------------------------------------------------------------------------


def _battle(event_id: str, **fields: Any) -> dict[str, Any]:
    event = {"type": "battle.completed", "event_id": event_id, "occurred_at": AT,
             "battle_id": event_id, "a": "x", "b": "y", "outcome": "a"}  # fmt: skip
    event.update(fields)
    return event


def _game(event_id: str, participants: list[Any], **fields: Any) -> dict[str, Any]:
    event = {"type": "game.completed", "event_id": event_id, "occurred_at": AT,
             "game_id": event_id, "participants": participants}  # fmt: skip
    event.update(fields)
    return event


def _trial(event_id: str, **fields: Any) -> dict[str, Any]:
    event = {"type": "trial.completed", "event_id": event_id, "occurred_at": AT,
             "experiment_id": "e", "trial_id": event_id, "competitor": "x",
             "prompt_index": 0, "status": "completed"}  # fmt: skip
    event.update(fields)
    return event


def _j(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def _with(event: dict[str, Any], key: str, literal: str) -> bytes:
    """``event`` as JSON with ``key``'s value replaced by a raw JSON literal (NaN, ``{"a":``)."""
    text = json.dumps({**event, key: "@@@"})
    return text.replace('"@@@"', literal).encode()


def _players(n: int) -> list[dict[str, Any]]:
    return [{"competitor": f"p{i}", "rank": 1 + i % 3} for i in range(n)]


def hostile() -> Iterator[tuple[str, bytes, str]]:
    """(name, message, the rejection code it must get)."""
    # Deep nesting: the decoders recurse, so this once crashed the ingest with RecursionError.
    yield (
        "10k nested arrays",
        _with(_battle("h-deep-a"), "meta", '{"k":' + "[" * 10_000 + "]" * 10_000 + "}"),
        "invalid_value",
    )
    yield (
        "10k nested objects",
        _with(_battle("h-deep-o"), "meta", '{"a":' * 10_000 + "1" + "}" * 10_000),
        "invalid_value",
    )
    yield (
        "10k unclosed arrays",
        _with(_battle("h-deep-u"), "meta", '{"k":' + "[" * 10_000),
        "invalid_value",
    )
    yield (
        "65 levels",
        _with(_battle("h-deep-65"), "meta", '{"k":' + "[" * 63 + "]" * 63 + "}"),
        "invalid_value",
    )
    yield (
        "nested participants meta",
        _j(
            _game(
                "h-deep-p",
                [
                    {"competitor": "x", "rank": 1, "meta": {"k": json.loads("[" * 70 + "]" * 70)}},
                    {"competitor": "y", "rank": 2},
                ],
            )
        ),
        "invalid_value",
    )
    # Size.
    yield "100 KiB string in meta", _j(_battle("h-big", meta={"k": "x" * 100 * 1024})), "too_large"
    yield "60 KiB event_id", _j(_battle("h" * 60 * 1024, battle_id="h-60k-id")), "invalid_value"
    yield "60 KiB competitor", _j(_battle("h-60k-a", a="c" * 60 * 1024)), "invalid_value"
    yield (
        "60 KiB name",
        _j(
            {
                "type": "competitor.registered",
                "event_id": "h-60k-name",
                "occurred_at": AT,
                "competitor": "x",
                "name": "n" * 60 * 1024,
            }
        ),
        "invalid_value",
    )
    yield "10,000 participants", _j(_game("h-10k", _players(10_000))), "too_large"
    yield "65 participants", _j(_game("h-65", _players(65))), "invalid_value"
    yield "1 participant", _j(_game("h-1", _players(1))), "invalid_value"
    yield (
        "duplicate participant",
        _j(_game("h-dup", [{"competitor": "x", "rank": 1}, {"competitor": "x", "rank": 2}])),
        "duplicate_participant",
    )
    # Numbers that are not numbers.
    for literal in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999"):
        yield (
            f"{literal} metric",
            _with(_battle(f"h-{literal}"), "metrics", '{"a": {"wer": ' + literal + "}}"),
            "non_finite_number",
        )
    yield (
        "NaN score",
        _j(
            _game("h-nan-score", [{"competitor": "x", "rank": 1}, {"competitor": "y", "rank": 2}])
        ).replace(b'"rank": 2', b'"rank": 2, "score": NaN'),
        "non_finite_number",
    )
    yield (
        "Infinity trial metric",
        _with(_trial("h-inf-trial"), "metrics", '{"latency_ms": Infinity}'),
        "non_finite_number",
    )
    yield (
        "Infinity k",
        _with(
            {"type": "arena.configured", "event_id": "h-inf-k", "occurred_at": AT}, "k", "Infinity"
        ),
        "non_finite_number",
    )
    yield (
        "k 1e308",
        _j({"type": "arena.configured", "event_id": "h-k-huge", "occurred_at": AT, "k": 1e308}),
        "invalid_value",
    )
    yield (
        "weight 1e308",
        _j(
            {
                "type": "arena.configured",
                "event_id": "h-w-huge",
                "occurred_at": AT,
                "weights": {"auto": 1e308},
            }
        ),
        "invalid_value",
    )
    yield (
        "initial -1e300",
        _j(
            {
                "type": "arena.configured",
                "event_id": "h-i-huge",
                "occurred_at": AT,
                "initial": -1e300,
            }
        ),
        "invalid_value",
    )
    yield "prompt_index beyond int32", _j(_trial("h-prompt", prompt_index=2**31)), "invalid_value"
    yield "rounds beyond int64", _j(_game("h-rounds", _players(2), rounds=10**30)), "invalid_value"
    yield "rounds beyond int32", _j(_game("h-rounds32", _players(2), rounds=2**31)), "invalid_value"
    # Text that is not text.
    yield (
        "invalid UTF-8",
        _j(_battle("h-utf8")).replace(b'"x"', b'"\xff\xfe\xc0\xaf"'),
        "malformed_json",
    )
    yield (
        "lone surrogate in an id",
        _j(_battle("h-sur-a")).replace(b'"x"', b'"\\ud800"'),
        "malformed_json",
    )
    yield (
        "lone low surrogate in meta",
        _with(_battle("h-sur-m"), "meta", '{"k": "\\udfff"}'),
        "malformed_json",
    )
    yield "NUL in event_id", _j(_battle("h-nul\u0000id")), "invalid_value"
    yield "NUL in competitor", _j(_battle("h-nul-a", a="x\u0000")), "invalid_value"
    yield "NUL in meta value", _j(_battle("h-nul-m", meta={"k": ["\u0000"]})), "invalid_value"
    yield "NUL in meta key", _j(_battle("h-nul-k", meta={"k\u0000": 1})), "invalid_value"
    yield (
        "NUL in dimensions",
        _j(_trial("h-nul-d", dimensions={"persona": "\u0000"})),
        "invalid_value",
    )
    # Ranks.
    yield (
        "rank 0",
        _j(_game("h-rank0", [{"competitor": "x", "rank": 0}, {"competitor": "y", "rank": 1}])),
        "invalid_value",
    )
    yield (
        "rank -1",
        _j(_game("h-rank-", [{"competitor": "x", "rank": -1}, {"competitor": "y", "rank": 1}])),
        "invalid_value",
    )
    yield (
        "rank 10^30",
        _j(
            _game(
                "h-rankbig", [{"competitor": "x", "rank": 10**30}, {"competitor": "y", "rank": 1}]
            )
        ),
        "invalid_value",
    )
    # Timestamps.
    for label, stamp in (("year 9999", "9999-12-31T23:59:59Z"), ("year 0", "0000-01-01T00:00:00Z"),
                         ("year 1", "0001-01-01T00:00:00Z"), ("year 1 +14:00", "0001-01-01T00:00:00+14:00"),  # noqa: E501
                         ("no timezone", "2025-01-01T00:00:00"), ("date only", "2025-01-01"),
                         ("month 13", "2025-13-01T00:00:00Z"), ("not a time", "yesterday"),
                         ("1969", "1969-12-31T23:59:59Z")):  # fmt: skip
        yield label, _j(_battle(f"h-ts-{label}", occurred_at=stamp)), "invalid_timestamp"
    # Wrong types, one per field type.
    yield "id as number", _j(_battle("h-t-id", a=1)), "wrong_type"
    yield "id as null", _j(_battle("h-t-null", battle_id=None)), "wrong_type"
    yield "id empty", _j(_battle("h-t-empty", a="")), "invalid_value"
    yield "id as object", _j(_battle("h-t-obj", b={"$ne": ""})), "wrong_type"
    yield "event_id as array", _j(_battle(["h-t-eid"])), "wrong_type"  # type: ignore[arg-type]
    yield "outcome as number", _j(_battle("h-t-out", outcome=1)), "unknown_outcome"
    yield "outcome unknown", _j(_battle("h-t-out2", outcome="draw")), "unknown_outcome"
    yield "timestamp as number", _j(_battle("h-t-ts", occurred_at=1735689600)), "invalid_timestamp"
    yield (
        "rank as string",
        _j(_game("h-t-rank", [{"competitor": "x", "rank": "1"}, {"competitor": "y", "rank": 2}])),
        "wrong_type",
    )
    yield (
        "rank as bool",
        _j(_game("h-t-rankb", [{"competitor": "x", "rank": True}, {"competitor": "y", "rank": 2}])),
        "wrong_type",
    )
    yield (
        "rank as float",
        _j(_game("h-t-rankf", [{"competitor": "x", "rank": 1.5}, {"competitor": "y", "rank": 2}])),
        "wrong_type",
    )
    yield "metric as string", _j(_battle("h-t-metric", metrics={"a": {"wer": "0.1"}})), "wrong_type"
    yield (
        "metrics side unknown",
        _j(_battle("h-t-side", metrics={"c": {"wer": 0.1}})),
        "invalid_value",
    )
    yield "meta as array", _j(_battle("h-t-meta", meta=[1])), "wrong_type"
    yield "participants as object", _j(_game("h-t-parts", {"x": 1})), "wrong_type"  # type: ignore[arg-type]
    yield "participant as string", _j(_game("h-t-part", ["x", "y"])), "wrong_type"
    yield (
        "strict as string",
        _j(
            {
                "type": "arena.configured",
                "event_id": "h-t-strict",
                "occurred_at": AT,
                "strict": "yes",
            }
        ),
        "wrong_type",
    )
    yield (
        "k as string",
        _j({"type": "arena.configured", "event_id": "h-t-k", "occurred_at": AT, "k": "32"}),
        "wrong_type",
    )
    yield (
        "k negative",
        _j({"type": "arena.configured", "event_id": "h-t-kneg", "occurred_at": AT, "k": -1}),
        "invalid_value",
    )
    yield (
        "score as float",
        _j(
            {
                "type": "vote.cast",
                "event_id": "h-t-score",
                "occurred_at": AT,
                "vote_id": "v",
                "voter": "u",
                "trial_id": "t",
                "score": 4.5,
            }
        ),
        "wrong_type",
    )
    yield (
        "score 0",
        _j(
            {
                "type": "vote.cast",
                "event_id": "h-t-score0",
                "occurred_at": AT,
                "vote_id": "v",
                "voter": "u",
                "trial_id": "t",
                "score": 0,
            }
        ),
        "score_out_of_range",
    )
    yield "status unknown", _j(_trial("h-t-status", status="done")), "invalid_value"
    yield "dimension as number", _j(_trial("h-t-dim", dimensions={"persona": 1})), "wrong_type"
    yield "prompt_index negative", _j(_trial("h-t-prompt", prompt_index=-1)), "invalid_value"
    yield "type as number", _j(_battle("h-t-type", type=1)), "unknown_type"
    yield (
        "type unknown",
        _j(_battle("h-t-type2", type="battle.completed'; DROP TABLE x; --")),
        "unknown_type",
    )
    yield (
        "type missing",
        _j({k: v for k, v in _battle("h-t-notype").items() if k != "type"}),
        "unknown_type",
    )
    yield (
        "field missing",
        _j({k: v for k, v in _battle("h-t-miss").items() if k != "a"}),
        "missing_field",
    )
    yield "unknown field", _j(_battle("h-t-unknown", **{"$where": "1"})), "unknown_field"
    yield "same competitor", _j(_battle("h-t-same", b="x")), "same_competitor"
    # Not an object at all.
    yield "array", b'[{"type": "battle.completed"}]', "not_an_object"
    yield "string", b'"battle.completed"', "not_an_object"
    yield "number", b"42", "not_an_object"
    yield "null", b"null", "not_an_object"
    yield "empty message", b"", "malformed_json"
    yield "whitespace", b"  \n", "malformed_json"
    yield "two objects", _j(_battle("h-two")) + _j(_battle("h-two-b")), "malformed_json"
    yield "truncated", _j(_battle("h-trunc"))[:-5], "malformed_json"
    yield "UTF-16", json.dumps(_battle("h-utf16")).encode("utf-16"), "malformed_json"


FIELDS = {
    "NUL in event_id": "event_id",
    "NUL in competitor": "a",
    "NUL in meta value": "meta.k[0]",
    "NUL in meta key": "meta.k\\u0000",
    "NUL in dimensions": "dimensions.persona",
    "rank 0": "participants[0].rank",
    "prompt_index beyond int32": "prompt_index",
    "meta as array": "meta",
    "k 1e308": "k",
}
"""The field a rejection names, where the corpus checks it."""


# -- database snapshots ------------------------------------------------------------------------


def project_all(database_url: str) -> None:
    for name in ("ratings", "results"):
        projector = Projector(database_url, PROJECTIONS[name])
        try:
            projector.catch_up()
        finally:
            projector.close()


def snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every table (the log, the id index, both read models), as sorted JSON text;
    the tracking rows' ``updated_at`` left out (a clock, not state)."""
    out: dict[str, list[str]] = {}
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(
                psycopg.sql.SQL("SELECT (to_jsonb(t) - 'updated_at')::text FROM {}.{} t").format(
                    psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                )
            ).fetchall()
            out[f"{schema}.{table}"] = sorted(r[0] for r in rows)
    return out


# -- the tests ---------------------------------------------------------------------------------


async def test_hostile_events_are_rejected_with_codes_and_change_nothing(
    database_url: str, nats_url: str
) -> None:
    valid = valid_events()
    ingest = await ingest_all(database_url, nats_url, valid)
    assert ingest.stats.appended == len(valid) and ingest.stats.rejected == 0, ingest.stats
    project_all(database_url)
    before = snapshot(database_url)
    assert len(before["public.arbiter_events"]) == len(valid)

    corpus = list(hostile())
    names = [name for name, _, _ in corpus]
    assert len(set(names)) == len(names)
    async with Publisher(nats_url) as pub:
        acks = await pub.publish([message for _, message, _ in corpus])
    assert not any(ack.duplicate for ack in acks)
    case_at = {ack.seq: case for ack, case in zip(acks, corpus, strict=True)}
    ingest = await ingest_all(database_url, nats_url, [], expect=len(corpus))
    assert ingest.stats.received == len(corpus) and ingest.stats.appended == 0, ingest.stats
    project_all(database_url)

    rejected = {r["stream_seq"]: r for r in await rejected_messages(nats_url)}
    got = {case_at[seq][0]: r["rejection"]["code"] for seq, r in rejected.items()}
    want = {name: code for name, _, code in corpus}
    assert got == want
    for seq, r in rejected.items():
        name, message, _ = case_at[seq]
        rejection = r["rejection"]
        assert rejection["message"], name
        # The original bytes travel with the rejection (cut at the size limit).
        assert r["original"] == message.decode("utf-8", "replace")[:MAX_EVENT_BYTES], name
        if r.get("original_b64") is None:
            assert message.decode("utf-8", "replace") == message.decode("utf-8", "ignore"), name

    # Nothing changed: not the log, not the id index, not a read-model row.
    assert snapshot(database_url) == before


async def test_sql_in_every_string_field_is_stored_verbatim(
    database_url: str, nats_url: str
) -> None:
    valid = valid_events()
    ingest = await ingest_all(database_url, nats_url, valid)
    assert ingest.stats.appended == len(valid) and ingest.stats.rejected == 0, ingest.stats
    project_all(database_url)
    with psycopg.connect(database_url) as conn:
        for table in ("arbiter_events", "arbiter_ratings.ratings", "arbiter_results.battles"):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)
        assert conn.execute("SELECT count(*) FROM arbiter_events").fetchone() == (len(valid),)
        battle = conn.execute(
            "SELECT event_id, arena, category, a, b, judge, scenario, source, voided_by "
            "FROM arbiter_results.battles WHERE battle_id = %s",
            (sql("battle_id"),),
        ).fetchone()
    event = valid[2]
    assert battle == (
        *(event[k] for k in ("event_id", "arena", "category", "a", "b", "judge", "scenario")),
        event["source"],
        sql("void"),
    )
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        # Every valid event reads back from the log exactly as it was sent.
        for sent in valid:
            r = await client.get(f"/events/{sent['event_id']}")
            assert r.status_code == 200, r.text
            stored = EVENT_DECODER.decode(json.dumps(r.json()["event"]))
            assert stored == EVENT_DECODER.decode(json.dumps(sent)), sent["event_id"]
            assert stored.event_id == sent["event_id"]
        a = valid[1]["competitor"]
        r = await client.get(f"/competitors/{a}", params={"arena": sql("arena")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["competitor"], body["name"], body["provider"]) == (
            a,
            sql("name"),
            sql("provider"),
        )
        assert body["meta"] == {sql("key"): sql("value")}
        r = await client.get("/leaderboard", params={"arena": sql("arena")})
        assert {row["competitor"] for row in r.json()["rows"]} >= {a, valid[2]["b"]}
        # The extreme arena folded to finite ratings, by Elo and by Bradley-Terry.
        for system in ("elo", "bt"):
            r = await client.get("/leaderboard", params={"arena": "extreme", "system": system})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            assert {row["competitor"] for row in rows} == {"x", "y", "z"}, system
            assert all(math.isfinite(row["rating"]) for row in rows), rows


async def test_post_events_refuses_hostile_bodies_with_the_ingest_codes(
    database_url: str, nats_url: str
) -> None:
    assert set(FIELDS) <= {name for name, _, _ in hostile()}
    async with AsyncTestClient(app=create_app(database_url, nats_url)) as client:
        for name, message, code in hostile():
            r = await client.post(
                "/events", content=message, headers={"content-type": "application/json"}
            )
            if code == "too_large":
                assert_error(r, 413, "too_large")
            else:
                body = assert_error(r, 400, code)
                assert body.get("field") == FIELDS.get(name, body.get("field")), (name, body)


async def test_post_events_has_a_body_size_limit(database_url: str, nats_url: str) -> None:
    over = _j(_battle("h-over", meta={"k": "x" * MAX_EVENT_BYTES}))
    async with AsyncTestClient(app=create_app(database_url, nats_url)) as client:
        # Declared length over the limit.
        r = await client.post("/events", content=over, headers={"content-type": "application/json"})
        body = assert_error(r, 413, "too_large")
        assert str(MAX_EVENT_BYTES) in body["message"]

        # At the limit exactly is still read (and then judged on its content).
        at_limit = _j(_battle("h-at", meta={"k": ""}))
        at_limit = at_limit.replace(
            b'"k": ""', b'"k": "' + b"x" * (MAX_EVENT_BYTES - len(at_limit)) + b'"'
        )
        assert len(at_limit) == MAX_EVENT_BYTES
        r = await client.post(
            "/events", content=at_limit, headers={"content-type": "application/json"}
        )
        assert r.status_code == 202, r.text

    # Over real HTTP with no declared length (chunked): the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(over), 8192):
            yield over[i : i + 8192]

    with running_api(database_url, nats_url) as base_url:
        r = httpx.post(
            f"{base_url}/events",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "too_large")
        r = httpx.post(f"{base_url}/events", content=over, timeout=10)
        assert_error(r, 413, "too_large")


async def test_nats_messages_over_the_limit(database_url: str, nats_url: str) -> None:
    """Over the ingest's 64 KiB: rejected ``too_large`` with the start of the original. Over the
    server's max payload (1 MiB): refused by NATS before it reaches a stream."""
    big = _j(_battle("h-nats-big", meta={"k": "x" * 200 * 1024}))
    async with Publisher(nats_url) as pub:
        with pytest.raises(MaxPayloadError):
            await pub.publish([_j(_battle("h-nats-huge", meta={"k": "x" * 2 * 1024 * 1024}))])
    ingest = await ingest_all(database_url, nats_url, [big])
    assert ingest.stats.received == 1 and ingest.stats.appended == 0
    (r,) = await rejected_messages(nats_url)
    assert r["rejection"]["code"] == "too_large" and r["rejection"]["event_id"] == "h-nats-big"
    assert str(len(big)) in r["rejection"]["message"]
    assert len(r["original"]) == MAX_EVENT_BYTES
