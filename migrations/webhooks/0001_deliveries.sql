-- Webhook deliveries (issue 13): operational state of `arbiter webhooks`, not a read model. It
-- is never rebuilt from the log (a rebuild would forget what was sent and send it again), so it
-- lives in its own schema, arbiter_webhooks, which the audit does not read.

-- One delivery per experiment and URL: the results body is frozen when it is first queued, so
-- every retry sends the same bytes under the same Idempotency-Key.
CREATE TABLE deliveries (
    delivery_id      text PRIMARY KEY,
    experiment_id    text NOT NULL,
    url              text NOT NULL,
    owner            text NOT NULL,
    body             bytea NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_error       text,
    UNIQUE (experiment_id, url)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';

-- Every attempt, as it happened.
CREATE TABLE attempts (
    delivery_id  text NOT NULL REFERENCES deliveries (delivery_id),
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    status_code  integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Signing secrets: one per API key (owner 'key:<key_id>'), and the home's (owner '') for
-- experiments no key owns when ARBITER_WEBHOOK_SECRET is not set.
CREATE TABLE secrets (
    owner       text PRIMARY KEY,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
