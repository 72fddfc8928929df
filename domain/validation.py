"""Turn raw message bytes into a typed event or a :class:`Rejection`. Pure: no I/O.

The hot path decodes once with msgspec. Only when that fails does the slow path run, to tell the
producer precisely what was wrong (which field, which rule) instead of a parser's byte offset.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from .events import (
    EVENT_DECODER,
    TYPE_NAMES,
    ArenaConfigured,
    BattleCompleted,
    Event,
    ExperimentCreated,
    GameCompleted,
    TrialCompleted,
    VoteCast,
    type_name,
)
from .identifiers import check_identifiers, plain_bytes
from .metrics import first_problem
from .rejections import Code, Rejection
from .webhook_urls import url_problem

__all__ = ["CLOCK_SKEW", "EARLIEST", "MAX_DEPTH", "MAX_EVENT_BYTES", "check_event", "decode_event"]


MAX_EVENT_BYTES = 64 * 1024
"""Largest accepted message. Results are small; anything bigger is a bug or an attack."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)
"""How far in the future a producer's clock may be before its ``occurred_at`` is refused."""

_FIELD = re.compile(r"`\$\.([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def decode_event(
    raw: bytes, *, now: datetime | None = None, max_bytes: int = MAX_EVENT_BYTES
) -> Event | Rejection:
    """Decode and validate one message.

    ``now`` bounds ``occurred_at`` from above (clock skew allowed); it defaults to the wall clock
    and is a parameter so tests and replays stay deterministic.
    """
    if len(raw) > max_bytes:
        return Rejection(
            Code.TOO_LARGE,
            f"The message is {len(raw)} bytes; the limit is {max_bytes}. "
            "Send large artefacts by URI (replay_uri, meta) instead of inline.",
            **_peek_ids(raw[:4096]),
        )
    try:
        event = EVENT_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        return _explain_validation(raw, str(exc))
    except msgspec.DecodeError as exc:
        return _explain_decode(raw, str(exc))
    except RecursionError:  # nested deeper than the decoder goes
        return _too_deep(raw)
    except UnicodeDecodeError as exc:  # msgspec's answer to invalid UTF-8 inside a string
        return Rejection(
            Code.MALFORMED_JSON,
            f"The message is not valid UTF-8 (byte {exc.start}). Send one UTF-8 JSON object "
            "per message.",
            **_peek_ids(raw[:4096]),
        )
    # Cheap byte scans first (C speed); a walk runs only for messages that may hold a NUL
    # character (all of the event) or may nest too deep (only its free-form ``meta`` objects can).
    problem = None
    if b"\\u0000" in raw:
        problem = _structure_problem(event, raw, [(event, "", 1)])
    elif raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        problem = _structure_problem(event, raw, _metas(event))
    if problem is not None:
        return problem
    if plain_bytes(raw, event):  # the common case: no identifier to refuse or normalise
        return check_event(event, now=now)
    named = check_identifiers(event)  # NFC from here on: the log and its digests see one form
    return named if isinstance(named, Rejection) else check_event(named, now=now)


MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects in a message (the event object is level 1). Far
below the decoders' recursion limits (about 1,000, and dependent on the caller's stack), so a
message accepted once is decoded again by the projector, a rebuild or the audit without fail."""


def _too_deep(raw: bytes) -> Rejection:
    return Rejection(
        Code.INVALID_VALUE,
        f"The message nests arrays and objects more than {MAX_DEPTH} levels deep; flatten meta "
        "(or send large artefacts by URI).",
        **_peek_ids(raw[:4096]),
    )


def _metas(event: Event) -> list[tuple[Any, str, int]]:
    """The free-form ``meta`` objects of an event, with their paths and nesting levels; every
    other field has a fixed shape, at most 3 levels deep."""
    roots: list[tuple[Any, str, int]] = [(getattr(event, "meta", None), "meta", 2)]
    if isinstance(event, GameCompleted):
        roots += [
            (p.meta, f"participants[{i}].meta", 4)
            for i, p in enumerate(event.participants)
            if p.meta
        ]
    return roots


def _structure_problem(
    event: Event, raw: bytes, roots: list[tuple[Any, str, int]]
) -> Rejection | None:
    """Nesting deeper than :data:`MAX_DEPTH`, or a NUL character in a key or a string
    (PostgreSQL text and jsonb refuse it), found by an iterative walk from ``roots`` (value,
    path, nesting level) of the decoded event."""
    # Paths are built only for a rejection: ``where`` is a tuple of keys and indexes.
    stack: list[tuple[Any, Any, int]] = [
        (value, (path,) if path else (), n) for value, path, n in roots
    ]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _nul(event, where)
            continue
        if isinstance(item, dict):
            pairs: Any = item.items()
        elif isinstance(item, list):
            pairs = enumerate(item)
        elif isinstance(item, msgspec.Struct):
            pairs = ((name, getattr(item, name)) for name in item.__struct_fields__)
        else:
            continue
        if depth > MAX_DEPTH:
            return _too_deep(raw)
        for key, value in pairs:
            if isinstance(key, str) and "\x00" in key:
                return _nul(event, (*where, key))
            if isinstance(value, str | dict | list | msgspec.Struct):
                stack.append((value, (*where, key), depth + 1))
    return None


def _nul(event: Event, where: tuple[str | int, ...]) -> Rejection:
    field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where).lstrip(".")
    field = (field or "$").replace("\x00", "\\u0000")
    return Rejection(
        Code.INVALID_VALUE,
        f"{field} contains a NUL character (\\u0000), which cannot be stored; remove it.",
        field=field,
        event_id=event.event_id if "\x00" not in event.event_id else None,
        type=type_name(event),
    )


def check_event(event: Event, *, now: datetime | None = None) -> Event | Rejection:
    """Rules a schema cannot express: distinct sides, finite numbers, a plausible timestamp."""
    ids = {"event_id": event.event_id, "type": type_name(event)}
    now = now or datetime.now(UTC)
    if not EARLIEST <= event.occurred_at <= now + CLOCK_SKEW:
        return Rejection(
            Code.INVALID_TIMESTAMP,
            f"occurred_at {event.occurred_at.isoformat()} is outside 1970-01-01 .. now + 1 day; "
            "check the producer's clock.",
            field="occurred_at",
            **ids,
        )
    if isinstance(event, BattleCompleted):
        if (kind := _kind_spelled_otherwise(event.judge)) is not None:
            return Rejection(
                Code.INVALID_VALUE,
                f"judge {event.judge!r} is the judge kind {kind!r} spelled otherwise; judge kinds "
                f"are lower-case ({kind!r}), and a judge name must not be one of them.",
                field="judge",
                **ids,
            )
        if event.a == event.b:
            return Rejection(
                Code.SAME_COMPETITOR,
                f"a and b are both {event.a!r}; a battle needs two different competitors.",
                field="b",
                **ids,
            )
        for side, values in (event.metrics or {}).items():
            where = f"metrics.{side}"
            bad = _non_finite(values, where, ids) or _out_of_range(values, where, ids)
            if bad is not None:
                return bad
    elif isinstance(event, GameCompleted):
        seen: set[str] = set()
        for i, p in enumerate(event.participants):
            if p.competitor in seen:
                return Rejection(
                    Code.DUPLICATE_PARTICIPANT,
                    f"{p.competitor!r} appears more than once in participants; each competitor "
                    "plays a game once (give each seat its own competitor id).",
                    field=f"participants[{i}].competitor",
                    **ids,
                )
            seen.add(p.competitor)
            if p.score is not None and not math.isfinite(p.score):
                return Rejection(
                    Code.NON_FINITE_NUMBER,
                    f"participants[{i}].score is {p.score}; scores must be finite numbers.",
                    field=f"participants[{i}].score",
                    **ids,
                )
    elif isinstance(event, TrialCompleted):
        return (
            _non_finite(event.metrics, "metrics", ids)
            or _out_of_range(event.metrics, "metrics", ids)
            or event
        )
    elif isinstance(event, VoteCast):
        return _check_vote(event, ids) or event
    elif isinstance(event, ExperimentCreated):
        return _check_experiment(event, ids) or event
    elif isinstance(event, ArenaConfigured):
        for judge in event.weights or {}:
            if (kind := _kind_spelled_otherwise(judge)) is not None:
                return Rejection(
                    Code.INVALID_VALUE,
                    f"weights names {judge!r}, the judge kind {kind!r} spelled otherwise: it "
                    f"would weigh no battle judged {kind!r}; spell it {kind!r}.",
                    field=f"weights.{judge}",
                    **ids,
                )
    return event


_KINDS = ("auto", "human")


def _kind_spelled_otherwise(judge: str) -> str | None:
    """The judge kind (``auto``, ``human``) that ``judge`` spells in other letter case, if any:
    ``Human`` would be a judge *name*, weighed 1.0, where the sender meant the human weight."""
    folded = judge.casefold()
    return folded if folded in _KINDS and judge != folded else None


def _check_experiment(e: ExperimentCreated, ids: dict[str, str]) -> Rejection | None:
    """Distinct competitors, and an http(s) webhook URL (:mod:`.webhook_urls`)."""
    seen: set[str] = set()
    for i, c in enumerate(e.competitors):
        if c in seen:
            return Rejection(
                Code.DUPLICATE_PARTICIPANT,
                f"{c!r} appears more than once in competitors; list each competitor once "
                "(trials_per_prompt says how often each runs a prompt).",
                field=f"competitors[{i}]",
                **ids,
            )
        seen.add(c)
    if e.webhook_url is not None and (problem := url_problem(e.webhook_url)) is not None:
        return Rejection(Code.INVALID_VALUE, f"{problem}.", field="webhook_url", **ids)
    return None


def _non_finite(values: dict[str, float], where: str, ids: dict[str, str]) -> Rejection | None:
    for name, value in values.items():
        if not math.isfinite(value):
            return Rejection(
                Code.NON_FINITE_NUMBER,
                f"{where}.{name} is {value}; metrics must be finite numbers "
                "(leave a metric out when it was not measured).",
                field=f"{where}.{name}",
                **ids,
            )
    return None


def _out_of_range(values: dict[str, float], where: str, ids: dict[str, str]) -> Rejection | None:
    """A metric outside its range (:mod:`.metrics`): no read model's sums and averages can be
    broken, or made meaningless, by one absurd value."""
    found = first_problem(values)
    if found is None:
        return None
    name, reason = found
    return Rejection(
        Code.INVALID_VALUE, f"{where}.{name} {reason}.", field=f"{where}.{name}", **ids
    )


def _check_vote(v: VoteCast, ids: dict[str, str]) -> Rejection | None:
    pairwise = v.battle_id is not None or v.choice is not None
    scored = v.trial_id is not None or v.score is not None
    if pairwise == scored:
        return Rejection(
            Code.INVALID_VOTE,
            "A vote is either pairwise (battle_id and choice) or a score (trial_id and score), "
            "exactly one of the two.",
            **ids,
        )
    if pairwise and (v.battle_id is None or v.choice is None):
        missing = "battle_id" if v.battle_id is None else "choice"
        return Rejection(
            Code.MISSING_FIELD,
            f'A pairwise vote needs `{missing}` (choice is "a", "b" or "tie").',
            field=missing,
            **ids,
        )
    if scored:
        if v.trial_id is None or v.score is None:
            missing = "trial_id" if v.trial_id is None else "score"
            return Rejection(
                Code.MISSING_FIELD,
                f"A score vote needs `{missing}` (score is an integer from 1 to 5).",
                field=missing,
                **ids,
            )
        if not 1 <= v.score <= 5:
            return Rejection(
                Code.SCORE_OUT_OF_RANGE,
                f"score is {v.score}; a score vote is an integer from 1 to 5.",
                field="score",
                **ids,
            )
    return None


def _peek_ids(raw: bytes) -> dict[str, str]:
    """Best-effort ``event_id`` and ``type`` from a message that failed to decode."""
    out: dict[str, str] = {}
    for key in ("event_id", "type"):
        match = re.search(rb'"' + key.encode() + rb'"\s*:\s*"([^"\\]{1,128})"', raw)
        if match:
            out[key] = match.group(1).decode("utf-8", "replace")
    return out


def _explain_decode(raw: bytes, detail: str) -> Rejection:
    """The message is not JSON msgspec accepts: say whether it is JSON at all."""
    ids = _peek_ids(raw[:4096])
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return Rejection(
            Code.MALFORMED_JSON,
            f"The message is not valid JSON ({detail}). Send one UTF-8 JSON object per message.",
            **ids,
        )
    path = _non_finite_path(parsed)
    if path is not None:
        return Rejection(
            Code.NON_FINITE_NUMBER,
            f"{path} is NaN or infinite; JSON numbers must be finite "
            "(leave a metric out when it was not measured).",
            field=path,
            **ids,
        )
    return Rejection(
        Code.MALFORMED_JSON,
        f"The message could not be decoded ({detail}). Send one UTF-8 JSON object per message.",
        **ids,
    )


def _non_finite_path(value: Any, path: str = "") -> str | None:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where or "$"
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


def _explain_validation(raw: bytes, detail: str) -> Rejection:
    """Map a msgspec validation message to a stable code and an actionable sentence."""
    ids = _peek_ids(raw[:4096])
    match = _FIELD.search(detail)
    field = match.group(1) if match else None
    if detail.startswith("Expected `object`") and field is None:  # the message itself
        return Rejection(
            Code.NOT_AN_OBJECT, "An event must be a JSON object with a `type` field.", **ids
        )
    if field == "type" or (detail.startswith("Invalid value") and field is None):
        known = ", ".join(TYPE_NAMES)
        return Rejection(
            Code.UNKNOWN_TYPE,
            f"Unknown event type {ids.get('type', '?')!r}; known types are: {known}.",
            field="type",
            **ids,
        )
    if m := _MISSING.search(detail):
        name = m.group(1) if field is None else f"{field}.{m.group(1)}"
        code = Code.UNKNOWN_TYPE if name == "type" else Code.MISSING_FIELD
        return Rejection(code, f"Required field `{name}` is missing.", field=name, **ids)
    if m := _UNKNOWN.search(detail):
        name = m.group(1) if field is None else f"{field}.{m.group(1)}"
        return Rejection(
            Code.UNKNOWN_FIELD,
            f"Field `{name}` is not part of a {ids.get('type', 'this')} event; "
            "check its spelling against the wire format.",
            field=name,
            **ids,
        )
    if "Number out of range" in detail:
        return Rejection(
            Code.NON_FINITE_NUMBER,
            f"{field or 'a number'} is out of range; numbers must be finite.",
            field=field,
            **ids,
        )
    if "timezone" in detail or (field == "occurred_at"):
        return Rejection(
            Code.INVALID_TIMESTAMP,
            "occurred_at must be an RFC 3339 timestamp with a timezone, e.g. 2026-01-31T12:00:00Z.",
            field="occurred_at",
            **ids,
        )
    if field == "outcome" or (field or "").endswith(".outcome"):
        return Rejection(
            Code.UNKNOWN_OUTCOME,
            'outcome must be "a", "b", "tie" or null (awaiting votes).',
            field=field,
            **ids,
        )
    if detail.startswith("Expected `") and ", got `" in detail:
        return Rejection(Code.WRONG_TYPE, f"Wrong type: {detail}.", field=field, **ids)
    return Rejection(Code.INVALID_VALUE, f"Invalid value: {detail}.", field=field, **ids)
