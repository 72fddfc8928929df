"""The property: incremental folding in any batch sizes, across crashes, equals a rebuild
from scratch equals the audit replay. Against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psutil
import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.decisions import Facts, own
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    BTAnchor,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    GameCompleted,
    Participant,
    ResultVoided,
    TrialCompleted,
    VoteCast,
)
from arbiter.projections import PROJECTIONS, ratings, results
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from arbiter.services.processes.rebuild import FAULT_WORKER, RebuildError, rebuild
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = PROJECTIONS["ratings"]
RESULTS = PROJECTIONS["results"]
NAMES = [f"m{i}" for i in range(6)]
ANCHOR = BTAnchor(competitor="m1", rating=1114.0)
ADMIN = "key:ak_000000ad"
SOURCES = st.sampled_from([None, "worker", "key:ak_0000000a", "key:ak_0000000b", ADMIN])
"""Writers: the trusted path (no source, a NATS worker), two keys that own things and write
about each other's (refused ``not_owner``), and an admin key (allowed everywhere)."""


@st.composite
def events(draw: Any) -> list[Event]:
    """Random mixes of every event type the ratings fold reads, voids included. Votes and voids
    point at earlier results (or at ids that never come, which the store defers, or at a setting,
    which it rejects); every event has a writer (:data:`SOURCES`), so ownership refuses some:
    the property holds for whatever the store accepts."""
    n = draw(st.integers(1, 60))
    out: list[Event] = []
    results: list[str] = []
    battles: list[str] = []
    trials: list[str] = []
    kinds = ["battle"] * 6 + ["game"] * 3 + ["vote"] * 3 + ["void"] * 2 + ["trial"] * 2
    kinds += ["config", "register", "retire", "declare", "close"]
    for i in range(n):
        kind = draw(st.sampled_from(kinds))
        at = T0 + timedelta(minutes=draw(st.integers(0, 10_000)))
        arena = draw(st.sampled_from(["default", "voice"]))
        category = draw(st.sampled_from([None, "support", "sales"]))
        eid = f"e{i}"
        if kind == "battle":
            a, b = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=2, unique=True))
            metric = st.floats(0, 1, allow_nan=False)
            # Both sides measured: the auto-judge decides it where the arena opted in.
            judged = {"a": {"semascore": draw(metric), "latency_ms": 1000 * draw(metric)},
                      "b": {"semascore": draw(metric), "wer": draw(metric)}}  # fmt: skip
            sides = draw(st.sampled_from([None, {"a": {"wer": draw(metric)}, "b": {}}, judged]))
            out.append(BattleCompleted(
                event_id=eid, occurred_at=at, arena=arena, battle_id=f"b{i}", a=a, b=b,
                metrics=sides,
                outcome=draw(st.sampled_from(["a", "b", "tie", None])),
                judge=draw(st.sampled_from(["auto", "human", "gpt-judge"])), category=category,
            ))  # fmt: skip
            results.append(eid)
            battles.append(f"b{i}")
        elif kind == "game":
            players = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=5, unique=True))
            out.append(GameCompleted(
                event_id=eid, occurred_at=at, arena=arena, category=category, game_id=f"g{i}",
                participants=[
                    Participant(
                        competitor=p,
                        rank=draw(st.integers(1, 3)),
                        score=draw(st.none() | st.floats(-50, 50, allow_nan=False, width=32)),
                    )
                    for p in players
                ],
            ))  # fmt: skip
            results.append(eid)
        elif kind == "trial":
            metric = st.floats(0, 5000, allow_nan=False, width=32)
            out.append(TrialCompleted(
                event_id=eid, occurred_at=at, arena=arena, category=category,
                experiment_id=draw(st.sampled_from(["x1", "x2"])), trial_id=f"t{i}",
                competitor=draw(st.sampled_from(NAMES)),
                prompt_index=draw(st.integers(0, 3)),
                status=draw(st.sampled_from(["completed", "completed", "failed"])),
                metrics=draw(st.dictionaries(st.sampled_from(["ttfb_ms", "cost_usd"]), metric)),
                dimensions={"persona": draw(st.sampled_from(["a", "b"]))},
            ))  # fmt: skip
            results.append(eid)
            trials.append(f"t{i}")
        elif kind == "vote" and trials and draw(st.booleans()):
            out.append(VoteCast(
                event_id=eid, occurred_at=at, vote_id=f"v{i}",
                trial_id=draw(st.sampled_from(trials)),
                voter=draw(st.sampled_from(["ann", "bob"])), score=draw(st.integers(1, 5)),
            ))  # fmt: skip
            results.append(eid)
        elif kind == "vote":
            battle = draw(st.sampled_from([*battles, "nowhere"]))
            out.append(VoteCast(
                event_id=eid, occurred_at=at, vote_id=f"v{i}", battle_id=battle,
                voter=draw(st.sampled_from(["ann", "bob"])),
                choice=draw(st.sampled_from(["a", "b", "tie"])),
            ))  # fmt: skip
            results.append(eid)
        elif kind == "void":
            target = draw(st.sampled_from([*results, "e0", "missing"]))
            out.append(ResultVoided(event_id=eid, occurred_at=at, target_event_id=target))
        elif kind == "declare":
            out.append(ExperimentCreated(
                event_id=eid, occurred_at=at, arena=arena, category=category,
                experiment_id=draw(st.sampled_from(["x1", "x2", "x3"])), name=f"exp {i}",
                competitors=draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3,
                                          unique=True)),
                prompt_count=draw(st.integers(1, 4)), trials_per_prompt=draw(st.integers(1, 2)),
                webhook_url=draw(st.sampled_from([None, "https://example.com/hook"])),
            ))  # fmt: skip
        elif kind == "close":
            out.append(ExperimentCompleted(
                event_id=eid, occurred_at=at,
                experiment_id=draw(st.sampled_from(["x1", "x2", "x3"])),
                reason=draw(st.sampled_from([None, "enough"])),
            ))  # fmt: skip
        elif kind == "config":
            out.append(ArenaConfigured(
                event_id=eid, occurred_at=at, arena=arena,
                k=draw(st.sampled_from([None, 16.0, 24.5])),
                initial=draw(st.sampled_from([None, 1000.0])),
                weights=draw(st.sampled_from([None, {"human": 3.0}])),
                auto_judge=draw(st.sampled_from([None, True, True, False])),
                bt_anchor=draw(st.sampled_from([None, "mean", ANCHOR])),
            ))  # fmt: skip
        elif kind == "register":
            out.append(CompetitorRegistered(
                event_id=eid, occurred_at=at, arena=arena,
                competitor=draw(st.sampled_from(NAMES)),
                name=draw(st.sampled_from([None, "Model"])), meta={"price": 1.5, "b": [1]},
            ))  # fmt: skip
        else:
            out.append(CompetitorRetired(
                event_id=eid, occurred_at=at, competitor=draw(st.sampled_from(NAMES)),
            ))  # fmt: skip
        if out and out[-1].event_id == eid:
            out[-1] = msgspec.structs.replace(out[-1], source=draw(SOURCES))
    return out


