-- Games, votes and voids (issue 3).
--
-- rating_history: every row now says what kind of change it is (battle, vote, game, void) and
-- the competitor's counters after it, so the leaderboard as it stood at any position is one
-- DISTINCT ON query. A void writes one row per competitor whose standing it changed: before =
-- the standing with the voided result, after = without it (NULL after: no rated result left).
ALTER TABLE rating_history
    ADD COLUMN kind text NOT NULL DEFAULT 'battle',
    ADD COLUMN games integer NOT NULL DEFAULT 0,
    ADD COLUMN wins integer NOT NULL DEFAULT 0,
    ADD COLUMN losses integer NOT NULL DEFAULT 0,
    ADD COLUMN ties integer NOT NULL DEFAULT 0,
    ALTER COLUMN opponent DROP NOT NULL,
    ALTER COLUMN score DROP NOT NULL,
    ALTER COLUMN expected DROP NOT NULL,
    ALTER COLUMN k DROP NOT NULL,
    ALTER COLUMN rating_after DROP NOT NULL;
ALTER TABLE rating_history ALTER COLUMN kind DROP DEFAULT;
CREATE INDEX rating_history_pool ON rating_history (arena, category, position);

ALTER TABLE competitors
    ADD COLUMN retired boolean NOT NULL DEFAULT false,
    ADD COLUMN retired_reason text;

CREATE INDEX ratings_competitor ON ratings (competitor);

-- Pairwise outcome counts per pool (battles, votes, and every pair of a game): the
-- head-to-head table and the input of the Bradley-Terry fit. x < y.
CREATE TABLE pairs (
    arena     text NOT NULL,
    category  text NOT NULL,
    x         text NOT NULL,
    y         text NOT NULL,
    x_wins    integer NOT NULL,
    y_wins    integer NOT NULL,
    ties      integer NOT NULL,
    PRIMARY KEY (arena, category, x, y)
);

-- Every rated (or awaiting-votes) result, compactly, with the settings in force when it was
-- folded: what a void needs to replay a pool without the voided result after a restart.
-- Append-only; a void is recorded in `voids`, not by updating a row.
CREATE TABLE matches (
    position     bigint NOT NULL,
    event_id     text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    arena        text NOT NULL,
    category     text,
    kind         text NOT NULL,
    battle_id    text,
    players      text NOT NULL,   -- JSON array of competitor ids
    ranks        text,            -- JSON array of ranks (games), NULL for pairwise results
    score        float8,
    k            float8 NOT NULL,
    scale        float8 NOT NULL,
    base         float8 NOT NULL,
    initial      float8 NOT NULL,
    PRIMARY KEY (position)
);

CREATE TABLE voids (
    position         bigint PRIMARY KEY,
    event_id         text NOT NULL,
    target_event_id  text NOT NULL,
    target_position  bigint NOT NULL,
    reason           text
);
