"""The ``arbiter`` command line (Typer + Rich).

Exit codes: 0 ok, 1 a failure was found (an audit mismatch, rejected events on publish),
2 usage or configuration error (bad flags, bad JSON, unreachable servers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .cli_backup import backup_command, restore_command
from .cli_evals import evals_app
from .cli_health import health_command
from .cli_keys import keys_app

app = typer.Typer(
    name="arbiter",
    help="Arbiter: an event-sourced rating engine (Elo leaderboards from an ordered event log).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="Replay the log and check the read models.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(evals_app, name="evals")
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)
CLI_CONNECT_ATTEMPTS = 6
"""A command gives up on an unreachable NATS after this many tries, 0.5 s apart."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@contextmanager
def _servers(owner: bool = False, **up_options: Any) -> Iterator[Any]:
    """The servers to use; failing to start or reach them is a configuration error (exit 2).
    ``owner`` and ``up_options``: see :func:`arbiter.services.runtime.servers`."""
    from arbiter.services.runtime import RuntimeRefusal, servers

    ctx = servers(owner=owner, **up_options)
    try:
        runtime = ctx.__enter__()
    except RuntimeRefusal as exc:
        raise _fail(str(exc)) from exc
    except Exception as exc:
        raise _fail(f"cannot start or reach the servers: {exc}") from exc
    try:
        with psycopg.connect(runtime.database_url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        ctx.__exit__(None, None, None)
        raise _fail(
            f"cannot reach PostgreSQL ({str(exc).strip()}); check ARBITER_DATABASE_URL"
        ) from exc
    try:
        yield runtime
    except BaseException as exc:
        if not ctx.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        ctx.__exit__(None, None, None)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=err, transient=False,
    )  # fmt: skip


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def up(
    host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    nats_port: Annotated[
        int, typer.Option(help="Port of the embedded NATS (127.0.0.1), the same on every run.")
    ] = 4222,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run migrations, ingest, projector and API together (embedded servers by default)."""
    from arbiter.services.up import check_port, run_up, stop_on_signals

    _logging(verbose)
    with (
        stop_on_signals(),
        _servers(
            owner=True, nats_port=nats_port, preflight=lambda: check_port(host, port)
        ) as runtime,
    ):
        run_up(runtime, host, port, console.print)
    console.print("stopped")


@app.command()
def migrate() -> None:
    """Create the event store and apply pending read-model migrations."""
    from arbiter.services.setup import prepare_database

    with _servers() as rt:
        applied = prepare_database(rt.database_url)
    console.print("\n".join(applied) if applied else "schema is up to date")


@app.command()
def ingest(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the ingest service alone (NATS -> event store)."""
    from arbiter.services.ingest import run_ingest

    _logging(verbose)
    with _servers() as rt:
        asyncio.run(_until_signal(lambda stop: run_ingest(rt.database_url, rt.nats_url, stop)))


@app.command()
def project(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the projector alone (event store -> read models)."""
    import signal
    import threading

    from arbiter.services.projector import run_projectors
    from arbiter.services.setup import prepare_database

    _logging(verbose)
    with _servers() as rt:
        prepare_database(rt.database_url)
        stop = threading.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
        run_projectors(rt.database_url, stop)


@app.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the HTTP API alone."""
    from arbiter.services.api import serve

    with _servers() as rt:
        serve(rt.database_url, rt.nats_url, host, port)


async def _until_signal(factory: Any) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    await factory(stop)


def _read_events(source: str | None, file: Path | None) -> list[bytes]:
    """Events to publish: one JSON argument, a JSONL file, or JSONL on stdin (``-``)."""
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        return [line.strip().encode() for line in text.splitlines() if line.strip()]
    if source is not None:
        return [source.encode()]
    return []


WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait for the ingest's verdict on each event (new, refused) while one is running.",
    ),
]


