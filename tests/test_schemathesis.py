"""Schemathesis against the API's own OpenAPI schema, over HTTP, on real PostgreSQL and NATS.

The API runs in uvicorn on a free port (as in production), over a read model seeded through the
log and both projectors, so the routes have something to serve. Every documented operation is
fuzzed with schema-valid (positive) and schema-invalid (negative) requests; each answer must be no
5xx, a documented status code, the documented content type and a body that matches the schema,
and a request the schema forbids must be refused with a 4xx.

Bounded: ``ARBITER_SCHEMATHESIS_EXAMPLES`` (default 25) examples per operation and mode,
derandomized (the same cases on every run, so a failure is reproducible and CI is not flaky;
set ``ARBITER_SCHEMATHESIS_SEED`` to explore other cases).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .api_events import (
    battle,
    configured,
    game,
    registered,
    retired,
    score_vote,
    trial,
    void,
    vote,
)
from .api_events import (
    seed as seed_events,
)
from .helpers import running_api

EXAMPLES = int(os.environ.get("ARBITER_SCHEMATHESIS_EXAMPLES", "25"))
SEED = os.environ.get("ARBITER_SCHEMATHESIS_SEED")

# Excluded: the two server-sent-event streams never end on their own (they push the board, or
# an evaluation's progress, until the client goes away), so a request-response fuzzer would
# wait on them forever. Their parameters are checked by tests/test_api_boards.py and
# tests/evals/test_api_evaluations.py.
EXCLUDED = ("/leaderboard/stream", "/evaluations/{job_id}/events")

# What "conforms" means here. Not included: ``positive_data_acceptance``, because the API has
# rules a schema cannot express and answers them with a documented 400 (a battle's `a` and `b`
# must differ, `occurred_at` may be at most a day ahead, `as_of` must parse as a position or a
# time, a multipart upload must decode as audio), so schema-valid requests are rightly refused.
# 503s that say this machine lacks an optional part (the evals extra, Whisper's weights, which
# Arbiter never downloads): documented answers of POST /evaluations, not faults.
MISSING_PARTS = {"evals_unavailable", "whisper_unavailable"}


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' ``not_a_server_error``, less the documented 503s of :data:`MISSING_PARTS`."""
    if response.status_code == 503 and case.operation.path == "/evaluations":
        with contextlib.suppress(ValueError):
            if response.json().get("code") in MISSING_PARTS:
                return None
    return not_a_server_error(ctx, response, case)


SEEN: dict[str, set[int]] = {}
"""Status codes each operation answered, to show the fuzzing reached the handlers."""


def record_status(ctx: Any, response: Any, case: Any) -> bool | None:
    SEEN.setdefault(case.operation.label, set()).add(response.status_code)
    return None


CHECKS = [
    record_status,
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def seed_read_models(database_url: str) -> None:
    """A little of everything: arenas, categories, battles with votes and metrics, a game, an
    experiment with trials and score votes, a void, a retirement."""
    seed_events(
        database_url,
        [
            configured("cfg", arena="other", k=24.0),
            registered("alpha", name="Alpha", provider="acme", meta={"slug": "alpha"}),
            registered("beta", name="Beta"),
            battle("b1", "alpha", "beta", "a", metrics={"a": {"wer": 0.1}, "b": {"wer": 0.2}}),
            battle("b2", "beta", "alpha", "tie", at=1, category="chat", judge="human"),
            battle("b3", "alpha", "gamma", None, at=2, scenario="greeting"),
            battle("b4", "gamma", "beta", "b", at=3, arena="other"),
            vote("v1", "b3", "a", voter="u1", at=4),
            vote("v2", "b3", "b", voter="u2", at=5),
            game("g1", ("alpha", 1, 10.0), ("beta", 2, 5.0), ("gamma", 2), at=6),
            trial(
                "t1",
                "exp1",
                "alpha",
                at=7,
                metrics={"latency_ms": 120.0, "cost_usd": 0.01},
                dimensions={"persona": "calm"},
            ),
            trial("t2", "exp1", "beta", prompt=1, status="failed", at=8, error="timeout"),
            score_vote("s1", "t1", 4, voter="u1", at=9),
            battle("b5", "alpha", "beta", "b", at=10),
            void("x1", "b5", at=11),
            registered("delta", at=12),
            retired("delta", at=13),
        ],
    )


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, session: requests.Session) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=15)

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()


def test_api_conforms_to_its_openapi_schema(database_url: str, nats_url: str) -> None:
    seed_read_models(database_url)
    with running_api(database_url, nats_url) as base_url, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")
        operations = [op.ok() for op in schema.exclude(path=list(EXCLUDED)).get_all_operations()]
        labels = {op.label for op in operations}
        assert "POST /events" in labels and "POST /evaluations" in labels
        assert not labels & {f"GET {path}" for path in EXCLUDED}
        failures: list[str] = []
        SEEN.clear()
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, base_url, session)
                except Unsatisfiable:
                    # Negative mode on an operation whose only input is a free string (an id
                    # in the path): there is no schema-invalid request to make.
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (Exception, FailureGroup) as exc:
                    failures.append(f"{operation.label} ({mode.value}): {str(exc)[:4000]}")
        assert not failures, "\n\n".join(failures)
    # The fuzzing got past validation into the handlers: events were published, rows served.
    assert {202, 400} <= SEEN["POST /events"], SEEN
    for label in ("GET /leaderboard", "GET /battles", "GET /stats", "GET /events"):
        assert {200, 400} <= SEEN[label], (label, SEEN[label])
