-- Experiments as declared (experiment.created) and closed (experiment.completed), issue 13.
-- One row per experiment that has either event; the two halves are written by different events
-- and never overwrite each other, so the row is the same in any batch split and order. Trials
-- stay in `trials`; counts and status are derived from both at read time (services/api).
CREATE TABLE experiments (
    experiment_id      text PRIMARY KEY,
    event_id           text UNIQUE,
    position           bigint,
    occurred_at        timestamptz,
    arena              text,
    category           text,
    name               text,
    competitors        text[],
    prompt_count       integer,
    trials_per_prompt  integer,
    webhook_url        text,
    source             text,
    closed_by          text UNIQUE,
    closed_position    bigint,
    closed_at          timestamptz,
    close_reason       text
);