@app.command()
def publish(
    event: Annotated[str | None, typer.Argument(help="One event as JSON.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSONL file of events, or - for stdin.")
    ] = None,
    a: Annotated[str | None, typer.Option(help="Battle: competitor a.")] = None,
    b: Annotated[str | None, typer.Option(help="Battle: competitor b.")] = None,
    outcome: Annotated[str | None, typer.Option(help="Battle: a, b, tie or none.")] = None,
    judge: Annotated[str, typer.Option(help="Battle: auto, human or a judge name.")] = "auto",
    arena: Annotated[str, typer.Option()] = "default",
    category: Annotated[str | None, typer.Option()] = None,
    event_id: Annotated[str | None, typer.Option(help="Default: a new uuid4.")] = None,
    wait: WaitOption = True,
) -> None:
    """Publish events to NATS: from flags (a battle), one JSON event, or JSONL (file or stdin).

    Every event is validated here first with the ingest's own rules and looked up in the log:
    invalid ones and reused ids with other content (``conflict``) are reported and not sent, ids
    already recorded with the same content are counted and not sent. While an ingest runs, the
    command waits for its verdict on each event sent. Exit 1 when anything was refused.
    """
    raws = _read_events(event, file)
    if a or b or outcome:
        if not (a and b and outcome):
            raise _fail("a battle from flags needs --a, --b and --outcome")
        battle: dict[str, Any] = {
            "type": "battle.completed", "event_id": event_id or str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(), "arena": arena,
            "battle_id": str(uuid.uuid4()), "a": a, "b": b,
            "outcome": None if outcome == "none" else outcome, "judge": judge,
            "source": "arbiter-cli",
        }  # fmt: skip
        if category:
            battle["category"] = category
        raws.append(json.dumps(battle).encode())
    if not raws:
        raise _fail("nothing to publish: give an event as JSON, --file, or battle flags")
    report = _deliver(
        "publishing",
        len(raws),
        lambda d: _feed(d, ((f"event {n}", raw) for n, raw in enumerate(raws, 1))),
        wait=wait,
    )
    _summary(report, f"{report.read} event(s)", "event")


async def _feed(delivery: Any, items: Iterable[tuple[str, bytes]]) -> None:
    for label, raw in items:
        await delivery.add(label, raw)


def _deliver(
    description: str,
    total: int | None,
    feed: Callable[[Any], Awaitable[None]],
    *,
    wait: bool = True,
    max_errors: int = 20,
) -> Any:
    """Run a :class:`~arbiter.services.delivery.Delivery` fed by ``feed`` with a progress bar;
    each refusal is printed as it is found (the first ``max_errors``; all are counted)."""
    from arbiter.services.delivery import Delivery, Refusal

    shown = 0

    def refused(refusal: Refusal) -> None:
        nonlocal shown
        shown += 1
        if shown <= max_errors:
            err.print(
                f"[yellow]{refusal.label}[/yellow] ({refusal.code}): {escape(refusal.message)}",
                soft_wrap=True,
            )

    async def go(database_url: str, nats_url: str) -> Any:
        with _progress() as bar:
            task = bar.add_task(description, total=total or None)
            delivery = Delivery(
                database_url,
                nats_url,
                wait=wait,
                connect_attempts=CLI_CONNECT_ATTEMPTS,
                on_refused=refused,
                on_progress=lambda n: bar.update(task, completed=n),
            )
            async with delivery:
                await feed(delivery)
            return delivery.report

    with _servers() as rt:
        try:
            return asyncio.run(go(rt.database_url, rt.nats_url))
        except (ValueError, OSError) as exc:
            raise _fail(str(exc)) from exc
        except Exception as exc:
            raise _fail(f"publishing to NATS failed: {_nats_reason(exc)}") from exc


def _nats_reason(exc: BaseException) -> str:
    """What NATS said, in words: a JetStream refusal names its reason (a full disk is
    'insufficient resources'), a timeout says so rather than printing nothing."""
    from nats.js.errors import APIError

    if isinstance(exc, APIError):
        return (
            f"the server refused it: {exc.description or 'no reason given'} "
            f"(code {exc.code}, err_code {exc.err_code})"
        )
    if isinstance(exc, TimeoutError):
        return "NATS did not acknowledge in time (is the server overloaded or its disk full?)"
    return str(exc) or type(exc).__name__


