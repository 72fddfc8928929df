"""``arbiter evals run MANIFEST``: judge every row of a manifest in worker processes and publish
the results, resumably (a progress bar, a line per row that could not be evaluated, a summary).

Its own room because it is the one evals command that drives
:func:`arbiter.evals.manifest.run_manifest` (batches, a state file, the event store's known ids)
rather than one clip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.markup import escape

from .common import progress_bar, servers
from .evals_publish import open_publisher
from .evals_shared import (
    Renormalise,
    WhisperModel,
    check_whisper,
    fail_literal,
    output,
    require_extra,
    validate,
)

if TYPE_CHECKING:
    from arbiter.evals.manifest import Row, RowOutcome

__all__ = ["run"]


def _known_ids(database_url: str, rows: Sequence[Row]) -> set[str]:
    """Event ids of these rows that the event store already holds (hashes the audio)."""
    from arbiter.evals.audio import AudioLoadError  # lazy: loads numpy, see run()
    from arbiter.evals.manifest import row_event_id

    ids: list[str] = []
    for row in rows:
        try:
            ids.append(row_event_id(row))
        except (AudioLoadError, OSError):
            continue  # reported by the run itself
    if not ids:
        return set()
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            found = conn.execute(
                "SELECT event_id FROM public.arbiter_event_ids WHERE event_id = ANY(%s)", (ids,)
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return set()  # no event store yet: nothing was ingested
    except psycopg.Error as exc:
        raise fail_literal(f"cannot read the event store: {str(exc).strip()}") from exc
    return {r[0] for r in found}


def run(
    manifest: Annotated[Path, typer.Argument(help="CSV, JSONL or JSON manifest (see docs).")],
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (0: evaluate in this process). Default: one per CPU."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="File of published event ids. Default: MANIFEST.published beside it."),
    ] = None,
    transcribe: Annotated[
        bool | None,
        typer.Option(
            "--transcribe/--no-transcribe",
            help="Run Whisper. Default: when any row has a reference text.",
            show_default=False,
        ),
    ] = None,
    whisper_model: WhisperModel = None,
    renormalise: Renormalise = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per publish.")] = 32,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print new events as JSONL; publish nothing.")
    ] = False,
) -> None:
    """Judge every row of a manifest in parallel processes and publish the results, resumably.

    Rows already published (their id in the state file, or already in the event store) are
    skipped without being evaluated, so an interrupted run can simply be started again.
    """
    # Lazy: arbiter.evals loads numpy (0.1 s), which --help need not pay.
    from arbiter.evals.manifest import DoneState, ManifestError, read_manifest, run_manifest
    from arbiter.evals.whisper_model import WhisperWeightsMissing

    try:
        rows = read_manifest(manifest)
    except (ManifestError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail_literal(str(exc)) from exc
    do_transcribe = any(r.reference for r in rows) if transcribe is None else transcribe
    require_extra(do_transcribe)
    check_whisper(do_transcribe, whisper_model)
    done_state = DoneState(state or manifest.with_name(manifest.name + ".published"))
    done = done_state.load()
    if not dry_run:
        try:  # before any work: a state file that cannot be written would break resuming
            done_state.path.parent.mkdir(parents=True, exist_ok=True)
            done_state.path.open("a").close()
        except OSError as exc:
            raise fail_literal(
                f"cannot write the state file {done_state.path} ({exc}); use --state"
            ) from exc

    refused: list[str] = []
    duplicates = 0

    def report(outcome: RowOutcome) -> None:
        if outcome.status == "error":
            output(True).print(
                f"[yellow]row {outcome.line}[/yellow] not evaluated: {escape(outcome.error or '')}"
            )

    def execute(publish: Any) -> Any:
        with progress_bar() as bar:
            task = bar.add_task("evaluating", total=len(rows))
            try:
                return run_manifest(
                    rows,
                    publish,
                    done=done,
                    batch_size=batch_size,
                    workers=workers,
                    transcribe=do_transcribe,
                    whisper_model=whisper_model,
                    renormalise=renormalise,
                    progress=lambda n, total: bar.update(task, completed=n, total=total),
                    on_outcome=report,
                )
            except WhisperWeightsMissing as exc:
                raise fail_literal(str(exc)) from exc

    if dry_run:

        def show(batch: list[dict[str, Any]]) -> None:
            for event in batch:
                typer.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

        summary = execute(show)
    else:
        with servers() as rt:
            done |= _known_ids(rt.database_url, rows)
            sender = open_publisher(rt.nats_url)

            def publish(batch: list[dict[str, Any]]) -> None:
                nonlocal duplicates
                good, problems = validate(batch)
                refused.extend(problems)
                if not good:
                    return
                acks = sender.publish(good)
                duplicates += sum(1 for ack in acks if ack.duplicate)
                done_state.add([json.loads(raw)["event_id"] for raw in good])

            try:
                summary = execute(publish)
            except typer.Exit:
                raise
            except Exception as exc:
                raise fail_literal(f"publishing to NATS failed: {exc}", 1) from exc
            finally:
                sender.close()

    published = summary.published - len(refused)
    verb = "would publish" if dry_run else "published"
    line = (
        f"{summary.total} rows: {verb} {published}, skipped {summary.skipped} already done, "
        f"{len(summary.errors)} not evaluated"
    )
    if duplicates:
        line += f" ({duplicates} already known to JetStream)"
    output(dry_run).print(line, markup=False)
    for problem in refused:
        output(True).print(f"[red]refused by the ingest's rules[/red] {escape(problem)}")
    if summary.errors or refused:
        raise typer.Exit(1)