def _reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE arbiter_events, arbiter_event_ids, arbiter_competitors, arbiter_arenas, "
            "arbiter_owners"
        )
        conn.execute("ALTER SEQUENCE arbiter_events_notification_id_seq RESTART")
        conn.execute(
            "INSERT INTO arbiter_api_keys (key_id, name, scopes, sha256) "
            "VALUES (%s, 'admin', ARRAY['admin'], %s) ON CONFLICT DO NOTHING",
            (ADMIN.removeprefix("key:"), bytes(32)),
        )
        for table in (
            "arenas",
            "competitors",
            "ratings",
            "rating_history",
            "pairs",
            "matches",
            "voids",
            "arena_competitors",
            "arena_configs",
        ):
            conn.execute(f"TRUNCATE arbiter_ratings.{table}")
        conn.execute("UPDATE arbiter_ratings.tracking SET position = 0, events = 0")
        for table in ("battles", "games", "votes", "trials", "competitor_metrics", "event_counts",
                      "experiments"):  # fmt: skip
            conn.execute(f"TRUNCATE arbiter_results.{table}")
        conn.execute("TRUNCATE arbiter_results.competitor_game_scores")
        conn.execute("TRUNCATE arbiter_results.battle_counts")
        for table in ("event_index", "event_competitors", "event_entities"):
            conn.execute(f"TRUNCATE arbiter_results.{table}")
        conn.execute("UPDATE arbiter_results.tracking SET position = 0, events = 0")


def _stored(url: str) -> tuple[dict[str, Any], list[Any]]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        rows = ratings.stored_rows(cur, SPEC.schema)
        history = sorted(ratings.stored_history(cur, SPEC.schema))
    return rows, history


