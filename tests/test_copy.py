"""Binary COPY helpers (projections/copy.py) against a real PostgreSQL: JSON the folds encoded
(UTF-8 bytes) lands as the JSON value it spells (an object stays an object, not a JSON string), next
to NULLs, arrays and timestamps, and upserts update what they find."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from arbiter.projections.copy import copy_rows, upsert_rows
from psycopg.types.json import Jsonb

COLUMNS = ("id", "doc", "tags", "at")
TYPES = ("text", "jsonb", "text[]", "timestamptz")
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _table(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS copytest")
    conn.execute(
        "CREATE TABLE copytest.t (id text PRIMARY KEY, doc jsonb, tags text[], at timestamptz)"
    )


def test_encoded_json_is_stored_as_the_json_it_spells(database_url: str) -> None:
    rows = [
        ("obj", b'{"a":{"wer":0.1},"n":[1,2.5,"x"]}', ["p", "q"], AT),
        ("str", b'"just a string"', [], AT),
        ("num", b"12.50", ["only"], AT),
        ("none", None, ["x", "y", "z"], AT),
    ]
    with psycopg.connect(database_url) as conn:
        _table(conn)
        with conn.cursor() as cur:
            copy_rows(cur, "copytest", "t", COLUMNS, TYPES, rows)
            # The connection's other cursors keep psycopg's own jsonb dumper.
            conn.execute(
                "INSERT INTO copytest.t (id, doc, tags, at) VALUES (%s, %s, %s, %s)",
                ("wrapped", Jsonb({"k": [1]}), ["w"], AT),
            )
        digits = conn.execute("SELECT doc::text FROM copytest.t WHERE id = 'num'").fetchone()
        got = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, jsonb_typeof(doc), doc, tags, at FROM copytest.t"
            ).fetchall()
        }
    assert got["obj"] == ("object", {"a": {"wer": 0.1}, "n": [1, 2.5, "x"]}, ["p", "q"], AT)
    assert got["str"] == ("string", "just a string", [], AT)
    assert got["num"][0] == "number" and digits == ("12.50",)  # jsonb keeps the digits sent
    assert got["none"] == (None, None, ["x", "y", "z"], AT)
    assert got["wrapped"][:2] == ("object", {"k": [1]})


def test_upsert_inserts_new_keys_and_updates_existing_ones(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        _table(conn)
        with conn.cursor() as cur:
            upsert_rows(cur, "copytest", "t", COLUMNS, TYPES, 1, [("a", b"1", ["x"], AT)])
            upsert_rows(
                cur,
                "copytest",
                "t",
                COLUMNS,
                TYPES,
                1,
                [("a", b'{"v":2}', ["y"], AT), ("b", None, [], AT)],
            )
        got = conn.execute("SELECT id, doc, tags FROM copytest.t ORDER BY id").fetchall()
    assert got == [("a", {"v": 2}, ["y"]), ("b", None, [])]
