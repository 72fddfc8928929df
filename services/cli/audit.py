"""``arbiter audit``: replay the log and check the read models (``verify``), or show how one
competitor's rating came to be (``explain``).

Its own room: the command group presents what :mod:`arbiter.services.processes.audit`
computes (tables, OK / MISMATCH / QUARANTINED lines, the digest). ``verify`` exits 1 on a
mismatch; ``explain`` exits 1 when the competitor has no rating changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, fail, progress_bar, servers

__all__ = ["audit_app", "audit_explain", "audit_export", "audit_verify"]

audit_app = typer.Typer(help="Replay the log and check the read models.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Verify an export (`arbiter audit export`) alone, with no server running.",
        ),
    ] = None,
) -> None:
    """Replay the whole log in memory, compare every table of both read models and check the
    log's hash chain (exit 1 on a mismatch or a broken chain; the chain head is printed either
    way); with --from FILE, re-derive them from an export file and check its digest and chain."""
    if from_file is not None:
        _verify_file(from_file)
        return
    from arbiter.services.processes.audit import (
        verify,
    )  # lazy: loads the folds (0.2 s); --help need not

    with servers() as rt, progress_bar() as bar:
        task = bar.add_task("replaying", total=None)
        report = verify(
            rt.database_url,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for line in report.chain_breaks[:200]:
        console.print(f"[red]CHAIN BROKEN[/red] {escape(line)}")
    console.print(f"chain head {report.chain_head} at position {report.chain_position}")
    for q in report.quarantined:  # skipped by projector and replay alike: reported, not failed
        line = f"{q.projection} position {q.position} event {q.event_id}: {q.error}"
        console.print(f"[yellow]QUARANTINED[/yellow] {escape(line)}")
    if report.ok:
        console.print(
            f"[green]OK[/green]: {report.events} events replayed to position {report.position}; "
            "every row of every table of both read models matches; the hash chain is intact"
        )
        console.print(f"digest {report.digest}")
        return
    for line in report.mismatches[:200]:
        console.print(f"[red]MISMATCH[/red] {line}")
    if len(report.mismatches) > 200:
        console.print(f"... and {len(report.mismatches) - 200} more")
    console.print(f"replayed digest {report.digest}")
    raise typer.Exit(1)


def _verify_file(path: Path) -> None:
    from arbiter.services.processes.audit_file import ExportError, verify_file  # lazy: as above

    if not path.is_file():
        raise fail(f"{path}: no such file")
    try:
        with progress_bar() as bar:
            task = bar.add_task("replaying the export", total=None)
            report = verify_file(
                path, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    except ExportError as exc:
        raise fail(str(exc)) from exc
    head = report.header
    where = ", ".join(f"{name} at {p['position']}" for name, p in head.projections.items())
    console.print(f"chain head {report.chain_head} at position {report.chain_position}")
    if report.ok:
        console.print(
            f"[green]OK[/green]: {report.events} events of {path} replayed ({where}); the state "
            "re-derived from the file alone is the one the live audit verified, and the hash "
            "chain is intact"
        )
        console.print(f"digest {report.digest}")
        return
    for line in report.problems:
        console.print(f"[red]MISMATCH[/red] {escape(line)}")
    console.print(f"replayed digest {report.digest}")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    path: Annotated[Path, typer.Argument(help="Where to write (gzip when it ends in .gz).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Verify the live read models, then write the log behind them and the verified digest to a
    self-describing file that `arbiter audit verify --from FILE` checks with no server."""
    from arbiter.services.processes.audit_file import ExportError, export  # lazy: as above

    if path.exists() and not overwrite:
        raise fail(f"{path} exists; pass --overwrite to replace it")
    with servers() as rt, progress_bar() as bar:
        task = bar.add_task("exporting", total=None)
        try:
            report, written = export(
                rt.database_url,
                path,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except ExportError as exc:
            console.print(f"[red]not exported[/red]: {escape(str(exc))}")
            raise typer.Exit(1) from exc
    console.print(f"exported {written} events to {path}")
    console.print(f"digest {report.digest}")


@audit_app.command("explain")
def audit_explain(
    competitor: str,
    arena: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option(help="'' for the arena-wide pool.")] = None,
) -> None:
    """Print each change of a competitor's rating with the event that caused it."""
    from arbiter.services.processes.audit import (
        explain,
    )  # lazy: loads the folds (0.2 s); --help need not

    with servers() as rt:
        changes, finals = explain(rt.database_url, competitor)
    changes = [
        c for c in changes
        if (arena is None or c.arena == arena) and (category is None or c.category == category)
    ]  # fmt: skip
    if not changes:
        raise fail(f"no rating changes for {competitor!r} in the log", code=1)
    table = Table(title=f"Rating changes of {competitor}")
    for col in ("position", "event", "kind", "occurred", "arena", "category", "opponent",
                "score", "expected", "K", "before", "after", "delta"):  # fmt: skip
        table.add_column(col)

    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for c in changes:
        delta = None if c.before is None or c.after is None else c.after - c.before
        table.add_row(
            str(c.position), c.event_id, c.kind, c.occurred_at.isoformat(timespec="seconds"),
            c.arena, c.category or "(all)", c.opponent or "-", num(c.score, "g"),
            num(c.expected, ".4f"), num(c.k, "g"), num(c.before, ".4f"), num(c.after, ".4f"),
            num(delta, "+.4f"),
        )  # fmt: skip
    console.print(table)
    for (a, cat), rating in sorted(finals.items()):
        console.print(f"final rating in {a}/{cat or '(all)'}: {rating!r}")
