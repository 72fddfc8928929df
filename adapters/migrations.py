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

__all__ = ["migrate", "migration_files"]


_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                (version, name),
            )
            applied.append(f"{schema}: {version:04d}_{name}")
    return applied
