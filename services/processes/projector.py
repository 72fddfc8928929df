"""The projector: follows the log and folds it, batch by batch, into the read models.

Each batch is one transaction that locks the projection's tracking row, checks that the stored
position (and rebuild generation) is the one the in-memory fold started from, writes the dirty
rows and the new position, and commits. Hence:

* a crash at any point (even SIGKILL mid-transaction) loses nothing and doubles nothing: the
  restarted projector reloads the model and position that were committed together;
* two projectors can run: the second waits on the row lock, then sees a position it did not
  write, reloads and carries on from there (one active writer at a time);
* after ``arbiter rebuild`` swaps in a fresh schema (generation + 1), a running projector notices
  and reloads instead of writing stale state.

The projector waits for new events with LISTEN on the log's NOTIFY channel, with a one-second
timeout as a safety net only (a missed notification costs latency, never events). Under a
steady stream it commits at most once per tick of the clock shared by all projectors
(:mod:`.pacing`, ``ARBITER_PROJECTOR_TICK_MS``, 100 ms by default). It reads
the log a page at a time on the loop the rebuild and the audit share (:mod:`.paging`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.projections import PROJECTIONS, Fold, ProjectionSpec, tracking
from psycopg import sql

from ..commits import committed
from ..metrics import observe_fold
from .pacing import pause, tick_from_env
from .paging import collector_relaxed, fold_page, read_page

__all__ = [
    "DEFAULT_BATCH",
    "FAULT_POISON_ENV",
    "FAULT_SLEEP_ENV",
    "QUARANTINE_SHOWN",
    "FoldError",
    "Projector",
    "StalePosition",
    "run_projectors",
]

log = logging.getLogger("arbiter.projector")

DEFAULT_BATCH = 20_000
"""Most events folded per transaction (``ARBITER_PROJECTOR_BATCH``). A cap, not a wait: a live
projector folds whatever has arrived, so it matters only with a backlog (a bulk import, a
restart), where each batch's fixed work (the standings, pair and sum upserts, the position, the
commit) is shared by more events. Measured on 100,000 imported battles (loaded 2-core machine,
two runs each): 5,000 to 20,000 took the ratings fold from 15-16 to 11-12 us of PostgreSQL CPU
an event and results from 46-58 to 38-42, and each fold's own CPU by 1-1.5 us; the rebuild
reads pages of the same size (:data:`.paging.PAGE`). The price is a longer transaction (about a
second) once in a while, which readers never wait for."""
FAULT_SLEEP_ENV = "ARBITER_FAULT_SLEEP_IN_TX"
"""Fault injection for the crash tests: seconds to sleep inside each batch's transaction, after
its writes and before its commit, so a test can SIGKILL the projector mid-transaction."""
FAULT_POISON_ENV = "ARBITER_FAULT_POISON"
"""Fault injection for the quarantine tests: a comma-separated list of event ids on which the
projector's fold raises, as a fold bug or an event it cannot handle would (a poison event)."""
QUARANTINE_SHOWN = 5
"""How many quarantined events ``/health`` lists per projection (it counts them all)."""


class FoldError(Exception):
    """The fold raised on one event (a poison event): quarantine it and go on."""

    def __init__(self, position: int, event_id: str, error: BaseException) -> None:
        super().__init__(f"fold raised on position {position} ({event_id}): {error!r}")
        self.position, self.event_id = position, event_id
        self.error = f"{type(error).__name__}: {error}"


class StalePosition(Exception):
    """The stored position is not where this projector's fold is: someone else wrote."""


