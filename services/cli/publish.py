"""The commands that send events: ``publish`` (flags, one JSON event or JSONL), ``import``
(history files) and ``demo`` (a synthetic tournament), and how a delivery is shown: a progress
bar, each refusal as it is found, and the closing summary with its exit code.

Its own room because the three commands share exactly this presentation of a
:class:`~arbiter.services.delivery.Delivery` (validation, lookup, publishing and verdicts live
there, not here). Exit 1 when anything was refused, 2 on a usage or configuration error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from arbiter.adapters.arena_files import (
    EVENT_FORMATS,
    JUDGE,
    ArenaFileError,
    RowError,
    count_rows,
    detect_format,
    iter_import,
)
from arbiter.services.demo import demo_events
from rich.markup import escape

from .common import CLI_CONNECT_ATTEMPTS, WaitOption, console, err, fail, progress_bar, servers

__all__ = ["demo", "import_", "publish"]


def _read_events(source: str | None, file: Path | None) -> list[tuple[int, bytes]]:
    """Events to publish with their line numbers: one JSON argument, a JSONL file, or JSONL on
    stdin (``-``). Lines end at ``\n`` only (a ``\r`` before it is dropped), not at every break
    :meth:`str.splitlines` knows: U+2028, U+2029 and U+0085 are valid inside JSON strings, and
    splitting there made one event two malformed ones and shifted every later line number."""
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        lines = (line.removesuffix("\r").strip() for line in text.split("\n"))
        return [(n, line.encode()) for n, line in enumerate(lines, 1) if line]
    if source is not None:
        return [(1, source.encode())]
    return []


_OUTCOMES = ("a", "b", "tie", "none")
"""The values of ``publish --outcome`` (``none``: no winner, the event's ``null``)."""


def publish(
    event: Annotated[str | None, typer.Argument(help="One event as JSON.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSONL file of events, or - for stdin.")
    ] = None,
    a: Annotated[str | None, typer.Option(help="Battle: competitor a.")] = None,
    b: Annotated[str | None, typer.Option(help="Battle: competitor b.")] = None,
    outcome: Annotated[str | None, typer.Option(help="Battle: a, b, tie or none.")] = None,
    judge: Annotated[
        str | None, typer.Option(help="Battle: auto, human or a judge name (default: auto).")
    ] = None,
    arena: Annotated[str | None, typer.Option(help="Battle: the arena (default: default).")] = None,
    category: Annotated[str | None, typer.Option(help="Battle: the category.")] = None,
    event_id: Annotated[str | None, typer.Option(help="Battle: default a new uuid4.")] = None,
    wait: WaitOption = True,
) -> None:
    """Publish events to NATS: from flags (a battle), one JSON event, or JSONL (file or stdin).

    Every event is validated here first with the ingest's own rules and looked up in the log:
    invalid ones and reused ids with other content (``conflict``) are reported and not sent, ids
    already recorded with the same content are counted and not sent. While an ingest runs, the
    command waits for its verdict on each event sent. Exit 1 when anything was refused.
    """
    if event is not None and file is not None:  # one of them would be dropped unsaid
        raise fail("give events as an argument or with --file, not both")
    if outcome is not None and outcome not in _OUTCOMES:  # the ingest's code would say "null"
        raise fail(f"--outcome {escape(repr(outcome))}: give {'|'.join(_OUTCOMES)}")
    raws = _read_events(event, file)
    if a or b or outcome:
        if not (a and b and outcome):
            raise fail("a battle from flags needs --a, --b and --outcome")
        battle: dict[str, Any] = {
            "type": "battle.completed", "event_id": event_id or str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "arena": "default" if arena is None else arena,
            "battle_id": str(uuid.uuid4()), "a": a, "b": b,
            "outcome": None if outcome == "none" else outcome,
            "judge": "auto" if judge is None else judge, "source": "arbiter-cli",
        }  # fmt: skip
        if category is not None:  # "" goes to the ingest, which refuses it, not dropped
            battle["category"] = category
        raws.append((len(raws) + 1, json.dumps(battle).encode()))
    else:  # events name their own arena, category, judge and id: the flags would be ignored
        given = [f"--{n}" for n, v in (("arena", arena), ("category", category), ("judge", judge),
                                       ("event-id", event_id)) if v is not None]  # fmt: skip
        if given:
            raise fail(
                f"{', '.join(given)} apply only to a battle built from --a, --b and --outcome; "
                "an event given as JSON names its own"
            )
    if not raws:
        raise fail("nothing to publish: give an event as JSON, --file, or battle flags")
    report = _deliver(
        "publishing",
        len(raws),
        lambda d: _feed(d, ((f"event {n}", raw) for n, raw in raws)),
        wait=wait,
    )
    _summary(report, f"{report.read} event(s)", "event", waited=wait)


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
    # Lazy: the delivery loads NATS (about 40 ms), which `arbiter --help` need not pay.
    from arbiter.services.delivery import Delivery

    from .importing import refusal_printer

    refused = refusal_printer(max_errors)

    async def go(database_url: str, nats_url: str) -> Any:
        with progress_bar() as bar:
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

    with servers() as rt:
        try:
            return asyncio.run(go(rt.database_url, rt.nats_url))
        except (ValueError, OSError) as exc:
            raise fail(str(exc)) from exc
        except Exception as exc:
            raise fail(f"publishing to NATS failed: {_nats_reason(exc)}") from exc


def _nats_reason(exc: BaseException) -> str:
    """What NATS said, in words: a JetStream refusal names its reason (a full disk is
    'insufficient resources'), a timeout says so rather than printing nothing."""
    from nats.js.errors import APIError  # lazy: NATS is loaded only once something is sent

    if isinstance(exc, APIError):
        return (
            f"the server refused it: {exc.description or 'no reason given'} "
            f"(code {exc.code}, err_code {exc.err_code})"
        )
    if isinstance(exc, TimeoutError):
        return "NATS did not acknowledge in time (is the server overloaded or its disk full?)"
    return str(exc) or type(exc).__name__


def _summary(report: Any, read: str, noun: str, *, waited: bool = True) -> None:
    """The closing lines of a delivery; exit 1 when anything was refused. ``waited``: whether
    the delivery waited for verdicts (``--wait``); without it, an unrecorded event is no sign
    of a missing or slow ingest, which was never asked."""
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
        if not waited:
            err.print(
                "published without waiting for the ingest's verdict (--no-wait); "
                "`arbiter health` shows its lag",
                soft_wrap=True,
            )
        elif not report.ingest_running:
            err.print(
                "no ingest is taking events from NATS: they will be recorded (or refused, in "
                "ARBITER_REJECTED) once `arbiter up` or `arbiter ingest` runs",
                soft_wrap=True,
            )
        else:
            err.print("the ingest gave no verdict on them in time; `arbiter health` shows its lag")
    if report.refused:
        raise typer.Exit(1)


def import_(
    path: Annotated[
        Path,
        typer.Argument(help="JSONL of events or an arena battles file (gzip too); - for stdin."),
    ],
    arena: Annotated[
        str | None, typer.Option(help="Arena for arena battle rows (default: default).")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category for arena rows.")] = None,
    judge: Annotated[
        str | None,
        typer.Option(help=f"Judge kind of arena rows: auto, human or a judge name ({JUDGE})."),
    ] = None,
    keep_order: Annotated[
        bool, typer.Option("--keep-order", help="Keep the file's order (default: by tstamp).")
    ] = False,
    via_nats: Annotated[
        bool, typer.Option("--via-nats", help="Publish through NATS to the ingest instead.")
    ] = False,
    max_errors: Annotated[int, typer.Option(help="Row errors to print (all are counted).")] = 20,
    wait: WaitOption = True,
) -> None:
    """Bulk-import history: JSONL of Arbiter events, or arena battle files (JSON, JSONL or CSV
    with model_a, model_b, winner, optional tstamp) as public arena leaderboards publish them;
    gzip or plain, from a file or stdin (-).

    A row's event id derives from the whole row (and its occurrence among identical rows), so
    importing the same file twice changes nothing and distinct rows never merge; an interrupted
    import (Ctrl-C) continues where it stopped when run again. Arena rows are judged --judge
    (default human; a judge or voter column names the person and is kept in meta) and entered in
    tstamp order (stable) unless --keep-order; a JSONL of Arbiter events keeps its order.
    By default the events are validated and decided with the ingest's own rules and appended to
    the log directly in large batches; --via-nats publishes them to the ingest instead (same
    log, slower). The summary says how many rows were read, new, already in the log and refused
    (with row numbers; exit 1 if any).
    """
    from arbiter.services.import_source import UnreadableFile, readable_file

    if judge is not None:
        _check_judge(judge)
    if not wait and not via_nats:  # the direct path appends and reports every row itself
        raise fail("--no-wait applies to --via-nats only: a direct import waits for nothing")
    try:
        with readable_file(path) as source:
            name = "stdin" if str(path) == "-" else str(path)
            try:
                fmt = detect_format(source)
                total = count_rows(source, fmt)
            except (ArenaFileError, OSError, ValueError) as exc:
                raise fail(f"{name}: {escape(str(exc))}") from exc
            events_file = fmt in EVENT_FORMATS
            given = [f"--{n}" for n, v in (("arena", arena), ("category", category),
                                           ("judge", judge)) if v is not None]  # fmt: skip
            if events_file and given:  # events name their own arena, category and judge
                raise fail(
                    f"{name} holds Arbiter events, which name their own arena, category and "
                    f"judge; {', '.join(given)} apply to arena battle rows only"
                )
            try:
                rows = iter_import(
                    source, arena=arena or "default", category=category, fmt=fmt,
                    judge=judge or JUDGE,
                )  # fmt: skip
                first = next(rows, None)
            except (ArenaFileError, OSError, ValueError) as exc:
                raise fail(f"{name}: {escape(str(exc))}") from exc
            items = itertools.chain([first] if first is not None else [], rows)
            if not via_nats:
                from .importing import import_direct_cli

                with servers() as rt:
                    report = import_direct_cli(
                        rt.database_url, Path(name), total=total, items=items,
                        keep_order=keep_order or events_file, max_errors=max_errors,
                    )  # fmt: skip
                _summary(report, f"{report.read} row(s) of {name}", "row")
                return

            from arbiter.services.import_order import in_order

            entries = in_order(items, keep_order=keep_order or events_file)

            async def feed(delivery: Any) -> None:
                for entry in entries:  # the same order as the direct path: the same log
                    if isinstance(entry, RowError):
                        delivery.refuse(f"row {entry.row}", entry.code, entry.message)
                    else:
                        await delivery.add(f"row {entry[0]}", entry[1])

            report = _deliver(f"importing {Path(name).name}", total, feed, wait=wait,
                              max_errors=max_errors)  # fmt: skip
            _summary(report, f"{report.read} row(s) of {name}", "row", waited=wait)
    except (FileNotFoundError, UnreadableFile) as exc:
        raise fail(escape(str(exc))) from exc


def _check_judge(judge: str) -> None:
    """Refuse a --judge the ingest would refuse on every row, before reading the file."""
    from arbiter.domain.validation import decode_event

    probe = json.dumps({
        "type": "battle.completed", "event_id": "judge-check", "battle_id": "judge-check",
        "occurred_at": "2024-01-01T00:00:00Z", "a": "x", "b": "y", "outcome": "a",
        "judge": judge,
    }).encode()  # fmt: skip
    checked = decode_event(probe)
    if hasattr(checked, "code"):
        message = escape(checked.message)
        raise fail(f"--judge {escape(repr(judge))}: {message} (auto, human or a judge name)")


def demo(
    battles: Annotated[int, typer.Option(min=1, max=1_000_000)] = 2_000,
    seed: Annotated[int, typer.Option()] = 7,
    arena: Annotated[str, typer.Option()] = "demo",
) -> None:
    """Publish a synthetic tournament (seeded; rerunning it adds nothing)."""
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
