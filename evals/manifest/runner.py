"""The manifest run: rows evaluated in worker processes, outcomes in manifest order, resume.

Order is kept because it is the order the events are published in, and Elo depends on order.
Resume: rows whose event id is done (given by the caller, or in the local state file) are
skipped; the state file is appended to only after ``publish`` returned.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from arbiter.evals.audio import AudioLoadError
from arbiter.evals.manifest.jobs import (
    Job,
    Options,
    evaluate_job,
    init_worker,
    model_label,
    prepare,
)
from arbiter.evals.manifest.reading import read_manifest
from arbiter.evals.manifest.rows import Row

__all__ = [
    "DoneState",
    "Progress",
    "Publish",
    "RowOutcome",
    "RunSummary",
    "default_workers",
    "iter_events",
    "run_manifest",
]

Publish = Callable[[list[dict[str, Any]]], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of one manifest row.

    status: "evaluated" (``event`` is new; for a trial it may be a failed trial), "skipped"
    (its id was done already, or repeated in the manifest) or "error" (nothing to publish;
    ``error`` says why: missing audio, undecodable battle clip, ...).
    """

    line: int
    kind: str
    status: Literal["evaluated", "skipped", "error"]
    event_id: str | None = None
    event: dict[str, Any] | None = None
    error: str | None = None


