"""Bring a database to the current schema: the event store's tables and every read model's."""

from __future__ import annotations

import psycopg
from arbiter.adapters import keys, operations, webhooks
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import migrate
from arbiter.projections import PROJECTIONS

__all__ = ["EVALUATIONS_SCHEMA", "prepare_database"]

EVALUATIONS_SCHEMA = "arbiter_evaluations"
"""The API's evaluation jobs (``migrations/evaluations``): operational state, not a read model,
so it is not in :data:`PROJECTIONS` and neither rebuilt nor audited."""


def prepare_database(database_url: str) -> list[str]:
    """Create the event store (the library creates its tables) and apply pending migrations.

    Idempotent and safe to run from several processes at once; returns what it applied.
    """
    EventLog(database_url, pool_size=1).close()
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        keys.ensure_table(conn)  # API keys: not a read model, see arbiter.adapters.keys
        operations.ensure_table(conn)  # last rebuild and audit, for /metrics
        for spec in PROJECTIONS.values():
            applied += migrate(conn, spec.name, spec.schema)
        applied += migrate(conn, "evaluations", EVALUATIONS_SCHEMA)
        # Webhook deliveries: operational state, never rebuilt (see arbiter.adapters.webhooks).
        applied += migrate(conn, "webhooks", webhooks.SCHEMA)
    return applied
