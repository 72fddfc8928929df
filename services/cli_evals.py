"""``arbiter evals``: judge audio and publish what it finds (``battle``, ``trial``, ``run``).

* ``arbiter evals battle A.wav B.wav --a X --b Y`` measures both clips, decides the winner by
  composite (ties closer than 0.02, :func:`arbiter.evals.composite.auto_winner`) and publishes
  ``battle.completed`` with ``judge: auto`` and both metric sets.
* ``arbiter evals trial CLIP.wav --competitor X --experiment E --trial-id T --prompt-index N``
  publishes ``trial.completed`` with the clip's metrics.
* ``arbiter evals run MANIFEST`` does many of either from a CSV/JSONL/JSON manifest
  (:mod:`arbiter.evals.manifest`) in worker processes, with a progress bar, and resumes: a row
  whose event id (derived from the row and its audio bytes) is in the state file or already in
  the event store is skipped without being evaluated.

All three build their events with the same code (:func:`arbiter.evals.manifest.iter_events`),
so a battle judged alone and the same battle in a manifest give the same event, byte for byte.
``occurred_at`` defaults to the newest modification time of the audio (not the clock), so
rerunning a command republishes identical content under the same id: a no-op for the ingest.

Whisper runs only when asked (``--transcribe``), which is the default when a reference text is
given (it is what WER/CER need). The evals extra (librosa, soundfile, torch, openai-whisper) is
imported inside the commands, so ``arbiter`` itself works without it; a command that needs it
exits 2 naming what to install. Exit codes: 0 ok, 1 a failure (rows that could not be
evaluated, events refused), 2 usage or configuration error (missing file, missing extra,
missing Whisper weights).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import decode_event
from arbiter.evals.extra import EXTRA_HINT, missing_modules
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from arbiter.evals.manifest import Row, RowOutcome

evals_app = typer.Typer(
    help="Evaluate audio (Whisper, librosa, composite) and publish auto-judged results.",
    no_args_is_help=True,
)

CONNECT_TIMEOUT = 10.0
#: Metrics shown in the terminal, in this order (the event carries all of them).
SHOWN = (
    "composite", "wer", "cer", "prosody_score", "quality_score", "latency_ms", "semascore",
    "duration_s", "silence_ratio", "speaking_rate_wps", "f0_median_hz", "rms_dbfs", "snr_db",
    "clipping_ratio",
)  # fmt: skip


# -- shared pieces ------------------------------------------------------------------------------
# The helpers of services/cli.py, looked up when called: cli.py imports this module to register
# it, so importing cli.py from here at import time would be circular.


def _base() -> ModuleType:
    from arbiter.services import cli

    return cli


def _fail(message: str, code: int = 2) -> typer.Exit:
    """cli._fail with the message taken literally (it prints Rich markup: "[evals]" would
    vanish)."""
    return _base()._fail(escape(message), code)  # type: ignore[no-any-return]


def _out(stderr: bool = False) -> Console:
    return _base().err if stderr else _base().console  # type: ignore[no-any-return]


def require_extra(transcribe: bool) -> None:
    """Exit 2 naming the missing packages when the evals extra is not installed."""
    missing = missing_modules(transcribe)
    if missing:
        raise _fail(
            f"the evals extra is not installed (missing: {', '.join(missing)}); "
            f"install it with: {EXTRA_HINT}"
        )


def _check_whisper(transcribe: bool, whisper_model: str | None) -> None:
    """Resolve the Whisper checkpoint up front: missing weights are a configuration error."""
    if not transcribe:
        return
    from arbiter.evals.whisper_model import WhisperWeightsMissing, resolve_model

    try:
        resolve_model(whisper_model)
    except WhisperWeightsMissing as exc:
        raise _fail(str(exc)) from exc


def _check_files(*paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise _fail(f"{path}: no such audio file")


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """KEY=VALUE options into a dict (exit 2 on a malformed one)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _evaluate_one(row: Row, transcribe: bool, whisper_model: str | None) -> dict[str, Any]:
    """Evaluate one row in this process and return its event (exit 2 on unreadable audio)."""
    from arbiter.evals.manifest import iter_events
    from arbiter.evals.whisper_model import WhisperWeightsMissing

    try:
        (outcome,) = iter_events(
            [row], workers=0, transcribe=transcribe, whisper_model=whisper_model
        )
    except WhisperWeightsMissing as exc:
        raise _fail(str(exc)) from exc
    if outcome.status != "evaluated" or outcome.event is None:
        message = outcome.error or "the clip could not be evaluated"
        code = 2 if message.startswith("AudioLoadError") else 1
        raise _fail(message.removeprefix("AudioLoadError: "), code)
    return outcome.event


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def _validate(events: Iterable[dict[str, Any]]) -> tuple[list[bytes], list[str]]:
    """(payloads that pass the ingest's own rules, a line per refused event)."""
    good: list[bytes] = []
    problems: list[str] = []
    for event in events:
        raw = _encode(event)
        result = decode_event(raw)
        if isinstance(result, Rejection):
            problems.append(f"{event.get('event_id')}: {result.code}: {result.message}")
        else:
            good.append(raw)
    return good, problems


