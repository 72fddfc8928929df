"""``/evaluations``: score an uploaded audio clip in the background and report on it.

* ``POST /evaluations`` takes ``multipart/form-data``: an ``audio`` file part (at most
  ``ARBITER_EVAL_MAX_UPLOAD_BYTES``, default 25 MiB) and the fields ``competitor`` (required),
  ``reference`` (what the clip should say), ``latency_ms``, ``semascore``, ``arena``,
  ``category`` and ``transcribe`` (true/false; default: true when a reference is given). The
  upload is type-checked by its content, not its name: the decoder (libsndfile) must recognise
  it as audio (WAV, FLAC, OGG, MP3) with at least one frame, else 415. The answer is a 202 with
  the job id, at once; the work happens in the background.
* ``GET /evaluations/{id}``: ``status`` (queued, running, done, failed), ``stage`` and
  ``progress``, then the metrics and composite when done, or ``error`` {code, message} when not.
* ``GET /evaluations/{id}/events``: server-sent events, one ``progress`` event per change and a
  last ``done`` or ``failed`` event, each carrying the same JSON as ``GET /evaluations/{id}``.

Where the work runs: a thread pool inside the API process (``ARBITER_EVAL_WORKERS`` threads,
default 1; librosa's pYIN and Whisper release the GIL in their numeric kernels). Jobs live in
this process's memory only: they are lost when the API restarts, a second API replica does not
see them, and only the newest ``ARBITER_EVAL_KEEP`` (default 1,000) finished jobs are kept. The
queue is bounded: with ``ARBITER_EVAL_QUEUE`` (default 8) jobs queued or running, a new upload
is a 503 ``busy``. For bulk or durable work use ``arbiter evals run``, which publishes results
as events instead. Uploads are written to a temporary folder and deleted when their job ends.

The API starts without the evals extra; ``POST /evaluations`` then answers 503
``evals_unavailable`` naming the extra to install (librosa and soundfile to measure, torch and
openai-whisper as well to transcribe). Errors are JSON ``{status, code, message}`` like every
other route.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from arbiter.domain.metrics import METRIC_RANGES
from arbiter.evals.extra import EXTRA_HINT, missing_modules
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage
from msgspec import Struct

from .api import ApiError, _not_found
from .api_models import ErrorBody, error_responses

log = logging.getLogger("arbiter.api.evaluations")

MAX_UPLOAD_ENV = "ARBITER_EVAL_MAX_UPLOAD_BYTES"
WORKERS_ENV = "ARBITER_EVAL_WORKERS"
QUEUE_ENV = "ARBITER_EVAL_QUEUE"
KEEP_ENV = "ARBITER_EVAL_KEEP"
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024
FORM_SLACK = 256 * 1024
"""Room for the multipart framing and text fields on top of the audio limit."""
MAX_REFERENCE_CHARS = 20_000
POLL_S = 0.1
KEEPALIVE_S = 15.0

Status = Literal["queued", "running", "done", "failed"]
FIELDS = frozenset(
    {"audio", "competitor", "reference", "latency_ms", "semascore", "arena", "category",
     "transcribe"}
)  # fmt: skip


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


# -- response bodies ----------------------------------------------------------------------------


class JobError(Struct):
    code: str
    message: str


class CompositeView(Struct):
    score: float
    """Weighted mean of the measured components (0..1)."""
    components: dict[str, float]
    weights: dict[str, float]
    """Weights actually applied (renormalised over the measured components)."""
    missing: list[str]
    renormalised: bool


class Evaluation(Struct, omit_defaults=True):
    """One evaluation job. ``metrics`` (names and units as in ``arbiter.evals.evaluate``) and
    ``composite`` are set when ``status`` is ``done``; ``error`` when it is ``failed``."""

    id: str
    status: Status
    stage: str
    progress: float
    competitor: str
    arena: str
    size_bytes: int
    audio_sha256: str
    transcribe: bool
    created_at: datetime
    category: str | None = None
    filename: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metrics: dict[str, float] | None = None
    composite: CompositeView | None = None
    transcript: str | None = None
    error: JobError | None = None


class EvaluationAccepted(Struct):
    id: str
    status: Status
    status_url: str
    events_url: str


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
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


def _now() -> datetime:
    return datetime.now(UTC)


class Evaluations:
    """The job registry and its worker threads (one per API process; state in memory)."""

    def __init__(self, config: EvaluationConfig | None = None) -> None:
        self.config = config or EvaluationConfig()
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
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

    def controller(self) -> type[Controller]:
        """The routes, with Litestar's body limit set from this configuration."""
        limit = self.config.max_upload_bytes + FORM_SLACK
        return type(  # a subclass per app: the body limit is a class attribute of the layer
            "EvaluationController", (EvaluationController,), {"request_max_body_size": limit}
        )

    def get(self, job_id: str) -> _Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def view(self, job_id: str) -> tuple[Evaluation, int] | None:
        """A consistent snapshot of a job and its version number."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else (job.view(), job.version)

    def submit(self, job: _Job) -> None:
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

    def _update(self, job: _Job, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.version += 1

    def _run(self, job: _Job) -> None:
        self._update(job, status="running", stage="decoding", progress=0.05, started_at=_now())
        try:
            result = self._evaluate(job)
        except Exception as exc:
            code, message = _classify(exc)
            if code == "internal":
                log.error("evaluation %s failed", job.id, exc_info=exc)
            message = message.replace(str(job.path), job.filename or "the upload")
            self._update(
                job, status="failed", stage="failed", finished_at=_now(),
                error=JobError(code, message),
            )  # fmt: skip
        else:
            self._update(job, status="done", stage="done", progress=1.0, finished_at=_now(),
                         **result)  # fmt: skip
        finally:
            job.path.unlink(missing_ok=True)
            self._evict()

    def _evaluate(self, job: _Job) -> dict[str, Any]:
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
    from arbiter.evals.audio import AudioLoadError

    if isinstance(exc, AudioLoadError):
        return "undecodable_audio", str(exc)
    if type(exc).__name__ == "WhisperWeightsMissing":
        return "whisper_unavailable", str(exc)
    return "internal", f"The evaluation failed ({type(exc).__name__}); it has been logged."


# -- request parsing ----------------------------------------------------------------------------


def _bad(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(400, "bad_parameter", message, field=field_name)


def _text(form: Any, name: str, *, required: bool = False, max_length: int = 128) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise _bad(f"Form field `{name}` must be text, not a file.", name)
    if value is None or not str(value).strip():
        if required:
            raise _bad(f"Form field `{name}` is required.", name)
        return None
    text = str(value).strip()
    if len(text) > max_length:
        raise _bad(f"Form field `{name}` is over {max_length} characters.", name)
    return text


def _number(form: Any, name: str, low: float, high: float = math.inf) -> float | None:
    text = _text(form, name, max_length=64)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"Form field `{name}` must be a number, got {text!r}.", name) from None
    if not math.isfinite(value) or not low <= value <= high:
        shown = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise _bad(f"Form field `{name}` must be a finite number {shown}, got {text!r}.", name)
    return value


def _flag(form: Any, name: str) -> bool | None:
    text = _text(form, name, max_length=8)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _bad(f"Form field `{name}` must be true or false, got {text!r}.", name)


def _store_upload(upload: UploadFile, folder: Path, limit: int) -> tuple[Path, int, str]:
    """Copy the upload to ``folder`` (size-checked, hashed) and sniff it; returns the path,
    its size and SHA-256. Raises ApiError 413 / 400 / 415."""
    src = upload.file
    src.seek(0, os.SEEK_END)
    size = src.tell()
    src.seek(0)
    if size > limit:
        raise _too_large(limit)
    if size == 0:
        raise ApiError(400, "empty_upload", "The `audio` part is empty (0 bytes).", field="audio")
    path = folder / f"{uuid.uuid4().hex}.upload"
    digest = hashlib.sha256()
    with path.open("wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    try:
        _sniff(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size, digest.hexdigest()


def _sniff(path: Path) -> None:
    """Check by content that libsndfile decodes the file as audio with at least one frame."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:
        reason = str(exc).replace(str(path), "the upload").strip()
        raise ApiError(
            415,
            "unsupported_media_type",
            "The `audio` part is not audio this server can decode (WAV, FLAC, OGG or MP3 "
            f"content is needed, whatever the file name): {reason}",
            field="audio",
        ) from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise ApiError(400, "empty_audio", "The audio holds no samples.", field="audio")


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"The upload is over the limit of {limit} bytes ({limit / 1048576:.1f} MiB; set by "
        f"{MAX_UPLOAD_ENV}). Send a shorter or compressed (FLAC) clip.",
    )


