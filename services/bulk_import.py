"""The bulk import's direct path: a file's events appended to the log in large batches, with the
ingest's own validation and decisions, without the round trip through NATS.

Why a second path. ``arbiter import`` through NATS publishes every row, waits for the ingest to
fetch it in batches of 1,000 and follows each verdict: about 5,400 rows/s, five minutes for a
Chatbot Arena release. Here the CLI process does what the ingest would do, in the same order
and under the same lock, so the log comes out the same (same events, ids, positions, digests and
hash chain; ``tests/test_bulk_import.py`` checks it against the NATS path):

1. every row's JSON is validated by :func:`~arbiter.domain.validation.decode_event`, exactly as
   the ingest decodes a message (refused rows are reported with their row number and code);
2. a batch of :data:`BATCH` events goes to :meth:`EventLog.append` (one transaction: the table's
   ``EXCLUSIVE`` lock, the facts lookup, :func:`~arbiter.domain.decisions.decide`, the positions
   and the chain), whose only difference is that the accepted rows are written by binary COPY
   (:mod:`arbiter.adapters.bulkstore`);
3. the batch's verdicts are counted: appended is *new*, a duplicate is *already in the log*, a
   refusal is reported with the row it came from.

The next batch is decoded while the previous one is appended (one worker thread: psycopg waits
for PostgreSQL without the GIL), so parsing and the database overlap on two cores. The files
the main thread reads are opened with 1 MiB buffers: every read that reaches the OS releases
the GIL, and getting it back from a thread busy in Python costs up to the 5 ms switch interval
(measured: 7 s of 44 s on 100,000 rows went to 200,000 small reads before the buffers grew).

Decisions:

* **Refusals go to the import's report, not to ``ARBITER_REJECTED``.** That stream exists for
  publishers who cannot be told at once; the person running the import is told, row by row.
* **A vote or void whose target is not in the log yet** (``unknown_target``, which the ingest
  retries for about 15 s) is tried once more after the rest of the file is in, and refused if
  its target is still missing: a target later in the same file then still counts.
* **Ctrl-C.** Each batch is one transaction, so an interrupted import leaves whole batches in
  the log; the batch being appended when the signal comes is finished (the worker thread is not
  interrupted) and counted before the summary. The ids are deterministic, so a rerun finds the
  appended rows *already in the log* (the ingest's duplicate decision) and adds only the rest.
* **The read models follow as they do for any append** (the projector is notified per batch),
  also into an empty log: no rebuild swapped in behind the projector's back. Measured on the
  1.67M-battle release, the tailing projector (then in 5,000-event batches, now up to 20,000)
  kept up with the import and was at the log's head seconds after it (``benchmarks/README.md``);
  a rebuild would fold faster only where the projector falls behind, at the cost of a second
  way for events to become visible.
* **The garbage collector runs relaxed** (:func:`.processes.paging.collector_relaxed`) while
  the import runs: at Python's default thresholds its collections rescanned the sort buffer
  and the batch in flight every few thousand rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from arbiter.adapters.arena_files import RowError
from arbiter.adapters.bulkstore import copier
from arbiter.adapters.eventstore import AppendOutcome, EventLog
from arbiter.domain.events import Event
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import decode_event
from arbiter.services.delivery import DeliveryReport, Refusal

from .import_order import Entry
from .processes.paging import collector_relaxed

__all__ = ["BATCH", "import_direct"]

BATCH = 20_000
"""Events per append transaction: large enough that the per-batch lookups and the COPY set-up
are noise, small enough that Ctrl-C loses at most seconds of work."""

_Batch = list[tuple[str, Event]]


class _Direct:
    """One import's state: the report, the batch being appended and the deferred events."""

    def __init__(
        self,
        log: EventLog,
        on_refused: Callable[[Refusal], None] | None,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.log = log
        self.insert = copier(log.store.events_table, log.store.ids_table)
        self.report = DeliveryReport()
        self.on_refused = on_refused
        self.on_progress = on_progress
        self.deferred: _Batch = []
        self.settled = 0
        self.committed: list[tuple[_Batch, AppendOutcome]] = []
        """Each batch the worker has appended, with its outcome, put here by the worker itself
        once the transaction is committed; :meth:`count_committed` takes them in order. The
        main thread never has to hold a batch's future to count it: Ctrl-C can come between
        ``submit`` and the assignment of its future, and that batch, committed, went uncounted
        in the summary."""

    def append(self, batch: _Batch) -> AppendOutcome:
        return self.log.append([event for _, event in batch], insert=self.insert)

    def append_and_record(self, batch: _Batch) -> None:
        """The worker's task: append ``batch`` and record it as committed."""
        self.committed.append((batch, self.append(batch)))  # list.append: one atomic step

    def count_committed(self) -> None:
        """Count every committed batch not counted yet, in the order they were committed."""
        while self.committed:
            batch, outcome = self.committed.pop(0)
            self.settle(batch, outcome)

    def settle(self, batch: _Batch, outcome: AppendOutcome, *, last_try: bool = False) -> None:
        label = {id(event): name for name, event in batch}
        self.report.new += len(outcome.appended)
        self.report.known += len(outcome.duplicates)
        self._progress(len(outcome.appended) + len(outcome.duplicates))
        for event, rejection in outcome.rejected:
            self.refuse(label[id(event)], rejection)
        for event, rejection in outcome.deferred:
            if last_try:
                self.refuse(label[id(event)], rejection)
            else:
                self.deferred.append((label[id(event)], event))

    def refuse(self, label: str, rejection: Rejection | RowError) -> None:
        refusal = Refusal(label, rejection.code, rejection.message)
        self.report.refused.append(refusal)
        self._progress(1)
        if self.on_refused is not None:
            self.on_refused(refusal)

    def _progress(self, n: int) -> None:
        self.settled += n
        if self.on_progress is not None and n:
            self.on_progress(self.settled)


def import_direct(
    database_url: str,
    entries: Iterable[Entry],
    *,
    batch_size: int = BATCH,
    on_refused: Callable[[Refusal], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DeliveryReport:
    """Validate and append ``entries`` (from :func:`~.import_order.in_order`) in batches; see
    the module docstring. A ``KeyboardInterrupt`` is re-raised once the batch in flight is
    committed and counted, with the report complete so far in its ``report`` attribute."""
    log = EventLog(database_url)
    state = _Direct(log, on_refused, on_progress)
    pending: Future[None] | None = None
    try:
        with (
            collector_relaxed(),  # the garbage collector less often (.processes.paging)
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-append") as worker,
        ):
            try:
                batch: _Batch = []
                now = datetime.now(UTC)
                for entry in entries:
                    state.report.read += 1
                    if isinstance(entry, RowError):
                        state.refuse(f"row {entry.row}", entry)
                        continue
                    row, raw = entry
                    event = decode_event(raw, now=now)
                    if isinstance(event, Rejection):
                        state.refuse(f"row {row}", event)
                        continue
                    batch.append((f"row {row}", event))
                    if len(batch) >= batch_size:
                        pending = _turn(worker, state, pending, batch)
                        batch, now = [], datetime.now(UTC)
                pending = _turn(worker, state, pending, batch)
                pending = _turn(worker, state, pending, [])
                if state.deferred:
                    retry, state.deferred = state.deferred, []
                    state.settle(retry, state.append(retry), last_try=True)
            except KeyboardInterrupt as stop:
                worker.shutdown(wait=True)  # the batch being committed finishes
                state.count_committed()  # and is counted, with any not counted yet
                stop.report = state.report  # type: ignore[attr-defined]
                raise
    finally:
        log.close()
    return state.report


def _turn(
    worker: ThreadPoolExecutor, state: _Direct, pending: Future[None] | None, batch: _Batch
) -> Future[None] | None:
    """Wait for the batch in flight and count it, then start appending ``batch`` (if any)."""
    if pending is not None:
        pending.result()  # its error, if any, is raised here
        state.count_committed()
    return worker.submit(state.append_and_record, batch) if batch else None
