"""Where the servers are: configuration from the environment, or the embedded default.

* ``ARBITER_DATABASE_URL`` / ``ARBITER_NATS_URL`` name external servers.
* Unset, ``arbiter up`` starts the embedded PostgreSQL and nats-server under ``ARBITER_HOME``
  (default ``./.arbiter``) and records their URLs in ``ARBITER_HOME/runtime.json`` while it runs,
  so that other commands (``arbiter leaderboard``, ``publish``, ``audit``) in another terminal
  use those same servers. With no ``up`` running, such a command starts the embedded servers for
  its own duration and stops them when done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from arbiter.adapters.embedded import EmbeddedServers


@dataclass(frozen=True)
class Runtime:
    database_url: str
    nats_url: str
    embedded: bool


def home() -> Path:
    return Path(os.environ.get("ARBITER_HOME", ".arbiter")).expanduser().absolute()


def runtime_file() -> Path:
    return home() / "runtime.json"


def _recorded() -> tuple[str, str] | None:
    """The URLs a running ``arbiter up`` recorded, if its PostgreSQL still answers."""
    try:
        data = json.loads(runtime_file().read_text())
        with psycopg.connect(data["database_url"], connect_timeout=2):
            pass
        return data["database_url"], data["nats_url"]
    except (OSError, ValueError, KeyError, psycopg.Error):
        return None


def configured_urls() -> tuple[str, str]:
    """The URLs to check, never starting servers: the environment's, else those a running
    ``arbiter up`` recorded; raises :class:`LookupError` when there are none."""
    db = os.environ.get("ARBITER_DATABASE_URL")
    nats_url = os.environ.get("ARBITER_NATS_URL")
    if db and nats_url:
        return db, nats_url
    recorded = _recorded()
    if recorded is None:
        raise LookupError(
            "no servers configured: set ARBITER_DATABASE_URL and ARBITER_NATS_URL, "
            "or run `arbiter up` (its servers are found through ARBITER_HOME)"
        )
    return db or recorded[0], nats_url or recorded[1]


@contextmanager
def servers(*, owner: bool = False) -> Iterator[Runtime]:
    """Yield the servers to use; start embedded ones when no URL is configured.

    ``owner`` (``arbiter up``) records the embedded URLs for other commands while it runs.
    """
    db = os.environ.get("ARBITER_DATABASE_URL")
    nats_url = os.environ.get("ARBITER_NATS_URL")
    if db and nats_url:
        yield Runtime(db, nats_url, embedded=False)
        return
    if not owner and (recorded := _recorded()) is not None:
        yield Runtime(db or recorded[0], nats_url or recorded[1], embedded=True)
        return
    embedded = EmbeddedServers(home())
    emb_db, emb_nats = embedded.start()
    try:
        if owner:
            runtime_file().write_text(
                json.dumps({"database_url": emb_db, "nats_url": emb_nats, "pid": os.getpid()})
            )
        yield Runtime(db or emb_db, nats_url or emb_nats, embedded=True)
    finally:
        if owner:
            runtime_file().unlink(missing_ok=True)
        embedded.stop()
