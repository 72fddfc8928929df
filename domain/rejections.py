"""Rejections: why an event did not enter the log, in a form both machines and people can use.

Every event that is not appended is answered by a :class:`Rejection` on ``ARBITER_REJECTED``
(or a 400 from ``POST /events``). The ``code`` is stable and machine-readable; the ``message``
is a sentence that says what to change.
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import Struct

__all__ = ["Code", "RejectedEvent", "Rejection"]


class Code(StrEnum):
    """Stable rejection codes. Never renumber or rename: producers match on them."""

    TOO_LARGE = "too_large"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_OUTCOME = "unknown_outcome"
    NON_FINITE_NUMBER = "non_finite_number"
    INVALID_TIMESTAMP = "invalid_timestamp"
    SAME_COMPETITOR = "same_competitor"
    CONFLICT = "conflict"
    UNKNOWN_COMPETITOR = "unknown_competitor"
    COMPETITOR_RETIRED = "competitor_retired"
    DUPLICATE_PARTICIPANT = "duplicate_participant"
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    INVALID_VOTE = "invalid_vote"
    DUPLICATE_VOTE = "duplicate_vote"
    UNKNOWN_TARGET = "unknown_target"
    INVALID_TARGET = "invalid_target"
    ALREADY_VOIDED = "already_voided"
    NOT_OWNER = "not_owner"
    WRONG_SUBJECT = "wrong_subject"


class Rejection(Struct, frozen=True, omit_defaults=True):
    """Why one event was refused.

    ``event_id`` and ``type`` are filled in whenever they could be read from the message, so a
    producer can match the rejection to what it sent even when the rest did not parse.
    """

    code: Code
    message: str
    field: str | None = None
    event_id: str | None = None
    type: str | None = None


class RejectedEvent(Struct, frozen=True, omit_defaults=True):
    """What ``ARBITER_REJECTED`` carries: the rejection plus the original bytes, verbatim.

    ``original`` is the message as received, decoded as UTF-8 with replacement so that the
    envelope itself is always valid JSON; ``original_b64`` holds the exact bytes when they were
    not valid UTF-8.
    """

    rejection: Rejection
    original: str
    original_b64: str | None = None
    subject: str | None = None
    stream_seq: int | None = None