def _on_too_large(request: Request[Any, Any, Any], _: HTTPException) -> Response[ErrorBody]:
    """Litestar's own body limit (the upload plus form slack) tripped: same 413 as ours."""
    evaluations: Evaluations = request.app.state.evaluations
    body = _too_large(evaluations.config.max_upload_bytes).body
    return Response(body, status_code=413)


# -- routes -------------------------------------------------------------------------------------


@dataclass
class _UploadOperation(Operation):
    """Documents the multipart body, which the handler parses itself."""

    def __post_init__(self) -> None:
        def text(description: str, type_: OpenAPIType = OpenAPIType.STRING) -> Schema:
            return Schema(type=type_, description=description)

        schema = Schema(
            type=OpenAPIType.OBJECT,
            required=["audio", "competitor"],
            properties={
                "audio": Schema(
                    type=OpenAPIType.STRING,
                    format="binary",  # type: ignore[arg-type]
                    description="The clip: WAV, FLAC, OGG or MP3 (checked by content).",
                ),
                "competitor": text("Competitor id (1-128 characters)."),
                "reference": text("What the clip should say: enables WER/CER (Whisper)."),
                "latency_ms": text(
                    "Latency in ms, 0 to 86,400,000 (a composite component).", OpenAPIType.NUMBER
                ),
                "semascore": text(
                    "Semantic score 0..1 (a composite component).", OpenAPIType.NUMBER
                ),
                "arena": text("Arena (default `default`)."),
                "category": text("Category."),
                "transcribe": text(
                    "Run Whisper (default: when a reference is given).", OpenAPIType.BOOLEAN
                ),
            },
        )
        self.request_body = RequestBody(
            required=True,
            description="multipart/form-data with an `audio` file part and text fields.",
            content={RequestEncodingType.MULTI_PART.value: OpenAPIMediaType(schema=schema)},
        )


