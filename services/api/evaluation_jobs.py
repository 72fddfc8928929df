"""The in-process evaluation jobs behind ``/evaluations``: their limits, the job registry and the
worker threads that score an upload (the routes are :mod:`.routes.evaluations`).

Where the work runs: a thread pool inside the API process (``ARBITER_EVAL_WORKERS`` threads,
default 1; librosa's pYIN and Whisper release the GIL in their numeric kernels). Jobs live in
this process's memory only: they are lost when the API restarts, a second API replica does not
see them, and only the newest ``ARBITER_EVAL_KEEP`` (default 1,000) finished jobs are kept. The
queue is bounded: with ``ARBITER_EVAL_QUEUE`` (default 8) jobs queued or running, a new upload
is a 503 ``busy``. Uploads are written to a temporary folder and deleted when their job ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError
from .models.evaluations import CompositeView, Evaluation, JobError, Status

__all__ = [
    "DEFAULT_MAX_UPLOAD",
    "KEEP_ENV",
    "MAX_UPLOAD_ENV",
    "QUEUE_ENV",
    "WORKERS_ENV",
    "EvaluationConfig",
    "Evaluations",
    "Job",
    "now",
]

log = logging.getLogger("arbiter.api.evaluations")

MAX_UPLOAD_ENV = "ARBITER_EVAL_MAX_UPLOAD_BYTES"
WORKERS_ENV = "ARBITER_EVAL_WORKERS"
QUEUE_ENV = "ARBITER_EVAL_QUEUE"
KEEP_ENV = "ARBITER_EVAL_KEEP"
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024


# -- configuration ------------------------------------------------------------------------------


def _env_int(name: str, default: int, minimum: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """Limits of the in-process evaluation service (see the module docstring)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    workers: int = 1
    max_pending: int = 8
    keep_finished: int = 1000

    @classmethod
    def from_env(cls) -> EvaluationConfig:
        return cls(
            max_upload_bytes=_env_int(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD, 1),
            workers=_env_int(WORKERS_ENV, 1, 1),
            max_pending=_env_int(QUEUE_ENV, 8, 1),
            keep_finished=_env_int(KEEP_ENV, 1000, 1),
        )


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Job:
    id: str
    path: Path
    competitor: str
    arena: str
    category: str | None
    filename: str | None
    size_bytes: int
    audio_sha256: str
    reference: str | None
    latency_ms: float | None
    semascore: float | None
    transcribe: bool
    created_at: datetime
    status: Status = "queued"
    stage: str = "queued"
    progress: float = 0.0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metrics: dict[str, float] | None = None
    composite: CompositeView | None = None
    transcript: str | None = None
    error: JobError | None = None
    version: int = 0

    def view(self) -> Evaluation:
        return Evaluation(
            id=self.id, status=self.status, stage=self.stage, progress=self.progress,
            competitor=self.competitor, arena=self.arena, size_bytes=self.size_bytes,
            audio_sha256=self.audio_sha256, transcribe=self.transcribe,
            created_at=self.created_at, category=self.category, filename=self.filename,
            started_at=self.started_at, finished_at=self.finished_at, metrics=self.metrics,
            composite=self.composite, transcript=self.transcript, error=self.error,
        )  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


class Evaluations:
    """The job registry and its worker threads (one per API process; state in memory)."""

    def __init__(self, config: EvaluationConfig | None = None) -> None:
        self.config = config or EvaluationConfig()
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._tmp: Path | None = None

    @classmethod
    def from_env(cls) -> Evaluations:
        return cls(EvaluationConfig.from_env())

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.workers, thread_name_prefix="arbiter-eval"
                )
            return self._executor

    def upload_dir(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="arbiter-evaluations-"))
            return self._tmp

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def view(self, job_id: str) -> tuple[Evaluation, int] | None:
        """A consistent snapshot of a job and its version number."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else (job.view(), job.version)

    def submit(self, job: Job) -> None:
        """Queue a job; 503 ``busy`` when the bounded queue is full."""
        executor = self.executor
        with self._lock:
            pending = sum(1 for j in self._jobs.values() if j.status in ("queued", "running"))
            if pending >= self.config.max_pending:
                raise ApiError(
                    503,
                    "busy",
                    f"{pending} evaluations are already queued or running (the limit is "
                    f"{self.config.max_pending}, {QUEUE_ENV}); retry shortly.",
                )
            self._jobs[job.id] = job
        executor.submit(self._run, job)

    def _update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.version += 1

    def _run(self, job: Job) -> None:
        self._update(job, status="running", stage="decoding", progress=0.05, started_at=now())
        try:
            result = self._evaluate(job)
        except Exception as exc:
            code, message = _classify(exc)
            if code == "internal":
                log.error("evaluation %s failed", job.id, exc_info=exc)
            message = message.replace(str(job.path), job.filename or "the upload")
            self._update(
                job, status="failed", stage="failed", finished_at=now(),
                error=JobError(code, message),
            )  # fmt: skip
        else:
            self._update(job, status="done", stage="done", progress=1.0, finished_at=now(),
                         **result)  # fmt: skip
        finally:
            job.path.unlink(missing_ok=True)
            self._evict()

    def _evaluate(self, job: Job) -> dict[str, Any]:
        # The evals extra (librosa, soundfile; torch and whisper to transcribe) is optional and
        # heavy: imported when a job runs, so the API starts and serves without it.
        from arbiter.evals.audio import load_audio
        from arbiter.evals.evaluate import evaluate

        audio = load_audio(job.path)
        transcriber = None
        if job.transcribe:
            from arbiter.evals.whisper_model import transcribe

            def transcriber(samples: Any) -> str:
                self._update(job, stage="transcribing", progress=0.2)
                text = transcribe(samples)
                self._update(job, stage="measuring", progress=0.6)
                return text
        else:
            self._update(job, stage="measuring", progress=0.2)
        result = evaluate(
            audio,
            job.reference,
            job.latency_ms,
            transcribe=job.transcribe,
            semascore=job.semascore,
            transcriber=transcriber,
        )
        comp = result.composite
        return {
            "metrics": result.metrics,
            "transcript": result.transcript,
            "composite": None
            if comp is None
            else CompositeView(
                score=round(comp.score, 6),
                components={k: round(v, 6) for k, v in comp.components.items()},
                weights={k: round(v, 6) for k, v in comp.weights.items()},
                missing=list(comp.missing),
                renormalised=comp.renormalised,
            ),
        }

    def _evict(self) -> None:
        """Forget the oldest finished jobs beyond ``keep_finished``."""
        with self._lock:
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(finished) - self.config.keep_finished)]:
                del self._jobs[key]

    def close(self) -> None:
        """Stop taking work; queued jobs are cancelled, a running one finishes in its thread."""
        with self._lock:
            executor, self._executor = self._executor, None
            tmp, self._tmp = self._tmp, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _classify(exc: Exception) -> tuple[str, str]:
    """(code, message) of a failed job."""
    from arbiter.evals.audio import AudioLoadError  # the optional evals extra: see _evaluate

    if isinstance(exc, AudioLoadError):
        return "undecodable_audio", str(exc)
    if type(exc).__name__ == "WhisperWeightsMissing":
        return "whisper_unavailable", str(exc)
    return "internal", f"The evaluation failed ({type(exc).__name__}); it has been logged."