def _stored_results(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        return results.stored_rows(cur, RESULTS.schema)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(evs=events(), data=st.data())
def test_incremental_equals_rebuild_equals_audit(
    database_url: str, evs: list[Event], data: Any
) -> None:
    _reset(database_url)
    with EventLog(database_url) as log:
        _check(database_url, log, evs, data)


def _check(database_url: str, log: EventLog, evs: list[Event], data: Any) -> None:
    projector = Projector(database_url, SPEC, event_log=log)
    other = Projector(database_url, RESULTS, event_log=log)
    i = 0
    while i < len(evs):
        size = data.draw(st.integers(1, 15), label="append batch")
        log.append(evs[i : i + size])
        i += size
        projector.batch_size = data.draw(st.integers(1, 20), label="fold batch")
        projector.step()
        other.batch_size = data.draw(st.integers(1, 20), label="results batch")
        other.step()
        if data.draw(st.booleans(), label="crash"):
            projector.close()  # a crash between batches: a new process reloads from the store
            projector = Projector(database_url, SPEC, event_log=log)
    projector.catch_up()
    other.catch_up()
    other.close()
    _check_owners(database_url, log)
    incremental_results = _stored_results(database_url)
    rebuild(database_url, RESULTS, event_log=log)
    assert _stored_results(database_url) == incremental_results
    incremental = _stored(database_url)
    report = verify(database_url, event_log=log)
    assert report.ok, report.mismatches
    assert report.position == log.store.head()
    workers = data.draw(st.sampled_from([1, 2]), label="rebuild processes")
    result = rebuild(database_url, SPEC, event_log=log, workers=workers)
    assert _stored(database_url) == incremental
    again = verify(database_url, event_log=log)
    assert again.ok and again.digest == report.digest
    # The running projector notices the new generation on its next batch and reloads.
    log.append(
        [
            BattleCompleted(
                event_id="late", occurred_at=T0, battle_id="late", a="l0", b="l1", outcome="tie"
            )
        ]
    )
    projector.catch_up()
    assert projector.generation == result.generation
    assert verify(database_url, event_log=log).ok
    projector.close()


def _check_owners(database_url: str, log: EventLog) -> None:
    """What the store recorded as owners is what the log says (the fill from the log gives the
    same rows), and no key wrote a trial into an experiment another key owns."""
    accepted = [e for _, e in log.store.read_after(0, 10_000)]
    facts = Facts()
    for e in accepted:
        own(e, facts)
    with psycopg.connect(database_url) as conn:
        stored = dict(conn.execute("SELECT thing, owner FROM arbiter_owners").fetchall())
    assert stored == facts.owners
    for e in accepted:
        if isinstance(e, TrialCompleted | ExperimentCreated | ExperimentCompleted) and (
            e.source not in (None, "worker", ADMIN)
        ):
            assert facts.owners[f"experiment:{e.experiment_id}"] in (e.source, None, "", "worker")


def test_audit_names_a_tampered_rating(database_url: str) -> None:
    log = EventLog(database_url)
    log.append([
        BattleCompleted(event_id=f"e{i}", occurred_at=T0, battle_id=f"b{i}", a="x", b="y",
                        outcome="a")
        for i in range(3)
    ])  # fmt: skip
    Projector(database_url, SPEC, event_log=log).catch_up()
    assert verify(database_url, event_log=log).ok
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE arbiter_ratings.ratings SET rating = rating + 1e-9 WHERE competitor='x'"
        )
        conn.execute(
            "DELETE FROM arbiter_ratings.rating_history WHERE competitor='y' AND position = 2"
        )
    report = verify(database_url, event_log=log)
    assert not report.ok
    text = "\n".join(report.mismatches)
    assert "('default', '', 'x').rating" in text
    assert "rating_history of 'y'" in text


