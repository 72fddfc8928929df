"""The ``arbiter`` command line (Typer + Rich): the root ``app`` and ``main``, assembled here from
one module per command group, as ``litestar/cli/main.py`` assembles Litestar's.

* :mod:`.common`: consoles, errors and exit codes, the servers, progress bars, shared options;
* :mod:`.serve`: ``up``, ``migrate``, ``ingest``, ``project``, ``api``;
* :mod:`.publish`: ``publish``, ``import``, ``demo``;
* :mod:`.arena`: ``arena configure``;
* :mod:`.boards`: ``leaderboard``; :mod:`.rebuild`: ``rebuild``; :mod:`.audit`: ``audit ...``;
* :mod:`.backup`: ``backup``, ``restore``; :mod:`.health`: ``health``; :mod:`.keys`: ``keys ...``;
* :mod:`.evals` (``evals battle``, ``evals trial``), :mod:`.evals_run` (``evals run``), with
  :mod:`.evals_shared` and :mod:`.evals_publish`.

Command modules import :mod:`.common` (and their own helpers), never this package, which imports
them: no cycle. Imports of the services a command drives (eventsourcing, NATS, uvicorn, numpy,
0.05 to 0.4 s each) stay inside the commands, so ``arbiter --help`` stays fast and the optional
evals extra (torch, whisper) is never loaded by the CLI itself.

What the CLI drives but does not present stays in plain modules of ``services/``, usable by any
entry point and tested on their own: :mod:`arbiter.services.delivery` (validate, look up,
publish and collect verdicts), :mod:`arbiter.services.backup` (the backup file format and the
restore) and :mod:`arbiter.services.demo` (the synthetic tournament's events).

Exit codes: 0 ok, 1 a failure was found (an audit mismatch, rejected events on publish),
2 usage or configuration error (bad flags, bad JSON, unreachable servers).
"""

from __future__ import annotations

import typer

from . import boards, publish, rebuild, serve, webhooks
from .arena import arena_app
from .audit import audit_app
from .backup import backup_command, restore_command
from .evals import evals_app
from .health import health_command
from .keys import keys_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="arbiter",
    help="Arbiter: an event-sourced rating engine (Elo leaderboards from an ordered event log).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(arena_app, name="arena")
app.add_typer(audit_app, name="audit")
app.add_typer(evals_app, name="evals")
app.add_typer(keys_app, name="keys")
# Registration order is the order `arbiter --help` lists them.
app.command("up")(serve.up)
app.command("migrate")(serve.migrate)
app.command("ingest")(serve.ingest)
app.command("project")(serve.project)
app.command("api")(serve.api)
app.command("webhooks")(serve.webhooks)
app.command("webhook-secret")(webhooks.webhook_secret)
app.command("publish")(publish.publish)
app.command("import")(publish.import_)
app.command("demo")(publish.demo)
app.command("leaderboard")(boards.leaderboard)
app.command("rebuild")(rebuild.rebuild)
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("health")(health_command)


def main() -> None:
    """Console-script entry point."""
    app()
