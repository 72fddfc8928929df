"""Batch auto-judging from a manifest: one row per battle or trial, evaluated in parallel.

Manifest formats: CSV with a header row (``.csv``), JSON Lines (``.jsonl``/``.ndjson``, one
object per line) or a JSON array (``.json``). Empty cells mean "not given". Audio paths are
relative to the manifest's folder unless absolute.

Columns for every row:

==================  ========  ==============================================================
kind                optional  "battle" or "trial"; inferred from audio_a (battle) / audio
arena               optional  rating pool, default "default"
category            optional  sub-pool
occurred_at         optional  RFC 3339 time of the match; default: newest mtime of its audio
reference           optional  the text the clip should say (enables WER/CER, speaking rate)
==================  ========  ==============================================================

Battle rows (two clips, one verdict):

==================  ========  ==============================================================
audio_a, audio_b    required  the two clips
competitor_a/_b     required  their competitor ids (distinct)
battle_id           optional  default: derived from the event id
scenario            optional  copied to the event
latency_a_ms/_b_ms  optional  each side's latency (ms), a composite component
semascore_a/_b      optional  each side's semantic score (0..1), a composite component
==================  ========  ==============================================================

Trial rows (one clip, metrics for an experiment):

==================  ========  ==============================================================
audio               required  the clip
competitor          required  competitor id
experiment_id       required  experiment id
trial_id            required  trial id
prompt_index        required  integer >= 0
latency_ms          optional  latency (ms)
semascore           optional  semantic score (0..1)
ttfb_ms, generation_time_ms, cost_usd, input_tokens, output_tokens
                    optional  producer-side numbers carried into ``metrics``
metric_<name>       optional  any other number, carried as metrics[<name>]
dim_<name>          optional  a dimension, carried as dimensions[<name>] (JSON rows may give
                              ``"metrics": {...}`` and ``"dimensions": {...}`` objects instead)
==================  ========  ==============================================================

Give ``occurred_at`` when the audio files may be touched or copied between runs: the default
(their mtime) is part of the event's content, and a resend of the same event id with different
content is rejected by the ingest.

Unknown columns are an error (a misspelt ``latency_ms`` on a battle row would otherwise be
silently ignored). The whole manifest is checked before anything is evaluated.

Resume: each row's event id depends only on the row and the audio bytes (see judge.py), so it
is computed by hashing the files, before any evaluation. Rows whose id is in ``done`` (ids the
caller knows are published) or in the local state file are skipped without being evaluated.
The state file lists one published event id per line; :func:`run_manifest` appends to it only
after ``publish`` returned, so a crash can cause a re-publish (harmless: the ingest is
idempotent on event id) but never a lost event.
"""

from __future__ import annotations

import csv
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from arbiter.evals.audio import AudioLoadError, sha256_file
from arbiter.evals.judge import (
    battle_event,
    battle_event_id,
    rfc3339,
    trial_event,
    trial_event_id,
)

Publish = Callable[[list[dict[str, Any]]], None]
Progress = Callable[[int, int], None]

COMMON_COLUMNS = frozenset({"kind", "arena", "category", "occurred_at", "reference"})
BATTLE_COLUMNS = COMMON_COLUMNS | {
    "audio_a",
    "audio_b",
    "competitor_a",
    "competitor_b",
    "battle_id",
    "scenario",
    "latency_a_ms",
    "latency_b_ms",
    "semascore_a",
    "semascore_b",
}
TRIAL_PASSTHROUGH = ("ttfb_ms", "generation_time_ms", "cost_usd", "input_tokens", "output_tokens")
TRIAL_COLUMNS = COMMON_COLUMNS | {
    "audio",
    "competitor",
    "experiment_id",
    "trial_id",
    "prompt_index",
    "latency_ms",
    "semascore",
    *TRIAL_PASSTHROUGH,
}
METRIC_PREFIX = "metric_"
DIMENSION_PREFIX = "dim_"


class ManifestError(ValueError):
    """The manifest cannot be used as written; the message lists every bad row."""


@dataclass(frozen=True, slots=True)
class BattleRow:
    """A battle to judge: two clips of the same prompt by two competitors."""

    line: int
    audio_a: Path
    audio_b: Path
    competitor_a: str
    competitor_b: str
    arena: str = "default"
    category: str | None = None
    battle_id: str | None = None
    scenario: str | None = None
    reference: str | None = None
    latency_a_ms: float | None = None
    latency_b_ms: float | None = None
    semascore_a: float | None = None
    semascore_b: float | None = None
    occurred_at: str | None = None

    kind: Literal["battle"] = "battle"