_EVAL_ERRORS = {
    400: "A bad form field (`bad_parameter`), an empty upload or empty audio.",
    404: "Unknown or expired job (`not_found`); jobs live in the API process's memory.",
    413: "Upload over the size limit (`too_large`).",
    415: "Not multipart, or not decodable audio (`unsupported_media_type`).",
    503: "Evals extra missing (`evals_unavailable`), Whisper weights missing "
    "(`whisper_unavailable`) or the queue is full (`busy`).",
}


def _responses(*statuses: int) -> dict[int, ResponseSpec]:
    return error_responses(*statuses, text=_EVAL_ERRORS)


def _unavailable(missing: list[str]) -> ApiError:
    return ApiError(
        503,
        "evals_unavailable",
        f"Audio evaluation needs the evals extra, which this server lacks (missing: "
        f"{', '.join(missing)}). Install it with: {EXTRA_HINT}",
    )


class EvaluationController(Controller):
    path = "/evaluations"
    tags = ["evaluations"]  # noqa: RUF012 - Litestar layer attribute
    exception_handlers = {413: _on_too_large}  # noqa: RUF012

    @post(
        "/",
        summary="Evaluate an audio clip (background job)",
        status_code=202,
        operation_class=_UploadOperation,
        responses=_responses(400, 413, 415, 503),
        opt={"scope": "publish"},  # see arbiter.services.api_auth
    )
    async def submit(self, request: Request[Any, Any, Any]) -> Response[EvaluationAccepted]:
        """Store the upload, check that it is audio, queue its evaluation and answer at once
        with the job id. Follow ``status_url`` (poll) or ``events_url`` (server-sent events)."""
        evaluations: Evaluations = request.app.state.evaluations
        if missing := missing_modules(transcribe=False):
            raise _unavailable(missing)
        content_type, _ = request.content_type
        if content_type != RequestEncodingType.MULTI_PART:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"POST /evaluations takes multipart/form-data (got {content_type or 'none'}): "
                "an `audio` file part and a `competitor` field.",
            )
        form = await request.form()
        unknown = sorted(set(form.keys()) - FIELDS)
        if unknown:
            raise _bad(
                f"Unknown form field(s): {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}.",
                unknown[0],
            )
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise _bad("Form part `audio` is required and must be a file.", "audio")
        competitor = _text(form, "competitor", required=True)
        assert competitor is not None
        reference = _text(form, "reference", max_length=MAX_REFERENCE_CHARS)
        latency_ms = _number(form, "latency_ms", 0.0, METRIC_RANGES["latency_ms"].high)
        semascore = _number(form, "semascore", 0.0, 1.0)
        arena = _text(form, "arena") or "default"
        category = _text(form, "category")
        transcribe = _flag(form, "transcribe")
        do_transcribe = reference is not None if transcribe is None else transcribe
        if do_transcribe:
            if missing := missing_modules(transcribe=True):
                raise _unavailable(missing)
            from arbiter.evals.whisper_model import WhisperWeightsMissing, resolve_model

            try:  # imports whisper (about a second the first time): off the event loop
                await asyncio.to_thread(resolve_model)
            except WhisperWeightsMissing as exc:
                raise ApiError(503, "whisper_unavailable", str(exc)) from exc

        limit = evaluations.config.max_upload_bytes
        folder = evaluations.upload_dir()
        path, size, sha = await asyncio.to_thread(_store_upload, upload, folder, limit)
        job = _Job(
            id=uuid.uuid4().hex, path=path, competitor=competitor, arena=arena,
            category=category, filename=(upload.filename or None), size_bytes=size,
            audio_sha256=sha, reference=reference, latency_ms=latency_ms, semascore=semascore,
            transcribe=do_transcribe, created_at=_now(),
        )  # fmt: skip
        try:
            evaluations.submit(job)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        status_url = f"{self.path}/{job.id}"
        body = EvaluationAccepted(job.id, "queued", status_url, f"{status_url}/events")
        return Response(body, status_code=202, headers={"Location": status_url})

    @get("/{job_id:str}", summary="An evaluation's status and metrics", responses=_responses(404))
    async def status(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Evaluation:
        """The job as it stands: status, stage and progress; metrics when done, error when
        failed."""
        found = request.app.state.evaluations.view(job_id)
        if found is None:
            raise _expired(job_id)
        return found[0]  # type: ignore[no-any-return]

    @get(
        "/{job_id:str}/events",
        summary="An evaluation's progress as server-sent events",
        responses=_responses(404),
    )
    async def events(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> ServerSentEvent:
        """``progress`` events while the job is queued or running, then one ``done`` or
        ``failed`` event, and the stream ends. Each event's data is the job as JSON (the body
        of ``GET /evaluations/{id}``); its id is the job's change counter."""
        evaluations: Evaluations = request.app.state.evaluations
        if evaluations.view(job_id) is None:
            raise _expired(job_id)
        return ServerSentEvent(_stream(evaluations, job_id))


def _expired(job_id: str) -> ApiError:
    return _not_found(
        f"No evaluation {job_id!r}: unknown, or forgotten (jobs are kept in the API process's "
        "memory, the newest finished ones only, and are lost when it restarts)."
    )


async def _stream(evaluations: Evaluations, job_id: str) -> AsyncIterator[ServerSentEventMessage]:
    import msgspec

    last = -1
    idle = 0.0
    while True:
        found = evaluations.view(job_id)
        if found is None:  # evicted while streaming
            return
        view, version = found
        if version != last:
            last, idle = version, 0.0
            kind = view.status if view.status in ("done", "failed") else "progress"
            data = msgspec.json.encode(view).decode()
            yield ServerSentEventMessage(data=data, event=kind, id=str(version))
            if kind != "progress":
                return
        elif idle >= KEEPALIVE_S:
            idle = 0.0
            yield ServerSentEventMessage(data=None, comment="keep-alive")
        await asyncio.sleep(POLL_S)
        idle += POLL_S
