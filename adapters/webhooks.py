"""The webhook worker's tables (schema ``arbiter_webhooks``, ``migrations/webhooks/``): the
deliveries queued for completed experiments, every attempt, and the signing secrets.

This is operational state, not a read model: it records what was sent to whom, which the log
cannot say, so a rebuild must never drop it (and the audit, which compares projection schemas
only, never reads it). It is migrated at start with the read models
(:func:`arbiter.services.setup.prepare_database`).

Secrets. Each API key that owns experiments has its own webhook secret (owner ``key:<key_id>``),
made on first need (its first delivery, or ``arbiter webhook-secret --key KEY_ID``) and kept in
clear: an HMAC key must be known to sign, so unlike the key's token it cannot be stored hashed.
Experiments no key owns (published straight on NATS, or with keys off) are signed with the home
secret: ``ARBITER_WEBHOOK_SECRET`` when set, else one generated and stored here (owner ``''``),
shown by ``arbiter webhook-secret``. Who can read this table can already read the database.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from arbiter.domain.decisions import is_key
from psycopg import sql

__all__ = ["SCHEMA", "new_secret", "secret_for", "secret_owner", "table"]

SCHEMA = "arbiter_webhooks"


def table(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def secret_owner(owner: str) -> str:
    """Whose secret signs an experiment of ``owner``: its key's, or the home's (``''``)."""
    return owner if is_key(owner) else ""


def secret_for(conn: psycopg.Connection[Any], owner: str, home: str | None) -> str:
    """The secret for experiments of ``owner`` (made and stored on first need). ``home`` is
    ``ARBITER_WEBHOOK_SECRET``, which signs what no key owns when set."""
    whose = secret_owner(owner)
    if whose == "" and home:
        return home
    conn.execute(
        sql.SQL("INSERT INTO {} (owner, secret) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
            table("secrets")
        ),
        (whose, new_secret()),
    )
    row = conn.execute(
        sql.SQL("SELECT secret FROM {} WHERE owner = %s").format(table("secrets")), (whose,)
    ).fetchone()
    assert row is not None
    return str(row[0])
