"""The SQL of the evaluation jobs (table ``arbiter_evaluations.jobs``, see
``migrations/evaluations/0001_jobs.sql``): adding a job, reading one or a page of them as the
API shows them, and the runner's claim and updates.

Its own room so that the routes (:mod:`.routes.evaluations`) and the runner
(:mod:`.evaluation_jobs`) share one description of a row and never write SQL of their own.
Every update by a runner names the attempt it belongs to (``attempts``), so a runner that lost
its job (its API stopped and another took the job over) changes nothing any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from .models.evaluations import CompositeView, Evaluation, JobError, Target

__all__ = [
    "BATTLE_LOCK",
    "JOBS",
    "LOCK_CLASS",
    "JobRow",
    "NewJob",
    "battle_jobs",
    "get_job",
    "insert_job",
    "list_jobs",
    "open_jobs",
    "set_fields",
]

JOBS = sql.Identifier("arbiter_evaluations", "jobs")
LOCK_CLASS = 0x45564C  # "EVL": the advisory lock space of running jobs (two-key form)
"""A runner holds ``pg_advisory_lock(LOCK_CLASS, hashtext(job_id))`` on its own session while it
runs a job; the lock ends with the session, so a job that is ``running`` with no lock held lost
its runner (an API restart or crash) and may be resumed."""

BATTLE_LOCK = LOCK_CLASS + 1
"""Advisory lock space (transaction level) serialising what concerns one battle: an upload of a
side checking the other, and a measured side deciding whether it publishes the pair."""

_FIELDS = (
    "job_id, owner, owner_admin, status, stage, progress, competitor, arena, category, filename, "
    "size_bytes, audio_sha256, reference, latency_ms, semascore, transcribe, experiment_id, "
    "trial_id, prompt_index, battle_id, side, scenario, created_at, started_at, finished_at, "
    "attempts, metrics, composite, transcript, error_code, error_message, event_id, verdict, "
    "version, occurred_at"
)
SELECT = sql.SQL(f"SELECT {_FIELDS} FROM {{}}").format(JOBS)


@dataclass(slots=True)
class JobRow:
    """One job as stored (without its audio)."""

    job_id: str
    owner: str | None
    owner_admin: bool
    status: str
    stage: str
    progress: float
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
    experiment_id: str | None
    trial_id: str | None
    prompt_index: int | None
    battle_id: str | None
    side: str | None
    scenario: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    metrics: dict[str, float] | None
    composite: dict[str, Any] | None
    transcript: str | None
    error_code: str | None
    error_message: str | None
    event_id: str | None
    verdict: str | None
    version: int
    occurred_at: datetime

    def view(self) -> Evaluation:
        target = Target(
            experiment_id=self.experiment_id, trial_id=self.trial_id,
            prompt_index=self.prompt_index, battle_id=self.battle_id,
            side=self.side, scenario=self.scenario,  # type: ignore[arg-type]
        )  # fmt: skip
        error = None
        if self.error_code is not None:
            error = JobError(self.error_code, self.error_message or "")
        return Evaluation(
            id=self.job_id, status=self.status, stage=self.stage,  # type: ignore[arg-type]
            progress=self.progress, competitor=self.competitor, arena=self.arena,
            size_bytes=self.size_bytes, audio_sha256=self.audio_sha256,
            transcribe=self.transcribe, created_at=self.created_at, category=self.category,
            filename=self.filename, started_at=self.started_at, finished_at=self.finished_at,
            metrics=self.metrics,
            composite=None if self.composite is None else CompositeView(**self.composite),
            transcript=self.transcript, error=error, target=target, attempts=self.attempts,
            event_id=self.event_id, verdict=self.verdict,  # type: ignore[arg-type]
            occurred_at=self.occurred_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewJob:
    """What an upload stores."""

    job_id: str
    owner: str | None
    owner_admin: bool
    competitor: str
    arena: str
    category: str | None
    filename: str | None
    audio: bytes
    audio_sha256: str
    reference: str | None
    latency_ms: float | None
    semascore: float | None
    transcribe: bool
    target: Target
    created_at: datetime
    occurred_at: datetime


async def insert_job(conn: AsyncConnection[Any], job: NewJob) -> None:
    t = job.target
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (job_id, owner, owner_admin, status, stage, competitor, arena, "
            "category, filename, size_bytes, audio_sha256, audio, reference, latency_ms, "
            "semascore, transcribe, experiment_id, trial_id, prompt_index, battle_id, side, "
            "scenario, created_at, occurred_at) VALUES (%s, %s, %s, 'queued', 'queued', %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(JOBS),
        (
            job.job_id, job.owner, job.owner_admin, job.competitor, job.arena, job.category,
            job.filename, len(job.audio), job.audio_sha256, job.audio, job.reference,
            job.latency_ms, job.semascore, job.transcribe, t.experiment_id, t.trial_id,
            t.prompt_index, t.battle_id, t.side, t.scenario, job.created_at, job.occurred_at,
        ),
    )  # fmt: skip


async def open_jobs(conn: AsyncConnection[Any]) -> int:
    """Jobs queued or running, in every API process (the bound of ``ARBITER_EVAL_QUEUE``)."""
    cur = await conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE status IN ('queued', 'running')").format(JOBS)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def get_job(conn: AsyncConnection[Any], job_id: str, *, lock: bool = False) -> JobRow | None:
    query = SELECT + sql.SQL(" WHERE job_id = %s")
    if lock:
        query += sql.SQL(" FOR UPDATE")
    cur = await conn.execute(query, (job_id,))
    row = await cur.fetchone()
    return None if row is None else JobRow(*row)


async def battle_jobs(conn: AsyncConnection[Any], battle_id: str) -> list[JobRow]:
    """The live (not failed) jobs of a battle's sides."""
    cur = await conn.execute(
        SELECT + sql.SQL(" WHERE battle_id = %s AND status <> 'failed' ORDER BY side"),
        (battle_id,),
    )
    return [JobRow(*r) for r in await cur.fetchall()]


