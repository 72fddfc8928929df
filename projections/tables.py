"""What the audit does with any projection's tables: read them keyed by primary key, compare
them with the replayed ones row by row, name every difference, and notice a table or column
that nothing compares.

Its own room because both read models (:mod:`.ratings.audit`, :mod:`.results_audit`) compare
the same way: a table is ``{key: row}`` with the row's columns in a fixed order
(:class:`Table`), so a mismatch names the table, the key, the column and both values.

Bookkeeping is not read-model state: ``tracking`` (where the projection stands; the audit
replays up to exactly that position and says so if the replay ends elsewhere), ``quarantine``
(the events a projector skipped; the audit skips the same and lists them) and
``schema_migrations`` (which migration files ran). Every other table of a projection's schema
must be compared: :func:`unaudited` names one the audit does not know, or a column it does not
read, so a migration that adds state without teaching the audit fails the audit instead of
going unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Cursor, sql

from .copy import qualified

__all__ = ["BOOKKEEPING", "Table", "compare_tables", "read_table", "unaudited"]

BOOKKEEPING = frozenset({"tracking", "quarantine", "schema_migrations"})
"""Tables of a projection's schema that record how it is kept, not what it holds."""


@dataclass(frozen=True)
class Table:
    """One audited table: its key columns, then the other columns, in row order."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    where: str = ""
    """A filter on the stored rows (SQL), for rows that mean nothing (e.g. all-zero pairs)."""


def read_table(cur: Cursor[Any], schema: str, table: Table) -> dict[Any, tuple[Any, ...]]:
    """The stored rows of ``table`` as ``{key: columns}`` (a one-column key is the bare value)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, (*table.key, *table.columns)))
    query = sql.SQL("SELECT {} FROM {}").format(cols, qualified(schema, table.name))
    if table.where:
        query += sql.SQL(" WHERE ") + sql.SQL(table.where)  # type: ignore[arg-type]
    cur.execute(query)
    n = len(table.key)
    if n == 1:
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}
    return {tuple(r[:n]): tuple(r[n:]) for r in cur.fetchall()}


def compare_tables(
    label: str,
    tables: tuple[Table, ...],
    want: dict[str, dict[Any, tuple[Any, ...]]],
    got: dict[str, dict[Any, tuple[Any, ...]]],
) -> list[str]:
    """Name every row that differs between the replay (``want``) and the read model (``got``):
    missing, extra, or which column and both values. ``label`` prefixes the table's name."""
    out: list[str] = []
    for table in tables:
        w, g = want.get(table.name, {}), got.get(table.name, {})
        name = f"{label}{table.name}"
        for key in sorted(set(w) | set(g), key=repr):
            if key not in g:
                out.append(f"{name} {key!r}: missing from the read model")
            elif key not in w:
                out.append(f"{name} {key!r}: in the read model but not in the replay")
            elif w[key] != g[key]:
                for column, a, b in zip(table.columns, w[key], g[key], strict=True):
                    if a != b or (type(a) is not type(b) and not _same_number(a, b)):
                        out.append(f"{name} {key!r}.{column}: replay {a!r}, read model {b!r}")
    return out


def _same_number(a: Any, b: Any) -> bool:
    """An int and a float (or Decimal) of equal value are the same stored number."""
    return isinstance(a, int | float) and isinstance(b, int | float) and a == b


def unaudited(
    cur: Cursor[Any], schema: str, label: str, audited: dict[str, tuple[str, ...]]
) -> list[str]:
    """Name each table of ``schema`` (partitions aside: their parent is read) that is neither
    bookkeeping nor in ``audited`` (table -> the columns compared), and each column that is not
    compared."""
    cur.execute(
        "SELECT c.relname, a.attname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname, a.attnum",
        (schema,),
    )
    out: list[str] = []
    for table, column in cur.fetchall():
        if table in BOOKKEEPING:
            continue
        if table not in audited:
            if not out or not out[-1].startswith(f"{label}{table}: "):
                out.append(f"{label}{table}: a table the audit does not compare")
        elif column not in audited[table]:
            out.append(f"{label}{table}.{column}: a column the audit does not compare")
    return out
