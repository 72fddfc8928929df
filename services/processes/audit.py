"""The audit: replay the log in memory with the same pure folds and compare with the read model.

``verify`` reads the stored model inside one REPEATABLE READ snapshot, so a projector running
meanwhile cannot make it compare two different moments: it takes the stored position P from the
snapshot, folds the log up to exactly P, and compares every row (ratings and counters, the
registry, arena settings) and every history row (as a per-competitor multiset digest, so millions
of rows compare in constant memory). The printed digest is a SHA-256 of the verified state:
two deployments with the same log print the same digest.

The same pass checks the log's hash chain (:class:`ChainReader`, the page reader it gives the
paging loop): every event read is checked as it is read, and the pages past P, up to the log's
head, are read for the chain alone. The report carries the chain head and every break.

This module drives the replay (on the shared paging loop, :mod:`.paging`, with the collector
paused); what is compared and how it is digested is the ratings package's
(:mod:`arbiter.projections.ratings.audit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.operations import record_operation
from arbiter.domain.chain import ChainCheck
from arbiter.projections import PROJECTIONS, ratings, results, results_audit, tracking
from arbiter.projections.tables import compare_tables, unaudited
from psycopg import sql

from .paging import Page, collector_paused, fold_page, pages

__all__ = [
    "AuditReport",
    "ChainReader",
    "Change",
    "Quarantined",
    "ReplayedState",
    "explain",
    "quarantined",
    "replay_models",
    "verify",
]


@dataclass(frozen=True)
class Quarantined:
    projection: str
    position: int
    event_id: str
    error: str


def quarantined(cur: Any) -> list[Quarantined]:
    """Every projection's quarantined events, in log order (within the caller's snapshot)."""
    out = []
    for spec in PROJECTIONS.values():
        cur.execute(
            sql.SQL("SELECT position, event_id, error FROM {}.quarantine ORDER BY position").format(
                sql.Identifier(spec.schema)
            )
        )
        out.extend(Quarantined(spec.name, int(p), e, err) for p, e, err in cur.fetchall())
    return out


@dataclass
class AuditReport:
    position: int
    events: int
    digest: str
    mismatches: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    """Events a projector quarantined (its fold raised on them): skipped by the replay as by the
    projector, so not a mismatch, but listed for a person to look at."""

    chain_position: int = 0
    """The last position whose chain hash was checked (the log's head when the audit read it)."""
    chain_head: str = ""
    """The stored chain hash at ``chain_position`` (hex; 64 zeros for an empty log)."""
    chain_breaks: list[str] = field(default_factory=list)
    """Where the recomputed hash chain differs from the stored one, first break first."""

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.chain_breaks


class ChainReader:
    """A page reader for the paging loop that checks the hash chain of every event it reads
    (:class:`arbiter.domain.chain.ChainCheck`): the audit's one pass over the log both folds and
    verifies the chain. A position is checked once even if read twice."""

    def __init__(self, event_log: EventLog) -> None:
        self.store = event_log.store
        self.check = ChainCheck()

    def __call__(self, after: int, size: int) -> Page:
        page = self.store.read_links_after(after, size)
        check = self.check
        for position, event, stored in page:
            if position > check.position:
                check.check(position, event, stored)
        return [(position, event) for position, event, _ in page]


def verify(
    database_url: str,
    *,
    event_log: EventLog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Replay the log and compare with both stored read models, every table."""
    if event_log is None:
        with EventLog(database_url) as owned:
            return verify(database_url, event_log=owned, progress=progress)
    started = time.perf_counter()
    with collector_paused():
        report = _verify(database_url, event_log, progress)
    record_operation(
        database_url, "audit", "", seconds=time.perf_counter() - started, ok=report.ok,
        position=report.position, events=report.events,
    )  # fmt: skip
    return report


def _verify(
    database_url: str, event_log: EventLog, progress: Callable[[int, int], None] | None
) -> AuditReport:
    schema = f"arbiter_{ratings.NAME}"
    results_schema = f"arbiter_{results.NAME}"
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SET TIME ZONE 'UTC'")
        with conn.cursor() as cur:
            position = tracking.position(cur, schema, ratings.NAME)
            stored = ratings.stored_rows(cur, schema)
            stored_history = ratings.history_digests(ratings.stored_history(cur, schema))
            results_position = tracking.position(cur, results_schema, results.NAME)
            stored_results = results_audit.stored_tables(cur, results_schema)
            mismatches = _unaudited(cur, schema, results_schema)
            skipped = quarantined(cur)
        conn.rollback()
    skip = {q.position for q in skipped if q.projection == ratings.NAME}
    results_skip = {q.position for q in skipped if q.projection == results.NAME}
    until = max(position, results_position)
    head = event_log.store.head()  # the chain is checked to here, the folds to their positions
    chain = ChainReader(event_log)
    state = replay_models(
        pages(event_log, 0, until, read=chain),
        position,
        results_position,
        skip,
        results_skip,
        progress,
    )
    for _ in pages(event_log, max(until, chain.check.position), head, read=chain):
        pass  # the rest of the chain, past what the projections have folded
    mismatches += ratings.compare(state.ratings_rows, stored)
    mismatches += ratings.compare_history(state.history, stored_history)
    if state.ratings.position != position and state.ratings.events:
        mismatches.append(
            f"position: replay reached {state.ratings.position}, store is at {position}"
        )
    mismatches += compare_tables(
        "results.", results_audit.TABLES, state.results_rows, stored_results
    )
    if state.results.position != results_position and state.results.events:
        mismatches.append(
            f"results position: replay reached {state.results.position}, store is at "
            f"{results_position}"
        )
    return AuditReport(
        position,
        state.ratings.events,
        state.digest,
        mismatches,
        skipped,
        chain.check.position,
        chain.check.previous.hex(),
        chain.check.breaks,
    )


@dataclass
class ReplayedState:
    """Both read models as a replay of the log re-derives them, and the digest of that state:
    what the live audit compares with the stored tables, and what ``audit verify --from FILE``
    re-derives from an export with no server at all."""

    ratings: ratings.RatingsFold
    ratings_rows: dict[str, dict[Any, tuple[Any, ...]]]
    history: ratings.HistoryDigests
    results: results_audit.ResultsReplay
    results_rows: dict[str, dict[Any, tuple[Any, ...]]]

    @property
    def digest(self) -> str:
        """SHA-256 over every replayed row of both models and the history digests."""
        state = self.ratings_rows | {f"results.{t}": r for t, r in self.results_rows.items()}
        return ratings.state_digest(state, self.history)


def replay_models(
    log_pages: Iterable[Page],
    position: int,
    results_position: int,
    skip: set[int] | frozenset[int] = frozenset(),
    results_skip: set[int] | frozenset[int] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> ReplayedState:
    """Fold pages of the log into both read models, the ratings up to ``position`` and the
    results up to ``results_position``, each skipping the positions its projector quarantined
    (one pass feeds both)."""
    fold = ratings.RatingsFold()
    replayed_history: ratings.HistoryDigests = {}
    appended: dict[str, dict[Any, tuple[Any, ...]]] = {"matches": {}, "voids": {}}
    replay = results_audit.ResultsReplay()
    until = max(position, results_position)
    for page in log_pages:
        # Skipped positions are skipped as the projector skipped them.
        fold_page(fold, _upto(page, position), skip)
        changes = fold.take_changes()
        ratings.history_digests(changes.history, replayed_history)
        ratings.appended_rows(changes, appended)
        fold_page(replay, _upto(page, results_position), results_skip)
        if progress:
            progress(page[-1][0], until)
    return ReplayedState(fold, fold.rows() | appended, replayed_history, replay, replay.rows())


def _upto(page: Page, until: int) -> Page:
    """The part of a page at or before ``until``."""
    return page if page[-1][0] <= until else [entry for entry in page if entry[0] <= until]


def _unaudited(cur: Any, schema: str, results_schema: str) -> list[str]:
    """Tables and columns of either read model that nothing compares (see
    :mod:`arbiter.projections.tables`): a mismatch, so new state cannot go unchecked."""
    ratings_tables = {t.name: (*t.key, *t.columns) for t in ratings.TABLES}
    ratings_tables["rating_history"] = ratings.HISTORY_COLUMNS
    results_tables = {t.name: (*t.key, *t.columns) for t in results_audit.TABLES}
    return unaudited(cur, schema, "ratings.", ratings_tables) + unaudited(
        cur, results_schema, "results.", results_tables
    )


@dataclass
class Change:
    """One change of a competitor's rating, re-derived: a result (battle, vote, game) or a void
    (then ``opponent``, ``score``, ``expected`` and ``k`` are None, and ``after`` is None when
    no rated result is left in the pool)."""

    position: int
    event_id: str
    occurred_at: Any
    arena: str
    category: str
    kind: str
    opponent: str | None
    score: float | None
    expected: float | None
    k: float | None
    before: float | None
    after: float | None


def explain(
    database_url: str, competitor: str, *, event_log: EventLog | None = None
) -> tuple[list[Change], dict[tuple[str, str], float]]:
    """Every rating change of ``competitor`` re-derived from the log, and its final ratings."""
    if event_log is None:
        with EventLog(database_url) as owned:
            return explain(database_url, competitor, event_log=owned)
    with collector_paused():
        return _explain(competitor, event_log)


def _explain(
    competitor: str, event_log: EventLog
) -> tuple[list[Change], dict[tuple[str, str], float]]:
    fold = ratings.RatingsFold()
    changes: list[Change] = []
    for page in pages(event_log, 0, event_log.store.head()):
        fold_page(fold, page)
        for h in fold.take_changes().history:
            if h[0] == competitor:
                changes.append(Change(h[3], h[4], h[5], h[1], h[2], *h[6:13]))
    finals = {(a, c): s.rating for (a, c, comp), s in fold.standings.items() if comp == competitor}
    return changes, finals
