"""``arbiter import`` on the direct path: the file read, put in order and appended in large
batches by this process (:mod:`arbiter.services.bulk_import`), with a progress bar in rows/s.

Its own module so that :mod:`.publish` keeps the NATS path's presentation and this one the bulk
path's: two bars (the ordering pass, then the append), Ctrl-C that says how far it got.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .common import err

__all__ = ["RateColumn", "import_direct_cli", "refusal_printer"]


class RateColumn(ProgressColumn):
    """Rows per second, as rich measures it over its recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:>9,.0f} rows/s" if speed else "         - rows/s", style="cyan")


def refusal_printer(max_errors: int) -> Callable[[Any], None]:
    """Prints each refusal as it is found, the first ``max_errors`` of them (all are counted in
    the summary); shared by the NATS path's delivery and the direct path."""
    shown = 0

    def refused(refusal: Any) -> None:
        nonlocal shown
        shown += 1
        if shown <= max_errors:
            err.print(
                f"[yellow]{refusal.label}[/yellow] ({refusal.code}): {escape(refusal.message)}",
                soft_wrap=True,
            )

    return refused


def import_direct_cli(
    database_url: str,
    path: Path,
    *,
    total: int,
    items: Any,
    keep_order: bool,
    max_errors: int,
) -> Any:
    """Run the direct import of ``items`` (from ``iter_import``) with progress; returns the
    report. On Ctrl-C, prints what was done and exits 130 (rerun to continue)."""
    from arbiter.services.bulk_import import import_direct
    from arbiter.services.import_order import in_order

    refused = refusal_printer(max_errors)
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), console=err, transient=False,
    )  # fmt: skip
    with bar:
        reading = None
        if not keep_order:
            reading = bar.add_task(f"ordering {path.name} by tstamp", total=total or None)
        task = bar.add_task(f"importing {path.name}", total=total or None)
        entries = in_order(
            items,
            keep_order=keep_order,
            on_read=None if reading is None else (lambda n: bar.update(reading, completed=n)),
        )
        try:
            return import_direct(
                database_url,
                entries,
                on_refused=refused,
                on_progress=lambda n: bar.update(task, completed=n),
            )
        except KeyboardInterrupt as stop:
            report = getattr(stop, "report", None)
            bar.stop()
            if report is not None:
                err.print(
                    f"interrupted: {report.new} new, {report.known} already in the log, "
                    f"{len(report.refused)} refused so far; every committed batch is in the log, "
                    "so running the same import again continues where this one stopped",
                    soft_wrap=True,
                )
            raise typer.Exit(130) from None