def _summary(report: Any, read: str, noun: str) -> None:
    """The closing lines of a delivery; exit 1 when anything was refused."""
    parts = [f"{report.new} new", f"{report.known} already in the log"]
    parts.append(f"{len(report.refused)} refused")
    if report.unconfirmed:
        parts.append(f"{report.unconfirmed} published, not yet recorded")
    console.print(f"read {read}: " + ", ".join(parts), soft_wrap=True)
    if report.refused:
        codes = ", ".join(f"{n} {code}" for code, n in sorted(report.by_code().items()))
        labels = [r.label.removeprefix(f"{noun} ") for r in report.refused[:50]]
        more = ", ..." if len(report.refused) > 50 else ""
        err.print(f"refused: {codes} ({noun}s {', '.join(labels)}{more})", soft_wrap=True)
    if report.unconfirmed:
        if not report.ingest_running:
            err.print(
                "no ingest is taking events from NATS: they will be recorded (or refused, in "
                "ARBITER_REJECTED) once `arbiter up` or `arbiter ingest` runs",
                soft_wrap=True,
            )
        else:
            err.print("the ingest gave no verdict on them in time; `arbiter health` shows its lag")
    if report.refused:
        raise typer.Exit(1)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="JSONL of events, or an arena battles file.")],
    arena: Annotated[str, typer.Option(help="Arena for arena battle rows.")] = "default",
    category: Annotated[str | None, typer.Option(help="Category for arena rows.")] = None,
    max_errors: Annotated[int, typer.Option(help="Row errors to print (all are counted).")] = 20,
    wait: WaitOption = True,
) -> None:
    """Bulk-import history: JSONL of Arbiter events, or arena battle files (JSON, JSONL or CSV
    with model_a, model_b, winner, optional tstamp) as public arena leaderboards publish them.

    A row's event id derives from the whole row (and its occurrence among identical rows), so
    importing the same file twice changes nothing and distinct rows never merge. Every event is
    validated here with the ingest's rules, looked up in the log, and the new ones published to
    NATS in chunks (progress shown). The summary says how many rows were read, new, already in
    the log and refused (with row numbers; exit 1 if any).
    """
    from arbiter.adapters.arena_files import ArenaFileError, RowError, count_rows, iter_import
    from arbiter.adapters.bus import encode_event

    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        total = count_rows(path)
        rows = iter_import(path, arena=arena, category=category)
        first = next(rows, None)
    except (ArenaFileError, OSError, ValueError) as exc:
        raise _fail(f"{path}: {exc}") from exc

    async def feed(delivery: Any) -> None:
        for line, item in itertools.chain([first] if first is not None else [], rows):
            if isinstance(item, RowError):
                delivery.refuse(f"row {line}", item.code, item.message)
            else:
                await delivery.add(f"row {line}", encode_event(item).payload)

    report = _deliver(f"importing {path.name}", total, feed, wait=wait, max_errors=max_errors)
    _summary(report, f"{report.read} row(s) of {path}", "row")


@app.command()
def demo(
    battles: Annotated[int, typer.Option(min=1, max=1_000_000)] = 2_000,
    seed: Annotated[int, typer.Option()] = 7,
    arena: Annotated[str, typer.Option()] = "demo",
) -> None:
    """Publish a synthetic tournament (seeded; rerunning it adds nothing)."""
    from arbiter.services.demo import demo_events

    events = [json.dumps(e).encode() for e in demo_events(battles, seed, arena)]
    report = _deliver(
        "publishing the demo",
        len(events),
        lambda d: _feed(d, ((f"event {n}", raw) for n, raw in enumerate(events, 1))),
    )
    if report.known == len(events):
        console.print(
            f"added nothing: all {len(events)} demo events (seed {seed}) are already in the "
            f"log; try: arbiter leaderboard --arena {arena}"
        )
        return
    _summary(report, f"{len(events)} demo events for arena {arena!r}", "event")
    console.print(f"try: arbiter leaderboard --arena {arena}")


