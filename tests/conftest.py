"""Fixtures: a real PostgreSQL and a real nats-server for the whole session.

By default both are the embedded ones from the wheels, started once under a temporary home.
``ARBITER_TEST_DATABASE_URL`` / ``ARBITER_TEST_NATS_URL`` point the suite at other servers.
Each test gets a fresh database (created from scratch, migrated) and empty streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.services.setup import prepare_database
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    db = os.environ.get("ARBITER_TEST_DATABASE_URL")
    nats_url = os.environ.get("ARBITER_TEST_NATS_URL")
    embedded = None
    # Not under pytest's basetemp: pytest prunes old basetemps, which would delete the data
    # directory of a server another concurrent test run is still using.
    home = Path(tempfile.mkdtemp(prefix="arbiter-test-"))
    if not (db and nats_url):
        embedded = EmbeddedServers(home)
        emb_db, emb_nats = embedded.start()
        db, nats_url = db or emb_db, nats_url or emb_nats
    try:
        yield db, nats_url
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(home, ignore_errors=True)


def _with_dbname(url: str, dbname: str) -> str:
    info = conninfo_to_dict(url)
    info["dbname"] = dbname
    return make_conninfo(**info)


@pytest.fixture
def database_url(servers: tuple[str, str]) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    admin = servers[0]
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_dbname(admin, name)
    prepare_database(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def _reset_streams(url: str) -> None:
    from arbiter.adapters.bus import REJECTED_STREAM, STREAM, connect

    nc = await connect(url, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for stream in (STREAM, REJECTED_STREAM):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
    finally:
        await nc.close()


@pytest.fixture
def nats_url(servers: tuple[str, str]) -> str:
    """The NATS server, with the Arbiter streams deleted (no messages, no dedup state)."""
    asyncio.run(_reset_streams(servers[1]))
    return servers[1]
