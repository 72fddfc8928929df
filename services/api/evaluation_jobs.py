"""The evaluation jobs behind ``/evaluations``: their limits and the runners that score an
upload and publish its result (the routes are :mod:`.routes.evaluations`, the SQL
:mod:`.evaluation_store`, the target and its event :mod:`.evaluation_targets`).

Jobs live in PostgreSQL (``arbiter_evaluations.jobs``), the upload's audio in the job's row
(bytea, at most ``ARBITER_EVAL_MAX_UPLOAD_BYTES``; dropped when the job ends). A row rather than
a file under ``ARBITER_HOME`` because API processes sharing a database need not share a disk,
and the row goes with the job in one transaction. So a job outlives the API process that took
it, and every API process (``--workers``, replicas) runs jobs from the same table.

Each API process runs ``ARBITER_EVAL_WORKERS`` runners (default 1), each an asyncio task with
its own database session that measures in a worker thread (librosa's pYIN and Whisper release
the GIL in their numeric kernels). A runner claims the oldest ``queued`` job, or a ``running``
one whose runner is gone, with ``SELECT ... FOR UPDATE SKIP LOCKED``, and holds a session
advisory lock on it while it runs: PostgreSQL drops that lock with the session, so a job left
``running`` by an API that stopped or crashed is seen as interrupted and **resumed** from its
stored audio (``attempts`` counts the runs). A job interrupted :data:`MAX_ATTEMPTS` times is
marked failed (``interrupted``) instead of being tried forever (it may be what kills the API).
Runners look for work when an upload arrives and every ``ARBITER_EVAL_POLL_S`` seconds (default
2), which is also how long an idle API may take to resume another's interrupted job.

With ``ARBITER_EVAL_QUEUE`` (default 8) jobs queued or running in the table, an upload is a 503
``busy``. Finished jobs are kept (without their audio): they record what was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from arbiter.adapters.bus import REJECTED_STREAM
from arbiter.domain.events import content_digest
from arbiter.domain.rejections import RejectedEvent, Rejection
from arbiter.domain.validation import decode_event
from psycopg import AsyncConnection, sql

from .bus import Bus
from .errors import ApiError
from .evaluation_store import (
    BATTLE_LOCK,
    JOBS,
    LOCK_CLASS,
    JobRow,
    battle_jobs,
    get_job,
    set_fields,
)
from .evaluation_targets import event_for_battle, event_for_trial
from .publishing import publish_checked
from .store import ReadStore

__all__ = [
    "DEFAULT_MAX_UPLOAD",
    "MAX_ATTEMPTS",
    "MAX_UPLOAD_ENV",
    "POLL_ENV",
    "QUEUE_ENV",
    "WORKERS_ENV",
    "EvaluationConfig",
    "Evaluations",
    "now",
]

log = logging.getLogger("arbiter.api.evaluations")

MAX_UPLOAD_ENV = "ARBITER_EVAL_MAX_UPLOAD_BYTES"
WORKERS_ENV = "ARBITER_EVAL_WORKERS"
QUEUE_ENV = "ARBITER_EVAL_QUEUE"
POLL_ENV = "ARBITER_EVAL_POLL_S"
DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024
_REJECTED = msgspec.json.Decoder(RejectedEvent)
MAX_ATTEMPTS = 3
"""Runs a job may start; one interrupted this many times is failed, not resumed again."""


def _env_number(name: str, default: float, minimum: float, kind: type = int) -> Any:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not value >= minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """Limits of the evaluation service (see the module docstring)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    workers: int = 1
    max_pending: int = 8
    poll_s: float = 2.0
    verdict_wait_s: float = 5.0
    """How long a job waits for its event to show up in the log before it reports ``pending``."""

    @classmethod
    def from_env(cls) -> EvaluationConfig:
        return cls(
            max_upload_bytes=_env_number(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD, 1),
            workers=_env_number(WORKERS_ENV, 1, 1),
            max_pending=_env_number(QUEUE_ENV, 8, 1),
            poll_s=_env_number(POLL_ENV, 2.0, 0.05, float),
        )


def now() -> datetime:
    return datetime.now(UTC)


