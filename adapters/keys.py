"""API keys: the table ``public.arbiter_api_keys``; creating, listing and revoking keys.

A key is ``key_id`` (public, ``ak_<8 hex>``), a ``name``, ``scopes`` (a subset of ``read``,
``publish``, ``admin``), ``created_at`` and ``revoked_at``. Its secret is the token
``<key_id>.<32 random bytes, urlsafe base64>``; it is shown once, when the key is created, and
only the SHA-256 of the whole token is stored (``sha256`` bytea). A presented token is checked by
hashing it and comparing with :func:`hmac.compare_digest`, so neither the table nor a timing
difference gives the secret away. The ``key_id`` prefix lets the check find the row by primary
key without scanning hashes.

Keys are credentials, not results, so they are **not events**: they are not in the log, a replay
or rebuild never sees them, and ``arbiter backup`` (which saves the event store) does not save
them. After a restore into a fresh database, create the keys again (or copy this one table).
Revoking keeps the row (with ``revoked_at``): the key id stays unique, and the ``source`` of the
events it published (``key:<key_id>``) keeps naming a key that existed. That a row exists at all
is what keeps ``ARBITER_AUTH=auto`` enforcing once keys were used (:data:`ANY_KEY`).

The table is created by :func:`ensure_table`, which :func:`arbiter.services.setup.prepare_database`
(``arbiter migrate``, ``up``, the tests' fixtures) calls; it is plain DDL, not a projection
migration, because the table is not a read model and a rebuild must never drop it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = [
    "ADMINS_AMONG",
    "ANY_KEY",
    "COLUMNS",
    "DDL",
    "SCOPES",
    "SELECT_ALL",
    "SELECT_ONE",
    "TABLE",
    "ApiKey",
    "BadKeyRequest",
    "LastAdminKey",
    "check_scopes",
    "create",
    "digest",
    "ensure_table",
    "key_id_of",
    "list_keys",
    "new_token",
    "revoke",
]


TABLE = "arbiter_api_keys"
SCOPES = ("read", "publish", "admin")
_LOCK = zlib.crc32(TABLE.encode())

DDL = f"""
CREATE TABLE IF NOT EXISTS public.{TABLE} (
    key_id     text PRIMARY KEY,
    name       text NOT NULL,
    scopes     text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'publish', 'admin']::text[]),
    sha256     bytea NOT NULL CHECK (octet_length(sha256) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
)
"""

COLUMNS = "key_id, name, scopes, sha256, created_at, revoked_at"
SELECT_ONE = f"SELECT {COLUMNS} FROM public.{TABLE} WHERE key_id = %s"
SELECT_ALL = f"SELECT {COLUMNS} FROM public.{TABLE} ORDER BY created_at, key_id"
ANY_KEY = f"SELECT EXISTS (SELECT 1 FROM public.{TABLE})"
"""Whether a key was ever created (revoked ones count): what turns ``ARBITER_AUTH=auto`` on for
good, so that revoking the last key never opens the API."""
ADMINS_AMONG = f"SELECT key_id FROM public.{TABLE} WHERE key_id = ANY(%s) AND 'admin' = ANY(scopes)"
"""Which of these key ids have the admin scope. Revoked ones count: the ingest judges events
the API accepted while the key was valid, which may reach it after a revocation."""


class BadKeyRequest(ValueError):
    """A bad key request (unknown scope, empty name); the message says what to fix."""


class LastAdminKey(Exception):
    """Revoking this key would leave no active admin key; pass ``force`` to do it anyway."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key (never its secret: only the digest of the token)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    sha256: bytes
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """``admin`` implies every scope; ``read`` and ``publish`` are independent."""
        return scope in self.scopes or "admin" in self.scopes

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(digest(token), self.sha256)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ApiKey:
        return cls(row[0], row[1], tuple(row[2]), bytes(row[3]), row[4], row[5])


def digest(token: str) -> bytes:
    """SHA-256 of the whole token (what the table stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def key_id_of(token: str) -> str | None:
    """The ``key_id`` a token names, or None when it is not shaped like one of ours."""
    key_id, dot, secret = token.partition(".")
    if not dot or not secret or not key_id.startswith("ak_") or len(key_id) > 32:
        return None
    return key_id


def new_token() -> tuple[str, str]:
    """A fresh ``(key_id, token)``."""
    key_id = f"ak_{secrets.token_hex(4)}"
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return key_id, f"{key_id}.{secret}"


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in canonical order; :class:`BadKeyRequest` for an unknown one."""
    given = list(scopes)
    unknown = sorted(set(given) - set(SCOPES))
    if unknown:
        raise BadKeyRequest(f"Unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}.")
    if not given:
        raise BadKeyRequest(f"Give at least one scope ({', '.join(SCOPES)}).")
    return tuple(s for s in SCOPES if s in given)


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    """Create the table if absent; safe from several processes at once (advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(DDL)


def create(database_url: str, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Store a new key; returns it and its token (the only time the token exists in clear)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise BadKeyRequest("A key needs a name of 1 to 128 characters.")
    checked = check_scopes(scopes)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_table(conn)
        while True:
            key_id, token = new_token()
            row = conn.execute(
                f"INSERT INTO public.{TABLE} (key_id, name, scopes, sha256) "
                f"VALUES (%s, %s, %s, %s) ON CONFLICT (key_id) DO NOTHING RETURNING {COLUMNS}",
                (key_id, name, list(checked), digest(token)),
            ).fetchone()
            if row is not None:  # else a 1-in-4-billion id collision: draw again
                return ApiKey.from_row(row), token


def list_keys(database_url: str) -> list[ApiKey]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_table(conn)
        return [ApiKey.from_row(r) for r in conn.execute(SELECT_ALL).fetchall()]


def revoke(database_url: str, key_id: str, *, force: bool = False) -> ApiKey | None:
    """Mark the key revoked (idempotent: a second revoke keeps the first time); None if unknown.

    Revoking the last active admin key raises :class:`LastAdminKey` unless ``force``: without
    one, keys can only be managed with ``arbiter keys`` on the database itself. The check and
    the update run in one transaction under the table's advisory lock, so two revokes at once
    cannot each leave the other as "the last one" and end with none."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_table(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if not force:
                last = conn.execute(
                    f"SELECT 'admin' = ANY(scopes) AND revoked_at IS NULL AND NOT EXISTS ("
                    f"SELECT 1 FROM public.{TABLE} WHERE key_id <> %s AND revoked_at IS NULL "
                    f"AND 'admin' = ANY(scopes)) FROM public.{TABLE} WHERE key_id = %s",
                    (key_id, key_id),
                ).fetchone()
                if last is not None and last[0]:
                    raise LastAdminKey(
                        f"{key_id} is the last active admin key: without one, /admin/... is "
                        "closed and keys can be managed only with `arbiter keys` on the "
                        "database. Create another admin key first, or force it."
                    )
            row = conn.execute(
                f"UPDATE public.{TABLE} SET revoked_at = coalesce(revoked_at, now()) "
                f"WHERE key_id = %s RETURNING {COLUMNS}",
                (key_id,),
            ).fetchone()
    return None if row is None else ApiKey.from_row(row)
