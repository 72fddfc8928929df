"""``arbiter rebuild [PROJECTION]``: rebuild read models from position 0 and swap them in.

Its own room: the command is presentation only (a progress bar and a closing line per
projection); the rebuild itself is :mod:`arbiter.services.processes.rebuild`. A failed
rebuild leaves the live read model unchanged and exits 1; an unknown projection name exits 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from .common import console, fail, progress_bar, servers

__all__ = ["rebuild"]


def rebuild(
    projection: Annotated[str | None, typer.Argument(help="Default: every projection.")] = None,
) -> None:
    """Rebuild read models from position 0 into fresh tables and swap them in atomically."""
    # Lazy: the projections and the rebuild load eventsourcing (tenths of a second), which
    # `arbiter --help` need not pay.
    from arbiter.projections import PROJECTIONS
    from arbiter.services.processes.rebuild import RebuildError
    from arbiter.services.processes.rebuild import rebuild as do_rebuild
    from arbiter.services.setup import prepare_database

    # `is None`: only an omitted name means every projection; an empty one is refused below.
    names = list(PROJECTIONS) if projection is None else [projection]
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise fail(
            f"unknown projection {escape(repr(unknown[0]))}; known: {', '.join(PROJECTIONS)}"
        )
    with servers() as rt:
        prepare_database(rt.database_url)
        for name in names:
            with progress_bar() as bar:
                task = bar.add_task(f"rebuilding {name}", total=None)

                def progress(done: int, total: int, task: Any = task, bar: Progress = bar) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    result = do_rebuild(rt.database_url, PROJECTIONS[name], progress=progress)
                except RebuildError as exc:
                    raise fail(f"rebuild of {name} failed (the live read model is unchanged): "
                               f"{exc}", 1) from exc  # fmt: skip
            rate = result.events / result.seconds if result.seconds else 0
            processes = f" in {result.workers} processes" if result.workers > 1 else ""
            console.print(
                f"{name}: {result.events} events to position {result.position} in "
                f"{result.seconds:.2f}s{processes} ({rate:,.0f} events/s), "
                f"generation {result.generation}"
            )
