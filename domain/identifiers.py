"""Identifiers a person reads: refused when ambiguous, normalised to NFC. Pure: no I/O.

Two ids that look alike must be the same id, and an id must look like what it is. So the strings
below (ids, competitor names, judge and voter names, metric and dimension names) may not hold:

* control characters (Unicode category Cc: C0, DEL, C1), which terminals and logs act on;
* invisible formatting characters (category Cf: zero-width space/joiner/non-joiner, word joiner,
  byte order mark, soft hyphen, the bidirectional embeddings, overrides and isolates LRE RLE PDF
  LRO RLO LRI RLI FSI PDI, the marks LRM RLM ALM, ...), which make one id display as another or
  reorder the text around it;
* line and paragraph separators (Zl, Zp), any space other than U+0020 (no-break, thin,
  ideographic ...: "a b" with a no-break space reads as "a b" and is another id), and the
  blank-looking fillers (Hangul fillers, combining grapheme joiner, Khmer inherent vowels);
* leading or trailing whitespace, or nothing but whitespace (or nothing at all, for a name).

What passes is normalised to NFC, so two spellings of "café" (one precomposed é, or e and a
combining accent) are one competitor, and the canonical JSON (and its digest) is of that form.

Free text (``reason``, ``error``, ``replay_uri``, ``meta``) is not an identifier and is not
touched. The common case costs a few C-speed scans of the message's bytes (:func:`plain_bytes`,
about 0.2 us per event); when those cannot tell (spaces, escapes, non-ASCII text), ASCII
identifiers cost a few C-speed passes over them joined into one string (:func:`_all_plain`,
about a microsecond).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import msgspec

from .events import (
    ArenaConfigured,
    BattleCompleted,
    BTAnchor,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    GameCompleted,
    ResultVoided,
    TrialCompleted,
    VoteCast,
    type_name,
)
from .rejections import Code, Rejection

__all__ = [
    "DIMENSION_VALUE_MAX",
    "FIELDS",
    "ID_MAX",
    "TEXT_MAX",
    "check_identifiers",
    "identifier_problem",
    "normal",
    "plain_bytes",
    "refused_char",
    "shown",
]


ID_MAX = 128
TEXT_MAX = 1024
DIMENSION_VALUE_MAX = 256

_ENVELOPE = ("event_id", "source", "arena", "category")
FIELDS: dict[type, tuple[str, ...]] = {
    ArenaConfigured: _ENVELOPE,
    CompetitorRegistered: (*_ENVELOPE, "competitor", "name", "provider"),
    CompetitorRetired: (*_ENVELOPE, "competitor"),
    BattleCompleted: (*_ENVELOPE, "battle_id", "a", "b", "judge", "scenario"),
    GameCompleted: (*_ENVELOPE, "game_id"),
    VoteCast: (*_ENVELOPE, "vote_id", "voter", "battle_id", "trial_id"),
    TrialCompleted: (*_ENVELOPE, "experiment_id", "trial_id", "competitor"),
    ResultVoided: (*_ENVELOPE, "target_event_id"),
    ExperimentCreated: (*_ENVELOPE, "experiment_id"),
    ExperimentCompleted: (*_ENVELOPE, "experiment_id"),
}
"""The plain string fields that are identifiers, per event type. Also identifiers, and handled
with them: ``weights`` keys (judge kinds), ``metrics`` keys (metric names; the ``a``/``b`` sides
are fixed), ``participants[].competitor``, and ``dimensions`` keys and values."""
_GET: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: attrgetter(*names) for cls, names in FIELDS.items()
}
_LIMIT = {"name": TEXT_MAX, "provider": TEXT_MAX}

_FILLERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
"""Letters and marks that render as nothing (their categories are Lo and Mn, so the category
test alone would let them through)."""
_CATEGORY_WORDS = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than U+0020",
}


_MAY_BE_EMPTY = (CompetitorRegistered, TrialCompleted)
"""Types with identifier fields that the schema lets be empty (``name``, ``provider``,
dimension values); every other identifier has a minimum length of 1, checked by the decoder."""


def plain_bytes(raw: bytes, event: Event) -> bool:
    """True when the message ``raw`` (decoded as ``event``) cannot hold a refused identifier,
    read off its bytes at C speed: ASCII without a backslash has no escape, so every string is
    its bytes between quotes, printable (JSON forbids raw control bytes, DEL is looked for) and
    NFC; without a space byte no string has a space at an end. Compact JSON, as ``Publisher``
    and ``canonical_json`` write it, passes; JSON with spaces (``json.dumps``'s default, or a
    name with a space) is checked field by field by :func:`check_identifiers`."""
    return (
        raw.isascii()
        and raw.find(b"\\") < 0
        and raw.find(b"\x7f") < 0
        and raw.find(b" ") < 0
        and (not isinstance(event, _MAY_BE_EMPTY) or raw.find(b'""') < 0)
    )


def _allowed(s: str) -> bool:
    """No refused character and no space at either end, decided at C speed: ``isprintable`` is
    False exactly for categories C (Cc, Cf, and the private-use and unassigned Co, Cn, which
    the slow path then lets through) and Z other than U+0020; only the fillers are looked for
    apart, and only in non-ASCII text."""
    return (
        bool(s)
        and s.isprintable()
        and s[0] != " "
        and s[-1] != " "
        and (s.isascii() or _FILLERS.isdisjoint(s))
    )


def refused_char(c: str) -> str | None:
    """What is wrong with one character in an identifier, or None when it is allowed."""
    if c == " ":
        return None
    if c in _FILLERS:
        return "a character that renders as nothing"
    return _CATEGORY_WORDS.get(unicodedata.category(c))


def shown(s: str) -> str:
    """``s`` quoted for a sentence, with every refused character escaped (so a right-to-left
    override cannot reorder the rejection message itself) and long values cut."""
    body = "".join(f"\\u{ord(c):04x}" if refused_char(c) else c for c in s[:80])
    return f"'{body}{'...' if len(s) > 80 else ''}'"


def identifier_problem(s: str, what: str) -> str | None:
    """Why ``s`` is refused as an identifier (a sentence), or None. ``what`` names it."""
    if _allowed(s):
        return None
    for i, c in enumerate(s):
        kind = refused_char(c)
        if kind is not None:
            name = unicodedata.name(c, "")
            return (
                f"{what} {shown(s)} holds {kind} (U+{ord(c):04X}{' ' + name if name else ''}) "
                f"at position {i}; identifiers and names must read the same to everyone: "
                "remove it."
            )
    if not s.strip():
        return (
            f"{what} {shown(s)} is {'empty' if not s else 'only whitespace'}; give a visible "
            "value or leave the field out."
        )
    if s != s.strip():
        return (
            f"{what} {shown(s)} has leading or trailing whitespace; remove it (identifiers are "
            "compared exactly, so ' a' and 'a' would be two)."
        )
    return None


def normal(s: str) -> str:
    """``s`` in NFC (ASCII is NFC already)."""
    if s.isascii() or unicodedata.is_normalized("NFC", s):
        return s
    return unicodedata.normalize("NFC", s)


class _Refused(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _fix(s: str, field: str, what: str | None = None, limit: int = ID_MAX) -> str:
    """``s`` checked and normalised; raises :class:`_Refused` naming ``field``."""
    what = what or f"`{field}`"
    problem = identifier_problem(s, what)
    if problem is not None:
        raise _Refused(field, problem)
    out = normal(s)
    if len(out) > limit:
        raise _Refused(
            field,
            f"{what} is {len(out)} characters once normalised to NFC; the limit is {limit}.",
        )
    return out


def _fix_keys(values: dict[str, Any], field: str, value_limit: int | None = None) -> dict[str, Any]:
    """A dict whose keys (and, with ``value_limit``, string values) are identifiers, checked
    and normalised; two keys that become one under NFC are refused, not merged."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        k = _fix(key, field, f"a key of `{field}`")
        if k in out:
            raise _Refused(
                field,
                f"`{field}` has two keys that are the same name {shown(k)} once normalised to "
                "NFC; send it once.",
            )
        if value_limit is not None:
            value = _fix(value, f"{field}.{k}", limit=value_limit)
        out[k] = value
    return out


