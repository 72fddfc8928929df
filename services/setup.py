"""Bring a database to the current schema: the event store's tables and every read model's."""

from __future__ import annotations

import psycopg
from arbiter.adapters import keys, webhooks
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import migrate
from arbiter.projections import PROJECTIONS

__all__ = ["prepare_database"]


def prepare_database(database_url: str) -> list[str]:
    """Create the event store (the library creates its tables) and apply pending migrations.

    Idempotent and safe to run from several processes at once; returns what it applied.
    """
    EventLog(database_url, pool_size=1).close()
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        keys.ensure_table(conn)  # API keys: not a read model, see arbiter.adapters.keys
        for spec in PROJECTIONS.values():
            applied += migrate(conn, spec.name, spec.schema)
        # Webhook deliveries: operational state, never rebuilt (see arbiter.adapters.webhooks).
        applied += migrate(conn, "webhooks", webhooks.SCHEMA)
    return applied
