-- Results read model: every battle, game, vote and trial as a row (with its void state), the
-- per-competitor metric sums behind the leaderboard's averages, and event counts by type.
-- Applied with search_path set to the projection's schema, so names here are unqualified.

CREATE TABLE tracking (
    projection   text PRIMARY KEY,
    position     bigint NOT NULL DEFAULT 0,
    generation   integer NOT NULL DEFAULT 0,
    events       bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tracking (projection) VALUES ('results');

CREATE TABLE battles (
    battle_id    text PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    position     bigint NOT NULL,
    occurred_at  timestamptz NOT NULL,
    arena        text NOT NULL,
    category     text,
    a            text NOT NULL,
    b            text NOT NULL,
    outcome      text,
    judge        text NOT NULL,
    scenario     text,
    metrics      jsonb,
    meta         jsonb NOT NULL,
    source       text,
    votes_a      integer NOT NULL DEFAULT 0,
    votes_b      integer NOT NULL DEFAULT 0,
    votes_tie    integer NOT NULL DEFAULT 0,
    voided_by    text
);
CREATE INDEX battles_list ON battles (arena, position DESC);
CREATE INDEX battles_a ON battles (a, position DESC);
CREATE INDEX battles_b ON battles (b, position DESC);

CREATE TABLE games (
    game_id       text PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    position      bigint NOT NULL,
    occurred_at   timestamptz NOT NULL,
    arena         text NOT NULL,
    category      text,
    participants  jsonb NOT NULL,
    competitors   text[] NOT NULL,
    rounds        integer,
    replay_uri    text,
    meta          jsonb NOT NULL,
    source        text,
    voided_by     text
);
CREATE INDEX games_list ON games (arena, position DESC);
CREATE INDEX games_competitors ON games USING gin (competitors);

CREATE TABLE votes (
    event_id     text PRIMARY KEY,
    vote_id      text NOT NULL,
    position     bigint NOT NULL,
    occurred_at  timestamptz NOT NULL,
    voter        text NOT NULL,
    battle_id    text,
    choice       text,
    trial_id     text,
    score        integer,
    voided_by    text
);
CREATE INDEX votes_battle ON votes (battle_id) WHERE battle_id IS NOT NULL;
CREATE INDEX votes_trial ON votes (trial_id, voter, position) WHERE trial_id IS NOT NULL;

CREATE TABLE trials (
    trial_id       text PRIMARY KEY,
    event_id       text NOT NULL UNIQUE,
    position       bigint NOT NULL,
    occurred_at    timestamptz NOT NULL,
    arena          text NOT NULL,
    category       text,
    experiment_id  text NOT NULL,
    competitor     text NOT NULL,
    prompt_index   integer NOT NULL,
    status         text NOT NULL,
    error          text,
    metrics        jsonb NOT NULL,
    dimensions     jsonb NOT NULL,
    source         text,
    score_sum      integer NOT NULL DEFAULT 0,
    score_votes    integer NOT NULL DEFAULT 0,
    voided_by      text
);
CREATE INDEX trials_experiment ON trials (experiment_id, position);
CREATE INDEX trials_arena ON trials (arena, competitor);

-- Sums of every numeric metric a competitor's battles (its side) and trials carried, per pool
-- (category '' = arena-wide). numeric, not float8: the sums are exact, so adding a batch and
-- subtracting a voided result give the same digits in any order, and a rebuild equals the
-- incremental model to the last digit.
CREATE TABLE competitor_metrics (
    arena       text NOT NULL,
    category    text NOT NULL,
    competitor  text NOT NULL,
    metric      text NOT NULL,
    total       numeric NOT NULL,
    count       bigint NOT NULL,
    PRIMARY KEY (arena, category, competitor, metric)
);

CREATE TABLE event_counts (
    type   text PRIMARY KEY,
    count  bigint NOT NULL
);
