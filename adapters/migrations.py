"""Numbered SQL migrations for the read-model schemas, applied in order and recorded.

Each projection owns a folder ``migrations/<projection>/`` of ``NNNN_name.sql`` files written with
unqualified names. They are applied with ``search_path`` set to the target schema, so the same
files build the live schema (``arbiter migrate``) and a rebuild's fresh one. Applied versions are
recorded in ``<schema>.schema_migrations``, which therefore swaps along with the tables on rebuild.
A transaction-level advisory lock keeps two processes from migrating the same schema at once.
"""

from __future__ import annotations

import re
import zlib
from importlib import resources
from typing import Any

from psycopg import Connection, sql

__all__ = ["REFOLD", "migrate", "migration_files", "refold"]


_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
REFOLD = "-- arbiter:refold"
"""A line a migration file holds when the tables it adds cannot be filled from the model's own
rows (what they need is only in the log): after applying it, :func:`refold` runs. Left empty,
such tables would answer wrongly without a word; refolded, the model is briefly behind, and
every answer says the position it reflects."""
_KEPT = ("tracking", "quarantine", "schema_migrations")


def migration_files(projection: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for each migration of a projection, in version order."""
    folder = resources.files("arbiter.migrations").joinpath(projection)
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in migrations/{projection}: {versions}")
    return found


def migrate(conn: Connection[Any], projection: str, schema: str) -> list[str]:
    """Apply the pending migrations of ``projection`` to ``schema``; returns the applied names."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(schema.encode()),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        done = {
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema))
            )
        }
        for version, name, text in migration_files(projection):
            if version in done:
                continue
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            conn.execute(text.encode())
            if REFOLD in text.splitlines():
                refold(conn, schema)
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                (version, name),
            )
            applied.append(f"{schema}: {version:04d}_{name}")
    return applied


def refold(conn: Connection[Any], schema: str) -> bool:
    """Empty every table of the read model in ``schema`` but its bookkeeping (tracking,
    quarantine, migrations) and set its position back to 0, in the caller's transaction, so that
    its projector folds the whole log again (quarantined positions stay skipped; a running
    projector sees its position move and reloads). A model at position 0 (a new database, a
    rebuild's fresh schema) is left alone. Returns whether it refolds."""
    ident = sql.Identifier(schema)
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.tracking WHERE position > 0").format(ident)
    ).fetchone()
    if not row or not row[0]:
        return False
    tables = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND c.relname <> ALL(%s) ORDER BY c.relname",
        (schema, list(_KEPT)),
    ).fetchall()
    for (table,) in tables:
        conn.execute(sql.SQL("TRUNCATE {}.{}").format(ident, sql.Identifier(table)))
    conn.execute(
        sql.SQL("UPDATE {}.tracking SET position = 0, events = 0, updated_at = now()").format(ident)
    )
    return True
