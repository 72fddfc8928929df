-- The registry per arena (issue 13 point 7).
--
-- arena_competitors: who is in an arena. A competitor is in arena X once a
-- `competitor.registered` event names arena X (its envelope `arena`, default "default") or a
-- result of arena X names it (a battle's sides, awaiting votes or not, or a game's players).
-- `registered` says whether a registration in X named it; `registered_position` is the first
-- such registration's position (NULL: only seen in results there), which is what a leaderboard
-- as of a past position needs; `first_position` is where it first entered X. The global `competitors` table stays: name, provider, meta and retirement are
-- one per competitor.
CREATE TABLE arena_competitors (
    arena                text NOT NULL,
    competitor           text NOT NULL,
    registered           boolean NOT NULL,
    registered_position  bigint,
    first_position       bigint NOT NULL,
    PRIMARY KEY (arena, competitor)
);

-- arena_configs: every `arena.configured` event with the settings in force from it on, so a
-- leaderboard as of a past position shows a never-played competitor at the initial rating
-- configured at that position (`arenas` holds only the settings in force now). Append-only.
CREATE TABLE arena_configs (
    arena     text NOT NULL,
    position  bigint NOT NULL,
    k         float8 NOT NULL,
    initial   float8 NOT NULL,
    scale     float8 NOT NULL,
    base      float8 NOT NULL,
    weights   jsonb NOT NULL,
    strict    boolean NOT NULL,
    PRIMARY KEY (arena, position)
);

-- An existing read model cannot fill these tables from its own rows (what they need is only in
-- the log): the marker below has the migration runner empty the model and set it back to
-- position 0, so the projector folds the log again (adapters/migrations.py, REFOLD).
-- arbiter:refold