def _occurred_at(value: str | None) -> str | None:
    if value is None:
        return None
    from arbiter.evals.judge import rfc3339

    try:
        return rfc3339(value)
    except ValueError as exc:
        raise _fail(f"--occurred-at: {exc}") from exc


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"


class _BackgroundPublisher:
    """A :class:`~arbiter.adapters.bus.Publisher` on its own event-loop thread, so the NATS
    connection stays served (pings, reconnects) while the main thread evaluates audio. Its
    first connect is bounded: the publisher itself would retry an unreachable server forever."""

    def __init__(self, nats_url: str, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        from arbiter.adapters.bus import Publisher

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.publisher = Publisher(nats_url)
        try:
            self._call(_probe(nats_url, connect_timeout), connect_timeout + 1)
            self._call(self.publisher.open(), connect_timeout)
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer from NATS within {timeout:g} s") from None

    def publish(self, payloads: list[bytes]) -> list[Any]:
        """Publish and wait for JetStream's acks (``Nats-Msg-Id`` = event id)."""
        return self._call(self.publisher.publish(payloads), 60)  # type: ignore[no-any-return]

    def _stop(self) -> None:
        nc = self.publisher.nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                self._call(nc.close(), 5)
        with contextlib.suppress(Exception):
            self._call(_cancel_pending(), 5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def close(self) -> None:
        try:
            self._call(self.publisher.close(), 10)  # drains: in-flight acks land
        except Exception:
            pass  # closed below regardless
        finally:
            self._stop()


async def _probe(nats_url: str, timeout: float) -> None:
    """One quiet connection attempt, without retries: raises when NATS cannot be reached."""
    import nats

    async def quiet(_: Exception) -> None:
        return None

    nc = await nats.connect(
        nats_url, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=timeout,
        error_cb=quiet, name="arbiter-evals-probe",
    )  # fmt: skip
    await nc.close()


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _open_publisher(nats_url: str) -> _BackgroundPublisher:
    try:
        return _BackgroundPublisher(nats_url)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise _fail(f"cannot reach NATS at {nats_url} ({reason}); check ARBITER_NATS_URL") from exc


def _publish_now(payloads: list[bytes]) -> list[Any]:
    """Publish events to the configured (or embedded) NATS; exit 2 when it cannot be reached,
    1 when it does not acknowledge them."""
    with _base()._servers() as rt:
        sender = _open_publisher(rt.nats_url)
        try:
            return sender.publish(payloads)
        except Exception as exc:
            raise _fail(f"publishing to NATS failed: {exc}", 1) from exc
        finally:
            sender.close()


def _publish_or_print(event: dict[str, Any], dry_run: bool) -> None:
    good, problems = _validate([event])
    if problems:
        for line in problems:
            _out(True).print(f"[red]refused by the ingest's rules[/red] {escape(line)}")
        raise typer.Exit(1)
    if dry_run:
        typer.echo(json.dumps(event, indent=2, ensure_ascii=False))
        return
    (ack,) = _publish_now(good)
    note = " (already published: JetStream deduplicated it)" if ack.duplicate else ""
    _out().print(f"published {event['type']} event_id {event['event_id']}{note}", markup=False)


# -- commands -----------------------------------------------------------------------------------

AudioArg = Annotated[Path, typer.Argument(help="Audio file (wav, flac, ogg, mp3).")]
Reference = Annotated[
    str | None, typer.Option(help="What the clip should say (enables WER/CER via Whisper).")
]
Arena = Annotated[str, typer.Option(help="Rating pool.")]
Category = Annotated[str | None, typer.Option(help="Sub-pool (scenario category).")]
Transcribe = Annotated[
    bool | None,
    typer.Option(
        "--transcribe/--no-transcribe",
        help="Run Whisper. Default: only when --reference is given.",
        show_default=False,
    ),
]
WhisperModel = Annotated[
    str | None,
    typer.Option(help="Whisper model name or checkpoint path. Default: $ARBITER_WHISPER_MODEL."),
]
OccurredAt = Annotated[
    str | None,
    typer.Option(help="RFC 3339 time of the result. Default: newest mtime of the audio."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the event as JSON instead of publishing it.")
]


@evals_app.command("battle")
def battle(
    audio_a: AudioArg,
    audio_b: AudioArg,
    a: Annotated[str, typer.Option("--a", help="Competitor who produced AUDIO_A.")],
    b: Annotated[str, typer.Option("--b", help="Competitor who produced AUDIO_B.")],
    reference: Reference = None,
    latency_a: Annotated[
        float | None, typer.Option("--latency-a", help="Latency of a (ms).", min=0)
    ] = None,
    latency_b: Annotated[
        float | None, typer.Option("--latency-b", help="Latency of b (ms).", min=0)
    ] = None,
    semascore_a: Annotated[
        float | None, typer.Option("--semascore-a", help="Semantic score of a (0..1).")
    ] = None,
    semascore_b: Annotated[
        float | None, typer.Option("--semascore-b", help="Semantic score of b (0..1).")
    ] = None,
    arena: Arena = "default",
    category: Category = None,
    scenario: Annotated[str | None, typer.Option(help="Scenario, copied to the event.")] = None,
    battle_id: Annotated[
        str | None, typer.Option(help="Default: derived from the event id.")
    ] = None,
    occurred_at: OccurredAt = None,
    transcribe: Transcribe = None,
    whisper_model: WhisperModel = None,
    dry_run: DryRun = False,
) -> None:
    """Judge two clips by composite and publish battle.completed (judge "auto")."""
    from arbiter.evals.manifest import BattleRow

    if a == b:
        raise _fail("--a and --b must name two different competitors")
    _check_files(audio_a, audio_b)
    do_transcribe = reference is not None if transcribe is None else transcribe
    require_extra(do_transcribe)
    _check_whisper(do_transcribe, whisper_model)
    row = BattleRow(
        line=0, audio_a=audio_a, audio_b=audio_b, competitor_a=a, competitor_b=b, arena=arena,
        category=category, battle_id=battle_id, scenario=scenario, reference=reference,
        latency_a_ms=latency_a, latency_b_ms=latency_b, semascore_a=semascore_a,
        semascore_b=semascore_b, occurred_at=_occurred_at(occurred_at),
    )  # fmt: skip
    event = _evaluate_one(row, do_transcribe, whisper_model)
    _battle_report(event, _out(dry_run))
    _publish_or_print(event, dry_run)


def _battle_report(event: dict[str, Any], out: Console) -> None:
    """Both metric sets side by side, then the verdict and what it was decided on."""
    ma, mb = event["metrics"]["a"], event["metrics"]["b"]
    table = Table(title=escape(f"battle {event['battle_id']}"))
    table.add_column("metric")
    table.add_column(escape(f"a: {event['a']}"), justify="right")
    table.add_column(escape(f"b: {event['b']}"), justify="right")
    for name in (*SHOWN, *sorted((set(ma) | set(mb)) - set(SHOWN))):
        if name in ma or name in mb:
            table.add_row(name, _fmt(ma.get(name)), _fmt(mb.get(name)))
    out.print(table)
    judge = event["meta"]["auto_judge"]
    winner = {"a": f"a ({event['a']}) wins", "b": f"b ({event['b']}) wins", "tie": "tie"}
    verdict = (
        f"verdict: {winner[event['outcome']]}, composite {judge['composite_a']:.4f} vs "
        f"{judge['composite_b']:.4f} (tie below {judge['tie_threshold']}), compared on "
        f"{', '.join(judge['compared_on'])}"
    )
    if judge["missing"]:
        verdict += f"; not measured: {', '.join(judge['missing'])} (weights renormalised)"
    out.print(verdict, soft_wrap=True, markup=False)


@evals_app.command("trial")
def trial(
    audio: AudioArg,
    competitor: Annotated[str, typer.Option(help="Competitor who produced the clip.")],
    experiment: Annotated[str, typer.Option(help="Experiment id.")],
    trial_id: Annotated[str, typer.Option(help="Trial id.")],
    prompt_index: Annotated[int, typer.Option(help="Index of the prompt (>= 0).", min=0)],
    reference: Reference = None,
    latency: Annotated[float | None, typer.Option("--latency", help="Latency (ms).", min=0)] = None,
    semascore: Annotated[float | None, typer.Option(help="Semantic score (0..1).")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Extra number to carry, NAME=VALUE (repeatable)."),
    ] = None,
    dimension: Annotated[
        list[str] | None,
        typer.Option("--dimension", help="A dimension, NAME=VALUE (repeatable)."),
    ] = None,
    arena: Arena = "default",
    category: Category = None,
    occurred_at: OccurredAt = None,
    transcribe: Transcribe = None,
    whisper_model: WhisperModel = None,
    dry_run: DryRun = False,
) -> None:
    """Measure one clip and publish trial.completed with its metrics.

    A file that exists but cannot be decoded is the trial's result: it is published with
    status "failed" and the decoder's error, as ``evals run`` does.
    """
    from arbiter.evals.manifest import TrialRow

    _check_files(audio)
    extra: dict[str, float] = {}
    for name, text in _pairs(metric or [], "--metric").items():
        try:
            extra[name] = float(text)
        except ValueError:
            raise _fail(f"--metric {name}: {text!r} is not a number") from None
    do_transcribe = reference is not None if transcribe is None else transcribe
    require_extra(do_transcribe)
    _check_whisper(do_transcribe, whisper_model)
    row = TrialRow(
        line=0, audio=audio, competitor=competitor, experiment_id=experiment, trial_id=trial_id,
        prompt_index=prompt_index, arena=arena, category=category, reference=reference,
        latency_ms=latency, semascore=semascore, extra_metrics=extra,
        dimensions=_pairs(dimension or [], "--dimension"), occurred_at=_occurred_at(occurred_at),
    )  # fmt: skip
    event = _evaluate_one(row, do_transcribe, whisper_model)
    out = _out(dry_run)
    if event["status"] == "failed":
        out.print(f"[yellow]trial failed[/yellow]: {escape(str(event.get('error')))}")
    else:
        table = Table(title=escape(f"trial {experiment}/{trial_id} ({competitor})"))
        table.add_column("metric")
        table.add_column("value", justify="right")
        metrics = event["metrics"]
        for name in (*SHOWN, *sorted(set(metrics) - set(SHOWN))):
            if name in metrics:
                table.add_row(name, _fmt(metrics[name]))
        out.print(table)
    _publish_or_print(event, dry_run)


# -- evals run ----------------------------------------------------------------------------------


def _known_ids(database_url: str, rows: Sequence[Row]) -> set[str]:
    """Event ids of these rows that the event store already holds (hashes the audio)."""
    import psycopg
    from arbiter.evals.audio import AudioLoadError
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
        raise _fail(f"cannot read the event store: {str(exc).strip()}") from exc
    return {r[0] for r in found}


@evals_app.command("run")
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
    batch_size: Annotated[int, typer.Option(min=1, help="Events per publish.")] = 32,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print new events as JSONL; publish nothing.")
    ] = False,
) -> None:
    """Judge every row of a manifest in parallel processes and publish the results, resumably.

    Rows already published (their id in the state file, or already in the event store) are
    skipped without being evaluated, so an interrupted run can simply be started again.
    """
    from arbiter.evals.manifest import DoneState, ManifestError, read_manifest, run_manifest
    from arbiter.evals.whisper_model import WhisperWeightsMissing

    try:
        rows = read_manifest(manifest)
    except (ManifestError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(str(exc)) from exc
    do_transcribe = any(r.reference for r in rows) if transcribe is None else transcribe
    require_extra(do_transcribe)
    _check_whisper(do_transcribe, whisper_model)
    done_state = DoneState(state or manifest.with_name(manifest.name + ".published"))
    done = done_state.load()
    if not dry_run:
        try:  # before any work: a state file that cannot be written would break resuming
            done_state.path.parent.mkdir(parents=True, exist_ok=True)
            done_state.path.open("a").close()
        except OSError as exc:
            raise _fail(
                f"cannot write the state file {done_state.path} ({exc}); use --state"
            ) from exc

    refused: list[str] = []
    duplicates = 0

    def report(outcome: RowOutcome) -> None:
        if outcome.status == "error":
            _out(True).print(
                f"[yellow]row {outcome.line}[/yellow] not evaluated: {escape(outcome.error or '')}"
            )

    def execute(publish: Any) -> Any:
        with _base()._progress() as bar:
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
                    progress=lambda n, total: bar.update(task, completed=n, total=total),
                    on_outcome=report,
                )
            except WhisperWeightsMissing as exc:
                raise _fail(str(exc)) from exc

    if dry_run:

        def show(batch: list[dict[str, Any]]) -> None:
            for event in batch:
                typer.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

        summary = execute(show)
    else:
        with _base()._servers() as rt:
            done |= _known_ids(rt.database_url, rows)
            sender = _open_publisher(rt.nats_url)

            def publish(batch: list[dict[str, Any]]) -> None:
                nonlocal duplicates
                good, problems = _validate(batch)
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
                raise _fail(f"publishing to NATS failed: {exc}", 1) from exc
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
    _out(dry_run).print(line, markup=False)
    for problem in refused:
        _out(True).print(f"[red]refused by the ingest's rules[/red] {escape(problem)}")
    if summary.errors or refused:
        raise typer.Exit(1)