@dataclass(frozen=True, slots=True)
class TrialRow:
    """A trial to measure: one clip by one competitor for one prompt of an experiment."""

    line: int
    audio: Path
    competitor: str
    experiment_id: str
    trial_id: str
    prompt_index: int
    arena: str = "default"
    category: str | None = None
    reference: str | None = None
    latency_ms: float | None = None
    semascore: float | None = None
    extra_metrics: dict[str, float] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)
    occurred_at: str | None = None

    kind: Literal["trial"] = "trial"


Row = BattleRow | TrialRow


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


# --------------------------------------------------------------------------- parsing


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw record) pairs of a CSV, JSONL or JSON manifest."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            for record in reader:
                if None in record:
                    raise ManifestError(f"{path}:{reader.line_num}: more cells than columns")
                yield reader.line_num, dict(record)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise ManifestError(f"{path}:{number}: expected a JSON object per line")
                yield number, record
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ManifestError(f"{path}: expected a JSON array of objects")
        yield from enumerate(data, start=1)
    else:
        raise ManifestError(f"{path}: unknown manifest format (use .csv, .jsonl or .json)")


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Nested "metrics"/"dimensions" objects -> metric_/dim_ columns; blanks -> absent."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("metrics", "dimensions") and isinstance(value, Mapping):
            prefix = METRIC_PREFIX if key == "metrics" else DIMENSION_PREFIX
            flat.update({prefix + str(k): v for k, v in value.items()})
        else:
            flat[str(key).strip()] = value
    return {
        k: v
        for k, v in flat.items()
        if v is not None and not (isinstance(v, str) and not v.strip())
    }


class _RowReader:
    """Typed access to one record's fields, collecting errors instead of stopping."""

    def __init__(self, record: dict[str, Any], errors: list[str]) -> None:
        self.record = record
        self.errors = errors

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.record.get(name)
        if value is None:
            if required:
                self.errors.append(f"missing required column {name!r}")
            return None
        return str(value).strip()

    def number(self, name: str) -> float | None:
        value = self.record.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.errors.append(f"{name} must be a number, got {value!r}")
            return None
        if number != number or number in (float("inf"), float("-inf")):
            self.errors.append(f"{name} must be finite")
            return None
        return number


def _parse(line: int, record: dict[str, Any], base: Path, errors: list[str]) -> Row | None:
    r = _RowReader(record, errors)
    kind = r.text("kind") or ("battle" if "audio_a" in record else "trial")
    if kind not in ("battle", "trial"):
        errors.append(f'kind must be "battle" or "trial", got {kind!r}')
        return None
    allowed = BATTLE_COLUMNS if kind == "battle" else TRIAL_COLUMNS
    prefixes = () if kind == "battle" else (METRIC_PREFIX, DIMENSION_PREFIX)
    unknown = sorted(k for k in record if k not in allowed and not k.startswith(prefixes))
    if unknown:
        errors.append(f"unknown column(s) for a {kind} row: {', '.join(unknown)}")
    occurred_at = r.text("occurred_at")
    if occurred_at is not None:
        try:
            occurred_at = rfc3339(occurred_at)
        except ValueError as exc:
            errors.append(str(exc))
    common = {
        "line": line,
        "arena": r.text("arena") or "default",
        "category": r.text("category"),
        "reference": r.text("reference"),
        "occurred_at": occurred_at,
    }

    def audio(name: str) -> Path | None:
        value = r.text(name, required=True)
        return None if value is None else (base / value).expanduser()

    if kind == "battle":
        fields = {
            "audio_a": audio("audio_a"),
            "audio_b": audio("audio_b"),
            "competitor_a": r.text("competitor_a", required=True),
            "competitor_b": r.text("competitor_b", required=True),
            "battle_id": r.text("battle_id"),
            "scenario": r.text("scenario"),
            "latency_a_ms": r.number("latency_a_ms"),
            "latency_b_ms": r.number("latency_b_ms"),
            "semascore_a": r.number("semascore_a"),
            "semascore_b": r.number("semascore_b"),
        }
        if fields["competitor_a"] and fields["competitor_a"] == fields["competitor_b"]:
            errors.append("competitor_a and competitor_b must differ")
        return None if errors else BattleRow(**common, **fields)

    index_text = r.text("prompt_index", required=True)
    prompt_index = -1
    if index_text is not None:
        prompt_index = int(index_text) if index_text.isdigit() else -1
        if prompt_index < 0:
            errors.append(f"prompt_index must be an integer >= 0, got {index_text!r}")
    extra: dict[str, float] = {}
    for name in TRIAL_PASSTHROUGH:
        value = r.number(name)
        if value is not None:
            extra[name] = value
    for key in record:
        if key.startswith(METRIC_PREFIX):
            value = r.number(key)
            if value is not None:
                extra[key.removeprefix(METRIC_PREFIX)] = value
    dimensions = {
        key.removeprefix(DIMENSION_PREFIX): str(value)
        for key, value in record.items()
        if key.startswith(DIMENSION_PREFIX)
    }
    fields = {
        "audio": audio("audio"),
        "competitor": r.text("competitor", required=True),
        "experiment_id": r.text("experiment_id", required=True),
        "trial_id": r.text("trial_id", required=True),
        "prompt_index": prompt_index,
        "latency_ms": r.number("latency_ms"),
        "semascore": r.number("semascore"),
        "extra_metrics": extra,
        "dimensions": dimensions,
    }
    return None if errors else TrialRow(**common, **fields)


