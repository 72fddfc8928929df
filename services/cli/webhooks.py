"""``arbiter webhook-secret``: print the secret that signs an owner's webhook deliveries (the
worker itself, ``arbiter webhooks``, is in :mod:`.serve`).

``arbiter webhook-secret --key KEY_ID`` prints the key's webhook secret, making it on first use;
without ``--key`` it prints the home secret that signs experiments no key owns (or says that
``ARBITER_WEBHOOK_SECRET`` provides it). Like ``arbiter keys``, it talks to PostgreSQL directly:
whoever can run it can read the database already. The secret goes to standard output alone.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .common import console, fail, servers

__all__ = ["webhook_secret"]


def webhook_secret(
    key: Annotated[
        str | None, typer.Option("--key", help="The API key id (ak_...) whose secret to show.")
    ] = None,
) -> None:
    """Print the secret that signs webhook deliveries of a key's experiments (or the home's)."""
    import psycopg
    from arbiter.adapters import keys as api_keys
    from arbiter.adapters import webhooks as store
    from arbiter.services.setup import prepare_database

    if key is None and os.environ.get("ARBITER_WEBHOOK_SECRET"):
        console.print("the home secret is ARBITER_WEBHOOK_SECRET's value")
        return
    with servers() as rt:
        prepare_database(rt.database_url)
        with psycopg.connect(rt.database_url, autocommit=True) as conn:
            if key is not None and conn.execute(api_keys.SELECT_ONE, (key,)).fetchone() is None:
                raise fail(f"No API key {key!r}; `arbiter keys list` shows them.")
            secret = store.secret_for(conn, "" if key is None else f"key:{key}", None)
    print(secret)
