"""The stored-rows floor: how fast this PostgreSQL can write what Arbiter keeps for a log, at
its best. Issue 14 point 1 asks for an import rate; this measures what no import design can beat
while the log and the read models hold what they hold.

Every ordinary table of the log (``public``) and of the live read models that holds at least
:data:`MIN_ROWS` rows is copied into a fresh table without indexes in a scratch schema
(``CREATE TABLE .. (LIKE ..)`` and ``INSERT .. SELECT`` in one transaction), then given the same
indexes, built once each (a sort, not a b-tree insert per row): the way a rebuild fills its
fresh schema, and the cheapest way PostgreSQL has to take rows that must be indexed. The tables
are shared between two sessions (largest first, each to the less loaded one), so both cores
work. Reading the source rows is in the figure too, a few percent of it (a sequential scan).

What it leaves out, and so what an import needs on top of it: parsing the file, validating and
deciding every row, the ids and the hash chain, folding both read models, and the round trips.

    .venv/bin/python benchmarks/stored_floor.py --home DIR     # a home kept by import_bulk.py
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SCHEMAS = ("public", "arbiter_ratings", "arbiter_results")
MIN_ROWS = 10_000
"""Smaller tables (standings, pair counts, settings) are per competitor or pair, not per row."""
SCRATCH = "bench_stored_floor"

_Table = tuple[str, str, int, list[tuple[str, str]]]
"""schema, table, rows, [(index name, definition)]"""


def tables(conn: psycopg.Connection[Any]) -> list[_Table]:
    """Every ordinary table (a partition
    counts, its partitioned parent does not) with at least :data:`MIN_ROWS` rows, largest first."""
    found = []
    listed = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = ANY(%s)",
        (list(SCHEMAS),),
    ).fetchall()
    for schema, name in listed:
        table = sql.Identifier(schema, name)
        (rows,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()  # type: ignore[misc]
        if rows >= MIN_ROWS:
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = %s AND tablename = %s",
                (schema, name),
            ).fetchall()
            found.append((schema, name, int(rows), [(i, d) for i, d in indexes]))
    return sorted(found, key=lambda t: -t[2])


def _copy_one(conn: psycopg.Connection[Any], table: _Table) -> None:
    schema, name, _, indexes = table
    target = sql.Identifier(SCRATCH, f"{schema}__{name}")
    with conn.transaction():
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            target, sql.Identifier(schema, name)))  # fmt: skip
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
            target, sql.Identifier(schema, name)))  # fmt: skip
    for index, definition in indexes:
        on = f" ON {schema}.{name} " if f" ON {schema}.{name} " in definition else f" ON {name} "
        rebuilt = definition.replace(f"INDEX {index}", f"INDEX {SCRATCH}_{index}", 1).replace(
            on, f' ON {SCRATCH}."{schema}__{name}" ', 1
        )
        conn.execute(rebuilt)  # type: ignore[arg-type]


def measure(database_url: str, postgres_cpu: Callable[[], float]) -> dict[str, Any]:
    """Copy and index every per-row table (module docstring) in two sessions; returns the rows
    and indexes written, the wall seconds and PostgreSQL's CPU seconds. The scratch schema is
    dropped afterwards."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = tables(conn)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCRATCH)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCRATCH)))
    shares: list[list[_Table]] = [[], []]
    for table in found:  # largest first, each to the session with fewer rows so far
        min(shares, key=lambda s: sum(t[2] * (1 + len(t[3])) for t in s)).append(table)
    failures: list[BaseException] = []

    def work(share: list[_Table]) -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for table in share:
                    _copy_one(conn, table)
        except BaseException as error:
            failures.append(error)

    cpu, started = postgres_cpu(), time.perf_counter()
    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - started, postgres_cpu() - cpu
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCRATCH)))
    if failures:
        raise failures[0]
    return {
        "tables": [f"{s}.{n}" for s, n, _, _ in found],
        "table_rows": sum(t[2] for t in found),
        "index_entries": sum(t[2] * len(t[3]) for t in found),
        "seconds": round(seconds, 2),
        "postgres_cpu_s": round(cpu, 2),
    }


def main() -> None:
    from arbiter.adapters.embedded import EmbeddedServers
    from import_bulk import postgres_cpu  # type: ignore[import-not-found]

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True, help="embedded servers' home with a log")
    args = p.parse_args()
    servers = EmbeddedServers(args.home)
    database_url, _ = servers.start()
    try:
        for key, value in measure(database_url, postgres_cpu).items():
            print(f"{key:>16}: {value}")
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