@app.command()
def leaderboard(
    arena: Annotated[str, typer.Option()] = "default",
    category: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """Print the Elo leaderboard of an arena (or one category of it) as a table."""
    with _servers() as rt, psycopg.connect(rt.database_url) as conn:
        try:
            rows = conn.execute(
                "SELECT r.competitor, c.name, r.rating, r.games, r.wins, r.losses, r.ties "
                "FROM arbiter_ratings.ratings r LEFT JOIN arbiter_ratings.competitors c "
                "USING (competitor) WHERE r.arena = %s AND r.category = %s "
                "ORDER BY r.rating DESC, r.competitor LIMIT %s",
                (arena, category or "", limit),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            raise _fail("no read model yet: run 'arbiter migrate' or 'arbiter up'") from None
    title = f"Leaderboard: {arena}" + (f" / {category}" if category else "")
    table = Table(title=title)
    for col in ("#", "competitor", "name", "Elo", "games", "W", "L", "T", "win rate"):
        table.add_column(col, justify="right" if col not in ("competitor", "name") else "left")
    for rank, (comp, name, rating, games, w, lost, t) in enumerate(rows, 1):
        rate = f"{w / games:.1%}" if games else "-"
        table.add_row(
            str(rank), comp, name or "", f"{rating:.1f}", str(games), str(w), str(lost), str(t),
            rate,
        )  # fmt: skip
    console.print(table if rows else f"no rated competitors in {title.split(': ', 1)[1]}")


@app.command()
def rebuild(
    projection: Annotated[str | None, typer.Argument(help="Default: every projection.")] = None,
) -> None:
    """Rebuild read models from position 0 into fresh tables and swap them in atomically."""
    from arbiter.projections import PROJECTIONS
    from arbiter.services.rebuild import RebuildError
    from arbiter.services.rebuild import rebuild as do_rebuild
    from arbiter.services.setup import prepare_database

    names = [projection] if projection else list(PROJECTIONS)
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise _fail(f"unknown projection {unknown[0]!r}; known: {', '.join(PROJECTIONS)}")
    with _servers() as rt:
        prepare_database(rt.database_url)
        for name in names:
            with _progress() as bar:
                task = bar.add_task(f"rebuilding {name}", total=None)

                def progress(done: int, total: int, task: Any = task, bar: Progress = bar) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    result = do_rebuild(rt.database_url, PROJECTIONS[name], progress=progress)
                except RebuildError as exc:
                    raise _fail(f"rebuild of {name} failed (the live read model is unchanged): "
                                f"{exc}", 1) from exc  # fmt: skip
            rate = result.events / result.seconds if result.seconds else 0
            processes = f" in {result.workers} processes" if result.workers > 1 else ""
            console.print(
                f"{name}: {result.events} events to position {result.position} in "
                f"{result.seconds:.2f}s{processes} ({rate:,.0f} events/s), "
                f"generation {result.generation}"
            )


@audit_app.command("verify")
def audit_verify() -> None:
    """Replay the whole log in memory and compare every rating and counter (exit 1 on mismatch)."""
    from arbiter.services.audit import verify
    from rich.markup import escape

    with _servers() as rt, _progress() as bar:
        task = bar.add_task("replaying", total=None)
        report = verify(
            rt.database_url,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for q in report.quarantined:  # skipped by projector and replay alike: reported, not failed
        line = f"{q.projection} position {q.position} event {q.event_id}: {q.error}"
        console.print(f"[yellow]QUARANTINED[/yellow] {escape(line)}")
    if report.ok:
        console.print(
            f"[green]OK[/green]: {report.events} events replayed to position {report.position}; "
            "every rating, counter and history row matches"
        )
        console.print(f"digest {report.digest}")
        return
    for line in report.mismatches[:200]:
        console.print(f"[red]MISMATCH[/red] {line}")
    if len(report.mismatches) > 200:
        console.print(f"... and {len(report.mismatches) - 200} more")
    console.print(f"replayed digest {report.digest}")
    raise typer.Exit(1)


@audit_app.command("explain")
def audit_explain(
    competitor: str,
    arena: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option(help="'' for the arena-wide pool.")] = None,
) -> None:
    """Print each change of a competitor's rating with the event that caused it."""
    from arbiter.services.audit import explain

    with _servers() as rt:
        changes, finals = explain(rt.database_url, competitor)
    changes = [
        c for c in changes
        if (arena is None or c.arena == arena) and (category is None or c.category == category)
    ]  # fmt: skip
    if not changes:
        raise _fail(f"no rating changes for {competitor!r} in the log", code=1)
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


app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("health")(health_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
