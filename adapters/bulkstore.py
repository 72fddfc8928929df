"""The bulk import's way of writing accepted events: binary ``COPY`` instead of ``unnest``.

:meth:`arbiter.adapters.eventstore.ArbiterRecorder.append_checked` takes the table lock, looks
up the facts, decides (the ingest's own :func:`arbiter.domain.decisions.decide`), takes the
positions and computes the hash chain; only the final write of the accepted rows is swapped for
the :func:`copy_rows` here. Why COPY: an ``unnest`` insert has psycopg dump every column as a
Python-built array literal (measured: 7.6 s of 29 s for 100,000 events in batches of 20,000),
while binary COPY streams each row with the C dumpers. Same rows, same transaction, same lock:
the log a bulk import writes is the log the ingest would have written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.sql import SQL, Composable

__all__ = ["EVENT_COLUMNS", "ID_COLUMNS", "copier", "copy_rows"]

EVENT_COLUMNS = (
    ("originator_id", "uuid"),
    ("originator_version", "int8"),
    ("topic", "text"),
    ("state", "bytea"),
    ("notification_id", "int8"),
)
ID_COLUMNS = (
    ("event_id", "text"),
    ("digest", "bytea"),
    ("notification_id", "int8"),
    ("type", "text"),
    ("chain", "bytea"),
)


def copy_rows(
    curs: Any, table: Composable, columns: tuple[tuple[str, str], ...], data: Sequence[list[Any]]
) -> None:
    """``COPY table (columns) FROM STDIN`` in binary, ``data`` given column-wise."""
    names = SQL(", ").join(SQL(name) for name, _ in columns)
    statement = SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, names)
    with curs.copy(statement) as copy:
        copy.set_types([kind for _, kind in columns])
        for row in zip(*data, strict=True):
            copy.write_row(row)


def copier(events_table: Composable, ids_table: Composable) -> Any:
    """The ``insert`` hook for ``append_checked``: COPY into the stored events, then the ids."""

    def insert(curs: Any, events: Sequence[list[Any]], ids: Sequence[list[Any]]) -> None:
        copy_rows(curs, events_table, EVENT_COLUMNS, events)
        copy_rows(curs, ids_table, ID_COLUMNS, ids)

    return insert