_NESTED: dict[type, Callable[[Any], list[str] | None]] = {
    BattleCompleted: lambda e: (
        [k for side in e.metrics.values() for k in side] if e.metrics else None
    ),
    TrialCompleted: lambda e: [*e.metrics, *e.dimensions, *e.dimensions.values()],
    GameCompleted: lambda e: [p.competitor for p in e.participants],
    ArenaConfigured: lambda e: [
        *(e.weights or ()),
        *([e.bt_anchor.competitor] if isinstance(e.bt_anchor, BTAnchor) else ()),
    ],
    ExperimentCreated: lambda e: list(e.competitors),
}
"""The identifiers inside an event's containers, for the fast check."""


def _all_plain(values: tuple[str | None, ...] | list[str]) -> bool:
    """True when every value (a string or None) is ASCII and :func:`_allowed`, decided in a few
    C-speed passes over the values joined by spaces: a control or non-ASCII character fails
    ``isascii``/``isprintable``, and a value with a space at an end leaves two spaces together
    or one at an end (as does a value with two spaces inside, which the exact check then
    passes). Empty values (``name`` may be one) are looked for apart: the join skips them."""
    joined = " ".join(filter(None, values))
    return (
        joined.isascii()
        and joined.isprintable()
        and "  " not in joined
        and joined[:1] != " "
        and joined[-1:] != " "
        and "" not in values
    )