@settings(max_examples=200, deadline=None)
@given(evs=events(), every=st.integers(1, 9))
def test_two_shards_together_are_the_whole_fold(evs: list[Event], every: int) -> None:
    """A sharded rebuild folds the log into the arena-wide pools in one process and forwards
    results and voids to a second, which rates the category pools and stores ``matches``: their
    rows, put together, must be exactly those of one fold of the whole log."""
    whole = ratings.RatingsFold()
    overall = ratings.RatingsFold(ratings.Shard(categories=False))
    categories = ratings.RatingsFold(ratings.Shard(categories=True))
    wire = msgspec.msgpack.Decoder(ratings.Forwarded)
    taken: list[list[ratings.Rows]] = [[], [], []]
    for position, event in enumerate(evs, start=1):
        whole.apply(position, event)
        overall.apply(position, event)
        if position % every == 0 or position == len(evs):
            batch = wire.decode(msgspec.msgpack.encode(overall.take_forwarded()))
            categories.apply_forwarded(batch)
            for fold, out in zip((whole, overall, categories), taken, strict=True):
                out.append(ratings.prepare(fold, fold.take_appends()))
    for fold, out in zip((whole, overall, categories), taken, strict=True):
        out.append(ratings.prepare(fold, fold.take_changes()))

    def union(field: str, rows: list[ratings.Rows]) -> list[Any]:
        return sorted((r for batch in rows for r in getattr(batch, field)), key=repr)

    for field in ("standings", "pairs", "history"):
        assert union(field, taken[0]) == sorted(
            [*union(field, taken[1]), *union(field, taken[2])], key=repr
        ), field
    assert union("matches", taken[0]) == union("matches", taken[2])
    assert union("matches", taken[1]) == []
    for field in ("competitors", "arenas", "voids", "presence", "configs"):
        assert union(field, taken[0]) == union(field, taken[1]), field
        assert union(field, taken[2]) == [], field
    assert all(r.globals for r in taken[1]) and not any(r.globals for r in taken[2])
    assert overall.position == whole.position


def test_sharded_rebuild_folds_what_arrived_while_it_ran(database_url: str) -> None:
    """Events appended after a two-process rebuild took its head are folded under the swap's
    lock, on the whole model read back from the fresh tables; the result is what one process
    folding everything makes, and the audit agrees."""
    _reset(database_url)
    evs: list[Event] = [
        BattleCompleted(
            event_id=f"s{i}",
            occurred_at=T0 + timedelta(minutes=i),
            battle_id=f"sb{i}",
            a=NAMES[i % 5],
            b=NAMES[(i + 1) % 5],
            outcome=("a", "b", "tie")[i % 3],
            category=(None, "support", "sales")[i % 3],
            arena=("default", "voice")[i % 2],
        )
        for i in range(300)
    ]
    late: list[Event] = [
        VoteCast(
            event_id="late-vote",
            occurred_at=T0,
            vote_id="lv",
            battle_id="sb1",
            voter="v",
            choice="b",
        ),
        ResultVoided(event_id="late-void", occurred_at=T0, target_event_id="s4"),
    ]
    with EventLog(database_url) as log:
        log.append(evs)
        appended: list[int] = []

        def progress(_position: int, _head: int) -> None:
            if not appended:
                appended.append(1)
                log.append(late)

        result = rebuild(database_url, SPEC, event_log=log, workers=2, progress=progress)
        assert result.workers == 2 and result.position == log.store.head()
        sharded = _stored(database_url)
        assert verify(database_url, event_log=log).ok
        rebuild(database_url, SPEC, event_log=log, workers=1)
        assert _stored(database_url) == sharded


def test_a_failing_rebuild_worker_fails_the_rebuild_and_leaves_the_live_model(
    database_url: str, monkeypatch: Any
) -> None:
    """The worker's traceback comes back as the rebuild's error, no process is left behind,
    and the live read model is the one from before."""
    _reset(database_url)
    with EventLog(database_url) as log:
        log.append(
            [
                BattleCompleted(
                    event_id=f"f{i}",
                    occurred_at=T0,
                    battle_id=f"fb{i}",
                    a="m0",
                    b="m1",
                    outcome="a",
                    category="support",
                )
                for i in range(50)
            ]
        )
        rebuild(database_url, SPEC, event_log=log, workers=1)
        before = _stored(database_url)
        monkeypatch.setenv(FAULT_WORKER, "1")
        with pytest.raises(RebuildError, match="failing as a test asked"):
            rebuild(database_url, SPEC, event_log=log, workers=2)
        assert _stored(database_url) == before
        assert verify(database_url, event_log=log).ok
        assert not _rebuild_workers()


def _rebuild_workers() -> list[psutil.Process]:
    """This process's children that are rebuild workers. Other tests' children that have exited
    and not been reaped yet (zombies, whose command line cannot be read) are not workers left
    running, and one that ends while listed is gone."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "processes.rebuild_worker" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            pass
    return found
