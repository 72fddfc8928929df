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
* ``GET /evaluations``: the jobs newest first (``status``, ``competitor``, ``limit``,
  ``offset``).

Every upload names where its result goes (:mod:`..evaluation_targets`): a trial or one side of a
battle; the finished job publishes the event through ``POST /events``' path. Jobs are kept in
PostgreSQL and run by every API process sharing it (:mod:`..evaluation_jobs`). A job is seen by
the key that uploaded it and by admin keys, as an experiment is (:mod:`..privacy`); any other
caller gets the 404 of an unknown job.

The API starts without the evals extra; ``POST /evaluations`` then answers 503
``evals_unavailable`` naming the extra to install (librosa and soundfile to measure, torch and
openai-whisper as well to transcribe). Errors are JSON ``{status, code, message}`` like every
other route.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from arbiter.domain.metrics import METRIC_RANGES
from arbiter.evals.extra import EXTRA_HINT, missing_modules
from arbiter.evals.judge import rfc3339
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ..auth import current_key, owner_source
from ..errors import ApiError, ErrorBody, error_responses, not_found
from ..evaluation_jobs import MAX_UPLOAD_ENV, QUEUE_ENV, EvaluationConfig, Evaluations, now
from ..evaluation_store import (
    BATTLE_LOCK,
    JobRow,
    NewJob,
    battle_jobs,
    get_job,
    insert_job,
    list_jobs,
    open_jobs,
)
from ..evaluation_targets import TARGET_FIELDS, mismatch, parse_target
from ..models.evaluations import STATUSES, Evaluation, EvaluationAccepted, EvaluationPage
from ..parameters import Limit, Offset
from ..privacy import viewer_of
from ..publishing import check_experiment_owner
from ..store import ReadStore

__all__ = ["EvaluationController", "evaluation_controller"]

FORM_SLACK = 256 * 1024
"""Room for the multipart framing and text fields on top of the audio limit."""
MAX_REFERENCE_CHARS = 20_000
POLL_S = 0.25
KEEPALIVE_S = 15.0

FIELDS = frozenset(
    {"audio", "competitor", "reference", "latency_ms", "semascore", "arena", "category",
     "transcribe", "occurred_at"}
) | TARGET_FIELDS  # fmt: skip


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


def _time(form: Any, name: str) -> datetime | None:
    text = _text(form, name, max_length=64)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(rfc3339(text).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"Form field `{name}` must be an RFC 3339 time, got {text!r}.", name) from None


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


def _read_upload(upload: UploadFile, limit: int) -> tuple[bytes, str]:
    """The upload's bytes (size-checked) and SHA-256, sniffed as audio. Raises ApiError 413 /
    400 / 415."""
    src = upload.file
    src.seek(0, os.SEEK_END)
    size = src.tell()
    src.seek(0)
    if size > limit:
        raise _too_large(limit)
    if size == 0:
        raise ApiError(400, "empty_upload", "The `audio` part is empty (0 bytes).", field="audio")
    data = src.read()
    with tempfile.TemporaryDirectory(prefix="arbiter-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        _sniff(path)
    return data, hashlib.sha256(data).hexdigest()


def _sniff(path: Path) -> None:
    """Check by content that libsndfile decodes the file as audio with at least one frame."""
    import soundfile as sf  # the optional evals extra: checked for before any upload is read

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
                "occurred_at": text(
                    "RFC 3339 time of the result (default: when the upload arrives); resend "
                    "the same to make a retried upload a duplicate."
                ),
                "experiment_id": text("A trial target: the experiment (with trial_id)."),
                "trial_id": text("A trial target: the trial id."),
                "prompt_index": text("A trial target: the prompt index.", OpenAPIType.INTEGER),
                "battle_id": text("A battle target: the battle (with side)."),
                "side": text("A battle target: `a` or `b`, the side this clip is."),
                "scenario": text("A battle target: the battle's scenario (optional)."),
            },
        )
        self.request_body = RequestBody(
            required=True,
            description="multipart/form-data with an `audio` file part and text fields.",
            content={RequestEncodingType.MULTI_PART.value: OpenAPIMediaType(schema=schema)},
        )