def _nested(event: Event) -> dict[str, Any]:
    """The containers of ``event`` with their identifiers checked and normalised."""
    if isinstance(event, BattleCompleted) and event.metrics is not None:
        metrics = {s: _fix_keys(v, f"metrics.{s}") for s, v in event.metrics.items()}
        return {"metrics": metrics}
    if isinstance(event, TrialCompleted):
        return {
            "metrics": _fix_keys(event.metrics, "metrics"),
            "dimensions": _fix_keys(event.dimensions, "dimensions", DIMENSION_VALUE_MAX),
        }
    if isinstance(event, GameCompleted):
        players = [
            msgspec.structs.replace(
                p, competitor=_fix(p.competitor, f"participants[{i}].competitor")
            )
            for i, p in enumerate(event.participants)
        ]
        return {"participants": players}
    if isinstance(event, ArenaConfigured):
        fixed: dict[str, Any] = {}
        if event.weights is not None:
            fixed["weights"] = _fix_keys(event.weights, "weights")
        if isinstance(event.bt_anchor, BTAnchor):
            competitor = _fix(event.bt_anchor.competitor, "bt_anchor.competitor")
            fixed["bt_anchor"] = msgspec.structs.replace(event.bt_anchor, competitor=competitor)
        return fixed
    if isinstance(event, ExperimentCreated):
        return {
            "competitors": [_fix(c, f"competitors[{i}]") for i, c in enumerate(event.competitors)]
        }
    return {}


def check_identifiers(event: Event) -> Event | Rejection:
    """``event`` with every identifier checked (see the module) and normalised to NFC, or the
    rejection (``invalid_value``) of the first one refused. Returns ``event`` itself when
    nothing needs normalising."""
    names = FIELDS[type(event)]
    values = _GET[type(event)](event)
    nested = _NESTED.get(type(event))
    inside = nested(event) if nested is not None else None
    if _all_plain((*values, *inside) if inside else values):
        return event
    try:
        changes = {
            name: _fix(v, name, limit=_LIMIT.get(name, ID_MAX))
            for name, v in zip(names, values, strict=True)
            if v is not None
        }
        changes.update(_nested(event))
    except _Refused as refused:
        return Rejection(
            Code.INVALID_VALUE,
            refused.message,
            field=refused.field,
            event_id=event.event_id,
            type=type_name(event),
        )
    changes = {name: v for name, v in changes.items() if v != getattr(event, name)}
    return msgspec.structs.replace(event, **changes) if changes else event