class Evaluations:
    """The runners of one API process (started and stopped by the app's lifespan)."""

    def __init__(self, database_url: str, config: EvaluationConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or EvaluationConfig()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._reads: ReadStore | None = None
        self._bus: Bus | None = None

    def start(self, reads: ReadStore, bus: Bus) -> None:
        self._reads, self._bus = reads, bus
        self._executor = ThreadPoolExecutor(self.config.workers, thread_name_prefix="arbiter-eval")
        self._tasks = [asyncio.create_task(self._runner()) for _ in range(self.config.workers)]

    def wake(self) -> None:
        """An upload arrived: look for work now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the runners. A job they were running stays ``running`` with its audio; their
        sessions close, which frees it for the next runner of any API process to resume."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:  # a measurement under way finishes, unused, in its thread
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- the runner loop --------------------------------------------------------------------------

    async def _runner(self) -> None:
        conn: AsyncConnection[Any] | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(
                            self.database_url, autocommit=True,
                            application_name="arbiter-api-evaluations",
                        )  # fmt: skip
                    job = await self.claim(conn)
                    if job is not None:
                        await self._run_claimed(conn, job)
                        continue
                except (psycopg.Error, OSError) as exc:
                    log.warning("evaluation runner: %r; retrying", exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_s)
                self._wake.clear()
        finally:
            if conn is not None:
                await conn.close()  # ends the session: its job's lock goes with it

    async def claim(self, conn: AsyncConnection[Any]) -> JobRow | None:
        """Take the oldest job that is queued, or running without a live runner, on ``conn``'s
        session (whose advisory lock then marks it as running here)."""
        async with conn.transaction():
            cur = await conn.execute(
                sql.SQL(
                    "SELECT job_id, status, attempts FROM {} WHERE status IN ('queued', "
                    "'running') ORDER BY created_at, job_id LIMIT 32 FOR UPDATE SKIP LOCKED"
                ).format(JOBS)
            )
            for job_id, status, attempts in await cur.fetchall():
                locked = await conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, job_id)
                )
                row = await locked.fetchone()
                if not (row and row[0]):
                    continue  # its runner is alive
                if status == "running" and attempts >= MAX_ATTEMPTS:
                    await set_fields(
                        conn, job_id, None, status="failed", stage="failed", audio=None,
                        finished_at=now(), error_code="interrupted",
                        error_message=f"Interrupted by an API restart {attempts} times while "
                        "it ran; not tried again (upload the clip again to retry).",
                    )  # fmt: skip
                    await self._unlock(conn, job_id)
                    continue
                resumed = status == "running"
                await set_fields(
                    conn, job_id, None, status="running", attempts=attempts + 1,
                    stage="resumed" if resumed else "decoding", progress=0.05,
                    started_at=now(),
                )  # fmt: skip
                if resumed:
                    log.info("resuming evaluation %s (interrupted by an API restart)", job_id)
                return await get_job(conn, job_id)
        return None

    @staticmethod
    async def _unlock(conn: AsyncConnection[Any], job_id: str) -> None:
        await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, job_id))

    async def _run_claimed(self, conn: AsyncConnection[Any], job: JobRow) -> None:
        try:
            await self._run(conn, job)
        except ApiError as exc:  # refused before publishing, by a rule of the log
            await set_fields(
                conn, job.job_id, job.attempts, status="failed", stage="failed", audio=None,
                finished_at=now(), error_code=exc.body.code, error_message=exc.body.message,
                event_id=None,  # nothing was published
            )  # fmt: skip
        except (psycopg.Error, OSError):
            raise  # the runner reconnects; the job, left running, is resumed
        except Exception as exc:
            log.error("evaluation %s failed", job.job_id, exc_info=exc)
            await set_fields(
                conn, job.job_id, job.attempts, status="failed", stage="failed", audio=None,
                finished_at=now(), error_code="internal",
                error_message=f"The evaluation failed ({type(exc).__name__}); it has been logged.",
            )  # fmt: skip
        await self._unlock(conn, job.job_id)

    # -- one job ------------------------------------------------------------------------------

    async def _run(self, conn: AsyncConnection[Any], job: JobRow) -> None:
        attempt = job.attempts
        if job.metrics is None and job.error_code is None:  # not measured yet (or again)
            cur = await conn.execute(
                sql.SQL("SELECT audio FROM {} WHERE job_id = %s").format(JOBS), (job.job_id,)
            )
            audio = (await cur.fetchone() or (None,))[0]
            if audio is None:
                raise RuntimeError("the job has neither audio nor a measurement")
            loop = asyncio.get_running_loop()
            report = self._reporter(loop, job.job_id, attempt)
            try:
                result = await loop.run_in_executor(
                    self._executor, _measure, job, bytes(audio), report
                )
            except Exception as exc:
                code, message = _classify(exc)
                if code != "undecodable_audio" or job.trial_id is None:
                    if code == "internal":
                        log.error("evaluation %s failed", job.job_id, exc_info=exc)
                    await set_fields(
                        conn, job.job_id, attempt, status="failed", stage="failed", audio=None,
                        finished_at=now(), error_code=code, error_message=message,
                    )  # fmt: skip
                    return
                # A trial's unusable audio is the trial's result: a failed trial is published.
                await set_fields(conn, job.job_id, attempt, stage="publishing",
                                 error_code=code, error_message=message)  # fmt: skip
            else:
                await set_fields(conn, job.job_id, attempt, stage="publishing", progress=0.9,
                                 **result)  # fmt: skip
            stored = await get_job(conn, job.job_id)  # what the event is built from, as stored
            if stored is None:
                return
            job = stored
        if job.battle_id is None:
            await self._finish(conn, job, [job], event_for_trial(job))
        else:
            await self._pair(conn, job)

    async def _pair(self, conn: AsyncConnection[Any], job: JobRow) -> None:
        """A measured battle side: wait for the other side, or publish the battle with it."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BATTLE_LOCK, job.battle_id)
            )
            others = [o for o in await battle_jobs(conn, job.battle_id)
                      if o.side != job.side and o.metrics is not None]  # fmt: skip
            if not others:
                await set_fields(
                    conn, job.job_id, job.attempts, status="waiting", progress=0.95, audio=None,
                    stage=f"waiting for side {'b' if job.side == 'a' else 'a'}",
                )  # fmt: skip
                return
        a, b = (job, others[0]) if job.side == "a" else (others[0], job)
        await self._finish(conn, job, [a, b], event_for_battle(a, b))

    async def _finish(
        self, conn: AsyncConnection[Any], job: JobRow, jobs: list[JobRow], event: dict[str, Any]
    ) -> None:
        """Publish ``event`` through ``POST /events``' path and close ``jobs`` with it."""
        decoded = decode_event(msgspec.json.encode(event))
        if isinstance(decoded, Rejection):
            raise ApiError.rejected(decoded)
        republish = job.event_id == decoded.event_id
        await set_fields(conn, job.job_id, job.attempts, event_id=decoded.event_id)
        assert self._reads is not None and self._bus is not None
        start = await self._rejected_head()
        while True:
            try:
                accepted = await publish_checked(
                    self._reads, self._bus, decoded, own=job.owner, admin=job.owner_admin
                )
                break
            except ApiError as exc:
                if exc.body.status != 503:
                    raise
                await set_fields(conn, job.job_id, job.attempts, stage="waiting for NATS")
                await asyncio.sleep(self.config.poll_s)
        refusal: Rejection | None = None
        if accepted.duplicate:
            ours = republish or await _sibling_published(conn, job, jobs, decoded.event_id)
            verdict = "recorded" if ours else "duplicate"
        else:
            verdict, refusal = await self._verdict(
                decoded.event_id, content_digest(decoded), start, accepted.stream_seq
            )
        if verdict == "conflict":
            refusal = Rejection(
                "conflict",
                f"The log holds event {decoded.event_id!r} with other content (another upload "
                "for the same target came first); this result was refused.",
            )
        failed = refusal is not None or job.error_code is not None
        error = {} if refusal is None else {"error_code": refusal.code,
                                            "error_message": refusal.message}  # fmt: skip
        for each in jobs:
            await set_fields(
                conn, each.job_id, each.attempts if each is job else None,
                status="failed" if failed else "done", stage="failed" if failed else "done",
                progress=1.0, finished_at=now(), audio=None, event_id=decoded.event_id,
                verdict=verdict, **error,
            )  # fmt: skip

    async def _rejected_head(self) -> int | None:
        """The sequence the next message of ``ARBITER_REJECTED`` will get (None: unknown)."""
        assert self._bus is not None
        try:
            js = (await self._bus.publisher()).js
            assert js is not None
            return int((await js.stream_info(REJECTED_STREAM)).state.last_seq) + 1
        except Exception:  # no NATS or no stream yet: the verdict then comes from the log only
            return None

    async def _verdict(
        self, event_id: str, digest: bytes, start: int | None, stream_seq: int | None
    ) -> tuple[str, Rejection | None]:
        """Wait (up to ``verdict_wait_s``) for the ingest's word on the published event: in the
        log (``recorded``, or ``conflict`` with other content), or refused in
        ``ARBITER_REJECTED`` (matched by its stream sequence); else ``pending``."""
        assert self._reads is not None and self._bus is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.verdict_wait_s
        while True:
            recorded = await self._reads.recorded_digest(event_id)
            if recorded is not None:
                return ("recorded" if recorded == digest else "conflict"), None
            if start is not None and stream_seq is not None:
                start, refusal = await _find_rejection(self._bus, start, stream_seq)
                if refusal is not None:
                    return "refused", refusal
            if loop.time() >= deadline:
                return "pending", None
            await asyncio.sleep(0.2)

    def _reporter(
        self, loop: asyncio.AbstractEventLoop, job_id: str, attempt: int
    ) -> Callable[[str, float], None]:
        """A progress callback for the measuring thread: writes stage and progress."""

        async def write(stage: str, progress: float) -> None:
            assert self._reads is not None
            async with self._reads.primary.connection() as conn:
                await set_fields(conn, job_id, attempt, stage=stage, progress=progress)

        def report(stage: str, progress: float) -> None:
            asyncio.run_coroutine_threadsafe(write(stage, progress), loop)

        return report