_EVAL_ERRORS = {
    400: "A bad form field or target (`bad_parameter`), an empty upload or empty audio.",
    403: "A trial into another key's experiment (`forbidden`).",
    404: "Unknown job, or another key's (`not_found`).",
    409: "That side of the battle has a live job already, or the other side disagrees "
    "(`conflict`).",
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
        responses=_responses(400, 403, 409, 413, 415, 503),
        opt={"scope": "publish"},  # see ..auth
    )
    async def submit(
        self, request: Request[Any, Any, Any], reads: NamedDependency[ReadStore]
    ) -> Response[EvaluationAccepted]:
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
            # Whisper (torch) is the optional, heavy part of the evals extra: imported on demand.
            from arbiter.evals.whisper_model import WhisperWeightsMissing, resolve_model

            try:  # imports whisper (about a second the first time): off the event loop
                await asyncio.to_thread(resolve_model)
            except WhisperWeightsMissing as exc:
                raise ApiError(503, "whisper_unavailable", str(exc)) from exc

        values = {name: _text(form, name) for name in TARGET_FIELDS}
        occurred_at = _time(form, "occurred_at")
        target = parse_target(values)
        key = current_key(request)
        if key is not None and target.experiment_id is not None and not key.allows("admin"):
            await check_experiment_owner(reads, target.experiment_id, owner_source(key))
        limit = evaluations.config.max_upload_bytes
        data, sha = await asyncio.to_thread(_read_upload, upload, limit)
        job = NewJob(
            job_id=uuid.uuid4().hex, owner=None if key is None else owner_source(key),
            owner_admin=key is not None and key.allows("admin"), competitor=competitor,
            arena=arena, category=category, filename=(upload.filename or None), audio=data,
            audio_sha256=sha, reference=reference, latency_ms=latency_ms, semascore=semascore,
            transcribe=do_transcribe, target=target, created_at=(arrived := now()),
            occurred_at=occurred_at or arrived,
        )  # fmt: skip
        await _store(reads, job, evaluations.config.max_pending)
        evaluations.wake()
        status_url = f"{self.path}/{job.job_id}"
        body = EvaluationAccepted(job.job_id, "queued", status_url, f"{status_url}/events")
        return Response(body, status_code=202, headers={"Location": status_url})

    @get("/", summary="Evaluation jobs, newest first", responses=_responses(400))
    async def list_evaluations(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        status: Annotated[
            str | None,
            QueryParameter(description=f"Only jobs in this status: {', '.join(STATUSES)}."),
        ] = None,
        competitor: Annotated[
            str | None,
            QueryParameter(
                min_length=1, max_length=128, description="Only this competitor's jobs."
            ),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> EvaluationPage:
        """The jobs the caller may see (its own; every job for an admin key or while keys are
        not enforced), newest first, with their status, competitor, target and result."""
        if status is not None and status not in STATUSES:
            raise ApiError(
                400, "bad_parameter",
                f"Query parameter `status` is invalid: {status!r} is not one of "
                f"{', '.join(STATUSES)}.", field="status",
            )  # fmt: skip
        viewer = viewer_of(request)
        async with reads.primary.connection() as conn:
            rows, total = await list_jobs(
                conn, owner=viewer.source, everything=viewer.everything, status=status,
                competitor=competitor, limit=limit, offset=offset,
            )  # fmt: skip
        return EvaluationPage([r.view() for r in rows], total, limit, offset)

    @get("/{job_id:str}", summary="An evaluation's status and metrics", responses=_responses(404))
    async def status(
        self, request: Request[Any, Any, Any], reads: NamedDependency[ReadStore],
        job_id: FromPath[str],
    ) -> Evaluation:  # fmt: skip
        """The job as it stands: status, stage and progress; metrics when measured, the event
        published and its verdict when done, error when failed."""
        return (await _visible_job(request, reads, job_id)).view()

    @get(
        "/{job_id:str}/events",
        summary="An evaluation's progress as server-sent events",
        responses=_responses(404),
    )
    async def events(
        self, request: Request[Any, Any, Any], reads: NamedDependency[ReadStore],
        job_id: FromPath[str],
    ) -> ServerSentEvent:  # fmt: skip
        """``progress`` events while the job is queued, running or waiting, then one ``done``
        or ``failed`` event, and the stream ends. Each event's data is the job as JSON (the
        body of ``GET /evaluations/{id}``); its id is the job's change counter."""
        await _visible_job(request, reads, job_id)
        return ServerSentEvent(_stream(reads, job_id))


async def _store(reads: ReadStore, job: NewJob, max_pending: int) -> None:
    """Insert the job: 503 ``busy`` over the queue bound, 409 when a battle side is taken or
    the other side disagrees."""
    async with reads.primary.connection() as conn, conn.transaction():
        pending = await open_jobs(conn)
        if pending >= max_pending:
            raise ApiError(
                503, "busy",
                f"{pending} evaluations are already queued or running (the limit is "
                f"{max_pending}, {QUEUE_ENV}); retry shortly.",
            )  # fmt: skip
        t = job.target
        if t.battle_id is not None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BATTLE_LOCK, t.battle_id)
            )
            mine = {"battle_id": t.battle_id, "side": t.side, "arena": job.arena,
                    "category": job.category, "scenario": t.scenario, "owner": job.owner,
                    "competitor": job.competitor}  # fmt: skip
            for other in await battle_jobs(conn, t.battle_id):
                if (reason := mismatch(mine, other)) is not None:
                    raise ApiError(409, "conflict", reason + ".", field="battle_id")
        await insert_job(conn, job)


async def _visible_job(request: Request[Any, Any, Any], reads: ReadStore, job_id: str) -> JobRow:
    async with reads.primary.connection() as conn:
        job = await get_job(conn, job_id)
    if job is None or not viewer_of(request).sees(job.owner):
        raise not_found(f"No evaluation {job_id!r}.")
    return job


def evaluation_controller(config: EvaluationConfig) -> type[Controller]:
    """The routes, with Litestar's body limit set from ``config`` (the upload plus form slack)."""
    limit = config.max_upload_bytes + FORM_SLACK
    return type(  # a subclass per app: the body limit is a class attribute of the layer
        "EvaluationController", (EvaluationController,), {"request_max_body_size": limit}
    )


async def _stream(reads: ReadStore, job_id: str) -> AsyncIterator[ServerSentEventMessage]:
    last = -1
    idle = 0.0
    while True:
        async with reads.primary.connection() as conn:
            job = await get_job(conn, job_id)
        if job is None:
            return
        if job.version != last:
            last, idle = job.version, 0.0
            kind = job.status if job.status in ("done", "failed") else "progress"
            data = msgspec.json.encode(job.view()).decode()
            yield ServerSentEventMessage(data=data, event=kind, id=str(job.version))
            if kind != "progress":
                return
        elif idle >= KEEPALIVE_S:
            idle = 0.0
            yield ServerSentEventMessage(data=None, comment="keep-alive")
        await asyncio.sleep(POLL_S)
        idle += POLL_S