def read_manifest(path: str | os.PathLike[str]) -> list[Row]:
    """Parse and check a manifest; raise ManifestError listing every bad row (up to 20)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest file")
    rows: list[Row] = []
    problems: list[str] = []
    for line, record in _records(p):
        errors: list[str] = []
        row = _parse(line, _flatten(record), p.parent, errors)
        if errors:
            problems.append(f"{p}:{line}: " + "; ".join(errors))
        elif row is not None:
            rows.append(row)
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError("invalid manifest rows:\n" + "\n".join(problems[:20]) + more)
    return rows


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class _Job:
    """A row with everything computed in the parent: hashes, id and timestamp."""

    row: Row
    event_id: str
    hashes: tuple[str, ...]
    occurred_at: str


def _audio_paths(row: Row) -> tuple[Path, ...]:
    return (row.audio_a, row.audio_b) if isinstance(row, BattleRow) else (row.audio,)


def prepare(row: Row) -> _Job:
    """Hash the row's audio and derive its event id and timestamp (no evaluation).

    Raises AudioLoadError when an audio file does not exist.
    """
    paths = _audio_paths(row)
    for p in paths:
        if not p.is_file():
            raise AudioLoadError(f"{p}: no such audio file")
    hashes = tuple(sha256_file(p) for p in paths)
    if isinstance(row, BattleRow):
        event_id = battle_event_id(
            a=row.competitor_a,
            b=row.competitor_b,
            audio_sha256_a=hashes[0],
            audio_sha256_b=hashes[1],
            battle_id=row.battle_id,
            arena=row.arena,
            category=row.category,
        )
    else:
        event_id = trial_event_id(
            experiment_id=row.experiment_id,
            trial_id=row.trial_id,
            competitor=row.competitor,
            prompt_index=row.prompt_index,
            audio_sha256=hashes[0],
            arena=row.arena,
        )
    occurred = row.occurred_at or rfc3339(
        datetime.fromtimestamp(max(p.stat().st_mtime for p in paths), UTC)
    )
    return _Job(row=row, event_id=event_id, hashes=hashes, occurred_at=occurred)


def row_event_id(row: Row) -> str:
    """The event id this row will publish under (hashes its audio; no evaluation)."""
    return prepare(row).event_id


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _Options:
    transcribe: bool
    whisper_model: str | None  # as given (None: $ARBITER_WHISPER_MODEL); resolved per process
    whisper_label: str | None  # the model's name or file name, recorded in battle meta
    tie_threshold: float
    source: str


def _transcriber(opts: _Options) -> Callable[[Any], str] | None:
    if not opts.transcribe:
        return None
    from arbiter.evals.whisper_model import transcribe

    return lambda samples: transcribe(samples, spec=opts.whisper_model)


def evaluate_job(job: _Job, opts: _Options) -> dict[str, Any]:
    """Evaluate one prepared row and build its event (runs in a worker process)."""
    from arbiter.evals.evaluate import evaluate

    row = job.row
    transcriber = _transcriber(opts)
    if isinstance(row, BattleRow):
        sides = [
            evaluate(
                path,
                row.reference,
                latency,
                transcribe=opts.transcribe,
                semascore=sema,
                transcriber=transcriber,
            )
            for path, latency, sema in (
                (row.audio_a, row.latency_a_ms, row.semascore_a),
                (row.audio_b, row.latency_b_ms, row.semascore_b),
            )
        ]
        meta: dict[str, Any] = {}
        if opts.transcribe:
            meta["transcripts"] = {"a": sides[0].transcript, "b": sides[1].transcript}
            meta["whisper_model"] = opts.whisper_label
        event = battle_event(
            a=row.competitor_a,
            b=row.competitor_b,
            metrics_a=sides[0].metrics,
            metrics_b=sides[1].metrics,
            audio_sha256_a=job.hashes[0],
            audio_sha256_b=job.hashes[1],
            occurred_at=job.occurred_at,
            battle_id=row.battle_id,
            arena=row.arena,
            category=row.category,
            scenario=row.scenario,
            source=opts.source,
            tie_threshold=opts.tie_threshold,
            meta=meta,
        )
    else:
        common = {
            "experiment_id": row.experiment_id,
            "trial_id": row.trial_id,
            "competitor": row.competitor,
            "prompt_index": row.prompt_index,
            "audio_sha256": job.hashes[0],
            "occurred_at": job.occurred_at,
            "arena": row.arena,
            "category": row.category,
            "dimensions": row.dimensions,
            "source": opts.source,
        }
        try:
            result = evaluate(
                row.audio,
                row.reference,
                row.latency_ms,
                transcribe=opts.transcribe,
                semascore=row.semascore,
                transcriber=transcriber,
                extra_metrics=row.extra_metrics,
            )
        except AudioLoadError as exc:
            # The competitor's output is unusable: that is the trial's result.
            return trial_event(**common, metrics=row.extra_metrics, status="failed", error=str(exc))
        event = trial_event(**common, metrics=result.metrics)
    if event["event_id"] != job.event_id:  # pragma: no cover - guards judge/prepare drift
        raise RuntimeError("event id changed between prepare and evaluation")
    return event


def _init_worker(opts: _Options, threads: int) -> None:
    """Per worker process: share the CPU fairly and load Whisper once, up front."""
    if opts.transcribe:
        import torch
        from arbiter.evals.whisper_model import get_model

        torch.set_num_threads(threads)
        get_model(opts.whisper_model)


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _model_label(transcribe: bool, whisper_model: str | None) -> str | None:
    """Resolve the model in the caller's process, so missing weights fail before any work."""
    if not transcribe:
        return None
    from arbiter.evals.whisper_model import resolve_model

    return resolve_model(whisper_model).label


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
) -> Iterator[RowOutcome]:
    """Evaluate rows in worker processes and yield one RowOutcome per row, in manifest order.

    Order is kept because it is the order the events will be published in, and Elo depends on
    order. ``workers=0`` evaluates in this process (no pool); None means one per CPU. Workers
    are spawned (not forked: safe with torch and CUDA), so a calling script needs the usual
    ``if __name__ == "__main__":`` guard. Whisper is loaded once per worker.
    ``progress(finished, total)`` is called after every row. A missing Whisper checkpoint
    raises WhisperWeightsMissing before any work starts; a crashed worker raises
    BrokenProcessPool; any other failure of one row becomes that row's "error" outcome.
    """
    rows = list(rows)
    total = len(rows)
    done_ids = set(done)
    label = _model_label(transcribe, whisper_model)
    opts = _Options(transcribe, whisper_model, label, tie_threshold, source)
    n_workers = default_workers() if workers is None else max(0, workers)
    n_workers = min(n_workers, total)

    # Identity first (cheap: hashing), so done rows are never evaluated.
    pending: list[RowOutcome | _Job] = []
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

    def settle(job: _Job, fn: Callable[[], dict[str, Any]]) -> RowOutcome:
        from arbiter.evals.whisper_model import WhisperWeightsMissing

        try:
            event = fn()
        except (WhisperWeightsMissing, BrokenProcessPool):
            raise  # the setup is broken, not the row: stop rather than fail every row
        except Exception as exc:  # one bad row must not stop a long run
            message = f"{type(exc).__name__}: {exc}"
            return RowOutcome(job.row.line, job.row.kind, "error", job.event_id, error=message)
        return RowOutcome(job.row.line, job.row.kind, "evaluated", job.event_id, event)

    n_jobs = sum(isinstance(p, _Job) for p in pending)
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
        initializer=_init_worker,
        initargs=(opts, threads),
    )
    try:
        window: deque[tuple[RowOutcome | _Job, Future[dict[str, Any]] | None]] = deque()
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
                assert isinstance(item, _Job)
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
