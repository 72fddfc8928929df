"""Numbers cannot break a read model (issue 11, point 4).

Two trials with ``latency_ms: 1e308`` once made ``/stats`` and ``/experiments/{id}/results`` a
500 for everyone, forever: ``math.fsum`` overflowed. Now every known metric has a range and every
other one a bound (``arbiter.domain.metrics``), the ingest refuses the rest as ``invalid_value``,
and the aggregates cannot overflow for any value it accepts (nor for a log written before the
ranges existed). Against the real nats-server, ingest, PostgreSQL and API.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from arbiter.domain.aggregates import mean, total
from arbiter.domain.events import TrialCompleted
from arbiter.domain.experiments import TrialRecord, experiment_results
from arbiter.domain.rejections import Rejection
from arbiter.domain.stats import group_stats
from arbiter.domain.validation import decode_event
from arbiter.services.api import create_app
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from .api_events import assert_error, battle, seed, trial
from .helpers import ingest_all, rejected_messages
from .test_hostile import project_all

AT = "2025-01-01T00:00:00Z"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY_MS = 86_400_000.0
LARGEST = {
    "latency_ms": DAY_MS,
    "ttfb_ms": DAY_MS,
    "generation_time_ms": DAY_MS,
    "duration_s": 86_400.0,
    "silence_ratio": 1.0,
    "cost_usd": 1e6,
    "input_tokens": 2.0**53 - 1,
    "output_tokens": 2.0**53 - 1,
    "wer": 1000.0,
    "semascore": 1.0,
    "quality_score": 1.0,
    "free_metric": 1e15,
    "free_negative": -1e15,
}
"""The largest value the ingest accepts for each of these metrics."""


def trial_json(event_id: str, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "trial.completed", "event_id": event_id, "occurred_at": AT,
            "experiment_id": "e1", "trial_id": event_id, "competitor": "m1",
            "prompt_index": 0, "status": "completed", "metrics": metrics, **extra}  # fmt: skip


def battle_json(event_id: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"type": "battle.completed", "event_id": event_id, "occurred_at": AT,
            "battle_id": event_id, "a": "m1", "b": "m2", "outcome": "a",
            "metrics": metrics}  # fmt: skip


def decode(event: dict[str, Any]) -> Any:
    return decode_event(json.dumps(event).encode(), now=NOW)


# -- the ranges, at validation --------------------------------------------------------------------

OUT_OF_RANGE = [
    ("latency_ms", 1e308, "between 0 and 86,400,000 (milliseconds, up to one day)"),
    ("latency_ms", -0.5, "between 0 and 86,400,000"),
    ("ttfb_ms", DAY_MS + 1, "between 0 and 86,400,000"),
    ("duration_s", 86_401.0, "between 0 and 86,400 (seconds, up to one day)"),
    ("silence_ratio", 1.5, "between 0 and 1 (a fraction)"),
    ("cost_usd", -0.01, "between 0 and 1,000,000 (US dollars for one result)"),
    ("input_tokens", 2.0**53, "a whole number from 0 up to (not including) 9,007,199,254,740,992"),
    ("output_tokens", 12.5, "a whole number"),
    ("wer", 1000.5, "between 0 and 1,000"),
    ("semascore", -0.1, "between 0 and 1 (a score)"),
    ("free_metric", 1.0000001e15, "does not know by name must lie within ±1e+15"),
    ("free_metric", -1e300, "±1e+15"),
    ("wer_score", 0.1, "a seed's name for the metric Arbiter calls `wer`"),
    ("duration_seconds", 1.0, "Arbiter calls `duration_s`"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "says"), OUT_OF_RANGE)
def test_a_metric_out_of_its_range_is_refused(name: str, value: float, says: str) -> None:
    for event, where in (
        (trial_json("t", {name: value}), f"metrics.{name}"),
        (battle_json("b", {"a": {"wer": 0.1}, "b": {name: value}}), f"metrics.b.{name}"),
    ):
        result = decode(event)
        assert isinstance(result, Rejection), (name, value)
        assert (result.code, result.field) == ("invalid_value", where)
        assert result.message.startswith(f"{where} ") and says in result.message
        assert result.message.endswith(".")


def test_the_largest_values_and_the_bounds_are_accepted() -> None:
    assert not isinstance(decode(trial_json("t", LARGEST)), Rejection)
    smallest = {name: 0.0 for name in LARGEST} | {"free_negative": -1e15}
    assert not isinstance(decode(trial_json("t", smallest)), Rejection)
    assert not isinstance(decode(battle_json("b", {"a": LARGEST, "b": smallest})), Rejection)


# -- through the real ingest ----------------------------------------------------------------------


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def assert_reads_answer(client: AsyncTestClient[Any]) -> dict[str, Any]:
    """The three read models that aggregate metrics answer 200; their bodies."""
    bodies = {}
    for url in ("/stats", "/stats?group_by=persona", "/experiments/e1/results", "/leaderboard"):
        response = await client.get(url)
        assert response.status_code == 200, (url, response.text)
        bodies[url] = response.json()
    return bodies


async def test_huge_metrics_are_refused_by_the_ingest_and_reads_stay_up(
    database_url: str, nats_url: str, client: AsyncTestClient[Any]
) -> None:
    dims = {"dimensions": {"persona": "p"}}
    payloads = [
        trial_json("ok", {"latency_ms": 100.0}, **dims),
        # The two trials that once broke /stats and /experiments/e1/results for everyone.
        trial_json("huge-1", {"latency_ms": 1e308}, **dims),
        trial_json("huge-2", {"latency_ms": 1e308}, **dims),
        trial_json("free", {"my_score": -1e300}, **dims),
        trial_json("seed-name", {"wer_score": 0.2}, **dims),
        battle_json("cost", {"a": {"cost_usd": -1.0}, "b": {}}),
    ]
    ingest = await ingest_all(database_url, nats_url, payloads)
    assert (ingest.stats.appended, ingest.stats.rejected) == (1, 5), ingest.stats
    codes = {
        m["rejection"]["event_id"]: (m["rejection"]["code"], m["rejection"]["field"])
        for m in await rejected_messages(nats_url)
    }
    assert codes == {
        "huge-1": ("invalid_value", "metrics.latency_ms"),
        "huge-2": ("invalid_value", "metrics.latency_ms"),
        "free": ("invalid_value", "metrics.my_score"),
        "seed-name": ("invalid_value", "metrics.wer_score"),
        "cost": ("invalid_value", "metrics.a.cost_usd"),
    }
    project_all(database_url)
    bodies = await assert_reads_answer(client)
    (group,) = bodies["/stats"]["groups"]
    assert (group["count"], group["avg_latency_ms"]) == (1, 100.0)

    # POST /events applies the same rule.
    body = assert_error(
        await client.post("/events", content=json.dumps(trial_json("post", {"latency_ms": 1e308}))),
        400,
        "invalid_value",
    )
    assert body["field"] == "metrics.latency_ms" and "86,400,000" in body["message"]


async def test_the_largest_accepted_values_on_many_results_never_break_a_read(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    n = 300
    events: list[Any] = []
    for i in range(n):
        competitor = ("m1", "m2")[i % 2]
        events.append(
            trial(f"t{i}", "e1", competitor, i % 3, at=i, metrics=LARGEST,
                  dimensions={"persona": "p"})
        )  # fmt: skip
        events.append(
            battle(f"b{i}", "m1", "m2", "ab"[i % 2], at=i, metrics={"a": LARGEST, "b": LARGEST})
        )
    seed(database_url, events)
    bodies = await assert_reads_answer(client)

    stats = {g["key"]: g for g in bodies["/stats"]["groups"]}
    assert set(stats) == {"m1", "m2"}
    for g in stats.values():
        assert g["count"] == n // 2 and g["avg_latency_ms"] == DAY_MS
        assert g["total_cost_usd"] == 1e6 * (n // 2)
        assert g["avg_input_tokens"] == pytest.approx(2.0**53 - 1, rel=1e-15)
        assert g["metrics"]["free_metric"] == 1e15 and g["metrics"]["free_negative"] == -1e15
    (persona,) = bodies["/stats?group_by=persona"]["groups"]
    assert persona["count"] == n and persona["total_cost_usd"] == 1e6 * n

    results = bodies["/experiments/e1/results"]
    assert results["completed"] == n and results["winner"] is None  # equal composites
    for summary in results["competitors"]:
        assert summary["avg_ttfb_ms"] == DAY_MS and summary["total_cost_usd"] == 1e6 * (n // 2)
        assert summary["metrics"]["free_negative"] == -1e15
    assert results["head_to_head"] == [{"a": "m1", "b": "m2", "a_wins": 0, "b_wins": 0, "ties": 3}]

    rows = {r["competitor"]: r for r in bodies["/leaderboard"]["rows"]}
    for row in rows.values():
        assert row["metrics"]["latency_ms"] == DAY_MS and row["metrics"]["free_metric"] == 1e15
        assert row["metrics"]["input_tokens"] == 2.0**53 - 1


async def test_values_from_before_the_ranges_do_not_break_the_reads(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """A log written before the ranges existed may hold 1e308: appended here past the ingest's
    validation (the store takes what it is given), the reads still answer, with exact means."""
    seed(
        database_url,
        [
            trial(
                f"t{i}",
                "e1",
                "m1",
                at=i,
                metrics={"latency_ms": 1e308, "cost_usd": 1.0},
                dimensions={"persona": "p"},
            )
            for i in range(3)
        ],
    )
    bodies = await assert_reads_answer(client)
    (group,) = bodies["/stats"]["groups"]
    assert group["avg_latency_ms"] == pytest.approx(1e308, rel=1e-15)
    assert group["total_cost_usd"] == 3.0
    (summary,) = bodies["/experiments/e1/results"]["competitors"]
    assert summary["avg_latency_ms"] == pytest.approx(1e308, rel=1e-15)


# -- the aggregates, over everything the ingest accepts -------------------------------------------

NAMES = ["latency_ms", "ttfb_ms", "generation_time_ms", "duration_s", "silence_ratio", "cost_usd",
         "input_tokens", "wer", "semascore", "free_metric"]  # fmt: skip
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, DAY_MS, 1e6, 2.0**53 - 1, 1e15, -1e15, 1e308, -1e308, 1.7e308]),
)


@st.composite
def accepted_trials(draw: Any) -> list[TrialRecord]:
    """Trials the ingest accepts: drawn from every float, kept only when ``decode_event`` takes
    them; each repeated up to 2,000 times, so the largest values add up."""
    rows = []
    for i in range(draw(st.integers(1, 6))):
        metrics = draw(st.dictionaries(st.sampled_from(NAMES), VALUES, min_size=1))
        event = decode(trial_json(f"t{i}", metrics, dimensions={"persona": "p"}))
        if isinstance(event, Rejection):
            continue
        assert isinstance(event, TrialCompleted)
        record = TrialRecord(
            trial_id=event.trial_id, competitor=draw(st.sampled_from(["a", "b"])),
            prompt_index=draw(st.integers(0, 2)), status="completed", metrics=event.metrics,
            dimensions=event.dimensions,
        )  # fmt: skip
        rows += [record] * draw(st.integers(1, 2000))
    assume(rows)
    return rows


def _between(average: float | None, values: list[float]) -> bool:
    """An average lies between the smallest and the largest value, give or take its rounding."""
    assert average is not None and math.isfinite(average)
    slack = 4 * math.ulp(max(abs(min(values)), abs(max(values))))
    return min(values) - slack <= average <= max(values) + slack


def _finite_floats(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_floats(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite_floats(v) for v in value)
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accepted_trials())
def test_aggregates_of_accepted_values_are_finite(rows: list[TrialRecord]) -> None:
    import msgspec

    for group_by in ("competitor", "persona"):
        for g in group_stats(rows, group_by):
            assert _finite_floats(msgspec.to_builtins(g)), g
    results = experiment_results(rows)
    assert _finite_floats(msgspec.to_builtins(results)), results
    for name in NAMES:
        values = [r.metrics[name] for r in rows if name in r.metrics]
        if values:
            assert _between(mean(values), values)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_mean_never_overflows_and_total_is_fsum_where_that_fits(values: list[float]) -> None:
    assert _between(mean(values), values)
    try:
        expected = math.fsum(values)
    except OverflowError:
        assert not math.isnan(total(values))
    else:
        assert total(values) == expected
