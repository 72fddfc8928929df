"""Bulk writes shared by the projections: binary COPY, and upserts through it.

Binary COPY is the fastest way into PostgreSQL that psycopg offers: with the column types given
up front it packs rows in C, and the server parses no text. Measured on this project's data:
300k rating-history rows packed about 4x faster than text COPY, and 100k battle rows stored in
0.6 s instead of 1.8 s as ``INSERT .. SELECT FROM unnest(arrays)`` (building the arrays in
Python cost most of that).

JSON columns. The folds encode JSON once, as UTF-8 bytes (sorted keys, so equal values give
equal rows). psycopg's own jsonb dumper would take a Python value and encode it again; the
columns a caller names as ``jsonb`` here take the encoded bytes as they are, framed as jsonb's
binary format (a version byte, 1, then the JSON text), and the server parses them as it would
any JSON input.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor, sql
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

__all__ = ["EncodedJsonDumper", "copy_rows", "qualified", "upsert_rows"]


class EncodedJsonDumper(Dumper):
    """Dump JSON already encoded (UTF-8 bytes) into a binary jsonb field, unchanged."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


def qualified(schema: str, table: str) -> sql.Composed:
    """``schema.table``, both quoted: every statement here names a table in a projection's
    schema, live or a rebuild's fresh one."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def copy_rows(
    cur: Cursor[Any],
    schema: str,
    table: str,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """Append rows with binary COPY; ``types`` are PostgreSQL type names, one per column."""
    if not rows:
        return
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        qualified(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    _copy(cur, stmt, types, rows)


def upsert_rows(
    cur: Cursor[Any],
    schema: str,
    table: str,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    keys: int,
    rows: list[tuple[Any, ...]],
) -> None:
    """Insert or update rows keyed by their first ``keys`` columns: binary COPY into a temporary
    table, then one ``INSERT .. ON CONFLICT``. Packing tens of thousands of rows as ``unnest``
    arrays costs far more in Python than COPY does in C."""
    tmp = sql.Identifier(f"arbiter_upsert_{table}")
    target = qualified(schema, table)
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(tmp, target)
    )
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    _copy(cur, sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(tmp, cols), types, rows)
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}").format(
            target,
            cols,
            cols,
            tmp,
            sql.SQL(", ").join(map(sql.Identifier, columns[:keys])),
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in columns[keys:]
            ),
        )
    )
    cur.execute(sql.SQL("TRUNCATE {}").format(tmp))


def _copy(
    cur: Cursor[Any], stmt: sql.Composable, types: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    if "jsonb" in types:
        # On this cursor only (its adapters are copied on write): the connection's other
        # cursors keep psycopg's own jsonb dumper.
        cur.adapters.register_dumper(None, EncodedJsonDumper)
    with cur.copy(stmt) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
