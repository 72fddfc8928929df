"""``arbiter backup FILE`` and ``arbiter restore FILE``: the event log is the backup.

* ``arbiter backup FILE [--format binary|csv] [--overwrite]`` writes the event store's four tables
  (one consistent snapshot, taken while the services run) to a tar file with a manifest and a
  SHA-256 per table, and ``FILE.sha256``. Read models are not saved: they are derived.
* ``arbiter restore FILE [--force]`` checks the file, loads the tables into the event store in one
  transaction (refusing a store that holds anything unless ``--force``), continues the
  notification id sequence after the restored head, runs the migrations, rebuilds every
  projection from the log and prints the audit digest, which equals the one ``arbiter audit
  verify`` printed on the source database.

Format and the reasons for it: :mod:`arbiter.services.backup`, which stays a plain module of
``services/`` (it holds the file format and the restore, not presentation; this room only shows
its progress and results). Exit codes: 0 ok; 1 a failure found (a corrupt file, an audit
mismatch after the rebuild); 2 usage or configuration error (no such file, not a backup, a
non-empty store without ``--force``, unreachable servers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .common import console, err, fail, progress_bar, servers

__all__ = ["backup_command", "restore_command"]


@contextmanager
def _bytes_progress() -> Iterator[Any]:
    """A byte-counting progress display; yields the callback the backup module calls."""
    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=False,
    ) as bar:  # fmt: skip

        def progress(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield progress


def backup_command(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (.tar, or .tar.gz).")],
    format_: Annotated[
        str, typer.Option("--format", help="binary (exact, compact) or csv (readable).")
    ] = "binary",
    overwrite: Annotated[bool, typer.Option(help="Replace FILE if it exists.")] = False,
) -> None:
    """Back up the event log (the event store's tables) to FILE.

    Read models are not saved: restore rebuilds them from the log. Safe while services run.
    """
    from arbiter.services.backup import BackupError, backup  # lazy: loads eventsourcing

    with servers() as rt:
        try:
            with _bytes_progress() as progress:
                manifest = backup(
                    rt.database_url, file, copy_format=format_, overwrite=overwrite,
                    progress=progress,
                )  # fmt: skip
        except BackupError as exc:
            raise fail(str(exc), exc.exit_code) from exc
    console.print(f"backed up {manifest.events} events (head {manifest.head}) to {file}")
    console.print("rows: " + ", ".join(f"{t.name} {t.rows}" for t in manifest.tables))
    console.print(f"sha256 {Path(f'{file}.sha256').read_text().split()[0]}, also in {file}.sha256")


def restore_command(
    file: Annotated[Path, typer.Argument(help="A file written by 'arbiter backup'.")],
    force: Annotated[
        bool, typer.Option(help="Replace the log of a store that is not empty.")
    ] = False,
) -> None:
    """Restore the event log from FILE, rebuild the read models and print the audit digest.

    The event store must be empty (or pass --force). Stop ingest and projectors first.
    """
    # Lazy: these load eventsourcing and the folds (tenths of a second), which `arbiter --help`
    # and every other command need not pay.
    from arbiter.projections import PROJECTIONS
    from arbiter.services.backup import BackupError, read_manifest, restore
    from arbiter.services.processes.audit import verify
    from arbiter.services.processes.rebuild import rebuild
    from arbiter.services.setup import prepare_database

    try:
        read_manifest(file)  # a usage error is reported before any server is started
    except BackupError as exc:
        raise fail(str(exc), exc.exit_code) from exc
    with servers() as rt:
        try:
            with _bytes_progress() as progress:
                manifest = restore(rt.database_url, file, force=force, progress=progress)
        except BackupError as exc:
            raise fail(str(exc), exc.exit_code) from exc
        console.print(
            f"restored {manifest.events} events (head {manifest.head}) from {file}, backed up "
            f"{manifest.created_at.isoformat(timespec='seconds')}"
        )
        for name in prepare_database(rt.database_url):
            console.print(f"migrated {name}")
        for name, spec in PROJECTIONS.items():
            with progress_bar() as bar:
                task = bar.add_task(f"rebuilding {name}", total=manifest.head or None)

                def step(done: int, total: int, task: Any = task, bar: Any = bar) -> None:
                    bar.update(task, completed=done, total=total)

                result = rebuild(rt.database_url, spec, progress=step)
            console.print(
                f"{name}: rebuilt from {result.events} events to position {result.position}"
            )
        with progress_bar() as bar:
            task = bar.add_task("auditing", total=manifest.head or None)
            report = verify(
                rt.database_url,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if not report.ok:
        for line in report.mismatches[:50]:
            console.print(f"[red]MISMATCH[/red] {line}")
        console.print(f"replayed digest {report.digest}")
        raise typer.Exit(1)
    console.print(
        f"[green]OK[/green]: {report.events} events replayed to position {report.position}"
    )
    console.print(f"digest {report.digest}")