@dataclass(slots=True)
class RunSummary:
    """Counts of a manifest run."""

    total: int = 0
    published: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def iter_events(
    rows: Iterable[Row],
    *,
    done: Iterable[str] = (),
    workers: int | None = None,
    transcribe: bool = True,
    whisper_model: str | None = None,
    tie_threshold: float = 0.02,
    source: str = "arbiter.evals",
    progress: Progress | None = None,
    renormalise: bool = False,
) -> Iterator[RowOutcome]:
    """Evaluate rows in worker processes and yield one RowOutcome per row, in manifest order.

    Order is kept because it is the order the events will be published in, and Elo depends on
    order. ``workers=0`` evaluates in this process (no pool); None means one per CPU. Workers
    are spawned (not forked: safe with torch and CUDA), so a calling script needs the usual
    ``if __name__ == "__main__":`` guard. Whisper is loaded once per worker. ``renormalise``
    picks the composite's rule (:mod:`arbiter.evals.composite`; default seed 000's).
    ``progress(finished, total)`` is called after every row. A missing Whisper checkpoint
    raises WhisperWeightsMissing before any work starts; a crashed worker raises
    BrokenProcessPool; any other failure of one row becomes that row's "error" outcome.
    """
    rows = list(rows)
    total = len(rows)
    done_ids = set(done)
    label = model_label(transcribe, whisper_model)
    opts = Options(transcribe, whisper_model, label, tie_threshold, source, renormalise)
    n_workers = default_workers() if workers is None else max(0, workers)
    n_workers = min(n_workers, total)

    # Identity first (cheap: hashing), so done rows are never evaluated.
    pending: list[RowOutcome | Job] = []
    for row in rows:
        try:
            job = prepare(row)
        except AudioLoadError as exc:
            pending.append(RowOutcome(row.line, row.kind, "error", error=str(exc)))
            continue
        if job.event_id in done_ids:
            pending.append(RowOutcome(row.line, row.kind, "skipped", event_id=job.event_id))
        else:
            done_ids.add(job.event_id)  # a repeated row in the same manifest is skipped
            pending.append(job)

    finished = 0

    def report(outcome: RowOutcome) -> RowOutcome:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, total)
        return outcome

    def settle(job: Job, fn: Callable[[], dict[str, Any]]) -> RowOutcome:
        from arbiter.evals.whisper_model import WhisperWeightsMissing

        try:
            event = fn()
        except (WhisperWeightsMissing, BrokenProcessPool):
            raise  # the setup is broken, not the row: stop rather than fail every row
        except Exception as exc:  # one bad row must not stop a long run
            message = f"{type(exc).__name__}: {exc}"
            return RowOutcome(job.row.line, job.row.kind, "error", job.event_id, error=message)
        return RowOutcome(job.row.line, job.row.kind, "evaluated", job.event_id, event)

    n_jobs = sum(isinstance(p, Job) for p in pending)
    if n_workers == 0 or n_jobs == 0:
        for item in pending:
            if isinstance(item, RowOutcome):
                yield report(item)
            else:
                yield report(settle(item, lambda job=item: evaluate_job(job, opts)))
        return

    threads = max(1, default_workers() // min(n_workers, n_jobs))
    pool = ProcessPoolExecutor(
        max_workers=min(n_workers, n_jobs),
        mp_context=get_context("spawn"),  # safe with torch, CUDA and threads; fork is not
        initializer=init_worker,
        initargs=(opts, threads),
    )
    try:
        window: deque[tuple[RowOutcome | Job, Future[dict[str, Any]] | None]] = deque()
        todo = iter(pending)
        limit = 2 * n_workers

        def fill() -> None:
            in_flight = sum(1 for _, f in window if f is not None)
            while in_flight < limit:
                item = next(todo, None)
                if item is None:
                    return
                if isinstance(item, RowOutcome):
                    window.append((item, None))
                else:
                    window.append((item, pool.submit(evaluate_job, item, opts)))
                    in_flight += 1

        fill()
        while window:
            item, future = window.popleft()
            if future is None:
                assert isinstance(item, RowOutcome)
                outcome = item
            else:
                assert isinstance(item, Job)
                outcome = settle(item, future.result)
            fill()
            yield report(outcome)
    finally:
        # Also runs when the consumer stops early (publish failed): drop queued work.
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- resume + run


class DoneState:
    """A local file of published event ids, one per line, appended as batches go out."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> set[str]:
        """The ids recorded so far (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return set()
        with self.path.open(encoding="utf-8") as fh:
            return {line.strip() for line in fh if line.strip()}

    def add(self, event_ids: Sequence[str]) -> None:
        """Append ids and fsync, so a crash right after a publish keeps the record."""
        if not event_ids:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(f"{i}\n" for i in event_ids))
            fh.flush()
            os.fsync(fh.fileno())


def run_manifest(
    manifest: str | os.PathLike[str] | Sequence[Row],
    publish: Publish,
    *,
    done: Iterable[str] = (),
    state_path: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    transcribe: bool = True,
    whisper_model: str | None = None,
    tie_threshold: float = 0.02,
    source: str = "arbiter.evals",
    progress: Progress | None = None,
    on_outcome: Callable[[RowOutcome], None] | None = None,
    renormalise: bool = False,
) -> RunSummary:
    """Evaluate a manifest and hand its new events to ``publish`` in batches, in order.

    ``done`` and the ids in ``state_path`` (if given) are skipped. After each successful
    ``publish(batch)`` the batch's ids are appended to ``state_path``. If ``publish`` raises,
    the run stops and the exception propagates; rerunning resumes after the last batch that
    went out. ``on_outcome`` sees every row's outcome (e.g. to print errors as they happen).
    """
    rows = read_manifest(manifest) if isinstance(manifest, str | os.PathLike) else manifest
    state = DoneState(state_path) if state_path is not None else None
    done_ids = set(done) | (state.load() if state else set())
    summary = RunSummary(total=len(rows))
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if not batch:
            return
        publish(list(batch))
        if state is not None:
            state.add([e["event_id"] for e in batch])
        summary.published += len(batch)
        batch.clear()

    for outcome in iter_events(
        rows,
        done=done_ids,
        workers=workers,
        transcribe=transcribe,
        whisper_model=whisper_model,
        tie_threshold=tie_threshold,
        source=source,
        progress=progress,
        renormalise=renormalise,
    ):
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status == "skipped":
            summary.skipped += 1
        elif outcome.status == "error":
            summary.errors.append((outcome.line, outcome.error or "unknown error"))
        elif outcome.event is not None:
            batch.append(outcome.event)
            if len(batch) >= max(1, batch_size):
                flush()
    flush()
    return summary
