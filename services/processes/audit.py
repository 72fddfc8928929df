"""The audit: replay the log in memory with the same pure folds and compare with the read model.

``verify`` reads the stored model inside one REPEATABLE READ snapshot, so a projector running
meanwhile cannot make it compare two different moments: it takes the stored position P from the
snapshot, folds the log up to exactly P, and compares every row (ratings and counters, the
registry, arena settings) and every history row (as a per-competitor multiset digest, so millions
of rows compare in constant memory). The printed digest is a SHA-256 of the verified state:
two deployments with the same log print the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import Event
from arbiter.projections import PROJECTIONS, ratings
from arbiter.services.bulk import collector_paused
from psycopg import sql

PAGE = 20_000
MOD = 2**256
_JSON = msgspec.json.Encoder(order="sorted")


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

    @property
    def ok(self) -> bool:
        return not self.mismatches


def replay(
    event_log: EventLog, until: int, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Event]]:
    """The log's events up to and including position ``until``, in order."""
    position = 0
    while position < until:
        page = event_log.store.read_after(position, PAGE)
        if not page:
            return
        for pos, event in page:
            if pos > until:
                return
            yield pos, event
            position = pos
        if progress:
            progress(position)


def _history_digests(rows: Any) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        count, total = out.get(row[0], (0, 0))
        out[row[0]] = (count + 1, (total + ratings.history_hash(row)) % MOD)
    return out


def state_digest(rows: dict[str, dict[Any, tuple[Any, ...]]], history: dict[str, Any]) -> str:
    """SHA-256 over the sorted rows and the history digests: equal iff the states are equal."""
    h = hashlib.sha256()
    for table in sorted(rows):
        for key in sorted(rows[table]):
            h.update(_JSON.encode([table, key, [_plain(v) for v in rows[table][key]]]))
    for competitor in sorted(history):
        h.update(_JSON.encode(["history", competitor, list(history[competitor])]))
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def verify(
    database_url: str,
    *,
    event_log: EventLog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Replay the log and compare with the stored ratings read model."""
    if event_log is None:
        with EventLog(database_url) as owned:
            return verify(database_url, event_log=owned, progress=progress)
    with collector_paused():
        return _verify(database_url, event_log, progress)


def _verify(
    database_url: str, event_log: EventLog, progress: Callable[[int, int], None] | None
) -> AuditReport:
    schema = f"arbiter_{ratings.NAME}"
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SET TIME ZONE 'UTC'")
        with conn.cursor() as cur:
            cur.execute(f"SELECT position FROM {schema}.tracking")
            row = cur.fetchone()
            position = int(row[0]) if row else 0
            stored = ratings.stored_rows(cur, schema)
            stored_history = _history_digests(ratings.stored_history(cur, schema))
            skipped = quarantined(cur)
        conn.rollback()
    skip = {q.position for q in skipped if q.projection == ratings.NAME}

    fold = ratings.RatingsFold()
    replayed_history: dict[str, tuple[int, int]] = {}
    for pos, event in replay(
        event_log, position, (lambda p: progress(p, position)) if progress else None
    ):
        if pos in skip:
            fold.position = pos  # skipped, as the projector skipped it
            continue
        fold.apply(pos, event)
        changes = fold.take_changes()
        for hrow in changes.history:
            count, total = replayed_history.get(hrow[0], (0, 0))
            replayed_history[hrow[0]] = (count + 1, (total + ratings.history_hash(hrow)) % MOD)

    mismatches = compare(fold.rows(), stored)
    for competitor in sorted(set(replayed_history) | set(stored_history)):
        want, got = replayed_history.get(competitor), stored_history.get(competitor)
        if want != got:
            mismatches.append(
                f"rating_history of {competitor!r}: replay has {want[0] if want else 0} rows, "
                f"store has {got[0] if got else 0}"
                + (" (same count, different content)" if want and got and want[0] == got[0] else "")
            )
    if fold.position != position and fold.events:
        mismatches.append(f"position: replay reached {fold.position}, store is at {position}")
    return AuditReport(
        position, fold.events, state_digest(fold.rows(), replayed_history), mismatches, skipped
    )


def compare(
    want: dict[str, dict[Any, tuple[Any, ...]]], got: dict[str, dict[Any, tuple[Any, ...]]]
) -> list[str]:
    """Name every row that differs: missing, extra, or which column and both values."""
    out: list[str] = []
    columns = {
        "ratings": ("rating", "games", "wins", "losses", "ties", "last_position", "last_at"),
        "competitors": ("name", "provider", "meta", "registered", "first_position",
                        "last_position"),
        "arenas": ("k", "initial", "scale", "base", "weights", "strict", "position"),
    }  # fmt: skip
    for table, names in columns.items():
        w, g = want.get(table, {}), got.get(table, {})
        for key in sorted(set(w) | set(g), key=repr):
            if key not in g:
                out.append(f"{table} {key!r}: missing from the read model")
            elif key not in w:
                out.append(f"{table} {key!r}: in the read model but not in the replay")
            elif w[key] != g[key]:
                for name, a, b in zip(names, w[key], g[key], strict=True):
                    if a != b:
                        out.append(f"{table} {key!r}.{name}: replay {a!r}, read model {b!r}")
    return out


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
    for pos, event in replay(event_log, event_log.store.head()):
        fold.apply(pos, event)
        for h in fold.take_changes().history:
            if h[0] == competitor:
                changes.append(Change(h[3], h[4], h[5], h[1], h[2], *h[6:13]))
    finals = {(a, c): s.rating for (a, c, comp), s in fold.standings.items() if comp == competitor}
    return changes, finals