async def list_jobs(
    conn: AsyncConnection[Any],
    *,
    owner: str | None,
    everything: bool,
    status: str | None,
    competitor: str | None,
    limit: int,
    offset: int,
) -> tuple[list[JobRow], int]:
    """A page of jobs newest first, and how many match; ``everything`` False keeps the jobs of
    ``owner`` only (none when ``owner`` is None)."""
    wanted = {"status": status, "competitor": competitor}
    names = [name for name, value in wanted.items() if value is not None]
    params: list[Any] = [wanted[name] for name in names]
    if not everything:  # no key (owner None) sees nothing: `owner = NULL` is never true
        names.append("owner")
        params.append(owner)
    where = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names]
    cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur = await conn.execute(
            SELECT + cond + sql.SQL(" ORDER BY created_at DESC, job_id DESC LIMIT %s OFFSET %s"),
            (*params, limit, offset),
        )
        rows = [JobRow(*r) for r in await cur.fetchall()]
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(JOBS) + cond, params)
        total = await cur.fetchone()
    return rows, int(total[0]) if total else 0


async def set_fields(
    conn: AsyncConnection[Any], job_id: str, attempt: int | None, **fields: Any
) -> bool:
    """Update a job's columns (dicts as jsonb) and bump its version; with ``attempt``, only
    while that attempt is the job's latest. Whether a row changed."""
    names = list(fields)
    values = [Jsonb(v) if isinstance(v, dict) else v for v in fields.values()]
    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names)
    query = sql.SQL("UPDATE {} SET {}, version = version + 1 WHERE job_id = %s").format(JOBS, sets)
    params: list[Any] = [*values, job_id]
    if attempt is not None:
        query += sql.SQL(" AND attempts = %s")
        params.append(attempt)
    cur = await conn.execute(query, params)
    return cur.rowcount > 0
