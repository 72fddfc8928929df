-- The evaluation jobs of POST /evaluations (issue 13 point 5). Operational state of the API,
-- like the API keys: not a read model. No projection folds it, `arbiter rebuild` never touches
-- it and the audit does not compare it (it audits the projections' schemas only), because a job
-- is not derived from the log: the log holds what a job published, not the job.
--
-- Kept here rather than in memory so that a job outlives the API process that took the upload
-- and any API process sharing the database may run it (claimed with FOR UPDATE SKIP LOCKED; a
-- session advisory lock held while it runs says its runner is alive).

CREATE TABLE jobs (
    job_id        text PRIMARY KEY,
    owner         text,
    owner_admin   boolean NOT NULL DEFAULT false,
    status        text NOT NULL
                  CHECK (status IN ('queued', 'running', 'waiting', 'done', 'failed')),
    stage         text NOT NULL,
    progress      double precision NOT NULL DEFAULT 0,
    competitor    text NOT NULL,
    arena         text NOT NULL,
    category      text,
    filename      text,
    size_bytes    integer NOT NULL,
    audio_sha256  text NOT NULL,
    audio         bytea,
    reference     text,
    latency_ms    double precision,
    semascore     double precision,
    transcribe    boolean NOT NULL,
    experiment_id text,
    trial_id      text,
    prompt_index  integer,
    battle_id     text,
    side          text CHECK (side IN ('a', 'b')),
    scenario      text,
    created_at    timestamptz NOT NULL,
    occurred_at   timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    metrics       jsonb,
    composite     jsonb,
    transcript    text,
    error_code    text,
    error_message text,
    event_id      text,
    verdict       text,
    version       integer NOT NULL DEFAULT 0,
    CHECK (
        (experiment_id IS NOT NULL AND trial_id IS NOT NULL AND prompt_index IS NOT NULL
         AND battle_id IS NULL AND side IS NULL AND scenario IS NULL)
        OR (battle_id IS NOT NULL AND side IS NOT NULL
            AND experiment_id IS NULL AND trial_id IS NULL AND prompt_index IS NULL)
    )
);

-- What a runner looks for: jobs to start or to resume, oldest first.
CREATE INDEX jobs_open ON jobs (created_at, job_id) WHERE status IN ('queued', 'running');
-- GET /evaluations: newest first, per owner.
CREATE INDEX jobs_newest ON jobs (created_at DESC, job_id DESC);
CREATE INDEX jobs_owner_newest ON jobs (owner, created_at DESC, job_id DESC);
-- One live job per side of a battle (a failed one may be uploaded again).
CREATE UNIQUE INDEX jobs_battle_side ON jobs (battle_id, side)
    WHERE battle_id IS NOT NULL AND status <> 'failed';
