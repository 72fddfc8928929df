"""``arbiter keys``: create, list and revoke API keys (``create``, ``list``, ``revoke``).

* ``arbiter keys create --name N --scope read --scope publish`` prints the new key's id and its
  token. The token is printed this once and never again (only its SHA-256 is stored): copy it
  then. It goes to standard output alone on its last line, so ``TOKEN=$(arbiter keys create
  ... | tail -1)`` captures it; the rest of the output never contains it.
* ``arbiter keys list`` shows ids, names, scopes, creation and revocation times; never secrets
  (the database holds none to show).
* ``arbiter keys revoke KEY_ID`` revokes a key; API processes stop accepting it within their
  cache TTL (``ARBITER_AUTH_CACHE_TTL``, default 5 s). Revoking the last active admin key is
  refused (exit 1, with a warning) unless ``--force``. Revoking every key does not open the
  API: once a key was created, ``ARBITER_AUTH=auto`` keeps enforcing (``off`` opens it).

The commands talk to PostgreSQL directly (``ARBITER_DATABASE_URL``, or the embedded server):
whoever can run them can already write the database, which is why the first key is made here and
not over HTTP. Exit codes: 0 ok, 1 unknown key on revoke or the last admin key without
``--force``, 2 usage or configuration error.
"""

from __future__ import annotations

from typing import Annotated

import typer
from arbiter.adapters import keys
from rich.table import Table

from .common import console, err, fail, servers

__all__ = ["create_key", "keys_app", "list_keys", "revoke_key"]

keys_app = typer.Typer(
    help="Manage API keys (shown once, stored as SHA-256).", no_args_is_help=True
)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, publish or admin; repeat for several."),
    ],
) -> None:
    """Create a key and print its token once."""
    with servers() as rt:
        try:
            key, token = keys.create(rt.database_url, name, scope)
        except keys.BadKeyRequest as exc:
            raise fail(str(exc)) from exc
    console.print(f"created {key.key_id} ({key.name}; scopes: {', '.join(key.scopes)})")
    console.print("The token below is shown this once; only its SHA-256 is stored:")
    # Plain print: no Rich wrapping or markup may alter the secret.
    print(token)


@keys_app.command("list")
def list_keys() -> None:
    """List keys (ids, names, scopes; never secrets)."""
    with servers() as rt:
        found = keys.list_keys(rt.database_url)
    if not found:
        console.print("no API keys (the API is open while ARBITER_AUTH is auto)")
        return
    table = Table("key_id", "name", "scopes", "created_at", "revoked_at")
    for key in found:
        table.add_row(
            key.key_id,
            key.name,
            ",".join(key.scopes),
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (ak_...).")],
    force: Annotated[
        bool, typer.Option("--force", help="Revoke it even if it is the last active admin key.")
    ] = False,
) -> None:
    """Revoke a key (kept in the list, marked revoked)."""
    with servers() as rt:
        try:
            key = keys.revoke(rt.database_url, key_id, force=force)
        except keys.LastAdminKey as exc:
            err.print(f"[yellow]warning:[/yellow] {exc} Repeat with --force to revoke it anyway.")
            raise typer.Exit(1) from exc
    if key is None:
        raise fail(f"no API key {key_id!r}", 1)
    console.print(f"revoked {key.key_id} ({key.name})")
