-- The log's index (issue 13 point 2): one row per folded event with what `GET /events` filters
-- on, and two lookup tables (competitor -> positions, entity -> positions) so a filtered page
-- is an ordered index range, not a scan of the log. Read-model state like every other table
-- here: filled by the results fold (projections/event_index.py), rebuilt by `arbiter rebuild`,
-- compared row by row by the audit (projections/event_index_audit.py).
--
-- `competitors` and `entities` hold everything the event names, its own and what it inherits
-- from the earlier event it refers to (a vote: its battle or trial; a void: its target), as
-- sorted distinct arrays; entities are written `<kind>:<id>` (battle, game, trial, experiment).
-- `experiment` is the experiment the event is about (a trial, a score vote, a void of either):
-- the API hides those events from callers who may not read that experiment.

CREATE TABLE event_index (
    position     bigint PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    type         text NOT NULL,
    arena        text NOT NULL,
    category     text,
    source       text,
    occurred_at  timestamptz NOT NULL,
    experiment   text,
    competitors  text[] NOT NULL,
    entities     text[] NOT NULL
);
CREATE INDEX event_index_type ON event_index (type, position);
CREATE INDEX event_index_arena ON event_index (arena, position);
CREATE INDEX event_index_category ON event_index (category, position) WHERE category IS NOT NULL;
CREATE INDEX event_index_source ON event_index (source, position) WHERE source IS NOT NULL;
CREATE INDEX event_index_occurred ON event_index (occurred_at, position);

-- `type` repeats the event's type so that a competitor's events of some types (its votes, its
-- voids) are one range of event_competitors_type, counted without visiting event_index.
CREATE TABLE event_competitors (
    competitor  text NOT NULL,
    position    bigint NOT NULL,
    type        text NOT NULL,
    PRIMARY KEY (competitor, position)
);
CREATE INDEX event_competitors_type ON event_competitors (competitor, type, position);

-- The id without its kind: `entity=x` finds every event naming a battle, game, trial or
-- experiment with id x.
CREATE TABLE event_entities (
    entity    text NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (entity, position)
);

-- An existing read model cannot fill these tables from its own rows (what they need is only in
-- the log): the marker below has the migration runner empty the model and set it back to
-- position 0, so the projector folds the log again (adapters/migrations.py, REFOLD).
-- arbiter:refold