class Projector:
    """Folds the log into one projection's tables."""

    def __init__(
        self,
        database_url: str,
        spec: ProjectionSpec,
        *,
        event_log: EventLog | None = None,
        batch_size: int = DEFAULT_BATCH,
        tick: float = 0.0,
    ) -> None:
        self.database_url = database_url
        self.spec = spec
        self.batch_size = batch_size
        self.tick = tick
        """Seconds: in :meth:`run`, commit at most once per tick under a stream (:mod:`.pacing`);
        0 folds each batch as it arrives."""
        self._owns_log = event_log is None
        self.log = event_log or EventLog(database_url)
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.generation = 0
        self.poison = frozenset(filter(None, os.environ.get(FAULT_POISON_ENV, "").split(",")))
        self.fold: Fold = self.reload()

    def reload(self) -> Fold:
        """Load the committed model and position (after a crash, a rival write or a rebuild)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            self.generation = tracking.generation(cur, self.spec.schema, self.spec.name)
            self.fold = self.spec.load(cur, self.spec.schema)
        return self.fold

    def step(self) -> int:
        """Fold one batch if there is one; returns how many events were committed.

        If the fold raises on an event (a poison event), the batch is rolled back and the fold
        reloaded; then the events before the poison one are folded, the poison one is recorded in
        ``<schema>.quarantine`` with its error and skipped (the position moves past it), all in
        one transaction, and the projector goes on. Rebuild and audit skip the same positions.
        """
        started = time.perf_counter()
        events = read_page(self.log, self.fold.position, self.batch_size)
        if not events:
            return 0
        poison: FoldError | None = None
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._check_position(cur)
                try:
                    fold_page(self.fold, events, apply=self._apply)
                except FoldError as exc:
                    # Roll back the batch: the raising apply may have half-changed the fold.
                    poison = exc
                    raise
                self.spec.write(cur, self.spec.schema, self.fold, self.fold.take_changes())
                if fault_sleep := float(os.environ.get(FAULT_SLEEP_ENV, "0")):
                    time.sleep(fault_sleep)
        except StalePosition:
            log.info("%s: position moved under us; reloading", self.spec.name)
            self.reload()
            return 0
        except Exception:
            # The in-memory fold may be ahead of what was committed: never reuse it.
            self._safe_reload()
            if poison is None:
                raise
        if poison is not None:
            return self._quarantine(events, poison)
        committed()
        observe_fold(self.spec.name, len(events), started)
        log.info(
            "%s: folded %d events, positions %d to %d",
            self.spec.name, len(events), events[0][0], events[-1][0],
            extra={"projection": self.spec.name, "events": len(events),
                   "first_position": events[0][0], "last_position": events[-1][0]},
        )  # fmt: skip
        return len(events)

    def _apply(self, position: int, event: Any) -> None:
        try:
            if event.event_id in self.poison:
                raise RuntimeError(f"{FAULT_POISON_ENV} names {event.event_id}")
            self.fold.apply(position, event)
        except Exception as exc:
            raise FoldError(position, event.event_id, exc) from exc

    def _quarantine(self, events: list[tuple[int, Any]], poison: FoldError) -> int:
        """Fold the events before ``poison``, record it and move the position past it."""
        log.error(
            "%s: quarantining %s", self.spec.name, poison,
            extra={"projection": self.spec.name, "position": poison.position,
                   "event_id": poison.event_id},
        )  # fmt: skip
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._check_position(cur)
                fold_page(self.fold, [e for e in events if e[0] < poison.position])
                self.fold.position = poison.position
                self.spec.write(cur, self.spec.schema, self.fold, self.fold.take_changes())
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {}.quarantine (position, event_id, error) VALUES (%s, %s, %s) "
                        "ON CONFLICT (position) DO NOTHING"
                    ).format(sql.Identifier(self.spec.schema)),
                    (poison.position, poison.event_id, poison.error[:2000]),
                )
        except StalePosition:
            self.reload()
            return 0
        except Exception:
            self._safe_reload()
            raise
        committed()
        return sum(1 for position, _ in events if position <= poison.position)

    def _check_position(self, cur: psycopg.Cursor[Any]) -> None:
        stored = tracking.lock_row(cur, self.spec.schema, self.spec.name)
        if stored != (self.fold.position, self.generation):
            raise StalePosition

    def _safe_reload(self) -> None:
        try:
            if self.conn.closed or self.conn.broken:
                self.conn = psycopg.connect(self.database_url, autocommit=True)
            self.reload()
        except psycopg.Error:
            log.warning("%s: reload failed; will retry", self.spec.name, exc_info=True)

    def catch_up(self) -> int:
        """Fold until the head of the log; returns the number of events folded."""
        total = 0
        while n := self.step():
            total += n
        return total

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set, backing off on database errors."""
        listener = _Listener(self.database_url, self.log.store.channel_name)
        backoff = 0.1
        last_commit: float | None = None
        backlog = False
        try:
            while not stop.is_set():
                try:
                    wait = pause(time.monotonic(), last_commit, self.tick, backlog)
                    if wait and stop.wait(wait):
                        break
                    folded = self.step()
                    if folded:
                        last_commit = time.monotonic()
                        listener.drain()
                    backlog = folded >= self.batch_size
                    if folded == 0:
                        listener.wait(1.0)
                    backoff = 0.1
                except Exception as exc:  # a projector must outlive transient faults
                    # psycopg errors, and eventsourcing's own wrappers of them (pool timeouts,
                    # OperationalError), are transient: the fold was reloaded by step(); wait and
                    # go on. A fold that raises on one event is quarantined by step() instead.
                    log.warning(
                        "%s: %s (%s); retrying in %.1fs",
                        self.spec.name, type(exc).__name__, exc, backoff, exc_info=True,
                    )  # fmt: skip
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    listener.reset()
        finally:
            listener.close()
            self.close()

    def close(self) -> None:
        self.conn.close()
        if self._owns_log:
            self.log.close()


class _Listener:
    """LISTEN on the log's channel; ``wait`` returns on a notification or the timeout."""

    def __init__(self, database_url: str, channel: str) -> None:
        self.database_url, self.channel = database_url, channel
        self.conn: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.database_url, autocommit=True)
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        return self.conn

    def wait(self, timeout: float) -> None:
        try:
            for _ in self._connect().notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.Error:
            self.reset()
            time.sleep(min(timeout, 0.5))

    def drain(self) -> None:
        """Read, without waiting, the notifications that came in while a batch was folded (the
        batch read their events, or the next one will: a step always reads before it waits).
        Under a steady stream every paced step finds events, so :meth:`wait` is not reached;
        left unread, the notifications would fill the connection's buffers, and a listener that
        does not read holds back PostgreSQL's notification queue for every session."""
        if self.conn is None or self.conn.closed:
            return
        try:
            for _ in self.conn.notifies(timeout=0):
                pass
        except psycopg.Error:
            self.reset()

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def close(self) -> None:
        self.reset()


def run_projectors(
    database_url: str, stop: threading.Event, names: list[str] | None = None
) -> None:
    """Run one projector thread per projection until ``stop`` is set."""
    threads = []
    batch = int(os.environ.get("ARBITER_PROJECTOR_BATCH", DEFAULT_BATCH))
    tick = tick_from_env()
    with collector_relaxed():  # see .paging: about 3 us of CPU an event less per projection
        for name in names or list(PROJECTIONS):
            projector = Projector(database_url, PROJECTIONS[name], batch_size=batch, tick=tick)
            t = threading.Thread(target=projector.run, args=(stop,), name=f"projector-{name}")
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
