-- Poison events: an event on which this projection's fold raised. The projector records it here,
-- with the error, and moves its position past it in the same transaction; rebuild and audit skip
-- the same positions (a rebuild carries this table into its fresh schema), so incremental fold,
-- rebuild and audit still agree. Deleting a row and rebuilding retries the event.
CREATE TABLE quarantine (
    position        bigint PRIMARY KEY,
    event_id        text NOT NULL,
    error           text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
