"""Identifiers a person reads: control, invisible and bidirectional characters and edge whitespace
are refused (``invalid_value``, naming the field and the character); what passes is NFC."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from arbiter.adapters.bus import connect, ensure_streams
from arbiter.domain.events import EVENT_DECODER, canonical_json, to_builtins
from arbiter.domain.identifiers import check_identifiers
from arbiter.domain.rejections import Code, Rejection
from arbiter.domain.validation import decode_event
from arbiter.services.api import create_app
from hypothesis import example, given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from .api_events import assert_error
from .helpers import battle, ingest_all, project, raw, rejected_messages
from .test_pipeline import standings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
AT = "2025-01-01T00:00:00Z"

REFUSED = {
    "\u0000": "NUL", "\u0009": "tab", "\u000a": "line feed", "\u001b": "escape", "\u007f": "DEL",
    "\u0085": "next line (C1)", "\u00ad": "soft hyphen", "\u200b": "zero-width space",
    "\u200c": "zero-width non-joiner", "\u200d": "zero-width joiner", "\u2060": "word joiner",
    "\ufeff": "byte order mark", "\u202a": "LRE", "\u202b": "RLE", "\u202c": "PDF",
    "\u202d": "LRO", "\u202e": "RLO", "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI",
    "\u2069": "PDI", "\u200e": "LRM", "\u200f": "RLM", "\u061c": "ALM",
    "\u2028": "line separator", "\u2029": "paragraph separator", "\u00a0": "no-break space",
    "\u2009": "thin space", "\u3000": "ideographic space", "\u3164": "Hangul filler",
    "\U000e0041": "tag latin capital A",
}  # fmt: skip
"""Every character the issue names, and a few more of each kind."""


def _trial(**fields: Any) -> dict[str, Any]:
    return {"type": "trial.completed", "event_id": "t1", "occurred_at": AT,
            "experiment_id": "e", "trial_id": "t1", "competitor": "x", "prompt_index": 0,
            "status": "completed", **fields}  # fmt: skip


def _vote(**fields: Any) -> dict[str, Any]:
    return {"type": "vote.cast", "event_id": "v1", "occurred_at": AT, "vote_id": "v1",
            "voter": "ann", "battle_id": "b", "choice": "a", **fields}  # fmt: skip


def _score(**fields: Any) -> dict[str, Any]:
    return {"type": "vote.cast", "event_id": "v1", "occurred_at": AT, "vote_id": "v1",
            "voter": "ann", "trial_id": "t", "score": 3, **fields}  # fmt: skip


def _game(first: str) -> dict[str, Any]:
    players = [{"competitor": "x", "rank": 1}, {"competitor": first, "rank": 2}]
    return {"type": "game.completed", "event_id": "g1", "occurred_at": AT, "game_id": "g1",
            "participants": players}  # fmt: skip


def _arena(**fields: Any) -> dict[str, Any]:
    return {"type": "arena.configured", "event_id": "c1", "occurred_at": AT, **fields}


def _register(**fields: Any) -> dict[str, Any]:
    return {"type": "competitor.registered", "event_id": "r1", "occurred_at": AT,
            "competitor": "x", **fields}  # fmt: skip


def _void(**fields: Any) -> dict[str, Any]:
    return {"type": "result.voided", "event_id": "d1", "occurred_at": AT,
            "target_event_id": "ev-1", **fields}  # fmt: skip


PLACES: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "event_id": (lambda s: battle(1, "x", "y", event_id=s), "event_id"),
    "source": (lambda s: battle(1, "x", "y", source=s), "source"),
    "arena": (lambda s: battle(1, "x", "y", arena=s), "arena"),
    "category": (lambda s: battle(1, "x", "y", category=s), "category"),
    "battle_id": (lambda s: battle(1, "x", "y", battle_id=s), "battle_id"),
    "a": (lambda s: battle(1, s, "y"), "a"),
    "b": (lambda s: battle(1, "x", s), "b"),
    "judge": (lambda s: battle(1, "x", "y", judge=s), "judge"),
    "scenario": (lambda s: battle(1, "x", "y", scenario=s), "scenario"),
    "battle metric name": (lambda s: battle(1, "x", "y", metrics={"a": {s: 1.0}}), "metrics.a"),
    "participant": (_game, "participants[1].competitor"),
    "experiment_id": (lambda s: _trial(experiment_id=s), "experiment_id"),
    "trial_id": (lambda s: _trial(trial_id=s), "trial_id"),
    "trial competitor": (lambda s: _trial(competitor=s), "competitor"),
    "trial metric name": (lambda s: _trial(metrics={s: 1.0}), "metrics"),
    "dimension key": (lambda s: _trial(dimensions={s: "v"}), "dimensions"),
    "dimension value": (lambda s: _trial(dimensions={"persona": s}), "dimensions.persona"),
    "vote_id": (lambda s: _vote(vote_id=s), "vote_id"),
    "voter": (lambda s: _vote(voter=s), "voter"),
    "vote battle_id": (lambda s: _vote(battle_id=s), "battle_id"),
    "vote trial_id": (lambda s: _score(trial_id=s), "trial_id"),
    "registered competitor": (lambda s: _register(competitor=s), "competitor"),
    "name": (lambda s: _register(name=s), "name"),
    "provider": (lambda s: _register(provider=s), "provider"),
    "target_event_id": (lambda s: _void(target_event_id=s), "target_event_id"),
    "judge weight key": (lambda s: _arena(weights={s: 2.0}), "weights"),
}
"""Every identifier field: an event with ``s`` there, and the field its rejection names."""


def decoded(event: dict[str, Any]) -> Any:
    return decode_event(raw(event), now=NOW)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("char", REFUSED, ids=REFUSED.values())
def test_every_identifier_refuses_every_invisible_character(place: str, char: str) -> None:
    make, field = PLACES[place]
    assert not isinstance(decoded(make("ok-x1")), Rejection), decoded(make("ok-x1"))
    result = decoded(make(f"ok{char}x1"))
    assert isinstance(result, Rejection), (place, result)
    if char == "\u0000":  # found by the earlier NUL scan, with its own sentence
        assert result.code == Code.INVALID_VALUE
        return
    assert (result.code, result.field) == (Code.INVALID_VALUE, field), result
    assert f"U+{ord(char):04X}" in result.message and "position 2" in result.message
    assert char not in result.message  # escaped: an RLO cannot reorder the sentence itself
    assert result.message.endswith(".")


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("value", [" x", "x ", "   ", "\u3000x"])
def test_edge_and_only_whitespace_are_refused(place: str, value: str) -> None:
    make, field = PLACES[place]
    result = decoded(make(value))
    assert isinstance(result, Rejection) and result.code == Code.INVALID_VALUE, result
    assert result.field == field


def test_an_empty_name_is_refused_but_an_absent_one_is_fine() -> None:
    assert decoded(_register(name="")).code == Code.INVALID_VALUE
    assert not isinstance(decoded(_register()), Rejection)


def test_free_text_is_not_an_identifier() -> None:
    """Reasons, errors, meta and replay URIs may hold any text (only NUL is refused there)."""
    text = "line one\nline two \u200b\u202e\t "
    for event in (
        _void(reason=text),
        _trial(status="failed", error=text),
        battle(1, "x", "y", meta={text: text}),
        {**_game("y"), "replay_uri": text},
        {"type": "competitor.retired", "event_id": "r", "occurred_at": AT, "competitor": "x",
         "reason": text},
    ):  # fmt: skip
        assert not isinstance(decoded(event), Rejection), event


NFD_CAFE = "cafe\u0301"
NFC_CAFE = "caf\u00e9"


@pytest.mark.parametrize("place", PLACES)
def test_every_identifier_is_normalised_to_nfc(place: str) -> None:
    make, _ = PLACES[place]
    nfd, nfc = decoded(make(f"m-{NFD_CAFE}")), decoded(make(f"m-{NFC_CAFE}"))
    assert not isinstance(nfd, Rejection), nfd
    assert nfd == nfc and canonical_json(nfd) == canonical_json(nfc)
    assert NFD_CAFE not in json.dumps(to_builtins(nfd), ensure_ascii=False)


def test_two_spellings_are_one_competitor_within_an_event() -> None:
    assert decoded(battle(1, NFD_CAFE, NFC_CAFE)).code == Code.SAME_COMPETITOR
    assert decoded(_game(NFD_CAFE) | {"participants": [
        {"competitor": NFC_CAFE, "rank": 1}, {"competitor": NFD_CAFE, "rank": 2}]}
    ).code == Code.DUPLICATE_PARTICIPANT  # fmt: skip
    merged = decoded(_trial(metrics={f"w{NFD_CAFE}": 1.0, f"w{NFC_CAFE}": 2.0}))
    assert (merged.code, merged.field) == (Code.INVALID_VALUE, "metrics")


def test_normalising_may_not_pass_the_length_limit() -> None:
    # U+FB2C is one character whose NFC is three: 100 of them become 300.
    result = decoded(battle(1, "\ufb2c" * 100, "y"))
    assert (result.code, result.field) == (Code.INVALID_VALUE, "a"), result
    assert "300" in result.message and "128" in result.message


def _has_refused(s: str) -> bool:
    """An oracle written from the rule, independently of the code under test."""
    blank_fillers = set("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
    for c in s:
        cat = unicodedata.category(c)
        if cat in ("Cc", "Cf", "Zl", "Zp") or (cat == "Zs" and c != " ") or c in blank_fillers:
            return True
    return False


ENCODINGS: dict[str, Callable[[Any], bytes]] = {
    "json.dumps": raw,  # spaces after ':' and ',': checked field by field
    "compact": lambda e: json.dumps(e, separators=(",", ":")).encode(),  # the bytes fast path
    "compact UTF-8": lambda e: json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode(),
    "msgspec": msgspec.json.encode,  # what Publisher sends for a dict
}


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
@given(s=st.text(max_size=40))
@example(s="a\u200bb")
@example(s=" a")
@example(s="a ")
@example(s="a\x7f")
@example(s="é")
@example(s="e\u0301")
@example(s="\u00a0")
def test_the_rule_over_any_text(encode: Callable[[Any], bytes], s: str) -> None:
    """Every refused string holds a refused character or edge whitespace (or is blank); every
    accepted one comes back as its NFC form, and decoding its canonical JSON again gives the
    same event (the log's form is a fixed point). In every JSON spelling of the message."""
    result = decode_event(encode(battle(1, s, "other-side", judge=s)), now=NOW)
    problem = not s or _has_refused(s) or s != s.strip()
    if isinstance(result, Rejection):
        too_long = len(unicodedata.normalize("NFC", s)) > 128
        assert problem or too_long or result.code == Code.SAME_COMPETITOR, (s, result)
        return
    assert not problem, s
    nfc = unicodedata.normalize("NFC", s)
    assert result.a == nfc and result.judge == nfc and unicodedata.is_normalized("NFC", result.a)
    again = decode_event(canonical_json(result), now=NOW)
    assert again == result and canonical_json(again) == canonical_json(result)


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_the_byte_scan_lets_nothing_through(encode: Callable[[Any], bytes]) -> None:
    """Compact ASCII JSON is passed by a scan of its bytes; each thing it must notice is noticed
    in every spelling of the message."""
    for event, field in (
        (_register(name=""), "name"),
        (_register(provider=""), "provider"),
        (_trial(dimensions={"persona": ""}), "dimensions.persona"),
        (battle(1, "x\x7f", "y"), "a"),
        (battle(1, "x", "y", judge="j "), "judge"),
        (battle(1, "x", "y", arena="\u200b"), "arena"),
        (battle(1, "x", "y", metrics={"a": {"w\ter": 1.0}}), "metrics.a"),
    ):
        result = decode_event(encode(event), now=NOW)
        assert isinstance(result, Rejection) and result.field == field, (event, result)
        assert result.code == Code.INVALID_VALUE
    nfd = decode_event(encode(battle(1, NFD_CAFE, "y")), now=NOW)
    assert nfd.a == NFC_CAFE


def test_the_fast_path_copies_nothing() -> None:
    """Nothing is copied for a plain event (the ingest's hot path)."""
    event = EVENT_DECODER.decode(raw(battle(1, "x  y", "y", metrics={"a": {"wer": 1.0}})))
    assert check_identifiers(event) is event


# -- end to end: real NATS, the real ingest, PostgreSQL ------------------------------------------


async def test_invisible_characters_are_rejected_and_two_spellings_are_one_competitor(
    database_url: str, nats_url: str
) -> None:
    zero_width, bidi = "gpt\u200b4", "model\u202eX"
    events = [
        battle(1, NFC_CAFE, "x"),
        battle(2, NFD_CAFE, "y", "b"),  # the same competitor, spelt with a combining accent
        battle(3, zero_width, "x"),
        battle(4, "x", bidi),
        battle(5, "x", "y", arena="default\u2066"),
    ]
    ingest = await ingest_all(database_url, nats_url, events)
    assert (ingest.stats.appended, ingest.stats.rejected) == (2, 3), ingest.stats
    rejected = {
        r["rejection"]["event_id"]: r["rejection"] for r in await rejected_messages(nats_url)
    }
    assert {k: (v["code"], v["field"]) for k, v in rejected.items()} == {
        "ev-3": ("invalid_value", "a"),
        "ev-4": ("invalid_value", "b"),
        "ev-5": ("invalid_value", "arena"),
    }
    assert "U+200B ZERO WIDTH SPACE" in rejected["ev-3"]["message"]
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in rejected["ev-4"]["message"]
    project(database_url)
    table = standings(database_url)
    assert set(table) == {NFC_CAFE, "x", "y"}
    assert table[NFC_CAFE][1:] == (2, 1, 1, 0)  # both battles, one competitor

    # POST /events answers the same, before anything reaches NATS.
    async with AsyncTestClient(app=create_app(database_url, nats_url)) as client:
        r = await client.post(
            "/events", content=raw(battle(6, zero_width, "x")),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert assert_error(r, 400, "invalid_value")["field"] == "a"


async def test_the_subject_must_name_the_type(database_url: str, nats_url: str) -> None:
    good = battle(1, "x", "y")
    # A producer's JSON may hold a "type" key in meta before its own: the publisher must still
    # route it by the event's type, or it would be rejected for a subject it did not choose.
    routed = b'{"meta": {"type": "game.completed"}, ' + raw(battle(2, "x", "y"))[1:]
    nc = await connect(nats_url)
    await ensure_streams(nc.jetstream())
    sent = {
        "arbiter.events.game.completed": raw(battle(3, "x", "y")),  # a battle under games
        "arbiter.events.battle": raw(battle(4, "x", "y")),
        "arbiter.events.invalid": b'{"type": "battle.exploded", "event_id": "ev-5"}',
        "arbiter.events.battle.completed": b'{"event_id": "ev-6", "type": "battle.com',
    }
    for subject, payload in sent.items():
        await nc.publish(subject, payload)
    await nc.flush()
    await nc.close()
    ingest = await ingest_all(database_url, nats_url, [good, routed], expect=6)
    assert (ingest.stats.appended, ingest.stats.rejected) == (2, 4), ingest.stats
    rejected = await rejected_messages(nats_url)
    by_subject = {r["subject"]: r["rejection"] for r in rejected}
    assert {k: v["code"] for k, v in by_subject.items()} == {
        "arbiter.events.game.completed": "wrong_subject",
        "arbiter.events.battle": "wrong_subject",
        "arbiter.events.invalid": "unknown_type",  # its real reason, not the subject
        "arbiter.events.battle.completed": "malformed_json",
    }
    wrong = by_subject["arbiter.events.game.completed"]
    assert (wrong["event_id"], wrong["field"]) == ("ev-3", "type")
    assert "arbiter.events.battle.completed" in wrong["message"]


def test_arena_file_rows_become_valid_events_or_refused_rows(tmp_path: Any) -> None:
    """The importer strips whitespace around model names (so a padded name imports); a name with
    an invisible character inside is refused by the same rule, and the rows around it import."""
    from arbiter.adapters.arena_files import RowError, iter_import
    from arbiter.adapters.bus import encode_event

    path = tmp_path / "battles.csv"
    path.write_text(
        "model_a,model_b,winner\n"
        "  gpt-4 ,claude,model_a\n"
        "gpt\u200b4,claude,model_b\n"
        f"{NFD_CAFE},claude,tie\n"
        "\u00a0x\u00a0,y,model_a\n",
        encoding="utf-8",
    )
    out = []
    for _, item in iter_import(path):
        assert not isinstance(item, RowError), item
        result = decode_event(encode_event(item)[0], now=NOW)
        out.append(result.code if isinstance(result, Rejection) else (result.a, result.b))
    assert out == [("gpt-4", "claude"), Code.INVALID_VALUE, (NFC_CAFE, "claude"), ("x", "y")]
