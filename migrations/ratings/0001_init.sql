-- Ratings read model: Elo per arena and per category, leaderboard counters, rating history,
-- the competitor registry and arena settings, and the projection's position in the log.
-- Applied with search_path set to the projection's schema (live or a rebuild's fresh one),
-- so names here are unqualified.

CREATE TABLE tracking (
    projection   text PRIMARY KEY,
    position     bigint NOT NULL DEFAULT 0,
    generation   integer NOT NULL DEFAULT 0,
    events       bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE arenas (
    arena      text PRIMARY KEY,
    k          float8 NOT NULL,
    initial    float8 NOT NULL,
    scale      float8 NOT NULL,
    base       float8 NOT NULL,
    weights    jsonb NOT NULL,
    strict     boolean NOT NULL,
    position   bigint NOT NULL
);

CREATE TABLE competitors (
    competitor      text PRIMARY KEY,
    name            text,
    provider        text,
    meta            jsonb NOT NULL DEFAULT '{}',
    registered      boolean NOT NULL,
    first_position  bigint NOT NULL,
    last_position   bigint NOT NULL
);

-- category '' is the arena-wide pool; a battle with a category counts in both.
CREATE TABLE ratings (
    arena          text NOT NULL,
    category       text NOT NULL,
    competitor     text NOT NULL,
    rating         float8 NOT NULL,
    games          integer NOT NULL,
    wins           integer NOT NULL,
    losses         integer NOT NULL,
    ties           integer NOT NULL,
    last_position  bigint NOT NULL,
    last_at        timestamptz NOT NULL,
    PRIMARY KEY (arena, category, competitor)
);
CREATE INDEX ratings_board ON ratings (arena, category, rating DESC, competitor);

CREATE TABLE rating_history (
    competitor     text NOT NULL,
    arena          text NOT NULL,
    category       text NOT NULL,
    position       bigint NOT NULL,
    event_id       text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    opponent       text NOT NULL,
    score          float8 NOT NULL,
    expected       float8 NOT NULL,
    k              float8 NOT NULL,
    rating_before  float8 NOT NULL,
    rating_after   float8 NOT NULL,
    PRIMARY KEY (competitor, arena, category, position)
);

-- The one tracking row, present from the start so that a projector can lock it FOR UPDATE.
INSERT INTO tracking (projection) VALUES ('ratings');