async def _find_rejection(bus: Bus, start: int, stream_seq: int) -> tuple[int, Rejection | None]:
    """Look through ``ARBITER_REJECTED`` from ``start`` for the rejection of the message at
    ``stream_seq``; returns where to look next time and the rejection if found."""
    try:
        js = (await bus.publisher()).js
        assert js is not None
        last = int((await js.stream_info(REJECTED_STREAM)).state.last_seq)
        for seq in range(start, last + 1):
            found = _REJECTED.decode((await js.get_msg(REJECTED_STREAM, seq)).data)
            if found.stream_seq == stream_seq:
                return seq + 1, found.rejection
        return last + 1, None
    except Exception:  # NATS unavailable now: try again on the next round
        return start, None


def _measure(job: JobRow, audio: bytes, report: Callable[[str, float], None]) -> dict[str, Any]:
    """Measure the clip (in a worker thread): the job's metrics, composite and transcript."""
    # The evals extra (librosa, soundfile; torch and whisper to transcribe) is optional and
    # heavy: imported when a job runs, so the API starts and serves without it.
    from arbiter.evals.audio import load_audio
    from arbiter.evals.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="arbiter-evaluation-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(audio)
        try:
            samples = load_audio(path)
        except Exception as exc:
            name = job.filename or "the upload"
            raise type(exc)(str(exc).replace(str(path), name)) from exc
    transcriber = None
    if job.transcribe:
        from arbiter.evals.whisper_model import transcribe

        def transcriber(values: Any) -> str:
            report("transcribing", 0.2)
            text = transcribe(values)
            report("measuring", 0.6)
            return text
    else:
        report("measuring", 0.2)
    result = evaluate(samples, job.reference, job.latency_ms, transcribe=job.transcribe,
                      semascore=job.semascore, transcriber=transcriber)  # fmt: skip
    comp = result.composite
    composite = None
    if comp is not None:
        composite = {
            "score": round(comp.score, 6),
            "components": {k: round(v, 6) for k, v in comp.components.items()},
            "weights": {k: round(v, 6) for k, v in comp.weights.items()},
            "missing": list(comp.missing),
            "renormalised": comp.renormalised,
        }
    return {"metrics": result.metrics, "composite": composite, "transcript": result.transcript}


def _classify(exc: Exception) -> tuple[str, str]:
    """(code, message) of a failed measurement."""
    from arbiter.evals.audio import AudioLoadError  # the optional evals extra: see _measure

    if isinstance(exc, AudioLoadError):
        return "undecodable_audio", str(exc)
    if type(exc).__name__ == "WhisperWeightsMissing":
        return "whisper_unavailable", str(exc)
    log.error("evaluation failed", exc_info=exc)
    return "internal", f"The evaluation failed ({type(exc).__name__}); it has been logged."


async def _sibling_published(
    conn: AsyncConnection[Any], job: JobRow, jobs: list[JobRow], event_id: str
) -> bool:
    """Whether the other side's job published this very event. Two runners finishing the two
    sides of a battle at the same moment both find the other side measured, and both publish;
    the one that comes second gets a duplicate, and both jobs ended ``duplicate`` although
    the pair recorded the battle. A runner stores the event id before it publishes, so once
    the log answers "duplicate" the sibling's row already says so; read afresh here."""
    for each in jobs:
        if each is not job:
            fresh = await get_job(conn, each.job_id)
            if fresh is not None and fresh.event_id == event_id:
                return True
    return False
