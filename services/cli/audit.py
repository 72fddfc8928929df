"""``arbiter audit``: replay the log and check the read models (``verify``), or show how one
competitor's rating came to be (``explain``).

Its own room: the command group presents what :mod:`arbiter.services.processes.audit`
computes (tables, OK / MISMATCH / QUARANTINED lines, the digest). ``verify`` exits 1 on a
mismatch; ``explain`` exits 1 when the competitor has no rating changes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
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

    if path.is_dir():  # --overwrite replaces a file, never a directory (IsADirectoryError)
        raise fail(f"{escape(str(path))} is a directory; give a file path")
    if path.exists() and not overwrite:
        raise fail(f"{escape(str(path))} exists; pass --overwrite to replace it")
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
    competitor: Annotated[str, typer.Argument(help="The competitor whose rating to explain.")],
    arena: Annotated[str | None, typer.Option(help="Only this arena.")] = None,
    category: Annotated[
        str | None, typer.Option(help="Only this category; '' for the arena-wide pool.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="Only the last N changes (the most recent); all of them by default."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the changes and final ratings as JSON.")
    ] = False,
) -> None:
    """Print each change of a competitor's rating with the event that caused it, oldest first.

    Each change takes three lines so that the table fits 80 columns without cutting a value:
    the event, its position, kind and time; arena, category and opponent; score, expected
    score and K; rating before, after and the change. --json has every field unrounded."""
    from arbiter.services.processes.audit import (
        explain,
    )  # lazy: loads the folds (0.2 s); --help need not

    with servers() as rt:
        changes, finals = explain(rt.database_url, competitor)
    changes = [
        c for c in changes
        if (arena is None or c.arena == arena) and (category is None or c.category == category)
    ]  # fmt: skip
    if not changes:  # name the filter: the competitor may have changes outside it
        filters = (("arena", arena), ("category", category))
        where = [f"{kind} {escape(repr(value))}" for kind, value in filters if value is not None]
        scope = " and ".join(where) if where else "the log"
        raise fail(f"no rating changes for {escape(repr(competitor))} in {scope}", code=1)
    pools = {(c.arena, c.category) for c in changes}
    total = len(changes)
    if limit is not None:
        changes = changes[-limit:]
    finals = {pool: rating for pool, rating in finals.items() if pool in pools}
    if json_out:
        sys.stdout.write(json.dumps(_explain_json(competitor, total, changes, finals), indent=2))
        sys.stdout.write("\n")
        return
    console.print(_explain_table(competitor, total, changes))
    for (a, cat), rating in sorted(finals.items()):
        console.print(f"final rating in {escape(a)}/{escape(cat or '(all)')}: {rating!r}")


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _explain_table(competitor: str, total: int, changes: list[Any]) -> Table:
    """The changes as a table of four columns whose cells hold three lines each: at 80 columns
    a one-line row of its thirteen values cut every column to a few characters with an
    ellipsis. A value too long for its column still folds onto the next line, never cut."""
    shown = f"last {len(changes)} of {total}" if len(changes) < total else f"{total}"
    table = Table(
        title=escape(f"Rating changes of {competitor} ({shown}, oldest first)"),
        box=box.SIMPLE_HEAD,
        show_lines=True,
        show_edge=False,
        pad_edge=False,
    )
    for header, justify in (
        ("event\nposition  kind\noccurred", "left"),
        ("arena\ncategory\nopponent", "left"),
        ("score\nexpected\nK", "right"),
        ("before\nafter\ndelta", "right"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for c in changes:
        delta = None if c.before is None or c.after is None else c.after - c.before
        table.add_row(
            f"{escape(c.event_id)}\n{c.position}  {escape(c.kind)}\n"
            f"{c.occurred_at.isoformat(timespec='seconds')}",
            "\n".join(escape(v) for v in (c.arena, c.category or "(all)", c.opponent or "-")),
            f"{_num(c.score, 'g')}\n{_num(c.expected, '.4f')}\n{_num(c.k, 'g')}",
            f"{_num(c.before, '.4f')}\n{_num(c.after, '.4f')}\n{_num(delta, '+.4f')}",
        )
    return table


def _explain_json(
    competitor: str, total: int, changes: list[Any], finals: dict[tuple[str, str], float]
) -> dict[str, Any]:
    """The changes with every field at full precision (the table rounds to four decimals)."""
    return {
        "competitor": competitor,
        "total": total,
        "changes": [
            {**asdict(c), "occurred_at": c.occurred_at.isoformat(),
             "delta": None if c.before is None or c.after is None else c.after - c.before}
            for c in changes
        ],
        "finals": [
            {"arena": a, "category": cat, "rating": rating}
            for (a, cat), rating in sorted(finals.items())
        ],
    }  # fmt: skip
